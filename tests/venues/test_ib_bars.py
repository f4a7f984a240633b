"""IB market data through the real ib_async client against the loopback fake TWS: a
``reqHistoricalData`` subscription with ``keepUpToDate`` hands out each bar once IB starts the
next (a closed bar), daily bars land on the run's grid by session day, ``fetch_bars`` catches up
the closed bars up to TWS's own time (the forming bar left out), pacing (162) is retried with a
journaled note, and a dropped connection ends the subscription so the session watches again.
Quotes (``watch_quote``): one ``reqMktData`` stream per contract, its bid / ask exact at the
instrument's digits, IB's empty side an error, market data refusals (354, 10167 delayed) and a
drop ending the stream, the stream cancelled on stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

pytest.importorskip("ib_async", reason="ib_async is in the dev/live extras")

import ib_async

from domain.instruments import Instrument
from tests.venues._fake_tws import FakeBar, FakeContract, FakeTws
from venues.ccxt_venue import StreamNote, VenueDataError, VenueError, VenueQuote
from venues.ib_bars import bar_size, duration_text
from venues.ib_pacing import HistoryPacing
from venues.ib_venue import IbVenue, map_ib_error

DAY_S = 86_400
# IB's historical-data pacing rules at a small scale (IB: 15 s, 5 in 2 s, 60 in 600 s)
FAST_PACING = HistoryPacing(
    identical_s=0.3, contract_window_s=0.2, contract_max=5, window_s=1.0, window_max=4
)
FIRST_OPEN_S = 1_735_689_600  # 2025-01-01T00:00:00Z

SPY = Instrument(
    instrument_id=1,
    symbol="SPY",
    venue="ARCX",
    asset_class="etf",
    currency="USD",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=1,
)


def daily_bars(count: int) -> list[FakeBar]:
    bars = []
    for n in range(count):
        open_s = FIRST_OPEN_S + n * DAY_S
        day = 20250101 + n  # January: the day of the month is n + 1
        px = 500 + n
        bars.append(
            FakeBar(
                str(day),
                open_s,
                open_s + DAY_S,
                f"{px}.10",
                f"{px}.90",
                f"{px - 1}.05",
                f"{px}.50",
                "1234567",
            )
        )
    return bars


@pytest_asyncio.fixture
async def tws() -> AsyncIterator[FakeTws]:
    server = FakeTws(
        contracts=[FakeContract(756733, "SPY", "STK", "SMART", "USD", "SPY", primary_exchange="ARCA")],
        market={756733: daily_bars(6)},
    )
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def venue(tws: FakeTws) -> AsyncIterator[IbVenue]:
    ib_venue = IbVenue(
        ib_async.IB(), [SPY], port=tws.port, client_id=3, backoff_s=0.01, history_pacing=FAST_PACING
    )
    ts = [FIRST_OPEN_S * 10**9 + (n + 1) * DAY_S * 10**9 for n in range(6)]
    ib_venue.bar_grid(ts, [20250101 + n for n in range(6)], DAY_S * 10**9)
    await ib_venue.connect()
    yield ib_venue
    await ib_venue.close()


@pytest.mark.asyncio
async def test_a_subscription_hands_out_each_bar_once_ib_starts_the_next(
    tws: FakeTws, venue: IbVenue
) -> None:
    assert await venue.watch_bars(1, "1d") == []  # subscribed: nothing closed yet
    watching = asyncio.create_task(venue.watch_bars(1, "1d"))
    await asyncio.sleep(0.05)
    assert not watching.done()  # the forming bar is not handed out
    await tws.play_step()
    first = await asyncio.wait_for(watching, 5)
    assert [(b.open_ms, b.open_raw, b.high_raw, b.low_raw, b.close_raw, b.volume_raw) for b in first] == [
        (FIRST_OPEN_S * 1000, 50010, 50090, 49905, 50050, 1234567)
    ]
    await tws.play_step()
    await tws.play_step()
    got = await asyncio.wait_for(venue.watch_bars(1, "1d"), 5)
    while len(got) < 2:
        got += await asyncio.wait_for(venue.watch_bars(1, "1d"), 5)
    assert [b.open_ms // 1000 for b in got] == [FIRST_OPEN_S + DAY_S, FIRST_OPEN_S + 2 * DAY_S]
    request = next(f for f in tws.received if f[0] == "20")
    assert request[16:22] == ["1 day", "2 D", "1", "TRADES", "2", "1"]  # barSize .. keepUpToDate


@pytest.mark.asyncio
async def test_fetch_bars_catches_up_to_tws_time_without_the_forming_bar(
    tws: FakeTws, venue: IbVenue
) -> None:
    for _ in range(4):
        await tws.play_step()
    since_ms = (FIRST_OPEN_S + DAY_S) * 1000
    bars = await venue.fetch_bars(1, "1d", since_ms=since_ms)
    assert [b.open_ms // 1000 for b in bars] == [FIRST_OPEN_S + n * DAY_S for n in (1, 2, 3)]
    assert [f for f in tws.received if f[0] == "49"]  # asked TWS for its time
    assert bars[-1].close_raw == 50350


@pytest.mark.asyncio
async def test_historical_pacing_is_retried_with_a_note(tws: FakeTws, venue: IbVenue) -> None:
    await tws.play_step()
    tws.pace_history = 1
    bars = await venue.fetch_bars(1, "1d", since_ms=FIRST_OPEN_S * 1000)
    assert [b.open_ms // 1000 for b in bars] == [FIRST_OPEN_S]
    note = await asyncio.wait_for(venue.updates.get(), 2)
    assert isinstance(note, StreamNote) and note.kind == "pacing" and "IB 162" in note.detail
    assert venue.stats["error.RATE_LIMIT"] == 1
    assert map_ib_error(162, "HMDS query returned no data").rule == "NO_DATA"


@pytest.mark.asyncio
async def test_a_162_is_asked_again_after_ibs_identical_request_window(tws: FakeTws) -> None:
    """IB's pacing rules (TWS API "Historical Data Limitations"): an identical request within
    15 s is itself a violation, so with IB's numbers a 162 is asked again after 15, 30, 60 s
    (a clock of its own here, advanced by each wait) -- before, after 0.05 / 0.1 / 0.2 s, every
    retry inside the window, then RATE_LIMIT."""
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds
        await asyncio.sleep(0)

    venue = IbVenue(ib_async.IB(), [SPY], port=tws.port, client_id=4, sleep=sleep, clock=lambda: now[0])
    venue.bar_grid([(FIRST_OPEN_S + DAY_S) * 10**9], [20250101], DAY_S * 10**9)
    await venue.connect()
    try:
        await tws.play_step()
        tws.pace_history = 3
        bars = await venue.fetch_bars(1, "1d", since_ms=FIRST_OPEN_S * 1000)
    finally:
        await venue.close()
    assert [b.open_ms // 1000 for b in bars] == [FIRST_OPEN_S]
    assert waits == [15.0, 30.0, 60.0] and venue.stats["error.RATE_LIMIT"] == 3
    assert HistoryPacing().retry_s(9) == 600.0  # never more than the ten-minute window


@pytest.mark.asyncio
async def test_a_catch_up_of_many_requests_keeps_within_ibs_pacing_limits(
    tws: FakeTws, venue: IbVenue
) -> None:
    """A catch-up asks more historical data than IB's window allows (here 4 a second, and no
    identical request within 0.3 s; IB: 60 in ten minutes, 15 s): the adapter waits for each
    request's slot, so TWS refuses none (before, the fake refused them with 162 and the adapter
    retried inside the window until it gave up with RATE_LIMIT)."""
    tws.history_limits = FAST_PACING
    for _ in range(3):
        await tws.play_step()
    since = [FIRST_OPEN_S * 1000, (FIRST_OPEN_S + DAY_S) * 1000]
    got = [await venue.fetch_bars(1, "1d", since_ms=since[n % 2]) for n in range(6)]
    assert tws.history_refused == 0 and venue.stats["error.RATE_LIMIT"] == 0
    assert [len(bars) for bars in got] == [3, 0, 0, 0, 0, 0]  # handed out once
    assert venue.stats["history.requests"] == 6 and venue.stats["history.waited"] >= 2
    times = [at for at, _, _ in tws.history_asked]
    assert all(later - first >= 1.0 - 0.05 for first, later in zip(times, times[4:], strict=False))


@pytest.mark.asyncio
async def test_a_dropped_connection_ends_the_subscription(tws: FakeTws, venue: IbVenue) -> None:
    assert await venue.watch_bars(1, "1d") == []
    watching = asyncio.create_task(venue.watch_bars(1, "1d"))
    await tws.drop()
    with pytest.raises(VenueError) as error:
        await asyncio.wait_for(watching, 5)
    assert error.value.rule == "VENUE_UNAVAILABLE"
    while not venue.ib.isConnected():  # the adapter reconnects by itself
        await asyncio.sleep(0.02)
    assert await venue.watch_bars(1, "1d") == []  # the session watches again
    watching = asyncio.create_task(venue.watch_bars(1, "1d"))
    await tws.play_step()
    assert [b.open_ms // 1000 for b in await asyncio.wait_for(watching, 5)] == [FIRST_OPEN_S]


@pytest.mark.asyncio
async def test_bars_closed_before_a_subscription_ended_are_handed_out_first(
    tws: FakeTws, venue: IbVenue
) -> None:
    """TWS closed bars, then IB lost the market data (1101), while nobody was watching (the
    session's loop busy with a step): the closed bars go out, the end at the next call, so the
    catch-up after it starts behind them and none is lost."""
    assert await venue.watch_bars(1, "1d") == []
    tws.after_bar = {
        3: [(1101, "Connectivity between IB and Trader Workstation has been restored - data lost.")]
    }
    for _ in range(3):
        await tws.play_step()
    while venue.stats["bars.subscription_lost"] < 1:  # all of it in before anyone watches
        await asyncio.sleep(0.01)
    got = await asyncio.wait_for(venue.watch_bars(1, "1d"), 5)
    assert [b.open_ms // 1000 for b in got] == [FIRST_OPEN_S + n * DAY_S for n in range(3)]
    with pytest.raises(VenueError) as error:
        await asyncio.wait_for(venue.watch_bars(1, "1d"), 5)
    assert error.value.rule == "VENUE_UNAVAILABLE" and "1101" in error.value.reason


@pytest.mark.asyncio
async def test_after_a_lost_subscription_the_catch_up_fetches_the_whole_gap(
    tws: FakeTws, venue: IbVenue
) -> None:
    """IB lost the market data (1101) and TWS closed three more bars before the session watched
    again: the new subscription hands out nothing (its answer holds only the last bars), the
    catch-up that follows (``fetch_bars``) hands out the whole gap, each bar once, none lost."""
    assert await venue.watch_bars(1, "1d") == []
    tws.after_bar = {
        2: [(1101, "Connectivity between IB and Trader Workstation has been restored - data lost.")]
    }
    await tws.play_step()
    await tws.play_step()
    got = []
    with pytest.raises(VenueError):
        while True:
            got += await asyncio.wait_for(venue.watch_bars(1, "1d"), 5)
    for _ in range(3):  # played while no subscription is live
        await tws.play_step()
    assert await venue.watch_bars(1, "1d") == []
    got += await venue.fetch_bars(1, "1d", since_ms=got[-1].open_ms)
    assert [b.open_ms // 1000 for b in got] == [FIRST_OPEN_S + n * DAY_S for n in range(5)]


def test_bar_sizes_and_durations() -> None:
    assert bar_size("5m") == "5 mins" and bar_size("1d") == "1 day"
    with pytest.raises(VenueError):
        bar_size("7m")
    assert duration_text(120, "1m") == "120 S"
    assert duration_text(90_000, "1m") == "2 D"
    assert duration_text(3 * DAY_S, "1d") == "3 D"
    assert duration_text(400 * DAY_S, "1d") == "2 Y"


@pytest.mark.asyncio
async def test_a_new_subscription_hands_out_what_closed_since_the_last_bar_handed_out(
    tws: FakeTws, venue: IbVenue
) -> None:
    """A resumed session catches up, then subscribes: a bar that closed in between comes with
    the subscription's first answer (and nothing handed out before comes again)."""
    await tws.play_step()
    await tws.play_step()
    caught = await venue.fetch_bars(1, "1d", since_ms=FIRST_OPEN_S * 1000)
    assert [b.open_ms // 1000 for b in caught] == [FIRST_OPEN_S, FIRST_OPEN_S + DAY_S]
    await tws.play_step()  # closes between the catch-up and the subscription
    got = await venue.watch_bars(1, "1d")
    assert [b.open_ms // 1000 for b in got] == [FIRST_OPEN_S + 2 * DAY_S]


@pytest.mark.asyncio
async def test_a_bar_closing_right_behind_the_subscriptions_answer_is_not_lost(
    tws: FakeTws, venue: IbVenue
) -> None:
    """TWS writes the first update in the same packet as its answer: the bar still counts."""
    tws.play_on_subscribe = True
    assert await venue.watch_bars(1, "1d") == []
    got = await asyncio.wait_for(venue.watch_bars(1, "1d"), 5)
    assert [b.open_ms // 1000 for b in got] == [FIRST_OPEN_S]
    assert venue.stats["bars.closed"] == 1


SPY_CON = 756733


def quote(bid: int, ask: int, size: int = 100) -> VenueQuote:
    return VenueQuote(instrument_id=1, bid_px_raw=bid, bid_qty_raw=size, ask_px_raw=ask, ask_qty_raw=size)


def mkt_data_requests(tws: FakeTws) -> list[list[str]]:
    return [f for f in tws.received if f[0] == "1"]


@pytest.mark.asyncio
async def test_a_quote_stream_hands_out_the_bid_and_ask_exactly_and_is_cancelled_on_stop(
    tws: FakeTws, venue: IbVenue
) -> None:
    # the stream opens with the quote standing: around the first bar's open (500.10)
    assert await asyncio.wait_for(venue.watch_quote(1), 5) == quote(50009, 50011)
    watching = asyncio.create_task(venue.watch_quote(1))
    await asyncio.sleep(0.05)
    assert not watching.done()  # no tick since: nothing to hand out
    await tws.play_step()  # the first bar closes at 500.50
    assert await asyncio.wait_for(watching, 5) == quote(50049, 50051)
    tws.send_quote(SPY_CON, "500.37", "300", "500.42", "7")  # any bid / ask TWS states
    assert await asyncio.wait_for(venue.watch_quote(1), 5) == VenueQuote(
        instrument_id=1, bid_px_raw=50037, bid_qty_raw=300, ask_px_raw=50042, ask_qty_raw=7
    )
    (request,) = mkt_data_requests(tws)  # subscribed once
    assert request[2:4] == [request[2], str(SPY_CON)] and request[-4:-1] == ["", "0", "0"]
    assert tws.quote_streams
    await venue.stop_streams()
    await asyncio.sleep(0.1)
    assert not tws.quote_streams  # cancelMktData reached TWS
    assert ["2", "2", request[2]] in tws.received
    assert venue.stats["quotes.cancelled"] == 1


@pytest.mark.asyncio
async def test_an_empty_side_is_an_error_not_a_dropped_quote(tws: FakeTws, venue: IbVenue) -> None:
    await asyncio.wait_for(venue.watch_quote(1), 5)
    tws.send_quote(SPY_CON, "-1", "0", "500.11", "100")  # IB: no bid
    with pytest.raises(VenueDataError, match="no bid or ask"):
        await asyncio.wait_for(venue.watch_quote(1), 5)
    assert venue.stats["quotes.bad"] == 1
    tws.send_quote(SPY_CON, "500.09", "100", "500.11", "100")  # the stream goes on
    assert await asyncio.wait_for(venue.watch_quote(1), 5) == quote(50009, 50011)
    tws.send_quote(SPY_CON, "500.091", "100", "500.11", "100")  # off the instrument's digits
    with pytest.raises(VenueDataError, match="not a whole number of 1e-2"):
        await asyncio.wait_for(venue.watch_quote(1), 5)
    assert len(mkt_data_requests(tws)) == 1


@pytest.mark.asyncio
async def test_market_data_refusals_end_the_stream_with_their_code(tws: FakeTws, venue: IbVenue) -> None:
    tws.quote_refusal = (354, "Requested market data is not subscribed.")
    with pytest.raises(VenueError) as error:
        await asyncio.wait_for(venue.watch_quote(1), 5)
    assert (error.value.rule, error.value.venue_code, error.value.retriable) == ("NOT_PERMITTED", 354, False)
    tws.quote_refusal, tws.delayed_quotes = None, True  # delayed data: not a quote to fill at
    with pytest.raises(VenueError) as error:
        await asyncio.wait_for(venue.watch_quote(1), 5)
    assert (error.value.rule, error.value.venue_code) == ("DELAYED_DATA", 10167)
    await asyncio.sleep(0.1)
    assert not tws.quote_streams  # the delayed stream was cancelled
    tws.delayed_quotes = False
    assert await asyncio.wait_for(venue.watch_quote(1), 5) == quote(50009, 50011)  # subscribed again
    assert len(mkt_data_requests(tws)) == 3
    assert venue.stats["quotes.error.354"] == venue.stats["quotes.error.10167"] == 1


@pytest.mark.asyncio
async def test_a_dropped_connection_ends_the_quote_stream(tws: FakeTws, venue: IbVenue) -> None:
    await asyncio.wait_for(venue.watch_quote(1), 5)
    watching = asyncio.create_task(venue.watch_quote(1))
    await asyncio.sleep(0.02)
    await tws.drop()
    with pytest.raises(VenueError) as error:
        await asyncio.wait_for(watching, 5)
    assert error.value.rule == "VENUE_UNAVAILABLE" and error.value.retriable
    while not venue.ib.isConnected():  # the adapter reconnects by itself
        await asyncio.sleep(0.02)
    await tws.play_step()
    assert await asyncio.wait_for(venue.watch_quote(1), 5) == quote(50049, 50051)  # a new stream
    assert len(mkt_data_requests(tws)) == 2


@pytest.mark.asyncio
async def test_a_bar_the_stream_skips_is_fetched_before_anything_after_it(
    tws: FakeTws, venue: IbVenue
) -> None:
    """TWS's ``keepUpToDate`` stream goes from bar 1's updates straight to bar 3's (bar 2 never
    streamed, though its history holds it): the adapter sees the gap on the grid, fetches bar 2
    with a ``reqHistoricalData`` for the gap and hands it out after bar 1 and before bar 3.
    Before, bar 1 went out, then bar 3, and bar 2 never: its step ran without the name."""
    tws.skip_updates = {SPY_CON: {2}}
    assert await venue.watch_bars(1, "1d") == []
    got = []
    for _ in range(4):
        await tws.play_step()
    while len(got) < 4:
        got += await asyncio.wait_for(venue.watch_bars(1, "1d"), 5)
    assert [b.open_ms // 1000 for b in got] == [FIRST_OPEN_S + n * DAY_S for n in range(4)]
    assert got[2].close_raw == 50250  # bar 2 as TWS's history states it
    assert venue.stats["bars.gap"] == 1 and venue.stats["bars.gap_filled"] == 1
    gap_request = [f for f in tws.received if f[0] == "20"][-1]
    assert gap_request[21] == "0"  # not a subscription: a one-off request over the gap


@pytest.mark.asyncio
async def test_a_skipped_bar_ib_cannot_give_is_counted_and_noted(tws: FakeTws, venue: IbVenue) -> None:
    """The gap's request is refused (162 pacing every time): the bars after it still go out,
    the skipped one is counted ``bars.gap_unfilled`` and noted for the journal."""
    tws.skip_updates = {SPY_CON: {2}}
    assert await venue.watch_bars(1, "1d") == []
    for _ in range(2):
        await tws.play_step()
    tws.pace_history = 99
    await tws.play_step()
    await tws.play_step()
    got = []
    while len(got) < 3:
        got += await asyncio.wait_for(venue.watch_bars(1, "1d"), 10)
    assert [b.open_ms // 1000 for b in got] == [FIRST_OPEN_S + n * DAY_S for n in (0, 1, 3)]
    assert venue.stats["bars.gap_unfilled"] == 1
    notes = []
    while not venue.updates.empty():
        notes.append(venue.updates.get_nowait())
    gap = [n for n in notes if isinstance(n, StreamNote) and n.kind == "gap"]
    assert len(gap) == 1 and "SPY: 1 bar(s) the stream skipped" in gap[0].detail
    assert "not fetched: RATE_LIMIT: IB 162" in gap[0].detail
