"""IB's historical-data pacing rules, kept by the adapter itself (``IbBars`` asks through it).

IB's "Historical Data Limitations" (TWS API guide) name three pacing violations, each answered
with error 162 ("Historical data request pacing violation"):

* an identical historical data request within 15 seconds;
* six or more requests for the same contract, exchange and tick type within two seconds;
* more than 60 requests within any ten-minute period.

(IB's page says the limits were lifted for bars of one minute and longer, the only sizes Tape
asks for, but that a soft limit still applies; a 162 costs a retry window of its own, so the
adapter keeps within them anyway.) ``HistoryPacer.slot`` waits, before each request, until the
request is within all three; a 162 that comes regardless is asked again after
``HistoryPacing.retry_s`` (the identical-request window, doubling), never within it. The
numbers are a ``HistoryPacing``: IB's by default, small ones in tests against the fake TWS.

This module reads the event loop's monotonic clock (``loop.time``) unless given another; the
waits decide when a request is sent, never what a bar holds.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

__all__ = ["IB_HISTORY_PACING", "HistoryPacer", "HistoryPacing"]


@dataclass(frozen=True)
class HistoryPacing:
    """IB's historical-data pacing limits (module docstring), in seconds and requests."""

    identical_s: float = 15.0  # no identical request within this
    contract_window_s: float = 2.0  # at most ``contract_max`` requests of one contract within this
    contract_max: int = 5
    window_s: float = 600.0  # at most ``window_max`` requests within this
    window_max: int = 60

    def retry_s(self, attempt: int) -> float:
        """The wait before asking again after the ``attempt``-th 162 pacing refusal (0 first):
        the identical-request window, doubling, at most the whole window."""
        return float(min(self.window_s, self.identical_s * 2**attempt))


IB_HISTORY_PACING = HistoryPacing()  # IB's numbers; an adapter built without pacing uses these


class HistoryPacer:
    """The historical-data requests sent in the last ``window_s`` (module docstring). ``slot``
    before each request: it returns when the request keeps within the limits, and counts it
    as sent. ``stats`` gets ``history.requests``, ``history.waited`` (requests that waited)
    and ``history.waited_ms``."""

    def __init__(
        self,
        pacing: HistoryPacing,
        stats: Counter[str],
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.pacing = pacing
        self.stats = stats
        self._sleep = sleep
        self._clock = clock
        self._sent: deque[float] = deque()  # send times within the window, oldest first
        self._by_contract: dict[int, deque[float]] = {}
        self._identical: dict[Hashable, float] = {}  # a request's parameters -> when last sent

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def wait_s(self, con_id: int, request: Hashable) -> float:
        """How long ``request`` (its parameters, contract ``con_id``) must wait now (0: none)."""
        p, now = self.pacing, self._now()
        while self._sent and self._sent[0] <= now - p.window_s:
            self._sent.popleft()
        recent = self._by_contract.get(con_id, deque())
        while recent and recent[0] <= now - p.contract_window_s:
            recent.popleft()
        waits = [0.0]
        if len(self._sent) >= p.window_max:
            waits.append(self._sent[len(self._sent) - p.window_max] + p.window_s - now)
        if len(recent) >= p.contract_max:
            waits.append(recent[len(recent) - p.contract_max] + p.contract_window_s - now)
        last = self._identical.get(request)
        if last is not None:
            waits.append(last + p.identical_s - now)
        return max(waits)

    async def slot(self, con_id: int, request: Hashable) -> None:
        """Wait until ``request`` keeps within IB's limits, then count it as sent."""
        waited = 0.0
        while (wait := self.wait_s(con_id, request)) > 0:
            waited += wait
            await self._sleep(wait)
        if waited:
            self.stats["history.waited"] += 1
            self.stats["history.waited_ms"] += round(waited * 1000)
        now = self._now()
        self._sent.append(now)
        self._by_contract.setdefault(con_id, deque()).append(now)
        self._identical = {
            key: at for key, at in self._identical.items() if at > now - self.pacing.identical_s
        }
        self._identical[request] = now
        self.stats["history.requests"] += 1
