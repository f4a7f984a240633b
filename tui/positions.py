"""The book at the last day close, per instrument: the kernel's own day snapshot
(``StateSnapshotted``: quantity, cost basis, the A-share T+1 books) marked at the closes the
composition root supplies (the same prices the kernel marked ``DayClosed`` with)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.events import CurrenciesMarked, DayClosed, KernelSnapshot
from domain.fixed import RATE_SCALE, Rounding, div_round
from domain.fx import to_base_minor
from domain.instruments import Instrument, notional_minor
from domain.markets import SellableBook, sellable

__all__ = ["PositionLine", "position_lines"]


@dataclass(frozen=True)
class PositionLine:
    instrument_id: int
    symbol: str
    currency: str
    qty_raw: int
    qty_digits: int
    cost_minor: int
    held: int | None  # A-share T+1 book: shares held, bought today (locked), sellable now
    locked: int | None
    sellable: int | None
    mark_px_raw: int | None  # None: no marks were supplied
    price_digits: int
    value_minor: int | None
    weight_e8: int | None  # of NAV at the close
    unrealised_minor: int | None


def position_lines(
    snapshot: KernelSnapshot,
    instruments: dict[int, Instrument],
    close: DayClosed | None,
    marks: dict[int, int] | None,
    rates: CurrenciesMarked | None = None,
    base: str | None = None,
) -> list[PositionLine]:
    """``rates``: a book of several currencies' marks at that close (``book.currencies_marked``):
    a position's value is converted into the base at its currency's rate before it is weighed
    against the NAV (which is in the base); one in a currency other than ``base`` without
    them is not weighed."""
    to_base = {mark.currency: mark.rate_e8 for mark in rates.currencies} if rates is not None else {}
    books = {book.instrument_id: book for book in snapshot.sellable or []}
    lines = []
    for position in snapshot.positions:
        if position.qty_raw == 0:
            continue
        inst = instruments[position.instrument_id]
        mark = marks.get(position.instrument_id) if marks is not None else None
        value = notional_minor(inst, position.qty_raw, mark, Rounding.HALF_EVEN) if mark is not None else None
        weight = None
        foreign = base is not None and inst.currency != base
        if (
            value is not None
            and close is not None
            and close.nav_minor > 0
            and (rates is not None or not foreign)
        ):
            in_base = value
            if rates is not None and inst.currency != rates.base:
                in_base = to_base_minor(value, inst.currency, rates.base, to_base[inst.currency])
            weight = div_round(in_base * RATE_SCALE, close.nav_minor, Rounding.HALF_EVEN)
        book = books.get(position.instrument_id)
        held = locked = free = None
        if book is not None:
            held, locked = book.holding, book.bought_today
            free = sellable(
                SellableBook(
                    day=book.day, holding=book.holding, bought_today=book.bought_today, reserved=book.reserved
                )
            )
        lines.append(
            PositionLine(
                position.instrument_id,
                inst.symbol,
                inst.currency,
                position.qty_raw,
                inst.qty_digits,
                position.cost_minor,
                held,
                locked,
                free,
                mark,
                inst.price_digits,
                value,
                weight,
                value - position.cost_minor if value is not None else None,
            )
        )
    return lines
