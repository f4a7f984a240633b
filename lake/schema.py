"""Data contracts: one Arrow schema per data kind (see ``docs/data_contracts/lake.md``).

Every timestamp is ``int64`` UTC nanoseconds. Every price is an ``int64`` raw integer at its
instrument's ``price_digits``; every quantity an ``int64`` at its ``qty_digits``. Turnover
(quote-currency amount) is raw at the instrument's ``price_digits`` too, so
``vwap_raw = turnover * 10**qty_digits / volume``. Rates are integers in ``1e-8`` units
(``domain.fixed.RATE_SCALE``). Corporate-action ratios are per 10 shares in ``1e-4`` units,
exactly as exchanges publish them (10送3派1.6 is ``bonus_per10_e4=30000, cash_per10_e4=16000``).
"""

from __future__ import annotations

import enum

import pyarrow as pa

__all__ = [
    "ACTION_SCALE",
    "BAR_FREQUENCIES",
    "BARS",
    "CORPORATE_ACTIONS",
    "FUNDING_RATES",
    "INSTRUMENTS",
    "Kind",
    "MARK_SUFFIX",
    "QUARANTINE",
    "QUOTES",
    "SCHEMAS",
    "TRADES",
    "SchemaError",
    "conform",
    "frequency_ns",
]

MARK_SUFFIX = "#mark"  # a perpetual's mark-price candles: SYMBOL#mark, a reference series

ACTION_SCALE = 10_000
"""Corporate-action ratios and per-10 cash are integers in 1e-4 units."""

_NS = 1_000_000_000
BAR_FREQUENCIES: dict[str, int] = {
    "1m": 60 * _NS,
    "5m": 300 * _NS,
    "15m": 900 * _NS,
    "30m": 1800 * _NS,
    "1h": 3600 * _NS,
    "4h": 4 * 3600 * _NS,
    "8h": 8 * 3600 * _NS,
    "1d": 86_400 * _NS,
}
"""Bar frequencies the lake stores, with their nominal length (a session day for ``1d``)."""


class SchemaError(ValueError):
    """A table that does not fit its data contract."""


class Kind(enum.StrEnum):
    BARS = "bars"
    TRADES = "trades"
    QUOTES = "quotes"
    CORPORATE_ACTIONS = "corporate_actions"
    FUNDING_RATES = "funding_rates"
    INSTRUMENTS = "instruments"


def _f(name: str, kind: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, kind, nullable=nullable)


BARS = pa.schema(
    [
        _f("ts_ns", pa.int64()),  # bar close (end of interval), UTC ns
        _f("day", pa.int32()),  # session date YYYYMMDD (exchange-local trading day)
        _f("instrument_id", pa.int32()),
        _f("open", pa.int64()),
        _f("high", pa.int64()),
        _f("low", pa.int64()),
        _f("close", pa.int64()),
        _f("volume", pa.int64()),  # raw at qty_digits
        _f("turnover", pa.int64(), nullable=True),  # quote amount, raw at price_digits; null = unknown
    ]
)
TRADES = pa.schema(
    [
        _f("ts_ns", pa.int64()),
        _f("instrument_id", pa.int32()),
        _f("trade_id", pa.int64(), nullable=True),
        _f("price", pa.int64()),
        _f("qty", pa.int64()),
        _f("side", pa.int8()),  # +1 buyer-initiated, -1 seller-initiated, 0 unknown / auction
    ]
)
QUOTES = pa.schema(
    [
        _f("ts_ns", pa.int64()),
        _f("instrument_id", pa.int32()),
        _f("bid_price", pa.int64()),
        _f("bid_qty", pa.int64()),
        _f("ask_price", pa.int64()),
        _f("ask_qty", pa.int64()),
    ]
)
CORPORATE_ACTIONS = pa.schema(
    [
        _f("instrument_id", pa.int32()),
        _f("ex_date", pa.int32()),  # YYYYMMDD, first session trading ex-right
        _f("bonus_per10_e4", pa.int64()),  # 送股 shares per 10
        _f("capitalization_per10_e4", pa.int64()),  # 转增 shares per 10
        _f("rights_per10_e4", pa.int64()),  # 配股 shares per 10
        _f("rights_price", pa.int64()),  # 配股价, raw at price_digits
        _f("cash_per10_e4", pa.int64()),  # 派息 currency per 10 shares, pre-tax
        _f("total_shares", pa.int64(), nullable=True),
        _f("free_shares", pa.int64(), nullable=True),
    ]
)
FUNDING_RATES = pa.schema(
    [
        _f("ts_ns", pa.int64()),  # funding time, UTC ns
        _f("instrument_id", pa.int32()),
        _f("rate_e8", pa.int64()),  # 0.01% = 10_000
    ]
)
INSTRUMENTS = pa.schema(
    [
        _f("instrument_id", pa.int64()),
        _f("symbol", pa.string()),
        _f("venue", pa.string()),
        _f("asset_class", pa.string()),
        _f("currency", pa.string()),
        _f("price_digits", pa.int64()),
        _f("tick_raw", pa.int64()),
        _f("qty_digits", pa.int64()),
        _f("lot_raw", pa.int64()),
        _f("multiplier", pa.int64()),
        _f("board", pa.string()),  # A-shares: main, star, chinext, bse, fund ("" elsewhere)
        # Set by a metadata file (lake.metadata); a lake written before them reads the defaults.
        _f("listing_day", pa.int64()),
        _f("st_periods", pa.list_(pa.list_(pa.int64()))),  # inclusive [first, last] YYYYMMDD pairs
        _f("sector", pa.string()),
        _f("country", pa.string()),
        _f("min_notional_minor", pa.int64()),
        _f("underlying", pa.string()),
        _f("strike_raw", pa.int64()),
        _f("expiry_day", pa.int64()),
        _f("right", pa.string()),
    ]
)
QUARANTINE = pa.schema(
    [
        _f("source", pa.string()),  # input file
        _f("line", pa.int64()),  # 1-based line in the input (header = line 1), or record index
        _f("instrument_id", pa.int32()),
        _f("ts_ns", pa.int64(), nullable=True),
        _f("reason", pa.string()),
        _f("detail", pa.string()),
        _f("record", pa.string()),  # the input values as JSON text, so nothing is lost
    ]
)

SCHEMAS: dict[Kind, pa.Schema] = {
    Kind.BARS: BARS,
    Kind.TRADES: TRADES,
    Kind.QUOTES: QUOTES,
    Kind.CORPORATE_ACTIONS: CORPORATE_ACTIONS,
    Kind.FUNDING_RATES: FUNDING_RATES,
    Kind.INSTRUMENTS: INSTRUMENTS,
}


def frequency_ns(frequency: str) -> int:
    try:
        return BAR_FREQUENCIES[frequency]
    except KeyError:
        raise SchemaError(f"unknown bar frequency {frequency!r}; one of {sorted(BAR_FREQUENCIES)}") from None


def conform(table: pa.Table, kind: Kind) -> pa.Table:
    """``table`` with exactly the contract's columns, order and types; refuses lossy casts
    and nulls in non-nullable columns."""
    schema = SCHEMAS[kind]
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise SchemaError(f"{kind}: missing columns {missing}")
    columns = []
    for field in schema:
        column = table.column(field.name)
        if not field.nullable and column.null_count:
            raise SchemaError(f"{kind}.{field.name}: {column.null_count} nulls in a non-nullable column")
        try:
            columns.append(column.cast(field.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise SchemaError(
                f"{kind}.{field.name}: cannot cast {column.type} to {field.type}: {error}"
            ) from None
    return pa.Table.from_arrays(columns, schema=schema)
