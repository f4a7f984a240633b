"""``cli.paper_cmd.FundingFeed``: the venue's settled fundings become ``FundingReceived`` inputs
once each, in time order; a funding the venue does not state yet is waited for once (then the
steps go on) and journaled when it comes."""

from __future__ import annotations

import asyncio
from typing import Any

from cli.paper_cmd import FundingFeed
from venues.ccxt_venue import VenueFunding

HOUR_MS = 3_600_000


class _Venue:
    """Settled fundings (what ``fetch_funding`` states) and the next funding time."""

    def __init__(self) -> None:
        self.settled: list[VenueFunding] = []
        self.next_ms = 8 * HOUR_MS
        self.asked = 0

    async def fetch_funding(self, instrument_id: int, *, since_ms: int | None = None) -> list[VenueFunding]:
        self.asked += 1
        return [row for row in self.settled if since_ms is None or row.funding_ms >= since_ms]

    async def next_funding_ms(self, instrument_id: int) -> int:
        return self.next_ms


class _Journal:
    def records_of_kinds(self, kinds: Any, start: int) -> list[Any]:
        return []


def _row(ms: int, rate_e8: int) -> VenueFunding:
    return VenueFunding(instrument_id=1, funding_ms=ms, rate_e8=rate_e8, mark_raw=11_000)


def test_fundings_come_once_in_order_and_a_late_one_is_waited_for_once() -> None:
    async def run() -> None:
        venue = _Venue()
        feed = FundingFeed(venue, [1], lambda: 123, wait_s=0.3)  # type: ignore[arg-type]
        await feed.start(0, _Journal())
        assert feed.next_ms == 8 * HOUR_MS
        assert venue.asked == 1  # at the start: what the venue settled since the history (none)
        assert await feed.due(7 * HOUR_MS * 1_000_000) == []  # not due yet: not asked
        assert venue.asked == 1
        assert await feed.due(8 * HOUR_MS * 1_000_000 + 300_000_000_000) == []  # due, not stated
        asked = venue.asked
        assert asked > 1 and feed.late == 1  # asked again for wait_s
        assert await feed.due(8 * HOUR_MS * 1_000_000 + 600_000_000_000) == []
        assert venue.asked == asked + 1 and feed.late == 1  # once a step now, no more waiting
        venue.settled = [_row(8 * HOUR_MS + 7, 10_000)]
        venue.next_ms = 16 * HOUR_MS
        (received,) = await feed.due(8 * HOUR_MS * 1_000_000 + 900_000_000_000)
        assert (received.ts_ns, received.rate_e8, received.mark_px_raw) == (
            (8 * HOUR_MS + 7) * 1_000_000,
            10_000,
            11_000,
        )
        assert received.received_ns == 123 and feed.next_ms == 16 * HOUR_MS
        assert await feed.due(16 * HOUR_MS * 1_000_000 - 1) == []  # the same funding never twice

    asyncio.run(run())


def test_a_session_behind_the_venue_waits_for_the_funding_the_venue_settled_meanwhile() -> None:
    """The venue settled 08:00 and 16:00 while the session was still before 08:00: its running
    next funding time (00:00) is past both. After journaling 08:00, the next funding due is
    16:00 (fills after it wait for it), not the venue's 00:00."""

    async def run() -> None:
        venue = _Venue()
        venue.settled = [_row(8 * HOUR_MS + 7, 10_000), _row(16 * HOUR_MS + 11, -5_000)]
        venue.next_ms = 24 * HOUR_MS
        feed = FundingFeed(venue, [1], lambda: 123, wait_s=0.3)  # type: ignore[arg-type]
        await feed.start(0, _Journal())
        assert feed.next_ms == 8 * HOUR_MS + 7  # settled already, not the venue's next
        (first,) = await feed.due(9 * HOUR_MS * 1_000_000)
        assert first.ts_ns == (8 * HOUR_MS + 7) * 1_000_000
        assert feed.next_ms == 16 * HOUR_MS + 11
        (second,) = await feed.due(17 * HOUR_MS * 1_000_000)
        assert (second.ts_ns, second.rate_e8) == ((16 * HOUR_MS + 11) * 1_000_000, -5_000)
        assert feed.next_ms == 24 * HOUR_MS  # nothing settled after it: the venue's next

    asyncio.run(run())
