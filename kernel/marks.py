"""Venue mark prices of perpetuals: what a live source's positions are valued at.

A live or paper session on perpetuals journals the venue's mark price as an input
(``MarkPriceReceived``) before the step it falls in runs; the kernel schedules it at the first
step at or after its time not yet run, as it does a venue's funding. From that step on, NAV,
the day close's values and gross exposure value the position at the newest mark scheduled at or
before the step; an instrument with no mark yet (and every instrument of a backtest) keeps the
bar's last close. Sizing (targets to quantities), limit prices and the liquidation check keep the
bars: a mark is a valuation, not a price anything trades at.

State is a fold of the journaled inputs: a resumed session re-applies them in journal order and a
replay of one day applies the marks journaled before it (``kernel.replay``), so the snapshot
holds no mark. A reader of the journal (the cockpit) rebuilds the schedule the same way, as a
``MarkHistory`` it can look up at any step (``kernel.replay.journaled_rows``).
"""

from __future__ import annotations

import bisect

import numpy as np
import numpy.typing as npt

from domain.instruments import Instrument
from kernel.liquidation import PERP_ASSET_CLASSES

__all__ = ["MarkHistory", "Marks", "mark_refusal", "mark_step"]


def mark_step(grid_ts_ns: npt.NDArray[np.int64], ts_ns: int, next_step: int) -> int:
    """The step a mark published at ``ts_ns`` is in effect from: the first step at or after its
    time that has not run (``next_step``: the kernel's first step not yet run)."""
    return max(int(np.searchsorted(grid_ts_ns, ts_ns, side="left")), next_step)


def mark_refusal(
    ts_ns: int, step: int, steps: int, instrument_id: int, instrument: Instrument | None, mark_px_raw: int
) -> str | None:
    """Why the kernel cannot take a mark scheduled at ``step`` of a run of ``steps`` steps
    (``instrument``: the run's instrument of that id, None when it holds none); None: it can."""
    if step >= steps:
        return f"mark price at {ts_ns} is after the run's last step"
    if instrument is None:
        return f"mark price for instrument {instrument_id}, which the run does not hold"
    if instrument.asset_class not in PERP_ASSET_CLASSES:
        return f"mark price for {instrument.symbol}, which is not a perpetual ({instrument.asset_class})"
    if mark_px_raw <= 0:
        return f"{instrument.symbol}: mark price must be positive, got {mark_px_raw}"
    return None


class Marks:
    """The marks scheduled per step, folded into each instrument's current mark as steps are
    valued. The kernel values steps in increasing order and schedules a mark only at a step not
    yet run, so folding everything due up to the step being valued gives the newest mark at or
    before it."""

    def __init__(self) -> None:
        self._pending: dict[int, list[tuple[int, int]]] = {}  # step -> [(instrument, mark)]
        self._current: dict[int, int] = {}  # instrument -> mark in effect

    def add(self, step: int, instrument_id: int, mark_px_raw: int) -> None:
        """A mark in effect from ``step`` on (a later one at the same step replaces it)."""
        if mark_px_raw <= 0:
            raise ValueError(f"mark price must be positive, got {mark_px_raw}")
        self._pending.setdefault(step, []).append((instrument_id, mark_px_raw))

    def at(self, step: int) -> dict[int, int]:
        """Each marked instrument's mark in effect at ``step`` (the newest at or before it)."""
        if self._pending:
            for due in sorted(s for s in self._pending if s <= step):
                self._current.update(self._pending.pop(due))
        return self._current

    @property
    def active(self) -> bool:
        """Whether any mark was ever scheduled (a backtest never has one)."""
        return bool(self._pending or self._current)


class MarkHistory:
    """Every mark a run scheduled, looked up at any step in any order: a reader of the journal
    (the cockpit's day tape steps back and forth) where the kernel folds ``Marks`` forward. At a
    step, each instrument's mark is the newest scheduled at or before it (of one step, the one
    added last), as ``Marks.at`` gives it while the kernel runs."""

    def __init__(self) -> None:
        self._steps: dict[int, list[int]] = {}  # instrument -> steps, ascending
        self._marks: dict[int, list[int]] = {}  # instrument -> the mark of each of those steps

    def add(self, step: int, instrument_id: int, mark_px_raw: int) -> None:
        """A mark in effect from ``step`` on (a later one at the same step replaces it)."""
        if mark_px_raw <= 0:
            raise ValueError(f"mark price must be positive, got {mark_px_raw}")
        steps = self._steps.setdefault(instrument_id, [])
        index = bisect.bisect_right(steps, step)  # after the marks of the same step
        steps.insert(index, step)
        self._marks.setdefault(instrument_id, []).insert(index, mark_px_raw)

    def at(self, step: int) -> dict[int, int]:
        """Each marked instrument's mark in effect at ``step`` (the newest at or before it)."""
        found = {}
        for instrument_id, steps in sorted(self._steps.items()):
            index = bisect.bisect_right(steps, step)
            if index:
                found[instrument_id] = self._marks[instrument_id][index - 1]
        return found

    def __len__(self) -> int:
        return sum(len(steps) for steps in self._steps.values())
