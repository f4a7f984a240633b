"""One session day of the journal, to step through record by record (or step by step) and
watch the book evolve.

The book is not recomputed: it starts from the kernel's own day snapshot before the day
(``kernel.replay.day_span``: balances and positions at cost) and adds, record by record, what
the journal says changed -- each ``ledger.posted`` transaction's postings into the balances
(``domain.ledger.apply_postings``, the ledger projection's postings) and each fill's, split's
or rights subscription's quantity (``domain.ledger.position_change``, the ledger projection's
``positions`` table). Positions are marked as the kernel marks them
(``domain.futures.position_value_minor`` at the prices of the record's step, ``Marks``: the
run's last closes -- a queued run's live rows from its journaled bars -- or a perpetual's
journaled venue mark in effect), so at the day's ``day.closed`` record the tape's NAV is the
journaled NAV and after its last record the book is the kernel's next snapshot.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from domain.events import CurrenciesMarked, Event, LedgerPosted
from domain.futures import position_value_minor
from domain.fx import to_base_minor
from domain.instruments import Instrument
from domain.ledger import Position, apply_postings, cash_account, inventory_account, position_change
from kernel.journal import Journal, Record
from kernel.replay import day_span
from tui.sources import Marks

__all__ = ["CHECKPOINT_EVERY", "Book", "BookLine", "DayTape", "read_day_tape"]

CHECKPOINT_EVERY = 256  # records between stored books (stepping back refolds at most this many)


@dataclass(frozen=True)
class Book:
    """Account balances (minor units, debit positive) and position quantities (raw)."""

    balances: dict[str, int]
    quantities: dict[int, int]

    def after(self, event: Event) -> Book:
        """The book once ``event`` is applied (a new book; this one is unchanged)."""
        if isinstance(event, LedgerPosted):
            balances = dict(self.balances)
            apply_postings(balances, event.postings)
            return Book(balances, self.quantities)
        change = position_change(event)
        if change is None:
            return self
        quantities = dict(self.quantities)
        quantities[change[0]] = quantities.get(change[0], 0) + change[1]
        if quantities[change[0]] == 0:
            del quantities[change[0]]
        return Book(self.balances, quantities)

    def total(self, prefix: str) -> int:
        """The sum of the balances of the accounts whose names start with ``prefix``."""
        return sum(value for account, value in self.balances.items() if account.startswith(prefix))


@dataclass(frozen=True)
class BookLine:
    instrument_id: int
    qty_raw: int
    cost_minor: int  # the inventory account's balance: the open quantity at cost
    mark_px_raw: int | None  # None: not marked (no marks, or not loaded yet)
    value_minor: int | None


class DayTape:
    """The records of one day (``[start_seq, end_seq)``) and the book after each of them.

    Cursor positions are record indexes; ``-1`` is the book the day opened with.
    """

    def __init__(
        self,
        day: int,
        records: list[Record],
        opening: Book,
        instruments: dict[int, Instrument],
        currency: str,
        opening_snapshot_seq: int,
    ) -> None:
        self.day = day
        self.records = records
        self.opening = opening
        self.instruments = instruments
        self.currency = currency
        self.opening_snapshot_seq = opening_snapshot_seq
        self.events: list[Event] = [record.event() for record in records]
        # a book of several currencies: the day's rates into the base (its close's
        # book.currencies_marked; the kernel values every step of a session day at that day's
        # rates); None for a book of one currency, which journals no such record
        marked = [event for event in self.events if isinstance(event, CurrenciesMarked)]
        self.rates: dict[str, int] | None = (
            {mark.currency: mark.rate_e8 for mark in marked[-1].currencies} if marked else None
        )
        self._checkpoints: list[Book] = []  # the book after index k * CHECKPOINT_EVERY - 1
        book = opening
        for index, event in enumerate(self.events):
            if index % CHECKPOINT_EVERY == 0:
                self._checkpoints.append(book)
            book = book.after(event)
        self.closing = book
        # step starts: the indexes where the event time changes (the kernel steps once per time)
        self.step_starts = [
            index
            for index, record in enumerate(records)
            if index == 0 or record.ts_ns != records[index - 1].ts_ns
        ]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def start_seq(self) -> int:
        return self.records[0].seq if self.records else 0

    def index_of(self, seq: int) -> int | None:
        index = seq - self.start_seq
        return index if 0 <= index < len(self.records) else None

    def book_at(self, index: int) -> Book:
        """The book after record ``index`` (``-1``: the opening book)."""
        if index < 0:
            return self.opening
        assert index < len(self.records)
        checkpoint = index // CHECKPOINT_EVERY
        book = self._checkpoints[checkpoint]
        for event in self.events[checkpoint * CHECKPOINT_EVERY : index + 1]:
            book = book.after(event)
        return book

    def step_number(self, index: int) -> int:
        """1-based number of the kernel step that record ``index`` belongs to (0: opening)."""
        return bisect.bisect_right(self.step_starts, index) if index >= 0 else 0

    def next_step(self, index: int) -> int:
        """The last record of the step after the one holding ``index`` (or of the first step)."""
        number = self.step_number(index)
        if number >= len(self.step_starts):
            return len(self.records) - 1
        return self._step_end(number)

    def previous_step(self, index: int) -> int:
        """The last record of the step before the one holding ``index`` (-1: the opening)."""
        number = self.step_number(index)
        return self._step_end(number - 2) if number >= 2 else -1

    def _step_end(self, step_index: int) -> int:
        following = step_index + 1
        return self.step_starts[following] - 1 if following < len(self.step_starts) else len(self.records) - 1

    def lines(self, book: Book, prices: dict[int, int] | None) -> list[BookLine]:
        lines = []
        for instrument_id, qty in sorted(book.quantities.items()):
            cost = book.balances.get(inventory_account(instrument_id), 0)
            mark = prices.get(instrument_id) if prices is not None else None
            value = None
            if mark is not None:
                value = position_value_minor(self.instruments[instrument_id], Position(qty, cost), mark)
            lines.append(BookLine(instrument_id, qty, cost, mark, value))
        return lines

    def in_base(self, amount_minor: int, currency: str) -> int:
        """An amount of ``currency`` in the base at the day's rate (half-even, as the kernel
        converts); the base's own amounts, and every amount of a one-currency book, as they are."""
        if currency == self.currency or self.rates is None:
            return amount_minor
        return to_base_minor(amount_minor, currency, self.currency, self.rates[currency])

    def cash_by_currency(self, book: Book) -> dict[str, int]:
        prefix = cash_account("")
        cash = {
            account.removeprefix(prefix): value
            for account, value in book.balances.items()
            if account.startswith(prefix)
        }
        return dict(sorted(cash.items())) or {self.currency: 0}

    def cash_minor(self, book: Book) -> int:
        """The cash in the base: each currency's converted (the day close's ``cash_minor``)."""
        if self.rates is None:
            return book.balances.get(cash_account(self.currency), 0)
        return sum(self.in_base(value, ccy) for ccy, value in self.cash_by_currency(book).items())

    def total_in_base(self, book: Book, prefix: str) -> int:
        """``Book.total`` with each account (named ``...:CCY``) converted into the base."""
        if self.rates is None:
            return book.total(prefix)
        return sum(
            self.in_base(value, account.rsplit(":", 1)[-1])
            for account, value in book.balances.items()
            if account.startswith(prefix)
        )

    def nav_minor(self, book: Book, prices: dict[int, int]) -> int:
        """Cash plus the positions' values at ``prices`` (what the kernel's day close marks); a
        book of several currencies sums each currency's NAV converted once into the base."""
        lines = self.lines(book, prices)
        if self.rates is None:
            return self.cash_minor(book) + sum(line.value_minor or 0 for line in lines)
        navs = dict(self.cash_by_currency(book))
        for line in lines:
            ccy = self.instruments[line.instrument_id].currency
            navs[ccy] = navs.get(ccy, 0) + (line.value_minor or 0)
        return sum(self.in_base(nav, ccy) for ccy, nav in navs.items())

    def prices_at(self, index: int, marks: Marks | None) -> dict[int, int] | None:
        """The kernel's prices at the step of record ``index`` (None: no marks)."""
        if marks is None:
            return None
        record = self.records[max(index, 0)] if self.records else None
        if record is None:
            return None
        step = marks.step_at(record.ts_ns) - (1 if index < 0 else 0)
        return marks.at_step(max(step, 0))


def read_day_tape(journal: Journal, day: int, instruments: dict[int, Instrument], currency: str) -> DayTape:
    """The journal's records of ``day`` and the kernel's snapshot of the book before it."""
    span = day_span(journal, day)
    if span.snapshot is None:
        opening = Book({}, {})
    else:
        snapshot = span.snapshot.snapshot
        opening = Book(
            {posting.account: posting.amount_minor for posting in snapshot.balances},
            {position.instrument_id: position.qty_raw for position in snapshot.positions if position.qty_raw},
        )
    records = []
    for record in journal.records(span.start_seq):
        if record.seq >= span.end_seq:
            break
        records.append(record)
    return DayTape(day, records, opening, instruments, currency, span.snapshot_seq)
