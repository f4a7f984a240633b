"""The queue source: a run's bars arriving one step at a time, as paper and live trading get them.

A data set hands the kernel its whole panel at once (``Kernel.run`` visits the steps that
matter). A queue source hands it the same panel row by row: the run's grid of steps (their
times and session days, from the data set or the exchange calendar) is known up front, the
rows start empty (``Panel.emptied``) and each ``BarsReceived`` fills one. Every input is
checked before the kernel sees it; a refused one is journaled as ``InputQuarantined`` with its
reason, so ``received = accepted + quarantined`` always holds and nothing is dropped silently.
With a journal given, accepted bars are journaled as ``BarsReceived`` before they are applied,
so a replay needs only the journal (``replay_bars``).

Fed the same bars, a queue source and the data set give the same derived events, byte for byte
(``tests/kernel/test_stream.py``): the kernel runs each window of arrived rows with the loop a
data set uses, and the schedules, the venue's fill search and the kill switch's data age extend
over rows as they arrive (``Kernel.rows_arrived``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from domain.events import (
    AdoptionReceived,
    BarsReceived,
    ClockAdvanced,
    CommandReceived,
    FundingReceived,
    InputQuarantined,
    MarkPriceReceived,
    OperatorCommanded,
    StrategyCommanded,
)
from domain.market import Panel
from kernel.desk import EventSink
from kernel.loop import Kernel, ProgressFn

__all__ = ["QUEUE_INPUT_KINDS", "QueueSource", "RowFiller", "SourceCounts", "bars_of_step", "refused_bars"]

QUEUE_INPUT_KINDS = frozenset(
    {
        "market.bars_received.v1",
        "clock.advanced.v1",
        "operator.command_received.v1",
        "market.funding_received.v1",
        "market.mark_price_received.v1",
        "venue.adoption_received.v1",
    }
)
"""The journaled inputs a queue source applies (``InputQuarantined`` records are only kept)."""


@dataclass
class SourceCounts:
    """What a source received: bars accepted, bars quarantined by reason, and steps that passed
    with no bar at all (``received == accepted + sum(quarantined)``)."""

    received: int = 0
    accepted: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    empty_steps: int = 0

    @property
    def balanced(self) -> bool:
        return self.received == self.accepted + sum(self.quarantined.values())


class RowFiller:
    """Checks one step's bars against the run's grid and writes them into the panel's next rows
    (rows of the grid before them pass with no bar, closes carried). It runs nothing: a
    ``QueueSource`` drives the kernel over the rows it fills; a replay of one day fills the
    history rows with it alone."""

    def __init__(self, panel: Panel, next_row: int) -> None:
        self._panel = panel
        self._steps = panel.steps
        self._column = {inst.instrument_id: col for col, inst in enumerate(panel.instruments)}
        self.next_row = next_row  # the first row of the grid that has not arrived
        self.counts = SourceCounts()
        self.refused: list[tuple[int, str, str]] = []  # (ts_ns, reason, detail) since last taken

    def row_of(self, ts_ns: int) -> int:
        """The grid row at ``ts_ns`` (-1: none); the input is refused unless it is at or after
        ``next_row``."""
        ts = self._panel.ts_ns
        row = int(np.searchsorted(ts, ts_ns, side="left"))
        return row if row < len(ts) and int(ts[row]) == ts_ns else -1

    def take(self, bars: BarsReceived) -> BarsReceived | None:
        """Fill the row of ``bars`` with its well-formed bars, which are returned (None: the
        whole input was refused); each refusal is counted and listed in ``refused``."""
        count = len(bars.instrument_ids)
        counts = self.counts
        counts.received += count
        row = self.next_row  # bars usually come for the next row of the grid
        if row >= self._steps or self._panel.ts_ns[row] != bars.ts_ns:
            row = self.row_of(bars.ts_ns)
            reason = self._order_reason(row, bars.ts_ns)
            if reason is not None:
                detail = reason[1] if count == 1 else f"{count} bars: {reason[1]}"  # see refused_bars
                self._refuse(bars.ts_ns, reason[0], detail, count)
                return None
        good = self._good_bars(bars, count)
        counts.accepted += len(good.instrument_ids)
        if row > self.next_row:
            self.pass_rows(row)
        self._fill(row, good)
        self.next_row = row + 1
        return good

    def pass_rows(self, end: int) -> int:
        """Rows from ``next_row`` up to ``end - 1`` get no bar (closes carried); returns how many."""
        start = self.next_row
        if end <= start:
            return 0
        last_close = self._panel.last_close
        for row in range(max(start, 1), end):
            last_close[row] = last_close[row - 1]
        self.counts.empty_steps += end - start
        self.next_row = end
        return end - start

    def _order_reason(self, row: int, ts_ns: int) -> tuple[str, str] | None:
        if row < 0:
            return "OFF_GRID", f"no step of the run's grid at {ts_ns}"
        if row < self.next_row:
            last = int(self._panel.ts_ns[self.next_row - 1])
            if ts_ns == last:
                return "DUPLICATE", f"bars at {ts_ns} arrived already"
            return "OUT_OF_ORDER", f"bars at {ts_ns} arrived after bars at {last}"
        return None

    def _good_bars(self, bars: BarsReceived, count: int) -> BarsReceived:
        """The input's well-formed bars; each bad one is refused with its numbers."""
        opens, highs, lows, closes, volumes = (
            bars.open_raw, bars.high_raw, bars.low_raw, bars.close_raw, bars.volume_raw
        )  # fmt: skip
        if not len(opens) == len(highs) == len(lows) == len(closes) == len(volumes) == count:
            lengths = [len(opens), len(highs), len(lows), len(closes), len(volumes)]
            self._refuse(bars.ts_ns, "BAD_BAR", f"{count} instruments but fields of lengths {lengths}", count)
            return _subset(bars, [])
        keep: list[int] = []
        seen: set[int] = set()
        columns = self._column
        for index, iid in enumerate(bars.instrument_ids):
            lo, o, c, h, v = lows[index], opens[index], closes[index], highs[index], volumes[index]
            if 0 < lo <= o <= h and lo <= c <= h and v >= 0 and iid in columns and iid not in seen:
                keep.append(index)
                seen.add(iid)
            elif iid not in columns:
                self._refuse(bars.ts_ns, "UNKNOWN_INSTRUMENT", f"instrument_id={iid}", 1)
            elif iid in seen:
                self._refuse(bars.ts_ns, "DUPLICATE", f"instrument_id={iid} twice in one step", 1)
            else:
                detail = f"instrument_id={iid} open={o} high={h} low={lo} close={c} volume={v}"
                self._refuse(bars.ts_ns, "BAD_BAR", detail, 1)
        return bars if len(keep) == count else _subset(bars, keep)

    def _refuse(self, ts_ns: int, reason: str, detail: str, bars: int) -> None:
        self.counts.quarantined[reason] += bars
        self.refused.append((ts_ns, reason, detail))

    def recount(self, refused: InputQuarantined) -> None:
        """A refusal journaled before this source existed (a resumed session's): counted again,
        so its ``received = accepted + quarantined`` covers the whole session."""
        count = refused_bars(refused)
        self.counts.received += count
        self.counts.quarantined[refused.reason] += count

    def _fill(self, row: int, bars: BarsReceived) -> None:
        panel = self._panel
        if row > 0:
            panel.last_close[row] = panel.last_close[row - 1]
        if len(bars.instrument_ids) == 1:  # one name: plain item writes are the fastest
            col = self._column[bars.instrument_ids[0]]
            close = bars.close_raw[0]
            panel.open[row, col] = bars.open_raw[0]
            panel.high[row, col] = bars.high_raw[0]
            panel.low[row, col] = bars.low_raw[0]
            panel.close[row, col] = close
            panel.volume[row, col] = bars.volume_raw[0]
            panel.valid[row, col] = True
            panel.last_close[row, col] = close
            return
        columns = [self._column[iid] for iid in bars.instrument_ids]
        panel.open[row, columns] = bars.open_raw
        panel.high[row, columns] = bars.high_raw
        panel.low[row, columns] = bars.low_raw
        panel.close[row, columns] = bars.close_raw
        panel.volume[row, columns] = bars.volume_raw
        panel.valid[row, columns] = True
        panel.last_close[row, columns] = bars.close_raw


