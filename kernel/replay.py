"""Replay: a fresh kernel re-derives every derived event from the journaled inputs and
compares it, byte for byte, with the journal — and rebuilds each segment's chained hash.

The comparison sink buffers the regenerated events of one journal segment; when the
segment is complete it rebuilds the segment body and hash from them and compares both
with the stored ones (the fast path: one bytes comparison per segment). Only on a
mismatch, or for segments that the replayed range covers partly (``--day``), does it
compare record by record, to name the first divergent sequence number.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from domain.events import (
    INPUT_KINDS,
    AdoptionReceived,
    BarsReceived,
    ClockAdvanced,
    CommandReceived,
    DatasetReferenced,
    Event,
    FundingReceived,
    InputQuarantined,
    MarkPriceReceived,
    OrderCancelRequested,
    RunStarted,
    StateSnapshotted,
    StrategyCommanded,
    VenueMessageReceived,
    decode_event,
    encode_event,
    event_kind,
)
from domain.market import Panel
from kernel.desk import EventSink
from kernel.journal import (
    GENESIS_HASH,
    HASH_SIZE,
    ChainBroken,
    Journal,
    JournalError,
    Record,
    Segment,
    build_segment,
    parse_segment,
    segment_hash,
    segment_kinds,
)
from kernel.loop import Kernel, KernelError, ProgressFn
from kernel.marks import MarkHistory, mark_refusal, mark_step
from kernel.run_status import run_status
from kernel.schedules import apply_strategy_command
from kernel.setup import RunSetup
from kernel.state import KernelState
from kernel.strategy import StrategyError
from kernel.stream import QUEUE_INPUT_KINDS, QueueSource, RowFiller
from kernel.venue import AsyncVenuePort

__all__ = [
    "CORRUPT_RECORD",
    "DaySpan",
    "Divergence",
    "ReplayProgress",
    "ReplayResult",
    "day_span",
    "journaled_rows",
    "queued_run",
    "replay",
]


CORRUPT_RECORD = "journal record is corrupt"
"""How a divergence's reason starts when a journal record could not be read (no events)."""


@dataclass(frozen=True)
class Divergence:
    seq: int
    reason: str
    expected: Event | None  # what the journal holds
    actual: Event | None  # what the fresh kernel derived


@dataclass(frozen=True)
class ReplayResult:
    records_compared: int
    segments_rehashed: int
    first_seq: int
    last_seq: int
    divergence: Divergence | None
    # The journal ends without run.finished.v1 (a run stopped part-way) and every record it
    # holds was re-derived byte for byte: a matched, unfinished run.
    unfinished: bool = False
    # The strategy's refusal the fresh kernel met where the journal ends (a run the strategy
    # stopped: it stops there again), or None.
    refused: str | None = None

    @property
    def ok(self) -> bool:
        return self.divergence is None


class _Diverged(Exception):
    def __init__(self, divergence: Divergence) -> None:
        super().__init__(divergence.reason)
        self.divergence = divergence


class _JournalEnded(Exception):
    """The fresh kernel went on past the end of an unfinished run's journal."""


