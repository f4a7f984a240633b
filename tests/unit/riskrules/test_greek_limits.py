"""Greek limits on an option book: measures from the BSM kernel, actions, and the invariant that no
enabled limit is breached afterwards (hypothesis), bit-identical on reruns."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.instruments import Instrument
from domain.markets import OPTION_MULTIPLIER_US_EQUITY, black_scholes_greeks
from domain.riskrules import (
    GREEK_RULE_ORDER,
    GreekLimit,
    GreekLimits,
    PolicyError,
    RiskPolicy,
    RuleAction,
    evaluate_greeks,
    greek_measures,
    make_greek_book,
    policy_from_mapping,
    policy_to_mapping,
)


def option(iid: int, underlying: str, strike: int, right: str) -> Instrument:
    return Instrument(
        instrument_id=iid, symbol=f"{underlying} {strike}{right[0].upper()}", venue="OPRA",
        asset_class="option", currency="USD", price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1,
        multiplier=OPTION_MULTIPLIER_US_EQUITY, underlying=underlying, strike_raw=strike * 100,
        expiry_day=20260116, right=right,
    )  # fmt: skip


CHAIN = [
    option(1, "AAPL", 180, "call"),
    option(2, "AAPL", 200, "call"),
    option(3, "AAPL", 200, "put"),
    option(4, "MSFT", 400, "call"),
    option(5, "MSFT", 380, "put"),
]
PX = {"AAPL": 195.0, "MSFT": 410.0}


def book(target: list[int], current: list[int] | None = None, vol: float = 0.3) -> object:
    return make_greek_book(
        CHAIN, target, current or [0] * len(CHAIN), underlying_px=PX, vol=vol, rate=0.04, t_years=0.25
    )


def policy(**limits: GreekLimit) -> RiskPolicy:
    return RiskPolicy(greeks=GreekLimits(**limits))


def test_measures_are_bsm_greeks_times_multiplier_and_quantity() -> None:
    b = book([10, 0, 0, 0, -4])
    g = black_scholes_greeks(np.array([195.0, 410.0]), np.array([180.0, 380.0]), 0.25, 0.3, 0.04,
                             np.array([True, False]))  # fmt: skip
    m = greek_measures(b, b.target_qty)  # type: ignore[attr-defined]
    cents = 100
    assert m["delta_underlying"] == pytest.approx(
        max(abs(10 * g.delta[0] * 195 * 100 * cents), abs(-4 * g.delta[1] * 410 * 100 * cents)), rel=1e-12
    )
    total_vega = (10 * g.vega[0] - 4 * g.vega[1]) / 100 * 100 * cents
    assert m["vega_total"] == pytest.approx(abs(total_vega), rel=1e-12)
    total_gamma = (10 * g.gamma[0] * 195**2 - 4 * g.gamma[1] * 410**2) / 100 * 100 * cents
    assert m["gamma_total"] == pytest.approx(abs(total_gamma), rel=1e-12)


def test_disabled_by_default_passes_everything() -> None:
    b = book([1000, -500, 200, 300, -100])
    result = evaluate_greeks(b, RiskPolicy())  # type: ignore[arg-type]
    assert result.qty_raw.tolist() == [1000, -500, 200, 300, -100]
    assert [v.rule for v in result.verdicts] == [f"greek_{r}" for r in GREEK_RULE_ORDER]
    assert {(v.action, v.detail) for v in result.verdicts} == {("pass", "disabled")}


def test_clip_on_one_underlying_leaves_the_other() -> None:
    b = book([50, 0, 0, 10, 0])
    before = greek_measures(b, b.target_qty)  # type: ignore[attr-defined]
    limit = 50_000_000  # $500k cash delta per underlying
    result = evaluate_greeks(b, policy(delta_underlying=GreekLimit(limit=limit, action=RuleAction.CLIP)))  # type: ignore[arg-type]
    verdict = result.verdicts[0]
    assert before["delta_underlying"] > limit
    assert verdict.action == "clip" and verdict.group_ids == [0] and verdict.detail == "AAPL"
    assert verdict.instrument_ids == [1]
    assert result.qty_raw[3] == 10  # MSFT untouched
    assert 0 < result.qty_raw[0] < 50
    assert greek_measures(b, result.qty_raw)["delta_underlying"] <= limit  # type: ignore[arg-type]
    one_more = result.qty_raw.copy()
    one_more[0] += 1
    assert greek_measures(b, one_more)["delta_underlying"] > limit  # type: ignore[arg-type]  # the largest


def test_reject_keeps_the_current_book_and_backs_up_with_a_clip() -> None:
    b = book([40, 0, 0, 0, 0], current=[10, 0, 0, 0, 0])
    result = evaluate_greeks(b, policy(vega_total=GreekLimit(limit=50_000, action=RuleAction.REJECT)))  # type: ignore[arg-type]
    assert result.qty_raw.tolist() == [10, 0, 0, 0, 0]
    assert result.verdicts[5].action == "reject" and result.verdicts[5].detail == "book"
    tight = evaluate_greeks(b, policy(vega_total=GreekLimit(limit=20_000, action=RuleAction.REJECT)))  # type: ignore[arg-type]
    assert tight.qty_raw[0] < 10
    assert tight.verdicts[5].detail == "book: current book over the limit: clipped after reject"


def test_policy_toml_greeks() -> None:
    raw = {"greeks": {"delta_total": {"limit": 1_000_000, "action": "scale"}}}
    parsed = policy_from_mapping(raw, prefix="risk.")
    assert parsed.greeks.delta_total == GreekLimit(limit=1_000_000, action=RuleAction.SCALE)
    assert parsed.greeks.gamma_total.limit == 0
    assert policy_from_mapping(policy_to_mapping(parsed)) == parsed
    with pytest.raises(PolicyError, match=r"risk.greeks.theta_total: unknown key"):
        policy_from_mapping({"greeks": {"theta_total": {}}}, prefix="risk.")
    with pytest.raises(PolicyError, match=r"risk.greeks.vega_underlying.limit: -1 is outside"):
        policy_from_mapping({"greeks": {"vega_underlying": {"limit": -1}}}, prefix="risk.")


def test_bad_books_are_named() -> None:
    with pytest.raises(ValueError, match="no price for underlying 'MSFT'"):
        make_greek_book(CHAIN, [0] * 5, [0] * 5, underlying_px={"AAPL": 1.0}, vol=0.2, rate=0.0, t_years=1.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        make_greek_book(CHAIN[::-1], [0] * 5, [0] * 5, underlying_px=PX, vol=0.2, rate=0.0, t_years=1.0)


limits = st.one_of(st.just(0), st.integers(1, 10**9))
actions = st.sampled_from(list(RuleAction))
quantities = st.lists(st.integers(-2_000, 2_000), min_size=5, max_size=5)


@settings(max_examples=150)
@given(
    target=quantities,
    current=quantities,
    vol=st.floats(0.05, 1.5),
    spot_scale=st.floats(0.7, 1.3),
    rules=st.lists(st.tuples(limits, actions), min_size=6, max_size=6),
)
def test_no_greek_limit_is_breached_and_reruns_are_identical(
    target: list[int], current: list[int], vol: float, spot_scale: float, rules: list[tuple[int, RuleAction]]
) -> None:
    b = make_greek_book(
        CHAIN, target, current, underlying_px={k: v * spot_scale for k, v in PX.items()},
        vol=vol, rate=0.03, t_years=np.array([0.1, 0.25, 0.25, 0.5, 1.0]),
    )  # fmt: skip
    chosen = policy(
        **{
            r: GreekLimit(limit=lim, action=act)
            for r, (lim, act) in zip(GREEK_RULE_ORDER, rules, strict=True)
        }
    )
    result = evaluate_greeks(b, chosen)
    after = greek_measures(b, result.qty_raw)
    for rule, (limit, _) in zip(GREEK_RULE_ORDER, rules, strict=True):
        if limit:
            assert after[rule] <= limit, rule
    qty, tgt = result.qty_raw, np.array(target)
    assert np.all(np.abs(qty) <= np.abs(tgt))  # every action moves toward zero
    assert np.all((qty == 0) | (np.sign(qty) == np.sign(tgt)))  # never on the other side of the target
    again = evaluate_greeks(b, chosen)
    assert again.qty_raw.tobytes() == result.qty_raw.tobytes()
    assert again.verdicts == result.verdicts
    for verdict in result.verdicts:
        assert math.isfinite(verdict.observed)
