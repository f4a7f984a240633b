"""From a venue's mark price stream to journaled inputs: one ``MarkPriceReceived`` per
perpetual per step at most.

Binance publishes a perpetual's mark every second (``<symbol>@markPrice@1s``). The kernel
values a position at the newest mark at or before a step (``kernel.marks``), so only that one
matters: the feed keeps what arrived, and before a step at ``ts`` runs the pump asks for the marks
due up to ``ts`` (``due``): per instrument the newest with a time at or before it. The older ones
are superseded (counted, not journaled). A mark no newer than the last one journaled for its
instrument (a repeat, or one overtaken on the wire) is stale: counted, never journaled, so the
marks journaled for an instrument have strictly increasing times.

Every mark that arrived is in exactly one count: ``received = journaled + superseded + stale +
pending`` (``MarkCounts``). Each is stamped once, when it arrives (``received_ns``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from domain.events import MarkPriceReceived
from venues.ccxt_venue import VenueMark

__all__ = ["MarkCounts", "MarkFeed"]

_MS = 1_000_000


@dataclass
class MarkCounts:
    received: int = 0
    journaled: int = 0
    superseded: int = 0  # a newer mark for the same step came before it was journaled
    stale: int = 0  # no newer than the instrument's last journaled mark (repeat or overtaken)
    refused: int = 0  # journaled, but the kernel could not take it (``BAD_MARK``)

    def summary(self, pending: int) -> str:
        return (
            f"mark prices: {self.received:,} received = {self.journaled:,} journaled + "
            f"{self.superseded:,} superseded + {self.stale:,} stale + {pending:,} pending; "
            f"{self.refused:,} refused by the kernel"
        )


class MarkFeed:
    """The perpetuals' marks that arrived and are not journaled yet (module docstring)."""

    def __init__(self, instrument_ids: Iterable[int], clock: Callable[[], int]) -> None:
        self.ids = sorted(set(instrument_ids))
        self.clock = clock
        self.counts = MarkCounts()
        self._pending: dict[int, dict[int, tuple[int, int]]] = {iid: {} for iid in self.ids}
        self._last_ms: dict[int, int] = {}  # instrument -> its last journaled mark's time

    def resume_after(self, journaled: Iterable[MarkPriceReceived]) -> None:
        """A resumed session: the marks its journal holds (only newer ones are taken)."""
        for mark in journaled:
            ms = mark.ts_ns // _MS
            self._last_ms[mark.instrument_id] = max(self._last_ms.get(mark.instrument_id, 0), ms)

    def take(self, mark: VenueMark) -> None:
        """One mark as the venue sent it, stamped now."""
        self.counts.received += 1
        pending = self._pending.get(mark.instrument_id)
        if pending is None:
            raise ValueError(f"a mark for instrument {mark.instrument_id}, which the feed does not watch")
        if mark.ts_ms <= self._last_ms.get(mark.instrument_id, -1):
            self.counts.stale += 1
            return
        if mark.ts_ms in pending:  # the same time again: the later message replaces it
            self.counts.superseded += 1
        pending[mark.ts_ms] = (mark.mark_raw, self.clock())

    def due(self, up_to_ns: int) -> list[MarkPriceReceived]:
        """Per instrument, the newest pending mark at or before ``up_to_ns`` (older ones are
        superseded); in instrument order."""
        up_to_ms = up_to_ns // _MS
        out = []
        for iid in self.ids:
            pending = self._pending[iid]
            times = [ms for ms in pending if ms <= up_to_ms]
            if not times:
                continue
            newest = max(times)
            mark_raw, received_ns = pending[newest]
            for ms in times:
                del pending[ms]
            self.counts.superseded += len(times) - 1
            self.counts.journaled += 1
            self._last_ms[iid] = newest
            out.append(
                MarkPriceReceived(
                    ts_ns=newest * _MS, received_ns=received_ns, instrument_id=iid, mark_px_raw=mark_raw
                )
            )
        return out

    @property
    def pending(self) -> int:
        return sum(len(pending) for pending in self._pending.values())
