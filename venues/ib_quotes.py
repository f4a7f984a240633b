"""Top-of-book quotes from Interactive Brokers for the paper broker (``IbVenue.watch_quote``).

``IbQuotes`` holds one ``reqMktData`` stream per contract, subscribed on the first ``watch`` of
its instrument; each batch of IB's bid / ask ticks (``on_tickers``, ib_async's
``pendingTickersEvent``) hands out the best bid and ask as it then stands (the newest only: a
quote superseded before it was taken is counted, not queued). IB's explicit empty side (price
-1, size 0) is a ``VenueDataError``; delayed data (10167, or a ticker not of market data type 1)
and no market data permission (354 / 10168) end the stream with a ``VenueError`` (``on_error``),
as a drop or 1101 does (``lose``); the next ``watch`` subscribes again. ``stop`` cancels the
streams.

It is given what it works with: the ib_async ``IB`` connection, the instruments, their qualified
contracts (the venue fills that mapping on connect) and a stats counter it adds its
``quotes.*`` counts to. It reads no clock: IB's ticks carry no venue time, and ib_async's own
stamps (this machine's clock) are not passed on.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from domain.fixed import Rounding, from_decimal_text
from domain.instruments import Instrument
from venues.ccxt_venue import VenueDataError, VenueError, VenueQuote
from venues.ib_wire import exact, map_ib_error, number

__all__ = ["MARKET_DATA", "IbQuotes"]

# The codes that end a quote subscription; ib_async logs 10167 as a warning.
MARKET_DATA = frozenset({354, 10167, 10168, 10197})


def _unset(value: object) -> bool:
    """A ticker field IB has not stated (ib_async's nan); IB's empty side (-1) is stated."""
    return isinstance(value, float) and math.isnan(value)


def _venue_quote(inst: Instrument, ticker: Any) -> VenueQuote:
    what = f"{inst.symbol} quote"
    if not ticker.bid > 0 or not ticker.ask > 0 or not ticker.bidSize > 0 or not ticker.askSize > 0:
        raise VenueDataError(
            f"{inst.symbol}: a quote with no bid or ask (IB bid {ticker.bid!r} x {ticker.bidSize!r}, "
            f"ask {ticker.ask!r} x {ticker.askSize!r})"
        )
    return VenueQuote(
        instrument_id=inst.instrument_id,
        bid_px_raw=exact(ticker.bid, inst.price_digits, what + " bid"),
        bid_qty_raw=from_decimal_text(str(number(ticker.bidSize)), inst.qty_digits, Rounding.HALF_EVEN),
        ask_px_raw=exact(ticker.ask, inst.price_digits, what + " ask"),
        ask_qty_raw=from_decimal_text(str(number(ticker.askSize)), inst.qty_digits, Rounding.HALF_EVEN),
        ts_ms=0,  # IB's ticks carry no venue time (ib_async stamps them with this machine's)
    )


class _QuoteStream:
    """One contract's ``reqMktData`` stream: its ticker and request id, the newest quote not yet
    handed out (or the error an empty side raised), and its end."""

    def __init__(self, ticker: Any, req_id: int) -> None:
        self.ticker = ticker
        self.req_id = req_id
        self.latest: VenueQuote | VenueDataError | None = None
        self.ended: VenueError | None = None
        self.ready = asyncio.Event()


class IbQuotes:
    """The quote streams of one ib_async ``IB`` connection, by instrument id (module docstring).
    ``contracts`` (instrument_id -> qualified contract) is read when a stream is subscribed,
    never changed here."""

    def __init__(
        self,
        ib: Any,
        instruments: Mapping[int, Instrument],
        contracts: Mapping[int, Any],
        stats: Counter[str],
    ) -> None:
        self.ib = ib
        self.instruments = instruments
        self.contracts = contracts
        self.stats = stats
        self._streams: dict[int, _QuoteStream] = {}  # instrument_id -> its reqMktData stream
        self._by_con_id: dict[int, int] = {}  # IB conId -> instrument_id, of the contracts streamed

    async def watch(self, instrument_id: int) -> VenueQuote:
        """The next best bid / ask of ``instrument_id`` from its ``reqMktData`` stream (the
        first call subscribes). A stream that ended (a drop, 1101, a market data refusal)
        raises its end once; the next call subscribes again."""
        stream = self._streams.get(instrument_id)
        if stream is None:
            if not self.ib.isConnected():
                raise VenueError("VENUE_UNAVAILABLE", "not connected to TWS", retriable=True)
            contract = self.contracts[instrument_id]
            ticker = self.ib.reqMktData(contract, "", False, False)
            # ib_async keeps one ticker per contract across streams: an earlier stream's bid and
            # ask are not this one's (no tick of the new stream can have arrived yet)
            ticker.bid = ticker.ask = ticker.bidSize = ticker.askSize = math.nan
            req_id = self.ib.wrapper.ticker2ReqId["mktData"].get(ticker, 0)
            stream = self._streams[instrument_id] = _QuoteStream(ticker, req_id)
            self._by_con_id[contract.conId] = instrument_id
            self.stats["quotes.subscribed"] += 1
        await stream.ready.wait()
        stream.ready.clear()
        if stream.ended is not None:
            if self._streams.get(instrument_id) is stream:
                del self._streams[instrument_id]
            raise stream.ended
        item, stream.latest = stream.latest, None
        if isinstance(item, VenueDataError):
            raise item
        assert item is not None
        self.stats["quotes.handed"] += 1
        return item

    def on_tickers(self, tickers: Iterable[Any]) -> None:
        """A batch of ticks: each streamed contract's bid / ask as it now stands."""
        for ticker in tickers:
            iid = self._by_con_id.get(ticker.contract.conId, -1)
            stream = self._streams.get(iid)
            if stream is None or stream.ticker is not ticker or stream.ended is not None:
                continue
            if _unset(ticker.bid) or _unset(ticker.ask):
                continue  # a side IB has not stated yet (a new stream's first ticks)
            if ticker.marketDataType != 1:  # delayed (3, 4) or frozen (2): not a live quote
                kind = ticker.marketDataType
                self._end(iid, VenueError("DELAYED_DATA", f"IB market data type {kind}, not live"))
                continue
            quote: VenueQuote | VenueDataError
            try:
                quote = _venue_quote(self.instruments[iid], ticker)
            except VenueDataError as error:
                self.stats["quotes.bad"] += 1
                quote = error  # handed to the watcher: an empty side is not dropped silently
            if stream.latest is not None:
                self.stats["quotes.superseded"] += 1
            stream.latest = quote
            stream.ready.set()

    def on_error(self, req_id: int, code: int, message: str) -> None:
        """IB's error for a request id: for a quote stream's, a market data refusal
        (``MARKET_DATA``) or any other error (200, 300, ...) ends it; warnings (2100-2199) do not."""
        if code not in MARKET_DATA and 2100 <= code < 2200:
            return
        for iid, stream in self._streams.items():
            if stream.req_id == req_id and stream.ended is None:
                self.stats[f"quotes.error.{code}"] += 1
                self._end(iid, map_ib_error(code, message))
                return

    def lose(self, why: str) -> None:
        """The connection or its market data was lost: every live stream ends, retriable."""
        for iid, stream in list(self._streams.items()):
            if stream.ended is None:
                self._end(iid, VenueError("VENUE_UNAVAILABLE", why, retriable=True))

    def stop(self) -> None:
        """Stop: every stream cancelled at TWS; a watcher still waiting hears so."""
        for iid in list(self._streams):
            if self._streams[iid].ended is None:
                self._end(iid, VenueError("VENUE_UNAVAILABLE", "quote streams stopped"))
                self.stats["quotes.cancelled"] += 1
        self._streams.clear()

    def _end(self, instrument_id: int, error: VenueError) -> None:
        """A stream ended: cancelled at TWS (ib_async forgets its request id) and its watcher
        hears ``error``; the next ``watch`` subscribes again."""
        stream = self._streams[instrument_id]
        stream.ended, stream.latest = error, None
        stream.ready.set()
        if self.ib.isConnected():
            self.ib.cancelMktData(stream.ticker.contract)
        self.stats["quotes.ended"] += 1