class _ComparingSink:
    """An ``EventSink`` that checks each derived event against the journal.

    Segments are read raw; a segment is parsed record by record only when the replayed
    range covers it partly, when it holds journaled inputs, or when its rebuilt body differs.
    """

    def __init__(
        self,
        journal: Journal,
        start_seq: int,
        end_seq: int,
        *,
        unfinished: bool = False,
        decoded: dict[int, Event] | None = None,
        then: EventSink | None = None,
    ) -> None:
        """``decoded``: where the queue inputs this sink copies are left, decoded, by sequence
        number, for a queue source's feed to take instead of decoding them again (the sink
        reads ahead of the feed). ``then``: where events derived past the journal's
        end go (``resume``: the journal itself) instead of ending the replay."""
        self._then = then
        self._unfinished = unfinished  # the journal ends part-way: deriving past its end is expected
        self._decoded = decoded if decoded is not None else {}
        self._raw: Iterator[tuple[int, bytes]] = journal.raw_segments(start_seq)
        self._start = start_seq
        self._end = end_seq  # exclusive
        self._key = -1
        self._value = b""
        self._kinds: list[str] = []
        self._buffer: list[Event] = []
        self._prev_hash = b""
        self._fast_limit = 0  # appends below this seq need no bookkeeping
        self.compared = 0
        self.rehashed = 0
        self._seq = start_seq
        self._parsed_key = -1
        self._parsed_segment: Segment | None = None
        self._load_segment()

    # --- segment bookkeeping -----------------------------------------------------------

    def _load_segment(self) -> None:
        if self._key >= 0:
            self._prev_hash = self._value[:HASH_SIZE]
        found = next(self._raw, None)
        self._buffer = []
        if found is None:
            self._key, self._value, self._kinds = -1, b"", []
            self._fast_limit = 0
            return
        self._key, self._value = found
        if self._key == 0:
            self._prev_hash = GENESIS_HASH
        self._kinds = segment_kinds(self._key, self._value[HASH_SIZE:])
        head = max(0, self._start - self._key)
        if head:
            records = parse_segment(self._key, self._value).records[:head]
            self._buffer = [decode_event(record.payload) for record in records]
        self._take_inputs()
        self._set_fast_limit()

    def _set_fast_limit(self) -> None:
        segment_end = self._key + len(self._kinds)
        limit = min(segment_end, self._end)
        for index in range(self._seq - self._key, len(self._kinds)):
            if self._kinds[index] in INPUT_KINDS:
                limit = min(limit, self._key + index)
                break
        self._fast_limit = limit - 1  # the append that reaches the limit takes the slow path

    def _take_inputs(self) -> None:
        """Journaled inputs are given, not derived: copy them into the rebuilt segment."""
        while self._key >= 0 and self._seq < self._end:
            index = self._seq - self._key
            if index >= len(self._kinds) or self._kinds[index] not in INPUT_KINDS:
                return
            event = decode_event(self._parsed().records[index].payload)
            if self._kinds[index] in QUEUE_INPUT_KINDS:
                self._decoded[self._seq] = event  # the queue source's feed takes it from here
            self._buffer.append(event)
            self._advance()

    def _parsed(self) -> Segment:
        """The current segment's records, parsed once (a queued run journals an input per bar)."""
        if self._parsed_key != self._key:
            self._parsed_segment = parse_segment(self._key, self._value)
            self._parsed_key = self._key
        assert self._parsed_segment is not None
        return self._parsed_segment

    def append(self, event: Event) -> int:
        seq = self._seq
        if seq < self._fast_limit:
            self._buffer.append(event)
            self._seq = seq + 1
            return seq
        if seq >= self._end and self._key < 0 and self._then is not None:
            return self._then.append(event)
        if seq >= self._end and self._unfinished and self._key < 0:
            raise _JournalEnded
        if seq >= self._end or self._key < 0:
            reason = "the fresh kernel derived an event past the journal's end"
            raise _Diverged(Divergence(seq, reason, None, event))
        self._buffer.append(event)
        self._advance()
        self._take_inputs()
        if self._key >= 0:
            self._set_fast_limit()
        return seq

    def _advance(self) -> None:
        self._seq += 1
        if self._seq - self._key == len(self._kinds):
            self._check_segment(complete=True)
            self._load_segment()

    # --- comparison --------------------------------------------------------------------

    def _check_segment(self, *, complete: bool) -> None:
        key, value = self._key, self._value
        whole = complete and len(self._buffer) == len(self._kinds) and self._prev_hash
        if whole:
            body = build_segment(key, self._buffer)
            same = len(value) == HASH_SIZE + len(body) and value.endswith(body)  # no copy of the body
            if same and segment_hash(self._prev_hash, body) == value[:HASH_SIZE]:
                self.compared += sum(
                    1
                    for index, kind in enumerate(self._kinds)
                    if key + index >= self._start and kind not in INPUT_KINDS
                )
                self.rehashed += 1
                return
        segment = parse_segment(key, value)
        for record, event in zip(segment.records, self._buffer, strict=False):
            if record.seq >= self._start and record.kind not in INPUT_KINDS:
                self._compare_record(record, event)
        if whole:
            raise _Diverged(Divergence(key, "records equal but the segment hash differs", None, None))

    def _compare_record(self, record: Record, event: Event) -> None:
        payload = encode_event(event)
        if payload != record.payload or record.ts_ns != event.ts_ns or record.kind != event_kind(event):
            raise _Diverged(
                Divergence(record.seq, "derived event differs from the journal", record.event(), event)
            )
        self.compared += 1

    def finish(self) -> None:
        """Check a partly re-derived last segment; everything in range must be re-derived."""
        if self._key >= 0 and self._seq > max(self._key, self._start):
            self._check_segment(complete=False)
        if self._key >= 0 and self._seq < self._end:
            segment = parse_segment(self._key, self._value)
            record = segment.records[self._seq - self._key]
            reason = "the journal holds an event the fresh kernel did not derive"
            raise _Diverged(Divergence(self._seq, reason, record.event(), None))


