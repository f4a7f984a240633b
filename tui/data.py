"""The cockpit's data: what the screens show, read from the journal and from the folds the
composition root handed in (``CockpitSources``). No widget, no Textual import.

Two kinds of methods:

* ``read_*`` run in a worker thread. Each opens its own read-only journal and returns a
  value; none of them touches the state below.
* ``apply_*`` / ``set_*`` run on the UI thread and store what a read returned.

Nothing here computes trading state: the folds are ``tui.fold`` (journal look-ups), the
report's and the execution report's folds (``sim``, via cli), the kernel's own replay and
day snapshots, and the journal's ledger postings (``tui.daytape``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from domain.events import Event, StateSnapshotted
from kernel.journal import Journal, Record
from kernel.replay import ReplayResult, replay
from kernel.store import open_journal
from projections.alerts import Alert
from tui.daytape import DayTape, read_day_tape
from tui.fold import DETAIL_KINDS, OVERVIEW_KINDS, ChainLink, Detail, Overview
from tui.format import utc_text
from tui.sources import AlertsView, CockpitSources, ExecutionLike, Marks, SummaryLike
from tui.tail import TailFilter, TailPage, TailRow, read_tail, read_tail_growth, seq_at_time

__all__ = ["TAIL_VERDICT_RECORDS", "CockpitData", "Growth"]

TAIL_VERDICT_RECORDS = 8192  # the first screen's latest verdicts come from this many last records
VERDICT_KIND = "risk.verdict.v2"


@dataclass(frozen=True)
class Growth:
    """What a growing journal appended since the folds last read it."""

    overview_records: list[Record]
    detail_records: list[Record]
    count: int
    last_ts_ns: int
    tail_base: TailPage | None = None  # the followed journal page the rows below extend
    tail_rows: list[TailRow] | None = None
    tail_end: int = 0


class CockpitData:
    """The journal's folds for one cockpit, and the loaders handed in for it."""

    def __init__(self, sources: CockpitSources) -> None:
        self.sources = sources
        self.overview = Overview()
        self.detail: Detail | None = None
        self.summary: SummaryLike | None = None
        self.execution: Sequence[ExecutionLike] | None = None  # one per currency
        self.marks: Marks | None = None
        self.health: list[str] | None = None
        self.tape: DayTape | None = None  # the day being stepped through (replay screen)
        self.replay_result: ReplayResult | None = None  # the fresh replay of that day
        self.tail: TailPage | None = None  # the journal screen's page
        self.alerts: list[Alert] | None = None  # firing now (None: not read yet)
        self.alerts_error = ""  # why the alert state could not be read
        self.alerts_view: AlertsView | None = None  # the last good read (operations, silences)
        self._open_lock = threading.Lock()

    # --- worker-thread reads --------------------------------------------------------------

    @contextmanager
    def open(self) -> Iterator[Journal]:
        """A read-only journal for one worker. Opens and closes are serialised: the LMDB
        backend shares one environment per path and process, and its reference count is not
        guarded against two threads opening the same path at once."""
        with self._open_lock:
            journal = open_journal(self.sources.journal)
        try:
            yield journal
        finally:
            with self._open_lock:
                journal.close()

    def read_overview(self) -> Overview:
        """The command centre's fold: only its few kinds are decoded, plus the risk verdicts
        of the journal's last ``TAIL_VERDICT_RECORDS`` records."""
        overview = Overview()
        with self.open() as journal:
            for record in journal.records_of_kinds(OVERVIEW_KINDS):
                overview.apply(record)
            count = len(journal)
            start = max(0, count - TAIL_VERDICT_RECORDS)
            for record in journal.records_of_kinds(frozenset({VERDICT_KIND}), start):
                overview.tail_verdicts.append((record.seq, record.event()))  # type: ignore[arg-type]
            overview.records = count
            overview.last_ts_ns = journal.record(count - 1).ts_ns if count else 0
        return overview

    def read_detail(self) -> Detail:
        detail = Detail()
        with self.open() as journal:
            detail.apply_all(journal.records_of_kinds(DETAIL_KINDS, 0))
            detail.records = len(journal)
        return detail

    def read_fold(self, name: str) -> object | None:
        """The report's summary or its execution quality (None: cli gave no such fold)."""
        loader = {"summary": self.sources.summary, "execution": self.sources.execution}[name]
        if loader is None:
            return None
        with self.open() as journal:
            return loader(journal)

    def read_growth(self, start: int, tail: TailPage | None) -> Growth | None:
        """The records appended after ``start`` (what the folds hold) and, for a followed
        journal page, the rows its filter takes from the records after its end -- each record
        decoded once, never the page again (None: the journal did not grow)."""
        with self.open() as journal:
            count = len(journal)
            tail = tail if tail is not None and tail.follows else None
            if count <= start and (tail is None or count <= tail.end):
                return None
            overview_records = list(journal.records_of_kinds(OVERVIEW_KINDS | {VERDICT_KIND}, start))
            detail_records = list(journal.records_of_kinds(DETAIL_KINDS, start))
            last_ts = journal.record(count - 1).ts_ns if count else 0
            growth = Growth(overview_records, detail_records, max(count, start), last_ts)
            if tail is None:
                return growth
            instruments = dict(self.overview.instruments)
            rows, end = read_tail_growth(journal, tail, instruments, self.overview.currency)
        return Growth(growth.overview_records, growth.detail_records, growth.count, last_ts, tail, rows, end)

    def read_links(self, links: list[ChainLink]) -> list[tuple[int, str, Event]]:
        """A why-chain's links decoded: (seq, role, event)."""
        with self.open() as journal:
            return [(link.seq, link.role, journal.record(link.seq).event()) for link in links]

    def read_tail(self, tail_filter: TailFilter, start: int | None) -> TailPage:
        instruments = dict(self.overview.instruments)
        with self.open() as journal:
            return read_tail(journal, tail_filter, start, instruments, self.overview.currency)

    def read_tail_at(self, tail_filter: TailFilter, ts_ns: int) -> TailPage:
        """The page from the first record at or after a time (``g`` with a time)."""
        with self.open() as journal:
            seq = seq_at_time(journal, ts_ns)
            count = len(journal)
        if seq is None:
            note = f"no record at or after {utc_text(ts_ns)}: the journal ends before it"
            return TailPage(tail_filter, count, [], count, note)
        return self.read_tail(tail_filter, seq)

    def read_alerts(self) -> AlertsView | str:
        """The firing alerts of the alert state and the acknowledgements and silences of its
        alerts journal, or why they cannot be read (not written yet, a rules file that no longer
        loads, another journal's state)."""
        desk = self.sources.alerts
        if desk is None:
            return AlertsView([], [], [])
        try:
            firing = desk.firing()
            operations, silences = desk.operations()
        except (ValueError, OSError) as error:
            return str(error)
        return AlertsView(firing, operations, silences)

    def acknowledge(self, alert_id: int) -> Alert:
        """Acknowledge an alert exactly as ``tape alerts ack`` does (the composition root's
        ``cli.alerts_cmd.acknowledge_alert``)."""
        desk = self.sources.alerts
        if desk is None:
            raise ValueError("no alert state: open the cockpit with --alerts RULES")
        return desk.acknowledge(alert_id)

    def set_alerts(self, value: AlertsView | str) -> bool:
        """Store a read of the alert state; True when what the screen shows changed."""
        if isinstance(value, str):
            changed = value != self.alerts_error
            self.alerts_error = value  # keep the last good lists beside the error
            return changed
        changed = (value, "") != (self.alerts_view, self.alerts_error)
        self.alerts, self.alerts_view, self.alerts_error = value.firing, value, ""
        return changed

    def read_marks(self) -> Marks | None:
        if self.sources.marks is None:
            return None
        with self.open() as journal:
            return self.sources.marks(journal)

    def read_health(self) -> list[str]:
        if self.sources.health is None:
            return []
        try:
            return self.sources.health()
        except Exception as error:  # a lake that cannot be read says why on the data tab
            return [f"data health: {error}"]

    def read_replay(self, day: int) -> ReplayResult:
        """A fresh kernel re-derives ``day`` and compares it with the journal (kernel.replay)."""
        build = self.sources.replay_build
        if build is None:
            raise ValueError("replay is not available: no run builder was given")
        with self.open() as journal:
            return replay(journal, build, day=day)

    def read_day_tape(self, day: int) -> DayTape:
        """The journal's records of ``day`` and the kernel's snapshot of the book before it."""
        with self.open() as journal:
            return read_day_tape(journal, day, dict(self.overview.instruments), self.overview.currency)

    # --- UI-thread updates ----------------------------------------------------------------

    def apply_growth(self, growth: Growth) -> None:
        """Fold what the journal appended; a followed journal page gains its new rows (unless
        another page replaced it while they were read: that one is extended at the next poll)."""
        if growth.tail_base is not None and growth.tail_base is self.tail and growth.tail_rows is not None:
            self.tail = self.tail.extended(growth.tail_rows, growth.tail_end)
        for record in growth.overview_records:
            if record.kind == VERDICT_KIND:
                self.overview.tail_verdicts.append((record.seq, record.event()))  # type: ignore[arg-type]
            else:
                self.overview.apply(record)
        assert self.detail is not None
        self.detail.apply_all(growth.detail_records)
        self.overview.records = self.detail.records = growth.count
        self.overview.last_ts_ns = growth.last_ts_ns

    def set_fold(self, name: str, value: object) -> None:
        assert name in ("summary", "execution")
        setattr(self, name, value)

    # --- questions the screens ask --------------------------------------------------------

    def snapshot_event(self) -> StateSnapshotted | None:
        """The kernel's last day snapshot (decoded on demand)."""
        record = self.overview.last_snapshot
        if record is None:
            return None
        event = record.event()
        return event if isinstance(event, StateSnapshotted) else None

    def order_id_at(self, seq: int) -> str | None:
        """The order an order event at ``seq`` belongs to."""
        if self.detail is None:
            return None
        for line in self.detail.orders.values():
            if seq in line.seqs:
                return line.order_id
        return None

    def symbol(self, instrument_id: int) -> str:
        inst = self.overview.instruments.get(instrument_id)
        return inst.symbol if inst is not None else f"#{instrument_id}"
