"""Exchange candles through ccxt ``fetch_ohlcv``: paged, rate-limited, resumable.

The fetch resumes from the last bar stored for the instrument (the next open time is that
bar's close), pages forward ``limit`` candles at a time, pauses ``rateLimit`` ms between
calls, and commits every ``pages_per_commit`` pages, so an interrupted fetch keeps what it
committed and the next run continues from there. Any ccxt exchange object works; tests use
recorded responses through ccxt's own ``parse_ohlcvs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lake.ingest import IngestReport, ingest
from lake.partitioned import Lake
from lake.schema import Kind, frequency_ns
from lake.sources import parse_ccxt_ohlcv

__all__ = ["FetchResult", "OhlcvSource", "fetch_ohlcv_into_lake"]

PAGES_MAX = 100_000
_MS = 1_000_000


class OhlcvSource(Protocol):
    rateLimit: float

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None, limit: int | None
    ) -> list[list[Any]]: ...


@dataclass
class FetchResult:
    pages: int = 0
    candles: int = 0
    resumed_from_ms: int | None = None
    reports: list[IngestReport] = field(default_factory=list)


def fetch_ohlcv_into_lake(
    lake_root: Path,
    exchange: OhlcvSource,
    *,
    symbol: str,
    venue: str,
    frequency: str,
    start_ms: int,
    end_ms: int,
    price_digits: int,
    qty_digits: int = 8,
    limit: int = 1000,
    pages_per_commit: int = 10,
    pause: Callable[[float], None] = time.sleep,
) -> FetchResult:
    """Fetch ``[start_ms, end_ms)`` open times (or from the last stored bar) into the lake."""
    step_ms = frequency_ns(frequency) // _MS
    since = _resume_ms(Lake(lake_root), venue, symbol, frequency)
    result = FetchResult(resumed_from_ms=since)
    since = max(start_ms, since or start_ms)
    batch: list[list[Any]] = []
    for _ in range(PAGES_MAX):
        if since >= end_ms:
            break
        if result.pages:
            pause(exchange.rateLimit / 1000.0)
        page = exchange.fetch_ohlcv(symbol, frequency, since, limit)
        result.pages += 1
        page = [row for row in page if since <= int(row[0]) < end_ms]
        if not page:
            break
        batch += page
        since = int(page[-1][0]) + step_ms
        if result.pages % pages_per_commit == 0:
            result.reports.append(
                _commit(lake_root, batch, symbol, venue, frequency, price_digits, qty_digits)
            )
            result.candles += len(batch)
            batch = []
    if batch:
        result.reports.append(_commit(lake_root, batch, symbol, venue, frequency, price_digits, qty_digits))
        result.candles += len(batch)
    return result


def _resume_ms(lake: Lake, venue: str, symbol: str, frequency: str) -> int | None:
    """Open time of the bar after the last stored one (its close), or None."""
    match = [i for i in lake.instruments() if (i.venue, i.symbol) == (venue, symbol)]
    if not match:
        return None
    stored = lake.read(Kind.BARS, frequency, instrument_ids=[match[0].instrument_id], columns=["ts_ns"])
    if stored.num_rows == 0:
        return None
    return int(stored.column("ts_ns")[-1].as_py()) // _MS


def _commit(
    lake_root: Path,
    rows: list[list[Any]],
    symbol: str,
    venue: str,
    frequency: str,
    price_digits: int,
    qty_digits: int,
) -> IngestReport:
    source = f"ccxt:{venue}:{symbol}:{frequency}:{int(rows[0][0])}"
    parsed = parse_ccxt_ohlcv(
        rows,
        source=source,
        symbol=symbol,
        venue=venue,
        frequency=frequency,
        price_digits=price_digits,
        qty_digits=qty_digits,
    )
    return ingest(lake_root, [Path(source)], lambda _path: parsed, check_exists=False)
