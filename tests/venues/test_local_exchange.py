"""The local exchange through the real ccxt client (``ccxt.pro.binance``), nothing mocked in ccxt:
markets, bars played vs fetched, klines and balances over websockets, signing, refusals."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import aiohttp
import pyarrow.parquet as pq
import pytest

pytest.importorskip("ccxt", reason="ccxt is in the dev/live extras")

import ccxt

from tests.factories import make_dataset
from tests.venues._local import START_MS, btc_market, local_session, venue_for, wait_until
from venues.local_exchange import LocalExchange, markets_from_dataset

pytestmark = pytest.mark.asyncio


async def test_binds_loopback_only_and_load_markets_reads_exchange_info_once() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        LocalExchange([btc_market()], {}, host="0.0.0.0")
    async with local_session() as (exchange, client):
        assert exchange.http_url.startswith("http://127.0.0.1:")
        markets = await client.load_markets()
        assert list(markets) == ["BTC/USDT"]
        market = markets["BTC/USDT"]
        assert (market["precision"]["price"], market["precision"]["amount"]) == (0.01, 0.001)
        assert exchange.request_log == [("GET", "/api/v3/exchangeInfo")]
        assert await client.fetch_time() == START_MS  # the market clock before any bar


async def test_bars_fetched_equal_the_bars_played_from_a_data_set(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "ds", symbols=2, bars=12, frequency="1m")
    markets = markets_from_dataset(dataset)
    async with local_session(markets, {"USD": "1000"}) as (exchange, client):
        venue = await venue_for(client, ("SYN0001/USD", "SYN0002/USD"))
        assert await venue.fetch_bars(1, "1m") == []  # nothing played yet
        await exchange.step(7)
        table = pq.read_table(dataset / "bars.parquet").to_pylist()
        for inst in venue.instruments.values():
            rows = [row for row in table if row["instrument_id"] == inst.instrument_id][:7]
            bars = await venue.fetch_bars(inst.instrument_id, "1m")
            assert [(b.open_ms * 1_000_000 + 60_000_000_000) for b in bars] == [row["ts_ns"] for row in rows]
            assert [(b.open_raw, b.high_raw, b.low_raw, b.close_raw, b.volume_raw) for b in bars] == [
                (row["open"], row["high"], row["low"], row["close"], row["volume"]) for row in rows
            ]
        since = await venue.fetch_bars(1, "1m", since_ms=markets[0].bars[5].open_ms, limit=1)
        assert [bar.open_ms for bar in since] == [markets[0].bars[5].open_ms]
        with pytest.raises(ccxt.BadRequest):  # -1120: only the data set's interval is played
            await client.fetch_ohlcv("SYN0001/USD", "5m")
        assert exchange.stats["rest.error.-1120"] == 1


async def test_kline_stream_delivers_each_played_bar() -> None:
    async with local_session() as (exchange, client):
        await client.load_markets()
        watch = asyncio.ensure_future(client.watch_ohlcv("BTC/USDT", "1m"))
        await wait_until(lambda: exchange.market_streams == 1)
        await exchange.step()
        assert await watch == [[START_MS, 100.0, 102.0, 98.0, 101.0, 10.0]]
        watch = asyncio.ensure_future(client.watch_ohlcv("BTC/USDT", "1m"))
        await exchange.step()
        assert await watch == [[START_MS + 60_000, 101.0, 103.0, 99.0, 102.0, 10.0]]


async def test_balance_stream_follows_locks() -> None:
    async with local_session() as (exchange, client):
        await client.load_markets()
        await exchange.step()
        watch = asyncio.ensure_future(client.watch_balance())
        await wait_until(lambda: exchange.user_streams == 1)
        await client.create_order("BTC/USDT", "limit", "buy", "0.5", "99", {"clientOrderId": "bal-1"})
        balance = await watch
        assert (balance["USDT"]["free"], balance["USDT"]["used"]) == (9950.5, 49.5)


async def test_signed_calls_need_the_key_and_a_valid_signature() -> None:
    async with local_session() as (exchange, client):
        await client.load_markets()
        async with aiohttp.ClientSession() as http:
            url = exchange.http_url + "/api/v3/account?timestamp=1&signature=00"
            async with http.get(url) as answer:
                assert answer.status == 401
                assert await answer.json() == {"code": -2014, "msg": "API-key format invalid."}
            async with http.get(url, headers={"X-MBX-APIKEY": exchange.api_key}) as answer:
                assert (await answer.json())["code"] == -1022
            async with http.get(exchange.http_url + "/fapi/v1/exchangeInfo") as answer:
                assert answer.status == 404
        client.secret = "wrong"
        with pytest.raises(ccxt.AuthenticationError):
            await client.fetch_balance()
        assert exchange.stats["rest.error.-2014"] == 1
        assert exchange.stats["rest.error.-1022"] == 2
        assert exchange.stats["rest.unsupported"] == 1


async def test_engine_refuses_bad_orders_with_binance_codes() -> None:
    async with local_session(balances={"USDT": "100", "BTC": "0"}) as (exchange, client):
        await client.load_markets()
        with pytest.raises(ccxt.InvalidOrder, match="no bar has been played"):
            await client.create_order("BTC/USDT", "market", "buy", "0.1")
        await exchange.step()
        with pytest.raises(ccxt.InsufficientFunds):
            await client.create_order("BTC/USDT", "limit", "buy", "2", "99")
        with pytest.raises(ccxt.InsufficientFunds):
            await client.create_order("BTC/USDT", "market", "sell", "0.1")
        with pytest.raises(ccxt.OrderNotFound):
            await client.cancel_order("12345", "BTC/USDT")
        assert exchange.stats["rest.error.-2010"] == 3
        assert exchange.stats["rest.error.-2011"] == 1
        assert exchange.engine.free == {"USDT": Decimal(100), "BTC": Decimal(0)}


async def test_listen_key_stream_and_timed_play() -> None:
    async with local_session() as (exchange, client):
        await client.load_markets()
        async with aiohttp.ClientSession() as http:
            headers = {"X-MBX-APIKEY": exchange.api_key}
            async with http.post(exchange.http_url + "/api/v3/userDataStream", headers=headers) as answer:
                key = (await answer.json())["listenKey"]
            async with http.ws_connect(f"ws://127.0.0.1:{exchange.port}/ws/{key}") as ws:
                await wait_until(lambda: exchange.user_streams == 1)
                player = exchange.play(bars_per_second=500)
                await wait_until(lambda: exchange.engine.step_count >= 1)
                await client.create_order(
                    "BTC/USDT", "limit", "sell", "0.1", "150", {"clientOrderId": "lk-1"}
                )
                report = await ws.receive_json(timeout=5)
                assert (report["e"], report["c"], report["X"]) == ("executionReport", "lk-1", "NEW")
                await asyncio.wait_for(player, 5)
        assert exchange.engine.remaining_steps == 0
        assert len(await client.fetch_ohlcv("BTC/USDT", "1m")) == 20
