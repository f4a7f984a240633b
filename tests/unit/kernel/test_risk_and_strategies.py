"""Risk verdicts are journaled; strategies decide the same on a truncated panel (causality)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from domain.events import RiskVerdict, TargetsDecided
from domain.instruments import Instrument
from domain.market import Panel
from domain.riskrules import PORTFOLIO_RULE_ORDER, RiskPolicy, policy_from_mapping
from kernel.pipeline import OrderIntent, RiskStage, halt_targets
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import load_panel
from models.strategies.momentum import MomentumRotation
from models.strategies.sma_crossover import SmaCrossover
from tests.factories import make_config, make_dataset, run


def _instrument(iid: int, *, sector: str = "", country: str = "", asset_class: str = "equity") -> Instrument:
    return Instrument(
        instrument_id=iid,
        symbol=f"S{iid}",
        venue="XNYS",
        asset_class=asset_class,
        currency="USD",
        price_digits=2,
        tick_raw=1,
        qty_digits=0,
        lot_raw=1,
        sector=sector,
        country=country,
    )


def _policy(**rules: tuple[int, str]) -> RiskPolicy:
    return policy_from_mapping(
        {rule: {"limit_e8": limit, "action": action} for rule, (limit, action) in rules.items()}
    )


def test_name_cap_clips_then_gross_scales() -> None:
    stage = RiskStage(
        _policy(name=(40_000_000, "clip"), gross_leverage=(100_000_000, "scale")),
        {iid: _instrument(iid) for iid in (1, 2, 3)},
    )
    allowed, verdicts = stage.portfolio({1: 60_000_000, 2: 30_000_000}, {3: 50_000_000})
    assert [v.rule for v in verdicts] == list(PORTFOLIO_RULE_ORDER)
    by_rule = {v.rule: v for v in verdicts}
    assert by_rule["name"].action == "clip" and by_rule["name"].instrument_ids == [1, 3]
    assert by_rule["gross_leverage"].action == "scale"
    assert by_rule["gross_leverage"].observed == 110_000_000
    # after clipping: 40 + 30 + 40 = 110% gross -> scaled by 100/110 toward zero
    assert allowed == {1: 36_363_636, 2: 27_272_727, 3: 36_363_636}
    assert sum(allowed.values()) <= 100_000_000 == by_rule["gross_leverage"].limit
    assert by_rule["gross_leverage"].observed_after == sum(allowed.values())


def test_within_limits_passes_untouched() -> None:
    stage = RiskStage(RiskPolicy(), {1: _instrument(1)})
    allowed, verdicts = stage.portfolio({1: 2_000_000}, {})
    assert allowed == {1: 2_000_000}
    assert {v.action for v in verdicts} == {"pass"}


def test_sector_country_and_perp_groups_come_from_the_instruments() -> None:
    instruments = {
        1: _instrument(1, sector="tech", country="US"),
        2: _instrument(2, sector="tech", country="US"),
        3: _instrument(3, sector="energy", country="CN"),
        4: _instrument(4, asset_class="crypto_perp"),
    }
    policy = _policy(
        name=(100_000_000, "clip"),
        sector=(30_000_000, "clip"),
        country=(60_000_000, "clip"),
        perp_side=(20_000_000, "clip"),
    )
    allowed, verdicts = RiskStage(policy, instruments).portfolio(
        {1: 25_000_000, 2: 25_000_000, 3: 10_000_000, 4: 50_000_000}, {}
    )
    by_rule = {v.rule: v for v in verdicts}
    assert by_rule["sector"].action == "clip" and by_rule["sector"].observed == 50_000_000
    assert allowed[1] + allowed[2] <= 30_000_000 and allowed[3] == 10_000_000
    assert by_rule["perp_side"].action == "clip" and allowed[4] == 20_000_000


def test_halted_kill_switch_only_lets_risk_reducing_targets_through() -> None:
    allowed, verdict = halt_targets(
        {1: 30_000_000, 2: -5_000_000, 3: 10_000_000}, {1: 20_000_000, 2: 10_000_000}, False, "halted"
    )
    # 1: increase cut to the current 20%; 2: would flip short -> 0; 3: new name -> 0
    assert allowed == {1: 20_000_000, 2: 0, 3: 0}
    assert verdict.rule == "kill_switch" and verdict.action == "clip" and verdict.instrument_ids == [1, 2, 3]
    flat, verdict = halt_targets({1: 10_000_000}, {1: 20_000_000, 4: -3_000_000}, True, "flattening")
    assert flat == {1: 0, 4: 0} and verdict.action == "reject"


def test_order_rules_shrink_orders_and_name_the_numbers() -> None:
    policy = policy_from_mapping(
        {
            "order_qty": {"limit": 300, "action": "clip"},
            "order_notional": {"limit": 1_000_000, "action": "reject"},
        }
    )
    stage = RiskStage(policy, {1: _instrument(1), 2: _instrument(2)})
    intents = [OrderIntent(1, 1, 500, 10_00), OrderIntent(2, -1, 200, 100_00)]
    kept, verdicts, limits = stage.orders(intents)
    assert limits == {}
    # 1: 500 -> 300 shares (3,000.00 USD = 300,000 minor, fits);
    # 2: 200 x 100.00 = 20,000.00 > 10,000.00 -> rejected
    assert kept == [OrderIntent(1, 1, 300, 10_00)]
    assert [(v.rule, v.action, v.unit) for v in verdicts] == [
        ("order_qty", "clip", "qty_raw"),
        ("order_notional", "reject", "minor"),
    ]
    assert verdicts[1].observed == 2_000_000 and verdicts[1].instrument_ids == [2]


def test_verdicts_are_in_the_journal(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", symbols=4, bars=250)
    config = make_config(
        data,
        tmp_path / "j",
        strategy="momentum",
        params={"lookback": 40, "skip": 5, "top": 4, "weight": 1.0},
        risk=_policy(gross_leverage=(80_000_000, "scale"), name=(15_000_000, "clip")),
    )
    run(config)
    events = [e for _, e in open_journal(tmp_path / "j").events()]
    verdicts = [e for e in events if isinstance(e, RiskVerdict)]
    assert {v.rule for v in verdicts} == {"priced", *PORTFOLIO_RULE_ORDER}
    clipped = [v for v in verdicts if v.rule == "name" and v.action == "clip"]
    assert clipped
    assert all(v.limit == 15_000_000 and v.observed > v.limit >= v.observed_after for v in clipped)
    assert any(isinstance(e, TargetsDecided) for e in events)


def _truncate(panel: Panel, steps: int) -> Panel:
    cut = {
        name: getattr(panel, name)[:steps]
        for name in ("ts_ns", "day", "open", "high", "low", "close", "volume", "valid", "last_close")
    }
    return replace(panel, **cut)


@pytest.mark.parametrize(
    "strategy", [SmaCrossover(fast=3, slow=8), MomentumRotation(lookback=30, skip=3, top=2)]
)
def test_decisions_do_not_depend_on_future_bars(tmp_path: Path, strategy: object) -> None:
    panel, _ = load_panel(make_dataset(tmp_path / "data", symbols=5, bars=200))
    full = strategy.schedule(panel)  # type: ignore[attr-defined]
    full_decisions = {int(s): strategy.decide(MarketView(panel, int(s))) for s in full}  # type: ignore[attr-defined]
    for cut in (60, 120, 199):
        short = _truncate(panel, cut)
        steps = strategy.schedule(short)  # type: ignore[attr-defined]
        last_day_end = steps[steps < cut - 1]
        assert set(last_day_end.tolist()) == {s for s in full_decisions if s < cut - 1}
        for step in last_day_end.tolist():
            np.testing.assert_array_equal(strategy.decide(MarketView(short, step)), full_decisions[step])  # type: ignore[attr-defined]


def test_the_price_band_measures_limit_orders_against_the_last_price() -> None:
    policy = policy_from_mapping({"price_band": {"band_e8": 5_000_000, "action": "clip"}})  # 5%
    stage = RiskStage(policy, {1: _instrument(1), 2: _instrument(2)})
    intents = [OrderIntent(1, 1, 100, 100_00), OrderIntent(2, 1, 100, 100_00)]  # last close 100.00
    kept, verdicts, limits = stage.orders(intents, {1: 110_00, 2: 104_00})
    # 1: a limit 10% above the last price is moved onto the band (105.00); 2: within it
    assert limits == {1: 105_00, 2: 104_00}
    assert [(i.instrument_id, i.qty_raw, i.decision_px_raw) for i in kept] == [
        (1, 100, 100_00),
        (2, 100, 100_00),
    ]
    (band,) = verdicts
    assert (band.rule, band.action, band.unit, band.limit) == ("price_band", "clip", "e8_price", 5_000_000)
    assert band.observed == 10_000_000 and band.observed_after == 5_000_000 and band.instrument_ids == [1]
    rejecting = RiskStage(
        policy_from_mapping({"price_band": {"band_e8": 5_000_000, "action": "reject"}}), stage._instruments
    )
    kept, verdicts, limits = rejecting.orders(intents, {1: 110_00, 2: 104_00})
    assert [i.instrument_id for i in kept] == [2] and verdicts[0].action == "reject"
