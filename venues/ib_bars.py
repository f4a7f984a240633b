"""Bars from Interactive Brokers for a paper or live session (``IbVenue.watch_bars`` and
``fetch_bars``).

``IbBars`` keeps one ``reqHistoricalData`` subscription with ``keepUpToDate`` per instrument,
opened by the first ``watch``: IB updates the forming bar every few seconds, and a bar is closed
(handed out, once: a closed bar is final) when IB starts the next one (``on_bar_update``, ib_async's
``barUpdateEvent``). A drop or 1101 (data lost) ends every subscription (``lose``): each watcher
hears a ``VenueError`` after the closed bars queued before it, and the session watches again and
fetches what it missed (``fetch``, ``reqHistoricalData`` up to TWS's own time). A daily bar
carries only its session day, which ``grid`` (the run's step grid) maps to the bar's open;
intraday bars carry their own start time.

A stream that skips a bar (TWS goes from bar N-1's updates straight to N+1's) is caught up at
once: the grid says which steps lie between the bar that closed and the one that started, and
a ``reqHistoricalData`` for the gap (``_fill``) fetches them before anything newer of that
instrument is handed out, so the gap's step gets its bar within the grace like any other. A
gap IB has no bar for (nothing traded) or that cannot be fetched is counted
(``bars.gap_empty`` / ``bars.gap_unfilled``) and noted (``StreamNote("gap", "market")``, which
the session journals), never passed over silently.

Every historical-data request (subscription, catch-up, gap) waits for its slot under IB's pacing
limits first (``venues.ib_pacing.HistoryPacer``).

It is given what it works with: the ib_async ``IB`` connection, the instruments, their qualified
contracts and conId map (the venue fills them on connect), a stats counter for its ``bars.*``
counts, the venue's retrying request call, its bad-message note, its note queue and the pacer
of its historical-data requests. It reads no clock of this machine for a bar: the catch-up asks
TWS for its time (the pacer's waits read the event loop's monotonic clock).
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any

from domain.fixed import Rounding, from_decimal_text
from domain.instruments import Instrument
from venues.ccxt_venue import StreamNote, VenueBar, VenueDataError, VenueError
from venues.ib_pacing import HistoryPacer
from venues.ib_wire import exact, ms_since_epoch, number

__all__ = ["BAR_SIZES", "IbBars", "bar_size", "duration_text", "interval_s"]

# Tape frequencies as IB bar sizes (``reqHistoricalData``'s barSizeSetting).
BAR_SIZES = {
    "1m": "1 min", "2m": "2 mins", "3m": "3 mins", "5m": "5 mins", "10m": "10 mins",
    "15m": "15 mins", "20m": "20 mins", "30m": "30 mins", "1h": "1 hour", "2h": "2 hours",
    "3h": "3 hours", "4h": "4 hours", "8h": "8 hours", "1d": "1 day",
}  # fmt: skip
_UNIT_S = {"m": 60, "h": 3600, "d": 86_400}


def bar_size(timeframe: str) -> str:
    """A Tape frequency (``1m`` .. ``1d``) as IB's bar size; one IB has not: ``BAD_REQUEST``."""
    size = BAR_SIZES.get(timeframe)
    if size is None:
        raise VenueError(
            "BAD_REQUEST", f"IB has no bar size for frequency {timeframe!r}: {sorted(BAR_SIZES)}"
        )
    return size


def interval_s(timeframe: str) -> int:
    """A Tape frequency's bar length in seconds (one IB has no bar size for: ``BAD_REQUEST``)."""
    bar_size(timeframe)
    return int(timeframe[:-1]) * _UNIT_S[timeframe[-1]]


def duration_text(span_s: int, timeframe: str) -> str:
    """IB's durationStr covering ``span_s`` seconds: seconds up to a day (intraday bars),
    else whole days, else whole years (IB refuses more than 365 days)."""
    span_s = max(span_s, interval_s(timeframe))
    if span_s <= 86_400 and timeframe != "1d":
        return f"{span_s} S"
    days = math.ceil(span_s / 86_400)
    return f"{days} D" if days <= 365 else f"{math.ceil(days / 365)} Y"


