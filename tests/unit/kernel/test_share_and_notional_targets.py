"""Share-count and value targets (``Shares``, ``Notional``) become weights that the order planner
sizes back to exactly the whole-lot position asked for — alone, or as one sleeve of several."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.events import OrderFilled, TargetsDecided
from domain.fixed import RATE_SCALE, Rounding, div_round
from domain.instruments import notional_minor
from domain.market import Panel
from kernel.pipeline import plan_orders
from kernel.store import open_journal
from kernel.strategy import MarketView, Notional, Shares
from kernel.targets import WEIGHT_E8_MAX, TargetError, targets_e8
from sim.backtest import run_backtest
from tests.factories import SPDB, make_config, make_dataset, one_name_policy


@given(
    lots=st.integers(-5_000, 5_000),
    px=st.integers(100, 1_000_000),  # 1.00 .. 10,000.00 CNY
    nav=st.integers(1_000_000, 10**9),  # 10,000 .. 10,000,000 CNY
    budget=st.integers(1, RATE_SCALE),
)
def test_share_targets_size_back_to_exactly_the_lots_asked_for(
    lots: int, px: int, nav: int, budget: int
) -> None:
    qty = lots * SPDB.lot_raw
    try:
        targets = targets_e8(Shares(np.array([float(qty)])), [1], {1: SPDB}, {1: px}, nav, budget)
    except TargetError:  # only a weight no journal holds (a budget of a few 1e-8 of the NAV)
        value = notional_minor(SPDB, abs(qty), px, Rounding.CEILING)
        assert value * RATE_SCALE * RATE_SCALE > WEIGHT_E8_MAX * nav * budget
        return
    weight = targets[1]
    part = div_round(abs(weight) * budget, RATE_SCALE, Rounding.CEILING) * (1 if weight >= 0 else -1)
    intents = plan_orders({1: part}, {}, {1: px}, {1: SPDB}, nav)
    assert sum(intent.side * intent.qty_raw for intent in intents) == qty


def test_notional_targets_round_down_to_whole_lots_and_nan_is_no_target() -> None:
    # 10,000 CNY at 10.00 is 1,000 shares: 10 lots; 10,050 CNY is still 10 lots.
    targets = targets_e8(Notional(np.array([10_050.0])), [1], {1: SPDB}, {1: 1000}, 100_000_000)
    intents = plan_orders(targets, {}, {1: 1000}, {1: SPDB}, 100_000_000)
    assert [(i.side, i.qty_raw) for i in intents] == [(1, 1000)]
    assert targets_e8(Shares(np.array([np.nan])), [1], {1: SPDB}, {1: 1000}, 10**8) == {}


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        (Shares(np.array([100.0, 1.0])), "Shares targets of shape (2,) for 1 names"),
        (Notional(np.array([np.inf])), "non-finite Notional target"),
        (np.array([np.inf]), "non-finite weight target"),
    ],
)
def test_targets_that_cannot_be_sized_are_refused(decision: object, message: str) -> None:
    with pytest.raises(TargetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        targets_e8(decision, [1], {1: SPDB}, {1: 1000}, 10**8)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        (np.array(["a"]), "weight targets must be 1 numbers .* got ndarray: could not convert"),
        ({1: 0.1}, "weight targets must be 1 numbers .* got dict"),
        ([[0.1], 0.2], "weight targets must be 1 numbers .* got list"),
        (np.array([True]), "got booleans"),
        (Shares(np.array([True])), "Shares targets must be 1 numbers .* got booleans"),
    ],
)
def test_targets_that_are_not_numbers_are_refused_by_name(decision: object, message: str) -> None:
    """A decision of strings or a dict raised numpy's ValueError/TypeError, which the CLI showed
    as an internal error (a Tape bug); a boolean mask was taken as weights of 1."""
    with pytest.raises(TargetError, match=message):
        targets_e8(decision, [1], {1: SPDB}, {1: 1000}, 10**8)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "decision",
    [np.array([1e30]), np.array([-1e12]), Shares(np.array([1e300])), Notional(np.array([-1e300]))],
)
def test_targets_beyond_what_a_journal_holds_are_refused(decision: object) -> None:
    """These gave weights past a signed 64-bit integer: the run died journaling them (msgspec's
    OverflowError, 'internal error') with the journal cut part-way."""
    with pytest.raises(TargetError, match="beyond what a journal holds"):
        targets_e8(decision, [1], {1: SPDB}, {1: 1000}, 10**8)  # type: ignore[arg-type]
    # the largest weight a journal holds is still a target (the risk stage bounds it)
    assert targets_e8(np.array([9e10]), [1], {1: SPDB}, {1: 1000}, 10**8) == {1: 9 * 10**18}


def test_a_share_target_before_the_first_price_is_refused() -> None:
    with pytest.raises(TargetError, match="before its first price"):
        targets_e8(Shares(np.array([100.0])), [1], {1: SPDB}, {1: 0}, 10**8)


class HoldShares:
    """Hold a fixed number of units of the first name from step 30 on, re-asked every 10 steps."""

    strategy_id = "shares"

    def __init__(self, units: float) -> None:
        self.units = units

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.arange(30, panel.steps, 10, dtype=np.int64)

    def decide(self, view: MarketView) -> Shares:
        qty = np.full(len(view.panel.instruments), np.nan)
        qty[0] = self.units
        return Shares(qty)


def test_a_backtest_holds_exactly_the_shares_a_strategy_asks_for(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "d", symbols=2, bars=120)
    config = make_config(dataset, tmp_path / "j", risk=one_name_policy())
    run_backtest(config, HoldShares(3.0))
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
    filled = [e for e in events if isinstance(e, OrderFilled)]
    held = sum(e.side * e.fill_qty_raw for e in filled)
    first = filled[0]
    qty_digits = 10 ** next(i.qty_digits for i in [_instrument(dataset, first.instrument_id)])
    assert held == 3 * qty_digits  # bought once, then already at target at every later decision
    assert len(filled) == 1
    assert sum(isinstance(e, TargetsDecided) for e in events) == 9


def _instrument(dataset: Path, iid: int):  # type: ignore[no-untyped-def]
    from lake.store import load_panel

    panel, _ = load_panel(dataset)
    return next(inst for inst in panel.instruments if inst.instrument_id == iid)
