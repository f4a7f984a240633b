"""Properties of a margin account's requirements (``kernel.margin``), on constructed books.

* The margin in use is the sum over positions of each position's requirement, and an order's
  requirement increment is the difference of two such sums.
* No order the submission check accepts leaves the book (positions + the accepted orders, at
  the orders' prices) needing more initial margin, with the commissions, than the equity --
  unless it only lowers the requirement (orders that close are always allowed).
* A whole run with random targets: every margin call journals a maintenance equal to the sum
  of its positions' and an equity below it, and every reduction is a whole number of lots.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.events import MarginCalled, OrderSubmitted, RiskVerdict
from domain.fixed import Rounding, apply_rate
from domain.instruments import Instrument, notional_minor
from domain.market import Panel
from domain.riskrules import policy_from_mapping
from kernel.account import AccountConfig
from kernel.margin import MARGIN_CALL_STRATEGY_ID, FuturesMarginRow, MarginBook
from kernel.pipeline import OrderIntent
from kernel.store import open_journal
from kernel.strategy import MarketView
from sim.backtest import run_backtest
from sim.fill_models import FillModel
from tests.factories import make_config, make_dataset

STOCK = Instrument(instrument_id=1, symbol="S", venue="XNYS", asset_class="equity", currency="USD",
                   price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1)  # fmt: skip
FUTURE = Instrument(instrument_id=2, symbol="F", venue="CCFX", asset_class="future", currency="USD",
                    price_digits=1, tick_raw=2, qty_digits=0, lot_raw=1, multiplier=300)  # fmt: skip
SHARE = Instrument(instrument_id=3, symbol="L", venue="XNYS", asset_class="equity", currency="USD",
                   price_digits=2, tick_raw=1, qty_digits=0, lot_raw=100)  # fmt: skip
INSTRUMENTS = {inst.instrument_id: inst for inst in (STOCK, FUTURE, SHARE)}
ROWS = [
    FuturesMarginRow(symbol="*", since="2024-01-01", initial="12000", maintenance="10000"),
    FuturesMarginRow(symbol="F", since="2024-03-01", initial_e8=15_000_000, maintenance_e8=12_000_000),
]


def _commission(instrument: Instrument, notional: int, qty: int) -> int:
    return max(apply_rate(notional, 30_000, Rounding.HALF_UP), 100)


def _book() -> MarginBook:
    return MarginBook(INSTRUMENTS, futures_margin=ROWS, stock_initial_e8=50_000_000,
                      stock_maintenance_e8=25_000_000, policy="liquidate", currency="USD",
                      commission=_commission)  # fmt: skip


positions = st.dictionaries(st.sampled_from([1, 2, 3]), st.integers(-5_000, 5_000), max_size=3)
prices = st.fixed_dictionaries(
    {1: st.integers(1, 50_000), 2: st.integers(1, 60_000), 3: st.integers(1, 50_000)}
)
days = st.sampled_from([20240105, 20240301, 20240615])


@settings(max_examples=200, deadline=None)
@given(held=positions, marks=prices, day=days)
def test_margin_in_use_is_the_sum_over_positions(
    held: dict[int, int], marks: dict[int, int], day: int
) -> None:
    book = _book()
    for initial in (True, False):
        used = book.in_use(day, held, marks, initial=initial)
        each = {iid: book.amount(iid, day, qty, marks[iid], initial=initial) for iid, qty in held.items()}
        assert sum(used.values()) == sum(each.values())
        assert all(amount >= 0 for amount in each.values())
    # The per-contract rows before March, a share of notional from it, both rounded up.
    if held.get(FUTURE.instrument_id):
        qty = abs(held[FUTURE.instrument_id])
        expected = (
            qty * 12_000_00
            if day < 20240301
            else apply_rate(
                notional_minor(FUTURE, qty, marks[2], Rounding.CEILING), 15_000_000, Rounding.CEILING
            )
        )
        assert book.amount(2, day, qty, marks[2], initial=True) == expected


intents = st.lists(
    st.builds(OrderIntent, st.sampled_from([1, 2, 3]), st.sampled_from([-1, 1]), st.integers(1, 4_000),
              st.integers(1, 60_000)),
    max_size=5,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(held=positions, marks=prices, day=days, orders=intents, equity=st.integers(-(10**8), 10**10))
def test_no_accepted_order_raises_the_requirement_past_the_equity(
    held: dict[int, int], marks: dict[int, int], day: int, orders: list[OrderIntent], equity: int
) -> None:
    orders = [o if o.instrument_id != 3 else OrderIntent(3, o.side, o.qty_raw // 100 * 100 or 100,
                                                         o.decision_px_raw) for o in orders]  # fmt: skip
    book = _book()
    accepted, verdicts = book.check(day, orders, {}, equity, held, marks, {})
    assert len(accepted) + sum(v.action == "reject" for v in verdicts) == len(orders)
    free = equity - sum(book.in_use(day, held, marks, initial=True).values())
    book_now = dict(held)
    for order in accepted:
        iid, px = order.instrument_id, order.decision_px_raw
        before = book.amount(iid, day, book_now.get(iid, 0), px, initial=True)
        after_qty = book_now.get(iid, 0) + order.side * order.qty_raw
        increment = book.amount(iid, day, after_qty, px, initial=True) - before
        if increment > 0:
            inst = INSTRUMENTS[iid]
            cost = increment + _commission(
                inst, notional_minor(inst, order.qty_raw, px, Rounding.CEILING), order.qty_raw
            )
            assert cost <= free, (order, cost, free)
            free -= cost
        else:
            free -= increment
        book_now[iid] = after_qty
    for verdict in verdicts:
        assert verdict.rule == "initial_margin"
        assert verdict.observed > verdict.limit


class Targets:
    strategy_id = "targets"

    def __init__(self, weights: list[float], every: int) -> None:
        self.weights, self.every = weights, every

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.arange(5, panel.steps, self.every, dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        return np.resize(np.array(self.weights, dtype=np.float64), len(view.panel.instruments))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    weights=st.lists(st.floats(-2.0, 3.0, allow_nan=False), min_size=1, max_size=4),
    seed=st.integers(0, 50),
    every=st.integers(1, 9),
    maintenance=st.integers(20, 50),
)
def test_margin_calls_journal_consistent_numbers(
    tmp_path_factory: pytest.TempPathFactory, weights: list[float], seed: int, every: int, maintenance: int
) -> None:
    tmp = tmp_path_factory.mktemp("margin")
    dataset = make_dataset(tmp / "d", seed=seed, symbols=4, bars=120)
    policy = policy_from_mapping({"name": {"limit_e8": 300_000_000, "action": "clip"},
                                  "gross_leverage": {"limit_e8": 500_000_000, "action": "scale"},
                                  "net_leverage": {"limit_e8": 500_000_000, "action": "scale"}})  # fmt: skip
    account = AccountConfig(initial_e8=50_000_000, maintenance_e8=maintenance * 1_000_000)
    config = make_config(dataset, tmp / "j", account=account, risk=policy,  # type: ignore[arg-type]
                         fill=FillModel(commission_e8=30_000, commission_min_minor=100))  # fmt: skip
    run_backtest(config, Targets(weights, every))
    with open_journal(tmp / "j") as journal:
        events = [event for _, event in journal.events()]
    for event in events:
        if isinstance(event, MarginCalled):
            assert event.equity_minor < event.maintenance_minor == sum(event.maintenance_by_position_minor)
            assert event.maintenance_minor <= event.initial_minor
        if isinstance(event, OrderSubmitted) and event.strategy_id == MARGIN_CALL_STRATEGY_ID:
            assert event.qty_raw > 0
        if isinstance(event, RiskVerdict) and event.rule == "initial_margin":
            assert event.observed > event.limit


def test_a_margin_book_refuses_rows_it_cannot_use() -> None:
    bad = [FuturesMarginRow(symbol="F", since="2024-01-01", initial="0.001", maintenance="0.001")]
    with pytest.raises(ValueError, match="more digits than USD's minor unit"):
        MarginBook(INSTRUMENTS, futures_margin=bad, stock_initial_e8=0, stock_maintenance_e8=0,
                   policy="halt", currency="USD")  # fmt: skip
    inverted = [FuturesMarginRow(symbol="F", since="2024-01-01", initial="100", maintenance="200")]
    with pytest.raises(ValueError, match=r"need 0 < maintenance \(200\) <= initial \(100\)"):
        MarginBook(INSTRUMENTS, futures_margin=inverted, stock_initial_e8=0, stock_maintenance_e8=0,
                   policy="halt", currency="USD")  # fmt: skip
    book = _book()
    with pytest.raises(ValueError, match="no row for F in force on 20231229"):
        book.covers({2: 20231229})
