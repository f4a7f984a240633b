"""Risk verdicts are journaled; strategies decide the same on a truncated panel (causality)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from domain.events import RiskVerdict, TargetsDecided
from domain.market import Panel
from domain.risk import RiskLimits
from kernel.pipeline import apply_risk
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import load_panel
from models.strategies.momentum import MomentumRotation
from models.strategies.sma_crossover import SmaCrossover
from tests.factories import make_config, make_dataset, run


def test_name_cap_clips_then_gross_scales() -> None:
    limits = RiskLimits(gross_max_e8=100_000_000, name_max_e8=40_000_000)
    allowed, outcomes = apply_risk({1: 60_000_000, 2: 30_000_000}, {3: 50_000_000}, limits)
    assert [o.action for o in outcomes] == ["clip", "scale"]
    assert outcomes[0].instrument_ids == [1, 3]
    # after clipping: 40 + 30 + 40 = 110% gross -> scaled by 100/110 toward zero
    assert allowed == {1: 36_363_636, 2: 27_272_727, 3: 36_363_636}
    assert sum(allowed.values()) <= limits.gross_max_e8


def test_within_limits_passes_untouched() -> None:
    allowed, outcomes = apply_risk({1: 20_000_000}, {}, RiskLimits())
    assert allowed == {1: 20_000_000}
    assert [o.action for o in outcomes] == ["pass", "pass"]


def test_verdicts_are_in_the_journal(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", symbols=4, bars=250)
    config = make_config(
        data,
        tmp_path / "j",
        strategy="momentum",
        params={"lookback": 40, "skip": 5, "top": 4, "weight": 1.0},
        risk=RiskLimits(gross_max_e8=80_000_000, name_max_e8=15_000_000),
    )
    run(config)
    events = [e for _, e in open_journal(tmp_path / "j").events()]
    verdicts = [e for e in events if isinstance(e, RiskVerdict)]
    assert {v.rule for v in verdicts} == {"priced", "name_cap", "gross_leverage"}
    clipped = [v for v in verdicts if v.rule == "name_cap" and v.action == "clip"]
    assert clipped
    assert all(v.limit_e8 == 15_000_000 and v.observed_e8 > v.limit_e8 for v in clipped)
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