def _inputs(journal: Journal) -> tuple[RunStarted, DatasetReferenced]:
    events = [record.event() for _, record in zip(range(2), journal.records(0), strict=False)]
    if (
        len(events) < 2
        or not isinstance(events[0], RunStarted)
        or not isinstance(events[1], DatasetReferenced)
    ):
        raise JournalError("journal does not start with run.started and dataset.referenced")
    return events[0], events[1]


def _received(journal: Journal, start_seq: int, end_seq: int) -> list[VenueMessageReceived]:
    """The venue messages journaled as received in ``[start_seq, end_seq)``, in journal order."""
    received = []
    for record in journal.records_of_kinds(_VENUE_MESSAGES, start_seq):
        if record.seq >= end_seq:
            break
        event = decode_event(record.payload)
        assert isinstance(event, VenueMessageReceived)
        received.append(event)
    return received


_VENUE_MESSAGES = frozenset({"venue.message_received.v1"})


@dataclass(frozen=True)
class DaySpan:
    """One session day's records in the journal: ``[start_seq, end_seq)`` ends with the day's
    snapshot; ``snapshot`` is the previous day's (None for the run's first day), the state a
    replay of the day starts from."""

    day: int
    start_seq: int
    end_seq: int
    snapshot: StateSnapshotted | None
    snapshot_seq: int  # the previous day's snapshot's seq (-1 when there is none)


def day_span(journal: Journal, day: int) -> DaySpan:
    """Where ``day`` lies in the journal, found from the kernel's day-end snapshots."""
    before: tuple[int, StateSnapshotted] | None = None
    end_seq = None
    for record in journal.records(0):
        if record.kind != "state.snapshotted.v1":
            continue
        snapshot = decode_event(record.payload)
        assert isinstance(snapshot, StateSnapshotted)
        if snapshot.day < day:
            before = (record.seq, snapshot)
        elif snapshot.day == day:
            end_seq = record.seq + 1
            break
    if end_seq is None:
        raise JournalError(f"the journal has no day-end snapshot for {day}")
    if before is None:
        return DaySpan(day, 2, end_seq, None, -1)
    return DaySpan(day, before[0] + 1, end_seq, before[1], before[0])


def _restored(
    journal: Journal, snapshot: StateSnapshotted | None, start_seq: int, currency: str
) -> KernelState | None:
    """The kernel state at a day's start: its snapshot, and what the journal holds beside it
    (the strategies paused then: the last ``strategy.commanded`` of each before the day; the
    cancels a live venue had not answered yet)."""
    if snapshot is None:
        return None
    state = KernelState.restore(snapshot.snapshot, currency)
    for record in journal.records_of_kinds(_FOLDED_KINDS, 2):
        if record.seq >= start_seq:
            break
        event = decode_event(record.payload)
        if isinstance(event, StrategyCommanded):
            apply_strategy_command(state.paused, event)
        elif isinstance(event, OrderCancelRequested):
            state.cancel_requested.add(event.order_id)
        elif isinstance(event, VenueMessageReceived) and event.message.kind == "cancel_rejected":
            state.cancel_requested.discard(event.message.order_id)
    state.cancel_requested &= state.open_orders.keys()  # requests the venue answered are over
    return state


_FOLDED_KINDS = frozenset({"strategy.commanded.v1", "order.cancel_requested.v1", "venue.message_received.v1"})


def _iso_day(day: int) -> str:
    text = f"{day:08d}"
    return f"{text[:4]}-{text[4:6]}-{text[6:]}"


