"""Corporate actions in the kernel, for random fills, split ratios and dividends: every
transaction balances, the position is the sum of fills carried through each split factor, and a
split keeps the cost basis (only a cash-in-lieu fraction releases its share of it)."""

from __future__ import annotations

import numpy as np
from hypothesis import event as note
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import CorporateActionApplied, LedgerPosted, OrderFilled
from domain.fixed import Rounding, div_round
from domain.instruments import Instrument
from domain.ledger import Position, fill_postings
from domain.market import Panel
from domain.markets import (
    Lots,
    dividend_minor,
    lots_buy,
    lots_dividend,
    lots_sell,
    lots_split,
    lots_total,
    split_quantity,
)
from kernel.corporate_actions import split_position
from kernel.loop import Kernel
from kernel.setup import RunSetup
from sim.fill_models import FillModel
from sim.venue import SimVenue
from tests.factories import ListSink, Scripted, one_name_policy

DAY_NS = 86_400_000_000_000
START_NS = 1_577_836_800_000_000_000  # 2020-01-01 UTC
DAYS = 24
INST = Instrument(
    instrument_id=7,
    symbol="SYN",
    venue="SYNTH",
    asset_class="equity",
    currency="USD",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=1,
)


def _panel(closes: list[int], actions: list[tuple[int, int, int, int, int]]) -> Panel:
    ts = np.array([START_NS + (i + 1) * DAY_NS for i in range(DAYS)], dtype=np.int64)
    dates = (ts - 1).astype("datetime64[ns]").astype("datetime64[D]").astype(str)
    day = np.char.replace(dates, "-", "").astype(np.int64)
    px = np.array(closes, dtype=np.int64)[:, None]
    valid = np.ones((DAYS, 1), dtype=np.bool_)
    rows = sorted({index: row for index, *row in actions}.items())
    return Panel(
        ts_ns=ts,
        day=day,
        instruments=(INST,),
        open=px,
        high=px,
        low=px,
        close=px,
        volume=np.full((DAYS, 1), 10**9, dtype=np.int64),
        valid=valid,
        last_close=px.copy(),
        action_instrument_id=np.full(len(rows), 7, dtype=np.int64),
        action_ex_day=np.array([day[i] for i, _ in rows], dtype=np.int64),
        action_pay_day=np.array([day[min(i + r[3], DAYS - 1)] if r[3] else 0 for i, r in rows], np.int64),
        action_cash_e8=np.array([r[2] for _, r in rows], dtype=np.int64),
        action_split_to=np.array([r[0] for _, r in rows], dtype=np.int64),
        action_split_from=np.array([r[1] for _, r in rows], dtype=np.int64),
    )


action_rows = st.lists(
    st.tuples(
        st.integers(1, DAYS - 1),  # ex-date index
        st.integers(1, 12),  # split_to
        st.integers(1, 12),  # split_from
        st.integers(0, 300_000_000),  # cash per share, USD x 1e-8 (up to 3.00)
        st.integers(0, 5),  # pay day offset in sessions (0 = cash on the ex-date)
    ).filter(lambda r: r[1] != r[2] or r[3] > 0),
    max_size=6,
)


@settings(max_examples=100, deadline=None)
@given(
    closes=st.lists(st.integers(100, 50_000), min_size=DAYS, max_size=DAYS),
    targets=st.dictionaries(st.integers(0, DAYS - 2), st.floats(-0.9, 0.9), max_size=8),
    actions=action_rows,
)
def test_kernel_corporate_actions_keep_the_books(
    closes: list[int], targets: dict[int, float], actions: list[tuple[int, int, int, int, int]]
) -> None:
    panel = _panel(closes, actions)
    sink = ListSink()
    kernel = Kernel(
                 RunSetup(
                     panel=panel,
                     strategy=Scripted(targets),
                     venue=SimVenue(panel, FillModel(commission_e8=100_000)),
                     policy=one_name_policy(),
                     currency="USD",
                 ),
                 sink,
             )
    kernel.begin(10**9)
    kernel.run()

    position = Position()
    for event in sink.events:
        if isinstance(event, LedgerPosted):
            assert sum(p.amount_minor for p in event.postings) == 0, event.memo
        elif isinstance(event, OrderFilled):
            _, position = fill_postings(position, event)
        elif isinstance(event, CorporateActionApplied):
            assert event.qty_before_raw == position.qty_raw
            total = position.qty_raw * event.split_to
            qty = div_round(total, event.split_from, Rounding.DOWN)
            assert event.qty_after_raw == qty  # the sum of fills carried through the ratio
            assert event.dividend_minor == div_round(position.qty_raw * event.cash_e8, 10**6, Rounding.DOWN)
            if total % event.split_from == 0:  # no fraction: the cost basis does not move
                assert event.cost_minor == position.cost_minor
                assert event.cash_in_lieu_minor == event.released_cost_minor == 0
            else:
                assert event.cost_minor + event.released_cost_minor == position.cost_minor
            position = Position(qty, event.cost_minor)
            kind = "fraction" if event.cash_in_lieu_minor else "whole"
            note(f"applied ({kind}, {'short' if event.qty_before_raw < 0 else 'long'})")
    state = kernel.state
    assert state.positions.get(7, Position()) == position
    assert sum(state.balances.values()) == 0
    inventory = state.balances.get("assets:inventory:7", 0)
    assert inventory == position.cost_minor
    receivables = {k: v for k, v in state.balances.items() if k.startswith("assets:receivable")}
    assert not any(receivables.values()), receivables  # every pay day lies inside the data


