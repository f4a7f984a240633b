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
holds no mark.
"""

from __future__ import annotations

__all__ = ["Marks"]


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