def not_a_session_day(session_days: npt.NDArray[np.int64], day: int) -> str:
    """Why ``replay --day`` refuses ``day`` (YYYYMMDD), with what the user can ask for instead:
    the data set's first and last session (``session_days``: a panel's ``day`` column) and,
    inside them, the sessions on either side."""
    days = np.unique(session_days)
    if days.size == 0:
        return f"{_iso_day(day)} is not a session day of this run's data set (it has none)"
    where = f"its sessions run {_iso_day(int(days[0]))} .. {_iso_day(int(days[-1]))}"
    at = int(np.searchsorted(days, day))
    if 0 < at < days.size:
        where += f"; nearest {_iso_day(int(days[at - 1]))} and {_iso_day(int(days[at]))}"
    return f"{_iso_day(day)} is not a session day of this run's data set ({where})"


def _day_bounds(
    journal: Journal, panel: Panel, day: int
) -> tuple[int, int, StateSnapshotted | None, int, int]:
    """(first seq, end seq, snapshot to start from, first step, end step) of one day."""
    steps = (panel.day == day).nonzero()[0]
    if steps.size == 0:
        raise JournalError(not_a_session_day(panel.day, day))
    span = day_span(journal, day)
    return span.start_seq, span.end_seq, span.snapshot, int(steps[0]), int(steps[-1]) + 1


class ReplayProgress(Protocol):
    """``progress(done)``: the steps done so far, as the kernel's ``ProgressFn``. A replay of
    one day first calls ``progress(0, total)`` with the day's steps, then counts from the
    day's first step (``cli.progress.progress_bar``'s ``update`` is one)."""

    def __call__(self, done: int, total: int | None = None, /) -> None: ...


def _day_progress(progress: ReplayProgress | None, first_step: int, end_step: int) -> ProgressFn | None:
    """One day's replay counts the day's steps, not the run's: its total, and done from its start."""
    if progress is None:
        return None
    progress(0, end_step - first_step)
    return lambda done: progress(max(0, done - first_step))


def replay(
    journal: Journal,
    build: Callable[..., RunSetup],
    *,
    day: int | None = None,
    progress: ReplayProgress | None = None,
) -> ReplayResult:
    """Re-derive the journal (or one session ``day``) with a fresh kernel and compare.

    ``build(run, ref)`` makes the run's setup from its first two records; for a run whose bars
    arrived one step at a time it is called as ``build(run, ref, queued=True)`` and the rows are
    filled from the journaled ``BarsReceived`` inputs. A record that cannot be read (checksum or
    chain failure) ends the replay there, as a divergence at that sequence number. ``progress``
    counts steps: the data set's, or one ``day``'s (``ReplayProgress``).
    """
    try:
        return _replay(journal, build, day, progress)
    except ChainBroken as broken:
        divergence = Divergence(broken.seq, f"{CORRUPT_RECORD}: {broken.reason}", None, None)
        return ReplayResult(0, 0, 0, len(journal) - 1, divergence)


def queued_run(journal: Journal) -> bool:
    """Whether the run's bars arrived one step at a time (paper, live): its journal holds them."""
    return next(journal.records_of_kinds(QUEUE_INPUT_KINDS, 2), None) is not None


def _replay(
    journal: Journal,
    build: Callable[..., RunSetup],
    day: int | None,
    progress: ReplayProgress | None,
) -> ReplayResult:
    run, ref = _inputs(journal)
    setup = build(run, ref, queued=True) if queued_run(journal) else build(run, ref)
    if setup.queued:  # its journal holds the bars (or, a paper run that got none, no bars)
        return _replay_queued(journal, setup, day, progress)
    steps_done: ProgressFn | None = progress
    if day is None:
        start_seq, end_seq, snapshot, end_step = 2, len(journal), None, setup.panel.steps
        first_step = setup.start_step
    else:
        start_seq, end_seq, snapshot, first_step, end_step = _day_bounds(journal, setup.panel, day)
        steps_done = _day_progress(progress, first_step, end_step)
    # An asynchronous venue's messages are inputs: the fresh kernel gets the journaled ones.
    received = _received(journal, start_seq, end_seq) if isinstance(setup.venue, AsyncVenuePort) else None
    unfinished = day is None and not run_status(journal).finished
    sink = _ComparingSink(journal, start_seq, end_seq, unfinished=unfinished)
    state = _restored(journal, snapshot, start_seq, setup.currency)
    kernel = Kernel(setup, sink, state=state, venue_messages=received)

    def derive() -> None:
        if snapshot is None:
            kernel.begin()
        kernel.run(first_step, end_step, steps_done)
        if day is None:
            kernel.finish()

    return _compared(sink, start_seq, end_seq, derive)


