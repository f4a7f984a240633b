"""Markets and bars the local exchange plays: built by hand or read from a Tape data set.

A bar is the exchange's own decimal view (``Decimal`` prices and volume, open time in ms): the
local exchange speaks Binance's decimal strings, so it keeps decimals and never floats.

``markets_from_dataset`` reads a data set folder as ``lake.store.write_dataset`` lays it out
(``manifest.json`` frequency, ``instruments.parquet``, ``bars.parquet`` with raw integer prices
at each instrument's ``price_digits`` and ``ts_ns`` the bar's *close*). It reads those files
directly with pyarrow (``venues`` may not import ``lake``); the layout is the data contract in
``docs/data_contracts``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import msgspec
import pyarrow.parquet as pq

from domain.fixed import to_decimal
from domain.instruments import Instrument

__all__ = ["INTERVAL_MS", "Bar", "LocalMarket", "markets_from_dataset"]

INTERVAL_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}
"""Binance kline intervals the local exchange can play (the bar length of a market)."""

_ASSET = re.compile(r"^[A-Z0-9]{1,20}$")


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar: ``open_ms`` is the bar's open time (Binance's kline ``t``)."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    def __post_init__(self) -> None:
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            raise ValueError(f"bar at {self.open_ms}: needs low <= open, close <= high, got {self}")
        if self.low <= 0 or self.volume < 0:
            raise ValueError(f"bar at {self.open_ms}: prices must be positive and volume >= 0, got {self}")


@dataclass(frozen=True)
class LocalMarket:
    """One spot market: Binance id is ``base + quote`` (``BTCUSDT``); filters as Binance states them."""

    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    interval: str
    bars: Sequence[Bar]
    min_qty: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)
    funding: Sequence[tuple[int, Decimal]] = ()
    """USD-M perpetuals only: (funding time in ms, rate) rows, sorted (``markets_from_dataset``
    reads them from the data set's ``funding.parquet``)."""
    funding_marks: Mapping[int, Decimal] = field(default_factory=dict)
    """USD-M perpetuals only: the mark price at a funding time (ms) of ``funding`` where the data
    set states one (``funding.parquet``'s ``mark`` column, 0 = none there): that funding settles
    at it, as a backtest books it; a funding time without one settles at its bar's close."""
    id: str = field(init=False)

    def __post_init__(self) -> None:
        for asset in (self.base, self.quote):
            if not _ASSET.match(asset):
                raise ValueError(f"asset {asset!r}: Binance asset codes are 1-20 upper-case letters/digits")
        if self.interval not in INTERVAL_MS:
            raise ValueError(
                f"{self.base}{self.quote}: interval {self.interval!r} not in {sorted(INTERVAL_MS)}"
            )
        if self.tick_size <= 0 or self.step_size <= 0:
            raise ValueError(f"{self.base}{self.quote}: tick_size and step_size must be positive")
        if self.min_qty < 0 or self.min_notional < 0:
            raise ValueError(f"{self.base}{self.quote}: min_qty and min_notional must be >= 0")
        object.__setattr__(self, "id", self.base + self.quote)
        times = [time_ms for time_ms, _ in self.funding]
        if times != sorted(set(times)):
            raise ValueError(f"{self.id}: funding times must be increasing")
        unknown = sorted(set(self.funding_marks) - set(times))
        if unknown:
            raise ValueError(f"{self.id}: a funding mark at {unknown[0]} ms, which is no funding time")
        if any(mark <= 0 for mark in self.funding_marks.values()):
            raise ValueError(f"{self.id}: funding mark prices must be positive")
        self._check_bars()

    def _check_bars(self) -> None:
        step = INTERVAL_MS[self.interval]
        previous = None
        for bar in self.bars:
            if bar.open_ms % step:
                raise ValueError(f"{self.id}: bar open {bar.open_ms} is not on the {self.interval} grid")
            if previous is not None and bar.open_ms <= previous:
                raise ValueError(
                    f"{self.id}: bars must be in increasing time, {bar.open_ms} after {previous}"
                )
            for name in ("open", "high", "low", "close"):
                value = getattr(bar, name)
                if value % self.tick_size:
                    raise ValueError(
                        f"{self.id}: bar {bar.open_ms} {name} {value} is off the tick {self.tick_size}"
                    )
            previous = bar.open_ms


def _split_symbol(instrument: Instrument) -> tuple[str, str]:
    symbol = instrument.symbol
    if "/" in symbol:
        base, quote = symbol.split("/", 1)
        return base, quote.split(":", 1)[0]
    return re.sub(r"[^A-Z0-9]", "", symbol.upper()), instrument.currency


def _funding_rows(path: Path) -> tuple[dict[int, list[tuple[int, Decimal]]], dict[int, dict[int, int]]]:
    """The data set's funding table (optional ``funding.parquet``) by instrument id: (ms, rate)
    rows, and the raw mark price at each funding time (ms) that has one (its optional ``mark``
    column: 0 = none there, the bar's close is the mark, as the kernel reads it)."""
    funding: dict[int, list[tuple[int, Decimal]]] = {}
    marks: dict[int, dict[int, int]] = {}
    if (path / "funding.parquet").exists():
        rates = pq.read_table(path / "funding.parquet").to_pydict()
        column = rates.get("mark") or [0] * len(rates["ts_ns"])
        rows = zip(rates["ts_ns"], rates["instrument_id"], rates["rate_e8"], column, strict=True)
        for ts_ns, iid, rate_e8, mark in rows:
            time_ms = int(ts_ns) // 1_000_000
            funding.setdefault(int(iid), []).append((time_ms, to_decimal(int(rate_e8), 8)))
            if int(mark) > 0:
                marks.setdefault(int(iid), {})[time_ms] = int(mark)
    return funding, marks


def markets_from_dataset(
    path: Path, *, assets: Mapping[str, tuple[str, str]] | None = None, symbols: Sequence[str] | None = None
) -> list[LocalMarket]:
    """Spot markets for a Tape data set: tick and step from each instrument, bars from ``bars.parquet``.

    The base/quote assets are the instrument symbol's ``BASE/QUOTE`` parts, or ``(symbol,
    currency)`` for a symbol without a slash; ``assets`` overrides them per instrument symbol.
    ``symbols`` picks instruments (default: all).
    """
    path = Path(path)
    manifest_file = path / "manifest.json"
    if not manifest_file.exists():
        raise ValueError(f"{path}: not a data set (no manifest.json)")
    frequency = str(json.loads(manifest_file.read_text())["frequency"])
    if frequency not in INTERVAL_MS:
        raise ValueError(f"{path}: frequency {frequency!r} is not a Binance kline interval")
    instruments = [
        msgspec.convert(row, Instrument) for row in pq.read_table(path / "instruments.parquet").to_pylist()
    ]
    if symbols is not None:
        known = {inst.symbol for inst in instruments}
        missing = [name for name in symbols if name not in known]
        if missing:
            raise ValueError(f"{path}: no instrument named {missing}")
        instruments = [inst for inst in instruments if inst.symbol in symbols]
    table = pq.read_table(path / "bars.parquet")
    columns = {
        name: table.column(name).to_pylist()
        for name in ("ts_ns", "instrument_id", "open", "high", "low", "close", "volume")
    }
    rows: dict[int, list[int]] = {}
    for index, instrument_id in enumerate(columns["instrument_id"]):
        rows.setdefault(instrument_id, []).append(index)
    step_ns = INTERVAL_MS[frequency] * 1_000_000
    funding, funding_marks = _funding_rows(path)
    markets = []
    for inst in instruments:
        base, quote = assets[inst.symbol] if assets and inst.symbol in assets else _split_symbol(inst)

        def px(raw: int, inst: Instrument = inst) -> Decimal:
            return to_decimal(raw, inst.price_digits)

        bars = []
        for index in rows.get(inst.instrument_id, []):
            close_ns = columns["ts_ns"][index]
            if (close_ns - step_ns) % 1_000_000:
                raise ValueError(
                    f"{path}: {inst.symbol} bar closing at {close_ns} ns is not on a millisecond"
                )
            bars.append(
                Bar(
                    open_ms=(close_ns - step_ns) // 1_000_000,
                    open=px(columns["open"][index]),
                    high=px(columns["high"][index]),
                    low=px(columns["low"][index]),
                    close=px(columns["close"][index]),
                    volume=to_decimal(columns["volume"][index], inst.qty_digits),
                )
            )
        markets.append(
            LocalMarket(
                base=base,
                quote=quote,
                tick_size=to_decimal(inst.tick_raw, inst.price_digits),
                step_size=to_decimal(inst.lot_raw, inst.qty_digits),
                min_qty=to_decimal(inst.lot_raw, inst.qty_digits),
                interval=frequency,
                bars=bars,
                funding=sorted(funding.get(inst.instrument_id, [])),
                funding_marks={
                    time_ms: px(raw) for time_ms, raw in funding_marks.get(inst.instrument_id, {}).items()
                },
            )
        )
    return markets
