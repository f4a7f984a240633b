"""The ccxt fetch_ohlcv pager on recorded Binance kline responses, parsed by ccxt itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lake.fetch import fetch_ohlcv_into_lake
from lake.partitioned import Lake
from lake.schema import Kind

ccxt = pytest.importorskip("ccxt", reason="ccxt is in the dev/live extras")

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded" / "binance"
T0_MS = 1_637_971_200_000  # 2021-11-27 00:00 UTC
MINUTE_MS = 60_000


class RecordedBinance:
    """``fetch_ohlcv`` answered from recorded ``GET /api/v3/klines`` bodies through
    ``ccxt.binance().parse_ohlcvs``; a request nobody recorded fails the test."""

    rateLimit = 50.0

    def __init__(self) -> None:
        self.exchange = ccxt.binance()
        self.calls: list[int | None] = []

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None, limit: int | None
    ) -> list[list[Any]]:
        assert (symbol, timeframe, limit) == ("BTC/USDT", "1m", 3)
        self.calls.append(since)
        body = json.loads((RECORDED / f"klines_BTCUSDT_1m_since_{since}.json").read_text())
        return self.exchange.parse_ohlcvs(body, None, timeframe, since, limit)


def fetch(root: Path, exchange: RecordedBinance, end_minutes: int, pauses: list[float]) -> object:
    return fetch_ohlcv_into_lake(
        root,
        exchange,
        symbol="BTC/USDT",
        venue="binance",
        frequency="1m",
        start_ms=T0_MS,
        end_ms=T0_MS + end_minutes * MINUTE_MS,
        price_digits=2,
        qty_digits=5,
        limit=3,
        pages_per_commit=1,
        pause=pauses.append,
    )


def test_pages_rate_limits_and_resumes_from_the_last_stored_bar(tmp_path: Path) -> None:
    first, pauses = RecordedBinance(), []
    result = fetch(tmp_path, first, 4, pauses)
    assert first.calls == [T0_MS, T0_MS + 3 * MINUTE_MS]
    assert (result.pages, result.candles, result.resumed_from_ms) == (2, 4, None)  # type: ignore[attr-defined]
    assert pauses == [0.05]
    second = RecordedBinance()
    result = fetch(tmp_path, second, 10, [])
    assert result.resumed_from_ms == T0_MS + 4 * MINUTE_MS  # type: ignore[attr-defined]
    assert second.calls == [T0_MS + 4 * MINUTE_MS, T0_MS + 7 * MINUTE_MS]  # the last page is empty
    bars = Lake(tmp_path).read(Kind.BARS, "1m")
    assert bars.num_rows == 7
    assert bars.column("ts_ns").to_pylist() == [(T0_MS + (i + 1) * MINUTE_MS) * 1_000_000 for i in range(7)]
    assert bars.column("close").to_pylist()[0] == 5_712_001  # "57120.01" at 2 digits, via ccxt's floats
    assert bars.column("volume").to_pylist()[0] == 1_234_567
    assert Lake(tmp_path).verify() == []
