"""From a venue's bar updates to the kernel's steps: one ``BarsReceived`` per step of the grid.

A venue sends bars per instrument (ccxt ``watch_ohlcv``: a kline per symbol, updated while it
is open). The kernel takes one step's cross-section at a time (``kernel.stream``). The
assembler keeps the latest update of each instrument's bar for each step and hands a step
over when it is complete — every instrument's bar is final — or when the clock has passed
the step's close by the grace period (then with whatever arrived; a name without a bar has no
bar at that step). A bar is final when the venue sends only closed bars (``closed_bars``, the
local exchange), or when the same instrument's next bar has started.

Steps go in the grid's order: a step never goes while an earlier step of the grid (the run's
expected steps: sessions only, so the hours between two sessions are never waited for) that has
no bar yet is still inside its grace, since that step's bars may still come and would then be
late. With a grace longer than a bar (or than the gap to the next session) a complete later step
would otherwise overtake an empty earlier one (a venue that sends a newer bar before an older
one), and the older bars, arriving in time, were quarantined. A grid step that never gets a bar
holds the steps after it until its grace has passed; then it passes empty.

Bars for a step already handed over are not dropped: they are handed over again, as they came,
so the queue source quarantines and counts them (``DUPLICATE`` / ``OUT_OF_ORDER``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from domain.events import BarsReceived
from venues.ccxt_venue import VenueBar

__all__ = ["StepAssembler"]

_MS = 1_000_000


class StepAssembler:
    """Gathers per-instrument bars into steps (module docstring). Times are UTC nanoseconds;
    a step's time is its bars' close (``open + interval``); ``grid_ns``: the run's step times,
    increasing (``QueueSource.grid_ts``), the steps a bar is expected at."""

    def __init__(
        self,
        instrument_ids: Iterable[int],
        interval_ns: int,
        grace_ns: int,
        *,
        closed_bars: bool,
        grid_ns: Sequence[int] | npt.NDArray[np.int64],
    ) -> None:
        grid = np.asarray(grid_ns, dtype=np.int64)
        if grid.ndim != 1 or (grid.size > 1 and not bool((np.diff(grid) > 0).all())):
            raise ValueError("grid_ns must be increasing step times")
        self._grid = grid
        self._ids = sorted(set(instrument_ids))
        self._interval = interval_ns
        self._grace = grace_ns
        self._closed = closed_bars
        self._pending: dict[int, dict[int, VenueBar]] = {}  # step time -> instrument -> latest bar
        self._newest: dict[int, int] = {}  # instrument -> the newest step time seen for it
        self._late: list[tuple[int, VenueBar]] = []  # bars for steps handed over already
        self.handed_to = 0  # the last step time handed over
        self.received = 0
        # updates replaced by a later update of the same bar before its step went (a forming
        # bar's updates; a bar a REST catch-up and the stream both sent): received = the bars
        # handed over + superseded + waiting
        self.superseded = 0

    def add(self, bar: VenueBar) -> None:
        """One bar update as the venue sent it."""
        self.received += 1
        ts = bar.open_ms * _MS + self._interval
        if ts <= self.handed_to:  # its step went already: handed over for the source to count
            self._late.append((ts, bar))
            return
        step = self._pending.setdefault(ts, {})
        if bar.instrument_id in step:
            self.superseded += 1
        step[bar.instrument_id] = bar
        if ts > self._newest.get(bar.instrument_id, 0):
            self._newest[bar.instrument_id] = ts

    def due(self, now_ns: int) -> list[BarsReceived]:
        """The steps to hand over at ``now_ns``, in time order (late bars first), each stamped
        with ``now_ns`` as its arrival."""
        ready = [_bars(ts, now_ns, [bar]) for ts, bar in self._late]
        self._late = []
        for ts in sorted(self._pending):
            if now_ns < ts:
                break  # not closed yet, nor anything after it
            if self._earlier_step_in_grace(ts, now_ns):
                break  # an earlier step's bars may still come: this one waits for it
            bars = self._pending[ts]
            if now_ns < ts + self._grace and not self._complete(ts, bars):
                break
            del self._pending[ts]
            ready.append(_bars(ts, now_ns, [bars[iid] for iid in self._ids if iid in bars]))
            self.handed_to = ts
        return ready

    def _earlier_step_in_grace(self, ts: int, now_ns: int) -> bool:
        """Whether a grid step before ``ts`` and after the last one handed over (one with no bar
        yet: a step with bars comes first in ``due``) is still inside its grace. The latest such
        step is the last to leave its grace, so it alone decides."""
        row = int(np.searchsorted(self._grid, ts, side="left")) - 1
        if row < 0:
            return False
        earlier = int(self._grid[row])
        return earlier > self.handed_to and now_ns < earlier + self._grace

    def _complete(self, ts: int, bars: dict[int, VenueBar]) -> bool:
        if len(bars) < len(self._ids):
            return False
        return self._closed or all(self._newest.get(iid, 0) > ts for iid in self._ids)

    def venue_clock(self) -> int:
        """The venue's clock as its bars tell it: the newest bar close that every instrument that
        has sent bars has reached (0: none yet). An instrument whose stream fell behind (a
        dropped websocket, bars still coming over REST) holds the clock back until it catches
        up, so its bars are not late; one that stops sending for good would hold it for good,
        so a live run keeps the wall clock."""
        return min(self._newest.values(), default=0)

    @property
    def newest(self) -> dict[int, int]:
        """Each instrument's newest step time seen (its newest bar close), for the health watch."""
        return dict(self._newest)

    @property
    def pending_steps(self) -> int:
        return len(self._pending)

    @property
    def waiting(self) -> int:
        """Bars not handed over yet: their step has not gone (a session stopped before it)."""
        return sum(len(bars) for bars in self._pending.values()) + len(self._late)


def _bars(ts_ns: int, received_ns: int, bars: list[VenueBar]) -> BarsReceived:
    return BarsReceived(
        ts_ns=ts_ns,
        received_ns=received_ns,
        instrument_ids=[bar.instrument_id for bar in bars],
        open_raw=[bar.open_raw for bar in bars],
        high_raw=[bar.high_raw for bar in bars],
        low_raw=[bar.low_raw for bar in bars],
        close_raw=[bar.close_raw for bar in bars],
        volume_raw=[bar.volume_raw for bar in bars],
    )