def _compared(sink: _ComparingSink, start_seq: int, end_seq: int, derive: Callable[[], None]) -> ReplayResult:
    """Run ``derive`` (a fresh kernel writing into ``sink``) and say how it compared."""
    try:
        derive()
        sink.finish()
    except _Diverged as diverged:
        return ReplayResult(sink.compared, sink.rehashed, start_seq, end_seq - 1, diverged.divergence)
    except _JournalEnded:
        return ReplayResult(sink.compared, sink.rehashed, start_seq, end_seq - 1, None, unfinished=True)
    except StrategyError as error:  # the run it replays may have stopped on this very refusal
        return _refused_at_end(sink, start_seq, end_seq, error)
    except ChainBroken as broken:
        divergence = Divergence(broken.seq, f"{CORRUPT_RECORD}: {broken.reason}", None, None)
        return ReplayResult(sink.compared, sink.rehashed, start_seq, end_seq - 1, divergence)
    return ReplayResult(sink.compared, sink.rehashed, start_seq, end_seq - 1, None)


def _refused_at_end(sink: _ComparingSink, start_seq: int, end_seq: int, error: StrategyError) -> ReplayResult:
    """The strategy refused (raised, or returned what cannot be used) during the replay. Where
    the journal ends there (every record re-derived), the run stopped on that refusal: a
    matched, unfinished run. Where the journal goes on, the strategy now refuses where it
    once decided: the divergence, with the refusal as its reason."""
    try:
        sink.finish()
    except _Diverged as diverged:
        reason = f"the strategy refused where the journal goes on: {error}"
        divergence = Divergence(diverged.divergence.seq, reason, diverged.divergence.expected, None)
        return ReplayResult(sink.compared, sink.rehashed, start_seq, end_seq - 1, divergence)
    except ChainBroken as broken:
        divergence = Divergence(broken.seq, f"{CORRUPT_RECORD}: {broken.reason}", None, None)
        return ReplayResult(sink.compared, sink.rehashed, start_seq, end_seq - 1, divergence)
    return ReplayResult(
        sink.compared, sink.rehashed, start_seq, end_seq - 1, None, unfinished=True, refused=str(error)
    )


def _replay_queued(
    journal: Journal, setup: RunSetup, day: int | None, progress: ReplayProgress | None
) -> ReplayResult:
    """A queued run (``kernel.stream``): its journaled bars and clock steps go through a fresh
    queue source in journal order. For one ``day``, the inputs of rows before it fill the
    history rows and the kernel starts from the snapshot before the day."""
    first = setup.start_step
    steps_done: ProgressFn | None = progress
    if day is None:
        start_seq, end_seq, snapshot, end_step = 2, len(journal), None, setup.panel.steps
    else:
        start_seq, end_seq, snapshot, first, end_step = _day_bounds(journal, setup.panel, day)
        steps_done = _day_progress(progress, first, end_step)
    unfinished = day is None and not run_status(journal).finished
    state = _restored(journal, snapshot, start_seq, setup.currency)
    inputs = _queue_inputs(journal, end_seq)
    marks_before = _fill_history(setup, inputs, first)
    inputs.decoded.clear()  # the history's inputs are before the compared range
    sink = _ComparingSink(journal, start_seq, end_seq, unfinished=unfinished, decoded=inputs.decoded)
    received = _received(journal, start_seq, end_seq) if isinstance(setup.venue, AsyncVenuePort) else None

    def derive() -> None:
        kernel = Kernel(setup, sink, state=state, arrived=first, venue_messages=received)
        source = QueueSource(kernel, limit=end_step)
        if snapshot is None:
            kernel.begin()
        for mark in marks_before:  # in effect when the day starts (the snapshot holds none)
            _apply(source, mark)
        for event in inputs:
            if isinstance(event, BarsReceived):
                source.push(event, steps_done)
            elif isinstance(event, ClockAdvanced):
                source.pass_time(event.ts_ns, steps_done)
            else:
                _apply(source, event)
        if day is None:
            kernel.finish()

    return _compared(sink, start_seq, end_seq, derive)