class IbBars:
    """The bar subscriptions of one ib_async ``IB`` connection, by instrument id (module
    docstring). ``contracts`` and ``by_con_id`` are read, never changed here."""

    def __init__(
        self,
        ib: Any,
        instruments: Mapping[int, Instrument],
        contracts: Mapping[int, Any],
        by_con_id: Mapping[int, int],
        stats: Counter[str],
        request: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]],
        bad_message: Callable[[Exception], None],
        timeout_s: float,
        pacer: HistoryPacer,
        note: Callable[[StreamNote], None],
    ) -> None:
        self.ib = ib
        self.instruments = instruments
        self.contracts = contracts
        self._by_con_id = by_con_id
        self.stats = stats
        self._request = request
        self._bad_message = bad_message
        self.timeout_s = timeout_s
        self.pacer = pacer
        self._note = note
        self.what_to_show = "TRADES"
        self.use_rth = True  # regular trading hours, as daily data sets are
        self._subscriptions: dict[int, Any] = {}  # instrument_id -> ib_async BarDataList
        self._bars: dict[int, asyncio.Queue[VenueBar | VenueError]] = {}
        self._day_open_ms: dict[int, int] = {}  # the data set's daily grid: session day -> bar open
        self._handed: dict[int, int] = {}  # instrument_id -> the newest bar open handed out
        self._lost: set[int] = set()  # ids of the subscriptions (BarDataList) that ended
        self._ended: list[Any] = []
        self._ended_with: dict[int, VenueError] = {}  # a subscription's end, after its last bars
        self._after_loss: set[int] = set()  # instruments whose subscription ended (a catch-up follows)
        self._grid_keys: list[int] = []  # the run's steps: session days (daily) or bar opens (ms)
        self._timeframes: dict[int, str] = {}  # instrument_id -> its subscription's frequency
        # a gap being fetched (``_fill``): its task, and the bars that closed after the gap,
        # held back until the gap's bars are out (so that none is handed out of order)
        self._filling: dict[int, asyncio.Task[None]] = {}
        self._held: dict[int, list[VenueBar]] = {}
        self._gaps: dict[int, list[tuple[list[int], int]]] = {}  # instrument -> (skipped, next) to fetch

    def grid(self, ts_ns: Iterable[int], days: Iterable[int], interval_ns: int) -> None:
        """The run's step grid (bar closes, UTC ns, and their session days): IB stamps a daily
        bar with its session day only, which this maps to the bar's open (close - interval), so
        a step's bars land on the step whatever the session's close time. Intraday bars carry
        their own start time (``formatDate=2``)."""
        interval_ms = interval_ns // 1_000_000
        opens = [int(ts) // 1_000_000 - interval_ms for ts in ts_ns]
        sessions = [int(day) for day in days]
        self._day_open_ms = dict(zip(sessions, opens, strict=True))
        # where a gap in a stream is looked for: IB states daily bars by session day, others by open
        self._grid_keys = sorted(set(sessions if interval_ns == 86_400 * 10**9 else opens))

    async def watch(self, instrument_id: int, timeframe: str) -> list[VenueBar]:
        """The next closed bar(s) of ``instrument_id``: a ``reqHistoricalData`` subscription
        with ``keepUpToDate`` (IB updates the forming bar every few seconds; a bar is closed —
        handed out — when IB starts the next one). The first call subscribes; a dropped
        connection or 1101 (data lost) ends it with a ``VenueError``, after which the session
        watches again (a new subscription) and fetches what it missed (``fetch_bars``)."""
        ended = self._ended_with.pop(instrument_id, None)
        if ended is not None:  # bars closed before the subscription ended went out first
            raise ended
        queue = self._bars.get(instrument_id)
        if instrument_id not in self._subscriptions and (queue is None or queue.empty()):
            return self._handed_out(instrument_id, await self._subscribe(instrument_id, timeframe))
        assert queue is not None  # subscribed, or an ended subscription's last bars and its end
        items = [await queue.get()]
        while not queue.empty():
            items.append(queue.get_nowait())
        bars: list[VenueBar] = []
        for item in items:
            if isinstance(item, VenueError):
                if not bars:
                    raise item
                # closed bars queued before the end (the loop was busy while TWS went on): hand
                # them out now, the end at the next call (its catch-up starts after them)
                self._ended_with[instrument_id] = item
                break
            bars.append(item)
        return self._handed_out(instrument_id, bars)

    def _handed_out(self, instrument_id: int, bars: list[VenueBar]) -> list[VenueBar]:
        """``bars`` less any handed out before (a closed bar is final: once is enough), noted."""
        handed = self._handed.get(instrument_id)
        fresh = sorted(
            (bar for bar in bars if handed is None or bar.open_ms > handed), key=lambda bar: bar.open_ms
        )
        self.stats["bars.again"] += len(bars) - len(fresh)
        if fresh:
            self._handed[instrument_id] = fresh[-1].open_ms
        return fresh

    async def _subscribe(self, instrument_id: int, timeframe: str) -> list[VenueBar]:
        if not self.ib.isConnected():
            raise VenueError("VENUE_UNAVAILABLE", "not connected to TWS", retriable=True)
        self._bars[instrument_id] = asyncio.Queue()
        self._timeframes[instrument_id] = timeframe
        bars = await self._historical(instrument_id, 2 * interval_s(timeframe), timeframe, keep=True)
        self._subscriptions[instrument_id] = bars
        self.stats["bars.subscribed"] += 1
        handed = self._handed.get(instrument_id)
        if handed is None:  # nothing handed out yet: no gap to fill
            return []
        if instrument_id in self._after_loss:  # the session's catch-up (fetch_bars) follows and
            # fetches the whole gap; handing out this answer's last bars would skip what is older
            self._after_loss.discard(instrument_id)
            return []
        inst = self.instruments[instrument_id]
        closed = [self._venue_bar(inst, row) for row in list(bars)[:-1]]  # the last one is forming
        return [bar for bar in closed if bar is not None and bar.open_ms > handed]

    def lose(self, why: str) -> None:
        """Every subscription ended (a drop, or IB lost the data): each watcher hears it. A gap
        being fetched is given up, with the bars held behind it: the session's catch-up after
        its new subscription starts from the last bar handed out, before the gap."""
        for iid, task in list(self._filling.items()):
            task.cancel()
            self.stats["bars.gap_abandoned"] += 1
            self._filling.pop(iid, None)
            self._held.pop(iid, None)
            self._gaps.pop(iid, None)
        for iid in list(self._subscriptions):
            bars = self._subscriptions.pop(iid)
            self._lost.add(id(bars))  # by identity: request ids start again after a reconnect
            self._ended.append(bars)  # kept, so that its id is not reused
            self._bars[iid].put_nowait(VenueError("VENUE_UNAVAILABLE", why, retriable=True))
            self._after_loss.add(iid)
            self.stats["bars.subscription_lost"] += 1

    def on_bar_update(self, bars: Any, has_new_bar: bool) -> None:
        """IB started a new bar: the one before it is closed and handed out. The subscription is
        known by its contract, not its request id: TWS may send updates right behind its first
        answer, before the request's caller has resumed; ended subscriptions are ignored."""
        if not has_new_bar or len(bars) < 2 or not bars.keepUpToDate or id(bars) in self._lost:
            return
        iid = self._by_con_id.get(bars.contract.conId)
        if iid is None or iid not in self._bars:
            return
        closed, forming = bars[-2], bars[-1]
        try:
            bar = self._venue_bar(self.instruments[iid], closed)
        except VenueDataError as error:
            self._bad_message(error)
            bar = None
        if bar is not None:
            self.stats["bars.closed"] += 1
            if iid in self._filling:  # behind a gap being fetched: out after the gap's bars
                self._held[iid].append(bar)
            else:
                self._bars[iid].put_nowait(bar)
        skipped = self._skipped(closed.date, forming.date)
        if skipped:
            self.stats["bars.gap"] += len(skipped)
            self._gaps.setdefault(iid, []).append((skipped, self._grid_key(forming.date)))
            if iid not in self._filling:
                self._held[iid] = []
                self._filling[iid] = asyncio.get_running_loop().create_task(self._fill(iid))

    def _grid_key(self, stamp: Any) -> int:
        """A bar's place on the grid: its session day (daily bars), else its open in ms."""
        if isinstance(stamp, dt.datetime):
            return ms_since_epoch(stamp)
        return int(stamp.year * 10_000 + stamp.month * 100 + stamp.day)

    def _skipped(self, closed: Any, forming: Any) -> list[int]:
        """The grid's steps strictly between the bar that closed and the one that started: bars
        the stream skipped (none when the two are neighbours, as they are but for a gap)."""
        low, high = self._grid_key(closed), self._grid_key(forming)
        keys = self._grid_keys
        return keys[bisect.bisect_right(keys, low) : bisect.bisect_left(keys, high)]

    async def _fill(self, instrument_id: int) -> None:
        """Fetch the bars the stream skipped (``reqHistoricalData`` over each gap, paced), hand
        them out, then the bars held behind them, in time order. One IB has no bar for is
        counted ``bars.gap_empty``, one not fetched ``bars.gap_unfilled``; either is noted."""
        inst = self.instruments[instrument_id]
        fetched: list[VenueBar] = []
        task = self._filling[instrument_id]
        try:
            while self._gaps.get(instrument_id):
                skipped, after = self._gaps[instrument_id].pop(0)
                got = await self._fetch_gap(instrument_id, skipped, after)
                if got is None:
                    self.stats["bars.gap_unfilled"] += len(skipped)
                    continue
                fetched += got
                self.stats["bars.gap_filled"] += len(got)
                if len(got) < len(skipped):
                    self.stats["bars.gap_empty"] += len(skipped) - len(got)
                    self._note(
                        StreamNote(
                            kind="gap",
                            stream="market",
                            detail=f"{inst.symbol}: IB has no bar for {len(skipped) - len(got)} of "
                            f"the {len(skipped)} the stream skipped (from {skipped[0]}); their steps "
                            "run without it",
                        )
                    )
        finally:
            if self._filling.get(instrument_id) is task:  # not given up by ``lose``
                held = self._held.pop(instrument_id, [])
                del self._filling[instrument_id]
                self._gaps.pop(instrument_id, None)
                by_open = {bar.open_ms: bar for bar in fetched + held}
                for open_ms in sorted(by_open):
                    self._bars[instrument_id].put_nowait(by_open[open_ms])

    async def _fetch_gap(self, instrument_id: int, skipped: list[int], after: int) -> list[VenueBar] | None:
        """The bars of the ``skipped`` grid keys, from a ``reqHistoricalData`` up to now (the bar
        keyed ``after`` is forming); None: not fetched (noted)."""
        inst, timeframe = self.instruments[instrument_id], self._timeframes[instrument_id]
        bar_s = interval_s(timeframe)
        if bar_s == 86_400:  # session days: the gap, the day forming, one to spare
            span_s = (len(skipped) + 2) * bar_s
        else:  # from the first skipped bar's open to the end of the one forming
            span_s = (after - skipped[0]) // 1000 + bar_s
        try:
            rows = await self._history(instrument_id, span_s, timeframe)
        except VenueError as error:
            if error.rule != "NO_DATA":
                self._note(
                    StreamNote(
                        kind="gap",
                        stream="market",
                        detail=f"{inst.symbol}: {len(skipped)} bar(s) the stream skipped (from "
                        f"{skipped[0]}) not fetched: {error.reason}; their steps run without it",
                    )
                )
                return None
            rows = []
        wanted = set(skipped)
        out = []
        for row in rows:
            if self._grid_key(row.date) not in wanted:
                continue
            try:
                bar = self._venue_bar(inst, row)
            except VenueDataError as error:
                self._bad_message(error)
                continue
            if bar is not None:
                out.append(bar)
        return out

    async def fetch(
        self, instrument_id: int, timeframe: str, *, since_ms: int | None = None, limit: int | None = None
    ) -> list[VenueBar]:
        """The closed bars from ``since_ms`` on (the last ``limit``, default 2, without it), by
        ``reqHistoricalData`` up to TWS's own time (``reqCurrentTime``: the venue's clock, not
        this machine's); the bar still forming is left to the subscription."""
        bar_s = interval_s(timeframe)
        now = await self._request(lambda: asyncio.wait_for(self.ib.reqCurrentTimeAsync(), self.timeout_s))
        now_ms = ms_since_epoch(now)
        span_s = (now_ms - since_ms) // 1000 + bar_s if since_ms is not None else bar_s * (limit or 2)
        try:
            rows = await self._history(instrument_id, span_s, timeframe)
        except VenueError as error:
            if error.rule != "NO_DATA":
                raise
            rows = []  # nothing traded in the span
        inst, out = self.instruments[instrument_id], []
        for row in rows:
            bar = self._venue_bar(inst, row)
            if bar is None or bar.open_ms + bar_s * 1000 > now_ms:
                continue  # off the grid, or still forming
            if since_ms is None or bar.open_ms >= since_ms:
                out.append(bar)
        self.stats["bars.fetched"] += len(out)
        return self._handed_out(instrument_id, out[-limit:] if limit else out)

    async def _history(self, instrument_id: int, span_s: int, timeframe: str) -> Any:
        return await self._historical(instrument_id, span_s, timeframe, keep=False)

    async def _historical(self, instrument_id: int, span_s: int, timeframe: str, *, keep: bool) -> Any:
        """One ``reqHistoricalData`` up to now (``keep``: a ``keepUpToDate`` subscription), each
        try sent in its slot under IB's pacing limits (``HistoryPacer``), retried on a 162 by
        the venue's request call."""
        contract = self.contracts[instrument_id]
        duration, size = duration_text(span_s, timeframe), bar_size(timeframe)
        identity = (contract.conId, duration, size, self.what_to_show, self.use_rth, keep)
        ask = partial(
            self.ib.reqHistoricalDataAsync,
            contract,
            "",
            duration,
            size,
            self.what_to_show,
            self.use_rth,
            formatDate=2,
            keepUpToDate=keep,
        )

        async def paced() -> Any:
            await self.pacer.slot(contract.conId, identity)
            return await ask()

        return await self._request(paced)

    def _venue_bar(self, inst: Instrument, row: Any) -> VenueBar | None:
        """An ib_async ``BarData`` as a ``VenueBar`` (None: a daily bar off the run's grid)."""
        stamp = row.date
        if isinstance(stamp, dt.datetime):
            open_ms = ms_since_epoch(stamp)
        else:
            found = self._day_open_ms.get(stamp.year * 10_000 + stamp.month * 100 + stamp.day)
            if found is None:
                self.stats["bars.off_grid"] += 1
                return None
            open_ms = found
        what = f"{inst.symbol} bar {stamp}"
        return VenueBar(
            instrument_id=inst.instrument_id,
            open_ms=open_ms,
            open_raw=exact(row.open, inst.price_digits, what + " open"),
            high_raw=exact(row.high, inst.price_digits, what + " high"),
            low_raw=exact(row.low, inst.price_digits, what + " low"),
            close_raw=exact(row.close, inst.price_digits, what + " close"),
            volume_raw=from_decimal_text(str(number(row.volume)), inst.qty_digits, Rounding.HALF_EVEN),
        )
