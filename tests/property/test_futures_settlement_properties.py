"""Daily-settled futures, for random fills and settlement prices: every transaction balances,
variation margin + realised P&L of a book closed flat equals exit - entry notional exactly
(``(exit - entry) x qty x multiplier`` for one entry and one exit), and NAV (cash + unsettled
P&L) equals the NAV of the same fills booked at notional, at any mark."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import OrderFilled
from domain.fixed import Rounding
from domain.futures import position_value_minor, variation_postings
from domain.instruments import Instrument, notional_minor
from domain.ledger import (
    Position,
    apply_postings,
    assert_balanced,
    cash_account,
    fill_postings,
    margined_fill_postings,
)

FUT = Instrument(
    instrument_id=1,
    symbol="FUT",
    venue="CCFX",
    asset_class="future",
    currency="CNY",
    price_digits=3,  # fractional minor units: roundings happen
    tick_raw=1,
    qty_digits=1,
    lot_raw=1,
    multiplier=7,
)
CASH = cash_account("CNY")
prices = st.integers(1, 2_000_000)
# a step is a fill (side, qty, px, commission) or a settlement (None, 0, px, 0), then a mark
steps = st.lists(
    st.tuples(st.sampled_from([1, -1, None]), st.integers(1, 400), prices, st.integers(0, 50), prices),
    max_size=40,
)


def _fill(side: int, qty: int, px: int, commission: int) -> OrderFilled:
    return OrderFilled(
        ts_ns=0,
        order_id="o",
        instrument_id=1,
        side=side,
        fill_qty_raw=qty,
        fill_px_raw=px,
        leaves_qty_raw=0,
        notional_minor=notional_minor(FUT, qty, px, Rounding.HALF_EVEN),
        commission_minor=commission,
        currency="CNY",
    )


@settings(max_examples=400)
@given(steps, prices, st.integers(0, 50))
def test_variation_and_realised_add_up_and_nav_matches_notional_booking(
    rows: list[tuple[int | None, int, int, int, int]], exit_px: int, exit_fee: int
) -> None:
    futures: dict[str, int] = {CASH: 10**9}
    notional: dict[str, int] = {CASH: 10**9}
    position, plain = Position(), Position()
    flows = 0  # -side x notional of every fill
    fills = []
    for side, qty, px, fee, mark in rows:
        if side is None:
            postings, position, _ = variation_postings(FUT, position, px)
        else:
            fill = _fill(side, qty, px, fee)
            fills.append(fill)
            flows -= side * fill.notional_minor
            postings, position = margined_fill_postings(position, fill)
            plain_postings, plain = fill_postings(plain, fill)
            apply_postings(notional, plain_postings)
        assert_balanced(postings)
        apply_postings(futures, postings)
        assert position.qty_raw == plain.qty_raw
        nav = futures[CASH] + position_value_minor(FUT, position, mark)
        assert nav == notional[CASH] + notional_minor(FUT, plain.qty_raw, mark, Rounding.HALF_EVEN)
    if position.qty_raw:
        close = _fill(-1 if position.qty_raw > 0 else 1, abs(position.qty_raw), exit_px, exit_fee)
        fills.append(close)
        flows -= close.side * close.notional_minor
        postings, position = margined_fill_postings(position, close)
        assert_balanced(postings)
        apply_postings(futures, postings)
    assert position == Position()
    assert sum(futures.values()) == 10**9  # the ledger balances as a whole
    pnl = -futures.get("income:variation_margin:CNY", 0) - futures.get("income:realized:CNY", 0)
    assert pnl == flows
    assert futures[CASH] - 10**9 == flows - sum(f.commission_minor for f in fills)


@settings(max_examples=300)
@given(st.integers(1, 50), prices, st.lists(prices, max_size=10), prices, st.sampled_from([1, -1]))
def test_one_round_trip_is_exit_minus_entry_times_qty_times_multiplier(
    lots: int, entry: int, settles: list[int], exit_px: int, side: int
) -> None:
    ic = Instrument(
        instrument_id=1,
        symbol="IC",
        venue="CCFX",
        asset_class="future",
        currency="CNY",
        price_digits=1,
        tick_raw=2,
        qty_digits=0,
        lot_raw=1,
        multiplier=200,
    )
    qty = lots
    entry, exit_px = entry * 2, exit_px * 2  # on the 0.2 tick
    fill_in = OrderFilled(
        ts_ns=0,
        order_id="a",
        instrument_id=1,
        side=side,
        fill_qty_raw=qty,
        fill_px_raw=entry,
        leaves_qty_raw=0,
        notional_minor=notional_minor(ic, qty, entry, Rounding.HALF_EVEN),
        commission_minor=0,
        currency="CNY",
    )
    _, position = margined_fill_postings(Position(), fill_in)
    total = 0
    for px in settles:
        postings, position, _ = variation_postings(ic, position, px * 2)
        total += sum(p.amount_minor for p in postings if p.account == CASH)
    fill_out = OrderFilled(
        ts_ns=0,
        order_id="b",
        instrument_id=1,
        side=-side,
        fill_qty_raw=qty,
        fill_px_raw=exit_px,
        leaves_qty_raw=0,
        notional_minor=notional_minor(ic, qty, exit_px, Rounding.HALF_EVEN),
        commission_minor=0,
        currency="CNY",
    )
    postings, position = margined_fill_postings(position, fill_out)
    total += sum(p.amount_minor for p in postings if p.account == CASH)
    # price_digits 1 -> x10 raw; CNY minor 2 -> x100: (exit - entry) x qty x 200 in fen
    assert total == side * (exit_px - entry) * qty * 200 * 100 // 10
    assert position == Position()
