"""The local exchange's USD-M account (``FuturesEngine``, no I/O): signed positions, realized
profit exact to 1e-8, fees in USDT, funding at its times before the bar's matching, margin
refusals; and the same account through the real ``ccxt.pro.binanceusdm``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from decimal import Decimal as D
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli.live_cmd import open_venue
from cli.wiring import ConfigError
from lake.store import write_dataset
from sim.backtest import LiveConfig
from tests.factories import XRP_PERP, make_perp_dataset
from venues.ccxt_markets import instruments_from_exchange
from venues.ccxt_venue import CcxtVenue, OrderRequest, VenueError
from venues.local_exchange import (
    Bar,
    BinanceError,
    FuturesEngine,
    LocalExchange,
    LocalMarket,
    markets_from_dataset,
)

START_MS = 1_700_000_040_000 - 1_700_000_040_000 % 60_000


def _market(**fields: object) -> LocalMarket:
    bars = [
        Bar(START_MS + i * 60_000, D(100 + i), D(102 + i), D(98 + i), D(101 + i), D(10)) for i in range(12)
    ]
    return LocalMarket(
        base="BTC",
        quote="USDT",
        tick_size=D("0.01"),
        step_size=D("0.001"),
        interval="1m",
        bars=bars,
        funding=[(START_MS + 3 * 60_000 + 7, D("0.0001")), (START_MS + 6 * 60_000 + 7, D("-0.0002"))],
        **fields,  # type: ignore[arg-type]
    )


def _engine(**options: object) -> FuturesEngine:
    return FuturesEngine(
        [_market()], {"USDT": "1000"}, taker_fee=D("0.0004"), maker_fee=D("0.0002"), **options
    )  # type: ignore[arg-type]


def test_a_short_then_a_flip_to_long_books_exact_profit_fees_and_funding() -> None:
    engine = _engine()
    engine.step()  # bar 0 (open 100, close 101)
    engine.place({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.5"})
    engine.step()  # bar 1: sold 0.5 at its open, 101
    position = engine.positions["BTCUSDT"]
    assert (position.qty, position.cost) == (D("-0.5"), D("50.5"))
    fee_1 = D("0.5") * 101 * D("0.0004")
    assert engine.wallet == 1000 - fee_1
    engine.step()  # bar 2
    engine.step()  # bar 3 holds the first funding time: settled before its matching, at its close 104
    funding_1 = D("0.5") * 104 * D("0.0001")  # a short receives a positive rate
    assert engine.wallet == 1000 - fee_1 + funding_1
    assert engine.income[-1]["income"] == "0.00520000"
    engine.place({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.8"})
    engine.step()  # bar 4: bought 0.8 at 104: closes the short (-1.5 realized), opens 0.3 long
    assert (position.qty, position.cost) == (D("0.3"), D("31.2"))
    trade = engine.trades[max(engine.trades)]
    assert trade["realizedPnl"] == "-1.50000000" and trade["commission"] == "0.03328000"
    fee_2 = D("0.8") * 104 * D("0.0004")
    assert engine.wallet == 1000 - fee_1 + funding_1 - D("1.5") - fee_2
    engine.step()
    engine.step()  # bar 6: the second funding (-0.02%): a long receives, at the close 107
    assert engine.wallet == 1000 - fee_1 + funding_1 - D("1.5") - fee_2 + D("0.3") * 107 * D("0.0002")
    # realized profits plus traded notionals are the cost left (the identity reconciliation uses)
    realized = sum(D(t["realizedPnl"]) for t in engine.trades.values())
    traded = sum(
        (1 if t["side"] == "BUY" else -1) * D(t["qty"]) * D(t["price"]) for t in engine.trades.values()
    )
    assert realized + traded == position.cost


def test_a_partial_close_rounds_the_realized_profit_and_keeps_the_identity() -> None:
    engine = _engine()
    engine.step()
    engine.place({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.003"})
    engine.step()  # 0.003 at 101
    engine.place({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.004"})
    engine.step()  # 0.004 at 102: cost 0.711, entry 101.5714...
    engine.place({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.002"})
    engine.step()  # 0.002 at 103
    rows = list(engine.trades.values())
    realized = D(rows[-1]["realizedPnl"])
    assert realized == (D("0.002") * 103 - D("0.711") * 2 / 7).quantize(D("1e-8"))
    traded = sum((1 if t["side"] == "BUY" else -1) * D(t["qty"]) * D(t["price"]) for t in rows)
    assert realized + traded == engine.positions["BTCUSDT"].cost
    engine.place({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.005"})
    engine.step()
    assert engine.positions["BTCUSDT"].qty == 0 and engine.positions["BTCUSDT"].cost == 0


def test_margin_and_filters_are_refused_with_binance_codes() -> None:
    engine = _engine(leverage=2)
    engine.step()
    with pytest.raises(BinanceError) as refused:
        engine.place(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "25"}
        )  # 2525 / 2 > 1000
    assert refused.value.code == -2019
    with pytest.raises(BinanceError) as lot:
        engine.place({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0005"})
    assert lot.value.code == -1013
    engine.place({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "quantity": "10", "price": "150",
                  "timeInForce": "GTC"})  # fmt: skip
    with pytest.raises(BinanceError):  # the resting order holds margin too
        engine.place({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "10"})


def test_a_cancel_frees_a_resting_orders_margin_and_a_second_cancel_is_unknown() -> None:
    engine = _engine(leverage=2)
    engine.step()
    order, _ = engine.place({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "quantity": "10",
                             "price": "150", "timeInForce": "GTC"})  # fmt: skip
    held = engine.available()
    cancelled, events = engine.cancel({"symbol": "BTCUSDT", "orderId": str(order.order_id)})
    assert cancelled.status == "CANCELED" and len(events) == 1
    assert engine.available() > held  # its margin is free again: no account event, nothing locked
    with pytest.raises(BinanceError) as again:
        engine.cancel({"symbol": "BTCUSDT", "orderId": str(order.order_id)})
    assert again.value.code == -2011


def test_binanceusdm_trades_a_short_and_reads_funding_and_positions() -> None:
    ccxt_pro = pytest.importorskip("ccxt.pro")

    async def run() -> None:
        async with LocalExchange(
            [_market()], {"USDT": "1000"}, api_secret="s", market_type="usdm", taker_fee=D("0.0004")
        ) as exchange:
            client = ccxt_pro.binanceusdm(exchange.ccxt_config(secret="s", rate_limit_ms=1))
            try:
                await client.load_markets()
                (inst,) = instruments_from_exchange(client, ["BTC/USDT:USDT"])  # venues.ccxt_markets
                assert (inst.asset_class, inst.currency, inst.multiplier) == ("crypto_perp", "USDT", 1)
                assert (inst.tick_raw, inst.price_digits, inst.lot_raw, inst.qty_digits) == (1, 2, 1, 3)
                await exchange.step()
                await client.create_order(
                    "BTC/USDT:USDT", "market", "sell", 0.5, None, {"clientOrderId": "t-1"}
                )
                watched = asyncio.ensure_future(client.watch_orders())
                await asyncio.sleep(0.2)
                await exchange.step(4)
                assert (await watched)[-1]["status"] == "closed"
                (position,) = await client.fetch_positions(["BTC/USDT:USDT"])
                assert position["side"] == "short" and position["info"]["positionAmt"] == "-0.50000000"
                (settled,) = await client.fetch_funding_rate_history("BTC/USDT:USDT")
                assert settled["info"]["markPrice"] == "104.00000000"
                (paid,) = await client.fetch_funding_history("BTC/USDT:USDT")
                assert paid["info"]["income"] == "0.00520000"
                rate = await client.fetch_funding_rate("BTC/USDT:USDT")
                assert rate["info"]["nextFundingTime"] == START_MS + 6 * 60_000 + 7
                (trade,) = await client.fetch_my_trades("BTC/USDT:USDT")
                assert trade["side"] == "sell" and trade["fee"]["currency"] == "USDT"
                balance = await client.fetch_balance()
                assert balance["info"]["assets"][0]["walletBalance"] == "999.98500000"  # -0.0202 + 0.0052
            finally:
                await client.close()

    asyncio.run(run())


def test_a_live_usdm_session_refuses_an_account_in_hedge_mode_before_any_order() -> None:
    """``tape live`` on USD-M reads the account's position mode through ccxt
    (``fetch_position_mode``) when it opens the venue: one-way trades on; hedge mode (where
    Binance refuses every order without a position side, -4061, mapped to POSITION_MODE) is
    refused with what to do, before reconciliation sends anything."""
    ccxt_pro = pytest.importorskip("ccxt.pro")
    settings = LiveConfig(market="usdm")

    async def run() -> None:
        async with LocalExchange(
            [_market()], {"USDT": "1000"}, api_secret="s", market_type="usdm"
        ) as exchange:
            config = exchange.ccxt_config(secret="s", rate_limit_ms=1)
            async with contextlib.AsyncExitStack() as stack:
                venue = await open_venue(settings, "binanceusdm", config, [], stack, None, 0)  # type: ignore[arg-type]
                assert await venue.hedge_mode() is False
            assert isinstance(exchange.engine, FuturesEngine)
            exchange.engine.hedge_mode = True
            async with contextlib.AsyncExitStack() as stack:
                with pytest.raises(ConfigError, match=r"hedge mode .* switch the account to one-way mode"):
                    await open_venue(settings, "binanceusdm", config, [], stack, None, 0)  # type: ignore[arg-type]
            async with contextlib.AsyncExitStack() as stack:  # what an order would have met
                client = ccxt_pro.binanceusdm(config)
                stack.push_async_callback(client.close)
                await client.load_markets()
                (inst,) = instruments_from_exchange(client, ["BTC/USDT:USDT"])
                venue = CcxtVenue(client, [inst], retries=0)
                await exchange.step()
                with pytest.raises(VenueError) as refused:
                    await venue.place(
                        OrderRequest(client_order_id="h-1", instrument_id=inst.instrument_id, side=1,
                                     order_type="market", qty_raw=100)
                    )  # fmt: skip
                assert (refused.value.rule, refused.value.venue_code) == ("POSITION_MODE", -4061)
            assert not exchange.engine.orders

    asyncio.run(run())


def test_funding_settles_at_the_data_sets_mark_where_it_states_one(tmp_path: Path) -> None:
    """QA: the local exchange settled every funding at its bar's close, while a backtest on a
    data set with marks (``funding.parquet``'s ``mark``) books it at the mark. Now a funding
    time with a mark settles at it (and states it as the mark it settled at); one without (0)
    at the bar's close, as before."""
    hourly = make_perp_dataset(tmp_path / "plain", bars=6)
    bars = pq.read_table(hourly / "bars.parquet")
    closes = bars.column("ts_ns").to_pylist()
    funding = pa.table(
        {
            "ts_ns": [closes[2] - 10**9 * 3_600 + 17_000_000, closes[4] - 10**9 * 3_600 + 7_000_000],
            "instrument_id": pa.array([1, 1], pa.int32()),
            "rate_e8": [10_000, 10_000],
            "mark": [12_345, 0],  # 1.2345 at the first funding; none at the second
        }
    )
    path = tmp_path / "marked"
    write_dataset(path, name="perp", frequency="1h", calendar="24x7", instruments=[XRP_PERP], bars=bars,
                  funding=funding)  # fmt: skip
    (market,) = markets_from_dataset(path)
    first_ms, second_ms = (int(ts) // 1_000_000 for ts in funding.column("ts_ns").to_pylist())
    assert market.funding_marks == {first_ms: D("1.2345")}
    engine = FuturesEngine([market], {"USDT": "1000"})
    engine.step()
    engine.place({"symbol": "XRPUSDT", "side": "BUY", "type": "MARKET", "quantity": "100"})
    for _ in range(4):
        engine.step()  # the fill at bar 1's open, then bars 2 (first funding) to 4 (second)
    first, second = engine.funding_settled["XRPUSDT"]
    close_4 = D(bars.column("close")[4].as_py()) / 10_000
    assert (first["fundingTime"], first["markPrice"]) == (first_ms, "1.23450000")  # was bar 2's close
    assert (second["fundingTime"], D(second["markPrice"])) == (second_ms, close_4)
    assert [D(row["income"]) for row in engine.income] == [
        -100 * D("1.2345") * D("0.0001"),
        -100 * close_4 * D("0.0001"),
    ]
    with pytest.raises(ValueError, match="no funding time"):
        dataclasses.replace(market, funding_marks={first_ms + 1: D(1)})
