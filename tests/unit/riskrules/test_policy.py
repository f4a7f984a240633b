"""The policy TOML: defaults per issue 6, and every bad value named by its key."""

import tomllib
from pathlib import Path

import pytest

from domain.riskrules import PolicyError, RiskPolicy, RuleAction, policy_from_mapping, policy_to_mapping

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "risk_policies" / "example_policy.toml"


def test_defaults_match_issue_6() -> None:
    policy = policy_from_mapping({})
    assert policy == RiskPolicy()
    assert policy.gross_leverage.limit_e8 == 150_000_000
    assert policy.net_leverage.limit_e8 == 150_000_000
    assert policy.name.limit_e8 == 10_000_000
    assert policy.sector.limit_e8 == 30_000_000
    assert policy.country.limit_e8 == 60_000_000
    assert policy.perp_side.limit_e8 == 50_000_000


def test_example_policy_file_loads_and_round_trips() -> None:
    raw = tomllib.loads(EXAMPLE.read_text())
    policy = policy_from_mapping(raw["risk"], prefix="risk.")
    assert policy.sector.action is RuleAction.SCALE
    assert policy.order_notional.limit == 5_000_000_00
    assert policy.price_band.band_e8 == 5_000_000
    assert policy_from_mapping(policy_to_mapping(policy)) == policy


def test_partial_table_keeps_other_defaults() -> None:
    policy = policy_from_mapping({"name": {"action": "reject"}})
    assert policy.name.action is RuleAction.REJECT
    assert policy.name.limit_e8 == 10_000_000


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"sectr": {}}, "policy.sectr"),
        ({"sector": {"limit": 1}}, "sector.limit"),
        ({"sector": {"limit_e8": "30%"}}, "sector.limit_e8"),
        ({"sector": {"limit_e8": 0}}, "sector.limit_e8"),
        ({"sector": {"limit_e8": 3_000_000_000}}, "sector.limit_e8"),
        ({"gross_leverage": {"action": "shrink"}}, "gross_leverage.action"),
        ({"order_qty": {"action": "scale"}}, "order_qty.action"),
        ({"price_band": {"action": "scale"}}, "price_band.action"),
        ({"price_band": {"band_e8": -1}}, "price_band.band_e8"),
        ({"net_leverage": 1.5}, "net_leverage"),
        ({"name": {"limit_e8": True}}, "name.limit_e8"),
    ],
)
def test_errors_name_the_bad_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(PolicyError, match=rf"^{key}[:.]"):
        policy_from_mapping(raw)


def test_prefix_is_prepended_to_keys() -> None:
    with pytest.raises(PolicyError, match=r"^risk\.sector\.action:"):
        policy_from_mapping({"sector": {"action": "x"}}, prefix="risk.")
