"""Shared helpers for the local-exchange tests: a small market, a started exchange with a real
ccxt.pro client pointed at it, and waits that poll instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from venues.ccxt_markets import instruments_from_exchange
from venues.ccxt_venue import CcxtVenue, Update
from venues.local_exchange import Bar, LocalExchange, LocalMarket

SECRET = "test-secret"
START_MS = 1_700_000_040_000 - 1_700_000_040_000 % 60_000


def btc_bars(count: int = 20) -> list[Bar]:
    """Open 100 + i, high open + 2, low open - 2, close open + 1, volume 10."""
    bars = []
    for i in range(count):
        o = Decimal(100 + i)
        bars.append(Bar(START_MS + i * 60_000, o, o + 2, o - 2, o + 1, Decimal(10)))
    return bars


def btc_market(**fields: Any) -> LocalMarket:
    return LocalMarket(
        base="BTC",
        quote="USDT",
        tick_size=Decimal("0.01"),
        step_size=Decimal("0.001"),
        interval="1m",
        bars=btc_bars(),
        **fields,
    )


@asynccontextmanager
async def local_session(
    markets: list[LocalMarket] | None = None,
    balances: dict[str, str] | None = None,
    **options: Any,
) -> AsyncIterator[tuple[LocalExchange, Any]]:
    """A started local exchange (HMAC checked) and a ccxt.pro binance client pointed at it."""
    import ccxt.pro
    async with LocalExchange(
        markets or [btc_market()], balances or {"USDT": "10000", "BTC": "1"}, api_secret=SECRET, **options
    ) as exchange:
        client = ccxt.pro.binance(exchange.ccxt_config(rate_limit_ms=1))
        try:
            yield exchange, client
        finally:
            await client.close()


async def venue_for(client: Any, symbols: tuple[str, ...] = ("BTC/USDT",), **options: Any) -> CcxtVenue:
    await client.load_markets()
    venue = CcxtVenue(client, instruments_from_exchange(client, list(symbols)), backoff_s=0.01, **options)
    await venue.load_markets()
    return venue


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def collect(
    venue: CcxtVenue, done: Callable[[list[Update]], bool], timeout: float = 5.0
) -> list[Update]:
    """Updates from the venue's queue until ``done`` holds for what was collected."""
    seen: list[Update] = []

    async def pull() -> None:
        while not done(seen):
            seen.append(await venue.updates.get())

    await asyncio.wait_for(pull(), timeout)
    return seen