@settings(max_examples=300)
@given(
    qty=st.integers(-(10**7), 10**7).filter(bool),
    cost=st.integers(-(10**12), 10**12),
    split_to=st.integers(1, 50),
    split_from=st.integers(1, 50),
    prev_close=st.integers(1, 10**7),
)
def test_split_position_is_exact(
    qty: int, cost: int, split_to: int, split_from: int, prev_close: int
) -> None:
    result = split_position(INST, Position(qty, cost), split_to, split_from, prev_close)
    new_qty = result.position.qty_raw
    assert abs(new_qty) * split_from <= abs(qty) * split_to < (abs(new_qty) + 1) * split_from
    assert new_qty == 0 or (new_qty > 0) == (qty > 0)
    fraction = qty * split_to - new_qty * split_from  # in 1/split_from shares
    # cash = fraction / split_from shares x prev_close x split_from / split_to, half-even to the cent
    assert result.cash_in_lieu_minor == div_round(fraction * prev_close, split_to, Rounding.HALF_EVEN)
    if fraction == 0:
        assert result.position.cost_minor == cost and result.released_cost_minor == 0
    elif new_qty:
        assert result.position.cost_minor + result.released_cost_minor == cost
    else:
        assert result.released_cost_minor == cost and result.position == Position(0, 0)


lot_ops = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(1, 10_000)),
        st.tuples(st.just("dividend"), st.integers(1, 300_000_000)),
        st.tuples(st.just("split"), st.tuples(st.integers(1, 12), st.integers(1, 12))),
        st.tuples(st.just("sell"), st.integers(1, 100)),  # percent of the holding
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(ops=lot_ops)
def test_tax_lots_follow_the_position_and_conserve_dividends(ops: list[tuple[str, object]]) -> None:
    lots: Lots = ()
    qty = received = taxed_base = dropped = 0
    day = 20160104
    for op, arg in ops:
        day += 1 if day % 100 < 28 else 100 - day % 100 + 1  # a later day each step (valid dates)
        if op == "buy":
            assert isinstance(arg, int)
            lots, qty = lots_buy(lots, day, arg), qty + arg
        elif op == "dividend" and qty:
            assert isinstance(arg, int)
            amount = dividend_minor(qty, 0, arg, 8, "CNY", Rounding.DOWN)
            lots, received = lots_dividend(lots, day, arg, 0, "CNY"), received + amount
        elif op == "split":
            assert isinstance(arg, tuple)
            before = sum(amount for lot in lots for _, amount in lot.dividends)
            count = len(lots)
            lots, qty = lots_split(lots, *arg), split_quantity(qty, arg[0], arg[1], Rounding.DOWN)
            after = sum(amount for lot in lots for _, amount in lot.dividends)
            assert after == before or len(lots) < count  # only a lot left with no share drops its part
            dropped += before - after
        elif op == "sell" and qty:
            assert isinstance(arg, int)
            sold = max(1, qty * arg // 100)
            before = sum(amount for lot in lots for _, amount in lot.dividends)
            lots, tax = lots_sell(lots, day + 1, sold)
            after = sum(amount for lot in lots for _, amount in lot.dividends)
            assert 0 <= tax <= div_round((before - after) * 20, 100, Rounding.CEILING) + len(ops)
            taxed_base += before - after
            qty -= sold
        assert lots_total(lots) == qty
        assert all(lot.qty > 0 for lot in lots)
        assert sum(amount for lot in lots for _, amount in lot.dividends) + taxed_base + dropped == received
