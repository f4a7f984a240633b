"""Mark prices from the venue to journaled inputs: ``CcxtVenue.watch_mark_price`` through the
real ``ccxt.pro.binanceusdm`` against the local exchange (its mark is the last close, at the
bar's close time), and ``venues.mark_feed.MarkFeed``: at most one mark per instrument and step
(the newest at or before it), repeats and overtaken marks counted as stale, and every mark in
exactly one count."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from domain.events import MarkPriceReceived
from tests.venues._local import venue_for
from venues.ccxt_venue import VenueDataError, VenueMark
from venues.local_exchange import Bar, LocalExchange, LocalMarket
from venues.mark_feed import MarkFeed

START_MS = 1_700_000_040_000 - 1_700_000_040_000 % 60_000
MS = 1_000_000


def _mark(ts_ms: int, raw: int, iid: int = 1) -> VenueMark:
    return VenueMark(instrument_id=iid, ts_ms=ts_ms, mark_raw=raw)


def _balanced(feed: MarkFeed) -> bool:
    c = feed.counts
    return c.received == c.journaled + c.superseded + c.stale + feed.pending


def test_the_newest_mark_at_or_before_a_step_is_journaled_once() -> None:
    clock = iter(range(1_000, 10_000))
    feed = MarkFeed([1, 2], lambda: next(clock))
    feed.take(_mark(100, 5_000))
    feed.take(_mark(300, 5_030))
    feed.take(_mark(200, 5_020))  # overtaken on the wire, still newer than anything journaled
    feed.take(_mark(250, 7_000, iid=2))
    feed.take(_mark(400, 5_040))  # after the step: waits
    assert feed.due(99 * MS) == []
    due = feed.due(300 * MS)
    assert due == [
        MarkPriceReceived(ts_ns=300 * MS, received_ns=1_001, instrument_id=1, mark_px_raw=5_030),
        MarkPriceReceived(ts_ns=250 * MS, received_ns=1_003, instrument_id=2, mark_px_raw=7_000),
    ]
    assert (feed.counts.journaled, feed.counts.superseded, feed.pending) == (2, 2, 1)
    feed.take(_mark(300, 5_030))  # a repeat of the journaled one
    feed.take(_mark(290, 5_010))  # older than the journaled one
    assert feed.counts.stale == 2
    feed.take(_mark(400, 5_041))  # the same time again: the later message replaces it
    (last,) = feed.due(500 * MS)
    assert (last.ts_ns, last.mark_px_raw) == (400 * MS, 5_041)
    assert feed.counts.received == 8 and _balanced(feed) and feed.pending == 0
    assert "8 received = 3 journaled + 3 superseded + 2 stale + 0 pending" in feed.counts.summary(0)
    with pytest.raises(ValueError, match="does not watch"):
        feed.take(_mark(600, 1, iid=3))


def test_a_resumed_feed_takes_only_marks_newer_than_its_journal() -> None:
    feed = MarkFeed([1], lambda: 0)
    feed.resume_after([MarkPriceReceived(ts_ns=500 * MS, received_ns=0, instrument_id=1, mark_px_raw=9)])
    feed.take(_mark(500, 10))
    feed.take(_mark(501, 11))
    assert feed.counts.stale == 1
    (mark,) = feed.due(600 * MS)
    assert mark.ts_ns == 501 * MS


def test_binanceusdm_mark_prices_through_ccxt() -> None:
    pytest.importorskip("ccxt.pro")
    import ccxt.pro

    bars = [
        Bar(START_MS + i * 60_000, D(100 + i), D(102 + i), D(98 + i), D(101 + i), D(10)) for i in range(6)
    ]
    market = LocalMarket(
        base="BTC", quote="USDT", tick_size=D("0.01"), step_size=D("0.001"), interval="1m", bars=bars
    )

    async def run() -> None:
        async with LocalExchange([market], {"USDT": "1000"}, api_secret="s", market_type="usdm") as exchange:
            client = ccxt.pro.binanceusdm(exchange.ccxt_config(secret="s", rate_limit_ms=1))
            try:
                venue = await venue_for(client, ("BTC/USDT:USDT",))
                (iid,) = venue.instruments
                seen: list[VenueMark] = []

                async def watch() -> None:
                    while True:
                        seen.append(await venue.watch_mark_price(iid))

                task = asyncio.create_task(watch())
                await asyncio.sleep(0.3)  # subscribed
                for _ in range(3):
                    await exchange.step()
                    await asyncio.sleep(0.1)
                task.cancel()
                assert [(m.ts_ms, m.mark_raw) for m in seen] == [
                    (START_MS + (i + 1) * 60_000, (101 + i) * 100) for i in range(3)
                ]

                async def bad(*_: object) -> dict[str, object]:  # what a venue might send
                    return {"markPrice": "x", "timestamp": START_MS}

                client.watch_mark_price = bad
                with pytest.raises(VenueDataError, match="not a decimal"):
                    await venue.watch_mark_price(iid)
            finally:
                await client.close()

    asyncio.run(run())
