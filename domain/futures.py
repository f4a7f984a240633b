"""Daily-settled futures: which instruments, their value in NAV, settlement prices and the
variation margin of one settlement. Pure functions; the kernel wiring is ``kernel/futures.py``.

A daily-settled future's position carries a *reference value*, ``Position.cost_minor`` =
``qty x reference price x multiplier`` in minor units (half-even, ``notional_minor``): the
fills' notionals when opened, the settlement value after each close. Its value in NAV is the
unsettled P&L, ``value at the mark - reference value``; variation margin at a settlement is
``value at the settlement price - reference value``, after which the reference is the
settlement value. All values are rounded once each (half-even) and every variation is a
difference of two of them, so the variations and the realised P&L of a round trip add up to
exactly ``exit notional - entry notional`` of the fills.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.events import PostingRecord
from domain.fixed import Rounding, div_round
from domain.instruments import Instrument, notional_minor
from domain.ledger import Position, assert_balanced, cash_account

__all__ = [
    "DAILY_SETTLED_CLASSES",
    "SETTLEMENT_METHODS",
    "is_daily_settled",
    "position_value_minor",
    "settlement_vwap_raw",
    "variation_account",
    "variation_postings",
]

DAILY_SETTLED_CLASSES = frozenset({"future"})
"""Asset classes marked to market daily with variation margin. ``crypto_future`` (ccxt dated
futures) is not one: venues differ (some settle daily at a fixed UTC time, others only realise
on close), so those keep the spot-style booking of ``crypto_perp`` (docs/markets.md)."""

SETTLEMENT_METHODS = ("dataset", "close", "vwap_day", "vwap_last_minutes")


def is_daily_settled(instrument: Instrument) -> bool:
    return instrument.asset_class in DAILY_SETTLED_CLASSES


def variation_account(currency: str) -> str:
    return f"income:variation_margin:{currency}"


def position_value_minor(instrument: Instrument, position: Position, mark_px_raw: int) -> int:
    """A position's value in NAV at ``mark_px_raw``: the notional for cash-settled books, the
    unsettled P&L (marked value - reference value) for a daily-settled future."""
    marked = notional_minor(instrument, position.qty_raw, mark_px_raw, Rounding.HALF_EVEN)
    if is_daily_settled(instrument):
        return marked - position.cost_minor
    return marked


def variation_postings(
    instrument: Instrument, position: Position, settle_px_raw: int
) -> tuple[list[PostingRecord], Position, int]:
    """Variation margin of one settlement: postings (cash against
    ``income:variation_margin:{CCY}``; none when zero), the position with its new reference
    value and the settled value."""
    settled = notional_minor(instrument, position.qty_raw, settle_px_raw, Rounding.HALF_EVEN)
    variation = settled - position.cost_minor
    ccy = instrument.currency
    postings = []
    if variation:
        postings = [
            PostingRecord(cash_account(ccy), ccy, variation),
            PostingRecord(variation_account(ccy), ccy, -variation),
        ]
        assert_balanced(postings)
    return postings, Position(position.qty_raw, settled), settled


def settlement_vwap_raw(prices_raw: Sequence[int], volumes: Sequence[int], tick_raw: int) -> int:
    """Volume-weighted average of ``prices_raw`` rounded half-even to a multiple of
    ``tick_raw``; 0 when the volume is zero (the caller decides what that means)."""
    total = sum(volumes)
    if total <= 0:
        return 0
    weighted = sum(p * v for p, v in zip(prices_raw, volumes, strict=True))
    return div_round(weighted, total * tick_raw, Rounding.HALF_EVEN) * tick_raw
