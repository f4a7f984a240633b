"""The journal tail: records from a sequence number (or the last ones), filtered by kind,
instrument and order id, each decoded to one line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from domain.instruments import Instrument
from kernel.journal import Journal
from tui.describe import describe, instrument_ids_of
from tui.format import utc_text

__all__ = [
    "TAIL_ROWS",
    "TailFilter",
    "TailPage",
    "TailRow",
    "parse_jump",
    "read_tail",
    "read_tail_growth",
    "seq_at_time",
]

TAIL_ROWS = 200  # rows a page of the tail shows
SCAN_MAX = 200_000  # records a filtered page scans before it stops (and says so)


@dataclass(frozen=True)
class TailFilter:
    """``kind:order instrument:3 order:ID`` -- each part optional; ``instrument`` takes an id
    or a symbol."""

    kind: str = ""
    instrument: str = ""
    order_id: str = ""

    @classmethod
    def parse(cls, text: str) -> TailFilter:
        parts: dict[str, str] = {}
        for token in text.split():
            key, _, value = token.partition(":")
            if value and key in ("kind", "instrument", "order"):
                parts[key] = value
            elif not value:
                parts["kind"] = key
        return cls(parts.get("kind", ""), parts.get("instrument", ""), parts.get("order", ""))

    @property
    def decodes(self) -> bool:
        return bool(self.instrument or self.order_id)

    def describe(self) -> str:
        terms = [
            f"{k}:{v}"
            for k, v in (("kind", self.kind), ("instrument", self.instrument), ("order", self.order_id))
            if v
        ]
        return " ".join(terms) or "none"


@dataclass(frozen=True)
class TailRow:
    seq: int
    time: str
    kind: str
    text: str


def _instrument_id(tail_filter: TailFilter, instruments: dict[int, Instrument]) -> int | None:
    if not tail_filter.instrument:
        return None
    if tail_filter.instrument.isdigit():
        return int(tail_filter.instrument)
    for inst in instruments.values():
        if inst.symbol == tail_filter.instrument:
            return inst.instrument_id
    return -1


@dataclass(frozen=True)
class TailPage:
    """What the journal screen shows: ``rows`` matching ``filter`` from ``start`` (``None``: the
    journal's last matching records, followed as it grows) and ``end``, the journal's length
    when the rows were read (the next record a followed page describes)."""

    filter: TailFilter
    start: int | None
    rows: list[TailRow]
    end: int
    note: str = ""  # why the page is empty (a time after the journal's end)

    @property
    def follows(self) -> bool:
        return self.start is None and not self.note

    @property
    def head(self) -> str:
        if self.note:
            return self.note
        where = f"from seq {self.first:,}" if self.start is not None else "the last matching records"
        return f"{len(self.rows)} rows, {where} (journal has {self.end:,}); filter: {self.filter.describe()}"

    @property
    def first(self) -> int:
        return min(max(self.start or 0, 0), max(self.end - 1, 0))

    def extended(self, rows: list[TailRow], end: int) -> TailPage:
        """The followed page after the journal grew to ``end``: the new matching ``rows`` (read
        from this page's ``end``) appended, the oldest dropped past ``TAIL_ROWS``."""
        kept = [*self.rows, *rows][-TAIL_ROWS:] if rows else self.rows
        return TailPage(self.filter, None, kept, max(end, self.end))


def read_tail(
    journal: Journal,
    tail_filter: TailFilter,
    start: int | None,
    instruments: dict[int, Instrument],
    currency: str,
) -> TailPage:
    """A page of rows. From ``start`` forward, or (``None``) the last page: the scan starts far
    enough back to fill it (at most ``SCAN_MAX`` records)."""
    count = len(journal)
    first = start if start is not None else count - _scan_back(tail_filter)
    first = min(max(first, 0), max(count - 1, 0))
    limit = TAIL_ROWS if start is not None else None
    rows = _matching(journal, first, count, tail_filter, instruments, currency, limit)
    if start is None:
        rows = rows[-TAIL_ROWS:]
    return TailPage(tail_filter, start, rows, count)


def read_tail_growth(
    journal: Journal, page: TailPage, instruments: dict[int, Instrument], currency: str
) -> tuple[list[TailRow], int]:
    """The rows a followed page gains: the records appended since ``page.end`` that match its
    filter, each decoded and described once (a journal that grew by more than a page's scan
    is read from that far back only). Returns them and the journal's length."""
    count = len(journal)
    if count <= page.end:
        return [], page.end
    first = max(page.end, count - _scan_back(page.filter))
    return _matching(journal, first, count, page.filter, instruments, currency, None), count


def _scan_back(tail_filter: TailFilter) -> int:
    """How far back from the journal's end the last page is looked for."""
    return SCAN_MAX if _filtering(tail_filter) else TAIL_ROWS


def _matching(
    journal: Journal,
    first: int,
    end: int,
    tail_filter: TailFilter,
    instruments: dict[int, Instrument],
    currency: str,
    limit: int | None,
) -> list[TailRow]:
    """Rows of the records ``[first, end)`` (at most ``SCAN_MAX`` scanned) matching the filter,
    up to ``limit`` rows."""
    wanted = _instrument_id(tail_filter, instruments)
    rows: list[TailRow] = []
    scanned = 0
    for record in journal.records(first, verify=False):
        scanned += 1
        if record.seq >= end or scanned > SCAN_MAX or (limit is not None and len(rows) >= limit):
            break
        if tail_filter.kind and tail_filter.kind not in record.kind:
            continue
        event = record.event()
        if wanted is not None and wanted not in instrument_ids_of(event):
            continue
        if tail_filter.order_id and tail_filter.order_id not in str(getattr(event, "order_id", "")):
            continue
        rows.append(
            TailRow(record.seq, utc_text(record.ts_ns), record.kind, describe(event, instruments, currency))
        )
    return rows


def _filtering(tail_filter: TailFilter) -> bool:
    return bool(tail_filter.kind or tail_filter.decodes)


def parse_jump(text: str) -> tuple[int | None, int | None]:
    """Where ``g`` jumps to: ``(seq, None)`` for a number, ``(None, ts_ns)`` for a time (ISO date
    or date and time; UTC unless it names an offset). Raises ``ValueError`` with the reason."""
    text = text.strip()
    if text.isdigit():
        return int(text), None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a sequence number nor a time (2024-03-05T14:30Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return None, int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def seq_at_time(journal: Journal, ts_ns: int) -> int | None:
    """The first record whose event time is at or after ``ts_ns`` (None: the journal ends
    before it). Event times are not monotone across input kinds, so it reads forward."""
    for record in journal.records(0, verify=False):
        if record.ts_ns >= ts_ns:
            return record.seq
    return None