def _apply(source: QueueSource, event: QueuedInput) -> None:
    """A journaled command, funding, mark or adoption, applied as the run applied it. One the
    run refused (a command or funding after the last step, a mark or an adoption it could not
    take: ``LATE_COMMAND``, ``LATE_FUNDING``, ``BAD_MARK``, ``BAD_ADOPTION``, journaled beside
    it) is refused here too; had the run applied it, the events it derived are missing and the
    comparison says so."""
    with contextlib.suppress(KernelError):
        if isinstance(event, FundingReceived):
            source.funding(event)
        elif isinstance(event, MarkPriceReceived):
            source.mark(event)
        elif isinstance(event, AdoptionReceived):
            source.adopt(event)
        else:
            source.command(event)


def _fill_history(setup: RunSetup, inputs: _queue_inputs, first: int) -> list[MarkPriceReceived]:
    """Rows before ``first`` (a replayed day's first step) from their journaled inputs: filled,
    not run; the first input of a replayed row is put back. Returns the newest mark of each
    instrument scheduled before the day (they are in effect at its start, and no snapshot holds
    them), to be applied before the day's inputs."""
    ts = setup.panel.ts_ns
    history = RowFiller(setup.panel, setup.start_step)
    marks: dict[int, MarkPriceReceived] = {}
    for event in inputs:
        if isinstance(event, BarsReceived) and history.row_of(event.ts_ns) < first:
            history.take(event)
        elif isinstance(event, ClockAdvanced) and event.ts_ns < int(ts[first]):
            history.pass_rows(int(np.searchsorted(ts, event.ts_ns, side="right")))
        elif isinstance(event, MarkPriceReceived) and _input_step(ts, event, history.next_row) < first:
            marks[event.instrument_id] = event
        elif isinstance(event, CommandReceived | FundingReceived | AdoptionReceived) and (
            _input_step(ts, event, history.next_row) < first
        ):
            continue  # applied before the day: its effect is in the snapshot
        else:
            inputs.push_back(event)
            break
    history.pass_rows(first)
    return [marks[iid] for iid in sorted(marks)]


def _input_step(ts: npt.NDArray[np.int64], event: QueuedInput, next_row: int) -> int:
    """The step a command (or a funding, a mark, an adoption) arriving when rows before
    ``next_row`` had run is applied at (``Kernel.add_command``, ``Kernel.add_funding``,
    ``Kernel.add_mark``, ``Kernel.add_adoption``)."""
    return max(int(np.searchsorted(ts, event.ts_ns, side="left")), next_row)


def journaled_rows(journal: Journal, panel: Panel, start_step: int) -> tuple[int, MarkHistory]:
    """A queued run's rows and marks as its kernel had them, for a reader of the journal (the
    cockpit's marks); nothing is run. ``panel``: the run's panel with its rows from
    ``start_step`` on empty (``Panel.emptied``), filled here from the journaled bars and clock
    steps as the run's queue source filled them (``kernel.stream.RowFiller``). Returns the rows
    that arrived (rows from it on are still empty) and the journaled marks the kernel took, each
    from the step it scheduled it at (``Kernel.add_mark``: the first step at or after its time
    not yet run when it arrived, in journal order); one it refused (``BAD_MARK``) is left out."""
    ts = panel.ts_ns
    rows = RowFiller(panel, start_step)
    instruments = {inst.instrument_id: inst for inst in panel.instruments}
    marks = MarkHistory()
    next_step = 0  # the kernel's first step not yet run: a fresh kernel's until a live row runs
    for event in _queue_inputs(journal, len(journal)):
        if isinstance(event, BarsReceived):
            rows.take(event)
        elif isinstance(event, ClockAdvanced):
            rows.pass_rows(int(np.searchsorted(ts, event.ts_ns, side="right")))
        elif isinstance(event, MarkPriceReceived):
            step = mark_step(ts, event.ts_ns, next_step)
            instrument = instruments.get(event.instrument_id)
            iid, px = event.instrument_id, event.mark_px_raw
            if mark_refusal(event.ts_ns, step, panel.steps, iid, instrument, px) is None:
                marks.add(step, iid, px)
        if rows.next_row > start_step:  # the queue source runs each row as it arrives
            next_step = rows.next_row
    return rows.next_row, marks


