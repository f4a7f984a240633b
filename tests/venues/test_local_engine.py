"""The local exchange's engine and inputs without a server: fill prices, locks, refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.venues._local import btc_market
from venues.local_exchange import Bar, Engine, LocalMarket


def test_market_and_bar_inputs_are_checked() -> None:
    bar = btc_market().bars[0]
    with pytest.raises(ValueError, match="off the tick"):
        LocalMarket(
            base="BTC",
            quote="USDT",
            tick_size=Decimal("0.5"),
            step_size=Decimal(1),
            interval="1m",
            bars=[Bar(bar.open_ms, Decimal("100.25"), Decimal(101), Decimal(99), Decimal(100), Decimal(1))],
        )
    with pytest.raises(ValueError, match="low <= open"):
        Bar(bar.open_ms, Decimal(100), Decimal(99), Decimal(98), Decimal(100), Decimal(1))
    with pytest.raises(ValueError, match="interval"):
        LocalMarket(
            base="BTC", quote="USDT", tick_size=Decimal(1), step_size=Decimal(1), interval="7m", bars=[]
        )


def test_engine_fills_a_limit_at_a_better_open_and_releases_the_difference() -> None:
    engine = Engine([btc_market()], {"USDT": "1000"})
    engine.step()  # bar 1: 100 / 102 / 98 / 101
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    order, events = engine.place(params | {"quantity": "1", "price": "105", "newClientOrderId": "better"})
    assert [e["e"] for e in events] == ["executionReport", "outboundAccountPosition"]
    assert engine.locked["USDT"] == Decimal(105)
    result = engine.step()  # bar 2 opens at 101, below the 105 limit: filled at 101
    assert order.status == "FILLED" and engine.trades[1]["price"] == "101.00000000"
    assert (engine.free["USDT"], engine.locked["USDT"], engine.free["BTC"]) == (Decimal(899), 0, Decimal(1))
    assert [e.get("x") for e in result.events] == ["TRADE", None]
    with pytest.raises(Exception, match="-1013 Filter failure: PRICE_FILTER"):
        engine.place(params | {"quantity": "1", "price": "100.001"})
    with pytest.raises(Exception, match="-1100 Illegal characters"):
        engine.place(params | {"quantity": "1e3", "price": "100"})
