"""Closing trades in the report and the tearsheet: a fill that moves a position toward zero is
a closing trade, also when it closes exactly at cost (the ledger then posts no realised PnL)."""

from __future__ import annotations

from domain.events import LedgerPosted, OrderFilled
from domain.ledger import Position, fill_postings
from sim.metrics import ClosingFills, closing_trade_pnl


def _fill(order: str, side: int, qty: int, px_minor: int, commission: int = 0) -> OrderFilled:
    return OrderFilled(
        ts_ns=1,
        order_id=order,
        instrument_id=7,
        side=side,
        fill_qty_raw=qty,
        fill_px_raw=px_minor,
        leaves_qty_raw=0,
        notional_minor=qty * px_minor,
        commission_minor=commission,
        currency="USD",
    )


def _trade_pnls(fills: list[OrderFilled]) -> list[int]:
    """The fills booked as the kernel books them, then read back as the report reads them."""
    closing, position, pnls = ClosingFills(), Position(), []
    for fill in fills:
        postings, position = fill_postings(position, fill)
        closing.fill(fill)
        posted = LedgerPosted(ts_ns=1, txn_id=fill.order_id, memo=f"fill {fill.order_id}", postings=postings)
        pnl = closing_trade_pnl(posted, closing.closes(posted))
        if pnl is not None:
            pnls.append(pnl)
    return pnls


def test_a_round_trip_closed_exactly_at_cost_is_a_closing_trade() -> None:
    fills = [_fill("o1", 1, 100, 1000), _fill("o2", -1, 100, 1000)]
    assert _trade_pnls(fills) == [0]


def test_gains_losses_and_fees_of_closing_trades() -> None:
    fills = [
        _fill("o1", 1, 100, 1000, commission=5),  # opens: no trade
        _fill("o2", -1, 40, 1100, commission=2),  # closes 40 at +100 each, less its own fee
        _fill("o3", -1, 60, 900, commission=3),  # closes 60 at -100 each
        _fill("o4", -1, 10, 900),  # opens a short: no trade
        _fill("o5", 1, 10, 900),  # covers at cost
    ]
    assert _trade_pnls(fills) == [40 * 100 - 2, -60 * 100 - 3, 0]


def test_without_positions_only_realised_pnl_marks_a_closing_trade() -> None:
    """The old reading (no ``ClosingFills``) still works where only postings are at hand."""
    postings, _ = fill_postings(Position(100, 100_000), _fill("o2", -1, 100, 1000))
    posted = LedgerPosted(ts_ns=1, txn_id="t", memo="fill o2", postings=postings)
    assert closing_trade_pnl(posted) is None
    assert closing_trade_pnl(posted, closes=True) == 0