QueuedInput = CommandReceived | FundingReceived | MarkPriceReceived | AdoptionReceived
"""The inputs a queue source schedules at a step (beside the bars and clock steps that fill rows)."""
QueueInput = BarsReceived | ClockAdvanced | QueuedInput


class _queue_inputs:
    """The journaled bars and clock steps before ``end_seq``, decoded one at a time, with one
    event put back (where the history ends)."""

    def __init__(self, journal: Journal, end_seq: int) -> None:
        self._records = journal.records_of_kinds(QUEUE_INPUT_KINDS, 2)
        self._end = end_seq
        self._back: list[QueueInput] = []
        self.decoded: dict[int, Event] = {}  # left here by the comparing sink, which reads ahead

    def __iter__(self) -> Iterator[QueueInput]:
        return self

    def __next__(self) -> QueueInput:
        if self._back:
            return self._back.pop()
        record = next(self._records)
        if record.seq >= self._end:
            raise StopIteration
        event = self.decoded.pop(record.seq, None)
        if event is None:
            event = decode_event(record.payload)
        assert isinstance(event, QueueInput)
        return event

    def push_back(self, event: QueueInput) -> None:
        self._back.append(event)


@dataclass(frozen=True)
class Resumed:
    """A queued run carried on from its journal: the kernel and its queue source, ready for the
    next inputs (journaled as they come), and how much of the journal was re-derived."""

    kernel: Kernel
    source: QueueSource
    records_compared: int


def resume(
    journal: Journal, build: Callable[..., RunSetup], *, source_name: str, progress: ProgressFn | None = None
) -> Resumed:
    """Carry on a queued run (``tape paper``) whose journal was cut short — stopped, or lost to a
    crash. A fresh kernel re-derives the journal from its journaled inputs, compared byte for byte
    as by ``replay``; what it derives past the journal's end (a step the crash cut in two) is
    appended to the journal. ``journal`` must be open for writing. Raises ``JournalError`` when
    the run finished, is not queued, or does not re-derive (naming the first divergent seq)."""
    run, ref = _inputs(journal)
    if run_status(journal).finished:
        raise JournalError("the run finished (run.finished.v1): there is nothing to resume")
    setup = build(run, ref, queued=True)
    if not setup.queued:
        raise JournalError("only a run whose bars arrive one at a time (tape paper) can be resumed")
    end_seq = len(journal)
    inputs = _queue_inputs(journal, end_seq)
    marks_before = _fill_history(setup, inputs, setup.start_step)
    inputs.decoded.clear()
    sink = _ComparingSink(journal, 2, end_seq, unfinished=True, decoded=inputs.decoded, then=journal)
    received = _received(journal, 2, end_seq) if isinstance(setup.venue, AsyncVenuePort) else None
    kernel = Kernel(setup, sink, arrived=setup.start_step, venue_messages=received)
    source = QueueSource(kernel, name=source_name)
    try:
        kernel.begin()
        for mark in marks_before:
            _apply(source, mark)
        for event in inputs:
            if isinstance(event, BarsReceived):
                source.push(event, progress)
            elif isinstance(event, ClockAdvanced):
                source.pass_time(event.ts_ns, progress)
            else:
                _apply(source, event)
        sink.finish()
    except _Diverged as diverged:
        where = diverged.divergence
        raise JournalError(
            f"the journal does not re-derive at seq {where.seq} ({where.reason}): not resumed"
        ) from None
    for record in journal.records_of_kinds(frozenset({"input.quarantined.v1"}), 2):
        if record.seq < end_seq:  # what the session refused before: counted, not applied
            refused = record.event()
            assert isinstance(refused, InputQuarantined)
            source.recount(refused)
    source.journal_inputs(journal)
    kernel.venue_goes_live()
    return Resumed(kernel, source, sink.compared)
