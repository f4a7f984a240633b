"""ccxt markets -> Instruments through the real ccxt library: each exchange's own ``load_markets``
runs on market-listing responses stored under ``tests/data/recorded/ccxt_markets`` (written in the
venues' response structure; ``fetch`` is answered from them, so no request leaves the machine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from domain.instruments import Instrument
from venues.ccxt_markets import (
    DECIMAL_PLACES,
    SIGNIFICANT_DIGITS,
    TICK_SIZE,
    MarketMappingError,
    instrument_from_market,
    instruments_from_exchange,
)

ccxt = pytest.importorskip("ccxt", reason="ccxt is in the dev/live extras")

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded" / "ccxt_markets"


def _binance() -> Any:
    exchange = ccxt.binance({"options": {"fetchMarkets": {"types": ["spot", "linear", "inverse", "option"]}}})
    requested: list[str] = []

    def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        requested.append(url)
        name = "binance_" + urlparse(url).path.strip("/").replace("/", "_") + ".json"
        return json.loads((RECORDED / name).read_text())

    exchange.fetch = fetch
    exchange.load_markets()
    assert [urlparse(url).path for url in requested] == [
        "/api/v3/exchangeInfo", "/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo", "/eapi/v1/exchangeInfo",
    ]  # fmt: skip
    return exchange


def _okx() -> Any:
    exchange = ccxt.okx({"options": {"fetchMarkets": {"types": ["spot", "swap"]}}})
    bodies = json.loads((RECORDED / "okx_api_v5_public_instruments.json").read_text())

    def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        assert urlparse(url).path == "/api/v5/public/instruments"
        return bodies[parse_qs(urlparse(url).query)["instType"][0]]

    exchange.fetch = fetch
    exchange.load_markets()
    return exchange


@pytest.fixture(scope="module")
def binance() -> Any:
    return _binance()


@pytest.fixture(scope="module")
def okx() -> Any:
    return _okx()


def _map(exchange: Any, symbol: str, **kwargs: Any) -> Instrument:
    return instrument_from_market(
        exchange.markets[symbol],
        precision_mode=exchange.precisionMode,
        instrument_id=7,
        venue=exchange.id,
        **kwargs,
    )


def test_precision_mode_constants_are_ccxts() -> None:
    from ccxt.base import decimal_to_precision as dtp

    assert (dtp.DECIMAL_PLACES, dtp.SIGNIFICANT_DIGITS, dtp.TICK_SIZE) == (
        DECIMAL_PLACES,
        SIGNIFICANT_DIGITS,
        TICK_SIZE,
    )
    assert ccxt.binance().precisionMode == TICK_SIZE
    assert ccxt.bitfinex().precisionMode == SIGNIFICANT_DIGITS


def test_binance_spot_pair(binance: Any) -> None:
    inst = _map(binance, "BTC/USDT")
    assert inst == Instrument(
        instrument_id=7,
        symbol="BTC/USDT",
        venue="binance",
        asset_class="crypto_spot",
        currency="USDT",
        price_digits=2,
        tick_raw=1,  # tickSize "0.01000000"
        qty_digits=5,
        lot_raw=1,  # stepSize "0.00001000"
        multiplier=1,
        min_notional_minor=5_000_000,  # NOTIONAL minNotional "5.00000000" USDT at 1e-6
    )


def test_binance_linear_perpetual(binance: Any) -> None:
    inst = _map(binance, "BTC/USDT:USDT")
    assert (inst.asset_class, inst.currency, inst.multiplier) == ("crypto_perp", "USDT", 1)
    assert (inst.price_digits, inst.tick_raw) == (1, 1)  # tickSize "0.10": one digit, not two
    assert (inst.qty_digits, inst.lot_raw) == (3, 1)
    assert inst.min_notional_minor == 100_000_000  # MIN_NOTIONAL notional "100"


def test_binance_dated_linear_future(binance: Any) -> None:
    inst = _map(binance, "BTC/USDT:USDT-251226")
    assert (inst.asset_class, inst.currency, inst.multiplier) == ("crypto_future", "USDT", 1)
    assert (inst.price_digits, inst.tick_raw, inst.qty_digits, inst.lot_raw) == (1, 1, 3, 1)
    assert inst.min_notional_minor == 5_000_000


def test_binance_option(binance: Any) -> None:
    call = _map(binance, "BTC/USDT:USDT-251226-100000-C")
    assert (call.asset_class, call.currency, call.multiplier) == ("option", "USDT", 1)
    assert (call.price_digits, call.tick_raw) == (0, 5)  # tickSize "5": a tick of 5 at 0 digits
    assert (call.qty_digits, call.lot_raw) == (2, 1)
    assert (call.underlying, call.strike_raw, call.expiry_day, call.right) == (
        "BTC/USDT",
        100_000,
        20251226,
        "call",
    )
    put = _map(binance, "BTC/USDT:USDT-251226-85000-P", price_digits=2)
    assert (put.price_digits, put.tick_raw, put.strike_raw, put.right) == (2, 500, 8_500_000, "put")


def test_inverse_contract_is_refused(binance: Any) -> None:
    with pytest.raises(MarketMappingError, match=r"BTC/USD:BTC: inverse contract \(settled in BTC\)"):
        _map(binance, "BTC/USD:BTC")


def test_inactive_market_is_refused_unless_asked(binance: Any) -> None:
    with pytest.raises(MarketMappingError, match="BNB/BTC: market is not active"):
        _map(binance, "BNB/BTC")
    inst = _map(binance, "BNB/BTC", allow_inactive=True)
    assert (inst.currency, inst.price_digits, inst.tick_raw, inst.qty_digits, inst.lot_raw) == (
        "BTC",
        6,
        1,
        3,
        1,
    )
    assert inst.min_notional_minor == 10_000  # 0.0001 BTC at 1e-8


def test_asked_digits_must_hold_the_tick(binance: Any) -> None:
    assert _map(binance, "BTC/USDT", price_digits=4).tick_raw == 100
    with pytest.raises(MarketMappingError, match=r"precision.price 0.01 needs 2 digits, 1 were asked for"):
        _map(binance, "BTC/USDT", price_digits=1)


def test_okx_spot_and_whole_contract_size(okx: Any) -> None:
    spot = _map(okx, "BTC/USDT")
    assert (spot.price_digits, spot.tick_raw, spot.qty_digits, spot.lot_raw) == (1, 1, 8, 1)
    assert spot.min_notional_minor == 0  # OKX states no minimum cost for spot
    xrp = _map(okx, "XRP/USDT:USDT")
    assert (xrp.asset_class, xrp.multiplier, xrp.currency) == ("crypto_perp", 100, "USDT")  # ctVal "100"
    assert (xrp.price_digits, xrp.tick_raw, xrp.qty_digits, xrp.lot_raw) == (4, 1, 2, 1)


def test_fractional_contract_size_is_refused(okx: Any) -> None:
    with pytest.raises(MarketMappingError, match=r"BTC/USDT:USDT: contractSize 0.01 is not a positive whole"):
        _map(okx, "BTC/USDT:USDT")


def test_significant_digits_mode_is_refused(binance: Any) -> None:
    market = binance.markets["BTC/USDT"]
    with pytest.raises(MarketMappingError, match="SIGNIFICANT_DIGITS mode"):
        instrument_from_market(
            market, precision_mode=ccxt.bitfinex().precisionMode, instrument_id=1, venue="bitfinex"
        )


def test_decimal_places_mode(binance: Any) -> None:
    market = dict(binance.markets["BTC/USDT"])
    market["precision"] = {"price": 2, "amount": 5}
    inst = instrument_from_market(market, precision_mode=DECIMAL_PLACES, instrument_id=1, venue="x")
    assert (inst.price_digits, inst.tick_raw, inst.qty_digits, inst.lot_raw) == (2, 1, 5, 1)
    market["precision"] = {"price": 0.5, "amount": 5}
    with pytest.raises(MarketMappingError, match="not a count of decimal places"):
        instrument_from_market(market, precision_mode=DECIMAL_PLACES, instrument_id=1, venue="x")


def test_instruments_from_exchange_numbers_in_order(binance: Any) -> None:
    insts = instruments_from_exchange(binance, ["BTC/USDT", "BTC/USDT:USDT"], first_id=10)
    assert [(i.instrument_id, i.symbol, i.venue) for i in insts] == [
        (10, "BTC/USDT", "binance"),
        (11, "BTC/USDT:USDT", "binance"),
    ]
    with pytest.raises(MarketMappingError, match="ETH/USDT: not among binance's loaded markets"):
        instruments_from_exchange(binance, ["ETH/USDT"])
