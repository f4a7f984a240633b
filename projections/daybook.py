"""The book at every day close, folded from a journal: what ``tape reconcile`` and ``tape
compare`` read.

Nothing here computes trading state of its own: positions are ``domain.ledger.fold_positions``
over the fills (plus the share changes that ``corporate_action.applied.v1`` and
``corporate_action.rights.v1`` state, as the ledger projection adds them), cash is
``domain.ledger.apply_postings`` over the journaled ``ledger.posted.v1`` transactions (the
``assets:cash:{CCY}`` accounts), NAV is the journaled ``day.closed.v1``. Fees are the
transactions' ``expenses:*`` postings but perpetual funding, as ``sim.metrics`` counts them.
``cash_roundings`` counts, per currency since the journal's first record, the fills whose cash
the book rounded to the minor unit: each fill's fee, and its notional where ``qty * price *
multiplier`` is not a whole number of minor units (``tape reconcile`` bounds a statement's
rounding residual by them).

A day's book is the state after its ``day.closed.v1`` record (the *cut*: every record up to
that seq). ``JournalBook.end`` is the state after the journal's last record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from domain.events import (
    CorporateActionApplied,
    DayClosed,
    FeeTakenInKind,
    InstrumentsDefined,
    LedgerPosted,
    OrderFilled,
    PositionAdopted,
    RightsIssueApplied,
)
from domain.fixed import minor_digits
from domain.instruments import Instrument
from domain.ledger import apply_postings, fold_positions
from kernel.journal import Journal

__all__ = ["DayBook", "JournalBook", "fold_day_books", "fold_journal_book"]

_CASH_PREFIX = "assets:cash:"
_FOLDED = frozenset(
    {
        "instruments.defined.v1",
        "order.filled.v1",
        "ledger.posted.v1",
        "day.closed.v1",
        "corporate_action.applied.v1",
        "corporate_action.rights.v1",
        "order.fee_in_kind.v1",
        "book.position_adopted.v1",
    }
)


@dataclass(frozen=True)
class DayBook:
    """The book at one cut (a day close, or the journal's end when ``day`` is 0)."""

    day: int  # YYYYMMDD; 0 = the journal's end, not a day close
    seq: int  # the last record folded (the day close's seq)
    ts_ns: int
    nav_minor: int | None  # the day close's NAV (None at the journal's end)
    nav_cash_minor: int | None  # the day close's cash figure, in ``currency``
    currency: str  # the day close's book currency ("" at the journal's end)
    positions: dict[int, int]  # instrument id -> raw quantity, flat ones left out
    cash: dict[str, int]  # currency -> minor units, from the cash accounts' postings
    fills: int  # fills since the previous cut
    fees_minor: dict[str, int]  # currency -> fees since the previous cut
    fill_notional_minor: dict[str, int]  # currency -> traded notional since the previous cut
    # currency -> (fills, inexact notionals) since the journal's first record: the cash
    # amounts the book rounded to the minor unit (a fee per fill; a notional when inexact)
    cash_roundings: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class JournalBook:
    """Every day close's book, the book at the journal's end and the instruments defined."""

    days: list[DayBook]
    end: DayBook
    instruments: dict[int, Instrument]
    records: int
    share_changes: list[tuple[int, int, int]] = field(default_factory=list)  # (seq, id, delta)

    def day(self, day: int) -> DayBook | None:
        return next((book for book in self.days if book.day == day), None)

    def share_changes_after(self, seq: int) -> dict[int, int]:
        """Corporate-action share changes journaled after ``seq`` (the ledger keeps no table
        of them: ``tape reconcile`` needs them to roll the ledger's positions back)."""
        changes: dict[int, int] = {}
        for change_seq, instrument_id, delta in self.share_changes:
            if change_seq > seq:
                changes[instrument_id] = changes.get(instrument_id, 0) + delta
        return changes


class _Fold:
    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.positions: dict[int, int] = {}
        self.day_fills: list[OrderFilled] = []
        self.fees: dict[str, int] = {}
        self.notional: dict[str, int] = {}
        self.fill_count = 0
        self.instruments: dict[int, Instrument] = {}
        self.share_changes: list[tuple[int, int, int]] = []
        self.roundings: dict[str, tuple[int, int]] = {}  # never reset: cash is cumulative

    def apply(self, seq: int, event: object) -> None:
        if isinstance(event, OrderFilled):
            self.day_fills.append(event)
            self.fill_count += 1
            self.notional[event.currency] = self.notional.get(event.currency, 0) + event.notional_minor
            self._count_rounding(event)
        elif isinstance(event, LedgerPosted):
            apply_postings(self.balances, event.postings)
            for posting in event.postings:
                section, kind = [*posting.account.split(":"), ""][:2]
                if section == "expenses" and kind != "funding":
                    self.fees[posting.currency] = self.fees.get(posting.currency, 0) + posting.amount_minor
        elif isinstance(event, CorporateActionApplied):
            self._share_change(seq, event.instrument_id, event.qty_after_raw - event.qty_before_raw)
        elif isinstance(event, RightsIssueApplied):
            self._share_change(seq, event.instrument_id, event.subscribed_raw)
        elif isinstance(event, FeeTakenInKind):  # the venue's fee out of the holding
            self._share_change(seq, event.instrument_id, -event.qty_raw)
        elif isinstance(event, PositionAdopted):  # taken on from the venue (live reconciliation)
            self._share_change(seq, event.instrument_id, event.qty_raw)
        elif isinstance(event, InstrumentsDefined):
            self.instruments.update((i.instrument_id, i) for i in event.instruments)

    def _count_rounding(self, fill: OrderFilled) -> None:
        """One more fill in its currency; its notional counts as rounded when ``qty * price *
        multiplier`` is not a whole number of minor units (or the instrument is unknown)."""
        fills, inexact = self.roundings.get(fill.currency, (0, 0))
        instrument = self.instruments.get(fill.instrument_id)
        if instrument is None:
            inexact += 1
        else:
            try:
                digits = minor_digits(fill.currency)
            except ValueError:
                digits = 0
            numerator = fill.fill_qty_raw * fill.fill_px_raw * instrument.multiplier * 10**digits
            inexact += numerator % 10 ** (instrument.price_digits + instrument.qty_digits) != 0
        self.roundings[fill.currency] = (fills + 1, inexact)

    def _share_change(self, seq: int, instrument_id: int, delta: int) -> None:
        if delta:
            self._settle_fills()
            self.positions[instrument_id] = self.positions.get(instrument_id, 0) + delta
            self.share_changes.append((seq, instrument_id, delta))

    def _settle_fills(self) -> None:
        for instrument_id, qty in fold_positions(self.day_fills).items():
            self.positions[instrument_id] = self.positions.get(instrument_id, 0) + qty
        self.day_fills = []

    def cut(self, seq: int, ts_ns: int, close: DayClosed | None) -> DayBook:
        self._settle_fills()
        book = DayBook(
            day=close.day if close else 0,
            seq=seq,
            ts_ns=ts_ns,
            nav_minor=close.nav_minor if close else None,
            nav_cash_minor=close.cash_minor if close else None,
            currency=close.currency if close else "",
            positions={iid: qty for iid, qty in sorted(self.positions.items()) if qty},
            cash={
                account.removeprefix(_CASH_PREFIX): amount
                for account, amount in sorted(self.balances.items())
                if account.startswith(_CASH_PREFIX)
            },
            fills=self.fill_count,
            fees_minor=dict(sorted(self.fees.items())),
            fill_notional_minor=dict(sorted(self.notional.items())),
            cash_roundings=dict(sorted(self.roundings.items())),
        )
        self.fill_count = 0
        self.fees = {}
        self.notional = {}
        return book


def _folded(journal: Journal) -> Iterator[tuple[int, int, object]]:
    for record in journal.records(0):
        if record.kind in _FOLDED:
            yield record.seq, record.ts_ns, record.event()


def fold_journal_book(journal: Journal) -> JournalBook:
    """One pass over the journal (the hash chain verified on the way)."""
    fold = _Fold()
    days: list[DayBook] = []
    last_seq, last_ts_ns = -1, 0
    for seq, ts_ns, event in _folded(journal):
        if isinstance(event, DayClosed):
            days.append(fold.cut(seq, ts_ns, event))
        else:
            fold.apply(seq, event)
        last_seq, last_ts_ns = seq, ts_ns
    end_seq = len(journal) - 1
    end = fold.cut(max(end_seq, last_seq), last_ts_ns, None)
    return JournalBook(days, end, fold.instruments, len(journal), fold.share_changes)


def fold_day_books(journal: Journal) -> list[DayBook]:
    """The book at every day close, in journal order."""
    return fold_journal_book(journal).days