def refused_bars(refused: InputQuarantined) -> int:
    """How many inputs one journaled refusal stands for: a whole step of several bars refused
    at once says how many first (``"2 bars: ..."``, ``"2 instruments but ..."``); any other
    refusal (one bar, a command, a funding, a mark) is one."""
    head, _, rest = refused.detail.partition(" ")
    if head.isdigit() and rest.startswith(("bars: ", "instruments but ")):
        return int(head)
    return 1


class QueueSource:
    """Feeds a ``Kernel`` built with ``arrived=`` one step of bars at a time (module docstring).

    ``journal``: where inputs are journaled before they are applied (a live source); None when
    they are journaled already (a replay) or referenced another way (a data set's rows fed one
    at a time). ``limit``: steps from this one on are filled but not run (a replay of one day).
    """

    def __init__(
        self,
        kernel: Kernel,
        *,
        journal: EventSink | None = None,
        name: str = "queue",
        limit: int | None = None,
    ) -> None:
        self._kernel = kernel
        self._panel = kernel.setup.panel
        self._journal = journal
        self._name = name
        self._rows = RowFiller(self._panel, kernel.arrived)
        self._run_to = kernel.arrived  # steps before it have been run
        self._limit = self._panel.steps if limit is None else limit

    def recount(self, refused: InputQuarantined) -> None:
        """A refusal journaled before this source existed, counted (``RowFiller.recount``)."""
        self._rows.recount(refused)

    def journal_inputs(self, journal: EventSink) -> None:
        """From now on, journal each input before it applies (a resumed run going live)."""
        self._journal = journal

    @property
    def counts(self) -> SourceCounts:
        return self._rows.counts

    @property
    def next_row(self) -> int:
        """The first row of the grid that has not arrived."""
        return self._rows.next_row

    @property
    def grid_ts(self) -> npt.NDArray[np.int64]:
        """Every step's time (UTC ns): the run's grid, rows arrived or not."""
        return self._panel.ts_ns

    @property
    def done(self) -> bool:
        return self._rows.next_row >= self._panel.steps

    def push(self, bars: BarsReceived, progress: ProgressFn | None = None) -> bool:
        """Apply one step's bars (rows of the grid before them pass with no bar); False when
        the whole input was refused."""
        good = self._rows.take(bars)
        self._journal_refused()
        if good is None:
            return False
        if self._journal is not None:
            self._journal.append(good)
        self._release(progress)
        return True

    def pass_time(self, ts_ns: int, progress: ProgressFn | None = None) -> int:
        """The clock reached ``ts_ns``: steps of the grid up to it that got no bar pass empty (a
        session's close is run although its last bar never came). Returns the rows passed."""
        end = int(np.searchsorted(self._panel.ts_ns, ts_ns, side="right"))
        if end <= self._rows.next_row:
            return 0
        if self._journal is not None:
            self._journal.append(ClockAdvanced(ts_ns=ts_ns))
        passed = self._rows.pass_rows(end)
        self._release(progress)
        return passed

    def command(self, received: CommandReceived) -> int:
        """An operator command as it arrived: journaled, then applied at the next step not yet run
        (``Kernel.add_command``). Returns that step."""
        if self._journal is not None:
            self._journal.append(received)
        command: OperatorCommanded | StrategyCommanded
        if received.strategy_id:
            command = StrategyCommanded(
                ts_ns=received.ts_ns, command=received.command, strategy_id=received.strategy_id,
                operator=received.operator, note=received.note,
            )  # fmt: skip
        else:
            command = OperatorCommanded(
                ts_ns=received.ts_ns, command=received.command, operator=received.operator, note=received.note
            )
        return self._kernel.add_command(command)

    def funding(self, received: FundingReceived) -> int:
        """A perpetual's funding as the venue settled it: journaled, then booked at the first
        step at or after its time not yet run (``Kernel.add_funding``). Returns that step."""
        if self._journal is not None:
            self._journal.append(received)
        return self._kernel.add_funding(
            received.ts_ns, received.instrument_id, received.rate_e8, received.mark_px_raw
        )

    def mark(self, received: MarkPriceReceived) -> int:
        """A perpetual's mark price as the venue published it: journaled, then in effect from the
        first step at or after its time not yet run (``Kernel.add_mark``). Returns that step."""
        if self._journal is not None:
            self._journal.append(received)
        return self._kernel.add_mark(received.ts_ns, received.instrument_id, received.mark_px_raw)

    def adopt(self, received: AdoptionReceived) -> int:
        """Holdings a live venue's reconciliation adopted: journaled, then booked at the first
        step at or after its time not yet run (``Kernel.add_adoption``). Returns that step."""
        if self._journal is not None:
            self._journal.append(received)
        return self._kernel.add_adoption(received)

    def refuse(self, ts_ns: int, reason: str, detail: str) -> None:
        """An input other than bars that cannot be applied (an operator line that is not a
        command, say): counted and journaled as ``InputQuarantined``."""
        self._rows.counts.received += 1
        self._rows.counts.quarantined[reason] += 1
        if self._journal is not None:
            self._journal.append(
                InputQuarantined(ts_ns=ts_ns, source=self._name, reason=reason, detail=detail)
            )

    def _journal_refused(self) -> None:
        refused, self._rows.refused = self._rows.refused, []
        if self._journal is None:
            return
        for ts_ns, reason, detail in refused:
            self._journal.append(
                InputQuarantined(ts_ns=ts_ns, source=self._name, reason=reason, detail=detail)
            )

    def _release(self, progress: ProgressFn | None) -> None:
        """Rows that arrived hold what they will: the kernel runs their steps."""
        start, end = self._run_to, min(self._rows.next_row, self._limit)
        if end <= start:
            return
        self._run_to = end
        self._kernel.rows_arrived(start, end)
        self._kernel.run_arrived(start, end, progress)


def _subset(bars: BarsReceived, keep: list[int]) -> BarsReceived:
    def pick(values: list[int]) -> list[int]:
        return [values[index] for index in keep]

    return BarsReceived(
        ts_ns=bars.ts_ns,
        received_ns=bars.received_ns,
        instrument_ids=pick(bars.instrument_ids),
        open_raw=pick(bars.open_raw),
        high_raw=pick(bars.high_raw),
        low_raw=pick(bars.low_raw),
        close_raw=pick(bars.close_raw),
        volume_raw=pick(bars.volume_raw),
    )


def bars_of_step(panel_rows: Iterable[tuple[int, ...]], ts_ns: int, received_ns: int = 0) -> BarsReceived:
    """One step's ``BarsReceived`` from ``(instrument_id, open, high, low, close, volume)`` rows."""
    rows = list(panel_rows)
    return BarsReceived(
        ts_ns=ts_ns,
        received_ns=received_ns,
        instrument_ids=[row[0] for row in rows],
        open_raw=[row[1] for row in rows],
        high_raw=[row[2] for row in rows],
        low_raw=[row[3] for row in rows],
        close_raw=[row[4] for row in rows],
        volume_raw=[row[5] for row in rows],
    )
