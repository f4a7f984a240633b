"""Two runs of the same strategy side by side (a paper session and a backtest over the same
days, or two backtests): day by day NAV, cash, positions, fills and fees from
``projections.daybook``, the first day whose figures differ, and the first derived event
where the two journals part (decoded, the differing fields named).

Days are matched by their date; a day only one run closed is a difference. The event stream
compared is the *derived* one (``COMPARED_KINDS``: decisions, risk verdicts, orders, fills,
ledger transactions, day closes, kill-switch and corporate-action events...); inputs and
run metadata (``run.started``, the data-set reference, bars received, clock ticks, venue
messages, snapshots) differ between a paper session and a backtest by construction and are
skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from domain.fixed import minor_digits, to_decimal
from domain.instruments import Instrument
from kernel.journal import Journal
from projections.daybook import DayBook, JournalBook

__all__ = ["COMPARED_KINDS", "Comparison", "DayPair", "EventDivergence", "compare_books", "first_divergence"]

COMPARED_KINDS = frozenset(
    {
        "instruments.defined.v1",
        "strategy.targets_decided.v1",
        "risk.verdict.v2",
        "order.submitted.v1",
        "order.accepted.v1",
        "order.rejected.v1",
        "order.filled.v1",
        "order.cancelled.v1",
        "order.expired.v1",
        "order.replaced.v1",
        "order.replace_rejected.v1",
        "order.parent_created.v1",
        "order.child_deferred.v1",
        "order.parent_done.v1",
        "ledger.posted.v1",
        "day.closed.v1",
        "book.sleeves_marked.v1",
        "killswitch.tripped.v1",
        "killswitch.flattened.v1",
        "killswitch.rearmed.v1",
        "killswitch.command_refused.v1",
        "corporate_action.applied.v1",
        "corporate_action.rights.v1",
        "order.fee_in_kind.v1",
        "book.position_adopted.v1",
        "book.cash_adopted.v1",
        "position.liquidated.v1",
        "future.settled.v1",
        "margin.called.v1",
        "option.expired.v1",
    }
)


@dataclass(frozen=True)
class DayPair:
    day: int
    a: DayBook | None
    b: DayBook | None
    currency: str

    def _money(self, minor: int | None) -> Decimal | None:
        return None if minor is None else to_decimal(minor, minor_digits(self.currency))

    @property
    def nav(self) -> tuple[Decimal | None, Decimal | None]:
        return (
            self._money(self.a.nav_minor if self.a else None),
            self._money(self.b.nav_minor if self.b else None),
        )

    @property
    def cash(self) -> tuple[Decimal | None, Decimal | None]:
        return (
            self._money(self.a.nav_cash_minor if self.a else None),
            self._money(self.b.nav_cash_minor if self.b else None),
        )

    @property
    def fills(self) -> tuple[int | None, int | None]:
        return (self.a.fills if self.a else None, self.b.fills if self.b else None)

    @property
    def fees(self) -> tuple[Decimal | None, Decimal | None]:
        def fee(book: DayBook | None) -> Decimal | None:
            return None if book is None else self._money(sum(book.fees_minor.values()))

        return fee(self.a), fee(self.b)

    def position_differences(self) -> dict[int, tuple[int, int]]:
        """Instrument id -> (raw qty in A, in B) where they differ."""
        a = self.a.positions if self.a else {}
        b = self.b.positions if self.b else {}
        return {i: (a.get(i, 0), b.get(i, 0)) for i in sorted(set(a) | set(b)) if a.get(i, 0) != b.get(i, 0)}

    def differing(self) -> list[str]:
        """The figures that differ this day (``missing`` when one run did not close it)."""
        if self.a is None or self.b is None:
            return ["missing in " + ("A" if self.a is None else "B")]
        found = [name for name in ("nav", "cash", "fills", "fees") if len(set(getattr(self, name))) > 1]
        if self.position_differences():
            found.append("positions")
        return found


@dataclass(frozen=True)
class EventDivergence:
    index: int  # position in the compared stream (0-based)
    seq_a: int | None
    seq_b: int | None
    kind_a: str | None
    kind_b: str | None
    fields: list[str]  # the payload fields that differ ([] when one stream ended)
    event_a: dict[str, Any] | None
    event_b: dict[str, Any] | None


@dataclass(frozen=True)
class Stats:
    name: str
    days: int  # days compared (both closed)
    differing_days: int
    mean: float
    mean_abs: float
    max_abs: float
    last: float


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    currency: str
    days: list[DayPair]
    first_day: DayPair | None
    divergence: EventDivergence | None
    instruments: dict[int, Instrument]

    @property
    def same(self) -> bool:
        return self.first_day is None and self.divergence is None

    def stats(self) -> list[Stats]:
        """Summary of B - A over the days both runs closed (NAV, cash, fees in the currency;
        fills in count)."""
        both = [pair for pair in self.days if pair.a is not None and pair.b is not None]
        out = []
        for name in ("nav", "cash", "fees", "fills"):
            deltas = [float(b - a) for a, b in (getattr(pair, name) for pair in both)]
            out.append(_stats(name, deltas))
        return out

    def symbol(self, instrument_id: int) -> str:
        instrument = self.instruments.get(instrument_id)
        return instrument.symbol if instrument else f"#{instrument_id}"

    def quantity(self, instrument_id: int, raw: int) -> Decimal:
        instrument = self.instruments.get(instrument_id)
        return to_decimal(raw, instrument.qty_digits) if instrument else Decimal(raw)


def _stats(name: str, deltas: list[float]) -> Stats:
    if not deltas:
        return Stats(name, 0, 0, math.nan, math.nan, math.nan, math.nan)
    return Stats(
        name,
        len(deltas),
        sum(1 for d in deltas if d != 0),
        sum(deltas) / len(deltas),
        sum(abs(d) for d in deltas) / len(deltas),
        max(abs(d) for d in deltas),
        deltas[-1],
    )


def _compared(journal: Journal) -> Iterator[tuple[int, str, bytes]]:
    for record in journal.records(0):
        if record.kind in COMPARED_KINDS:
            yield record.seq, record.kind, record.payload


def _decoded(journal: Journal, seq: int) -> dict[str, Any]:
    builtins = msgspec.to_builtins(journal.record(seq).event())
    assert isinstance(builtins, dict)
    return builtins


def first_divergence(a: Journal, b: Journal) -> EventDivergence | None:
    """The first place where the two derived-event streams differ (kind or payload bytes)."""
    stream_a, stream_b = _compared(a), _compared(b)
    index = 0
    while True:
        item_a, item_b = next(stream_a, None), next(stream_b, None)
        if item_a is None and item_b is None:
            return None
        if item_a is not None and item_b is not None and item_a[1:] == item_b[1:]:
            index += 1
            continue
        event_a = _decoded(a, item_a[0]) if item_a else None
        event_b = _decoded(b, item_b[0]) if item_b else None
        fields = []
        if event_a is not None and event_b is not None:
            keys = list(dict.fromkeys([*event_a, *event_b]))
            fields = [k for k in keys if event_a.get(k) != event_b.get(k)]
        return EventDivergence(
            index,
            item_a[0] if item_a else None,
            item_b[0] if item_b else None,
            item_a[1] if item_a else None,
            item_b[1] if item_b else None,
            fields,
            event_a,
            event_b,
        )


def compare_books(
    name_a: str, book_a: JournalBook, name_b: str, book_b: JournalBook, divergence: EventDivergence | None
) -> Comparison:
    by_day_a = {book.day: book for book in book_a.days}
    by_day_b = {book.day: book for book in book_b.days}
    currency = next((b.currency for b in [*book_a.days, *book_b.days]), "USD")
    pairs = [
        DayPair(day, by_day_a.get(day), by_day_b.get(day), currency)
        for day in sorted(set(by_day_a) | set(by_day_b))
    ]
    first = next((pair for pair in pairs if pair.differing()), None)
    instruments = {**book_b.instruments, **book_a.instruments}
    return Comparison(name_a, name_b, currency, pairs, first, divergence, instruments)
