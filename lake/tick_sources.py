"""Trade and quote source formats: files as they come -> ``TradeInput``/``QuoteInput``.

Same rules as ``lake.sources``: a file that is not UTF-8, not readable Parquet/JSON, has the
wrong columns or a line with the wrong number of fields raises ``IngestError`` naming the
file and line; an empty or impossible *value* becomes a row that validation quarantines.

* ``parse_freqtrade_trades``: freqtrade ``PAIR-trades.parquet|feather|json[.gz]|csv``
  (ccxt trades: ``timestamp`` ms, ``id``, ``side`` buy/sell, ``price``, ``amount``).
* ``parse_kraken_trades``: Kraken trade CSV without header, ``unix_ts_s,price,volume``.
* ``parse_nautilus_trades`` / ``parse_nautilus_quotes``: nautilus_trader's Binance samples,
  ``.parquet`` or the ``.csv`` twin (ISO timestamps).
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq

from domain.instruments import Instrument
from lake.sources import (
    IngestError,
    Parsed,
    epoch_to_ns,
    floats,
    infer_digits,
    local_to_utc_ns,
    read_csv,
    source_lines,
    source_template,
)
from lake.validate import MISSING_TS, QuoteInput, TradeInput

__all__ = [
    "parse_freqtrade_trades",
    "parse_kraken_trades",
    "parse_nautilus_quotes",
    "parse_nautilus_trades",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_KNOWN_QUOTES = ("USDT", "USDC", "BUSD", "EUR", "USD", "GBP", "BTC", "ETH", "BNB", "JPY")


def _split_symbol(text: str) -> tuple[str, str]:
    """``XRP_ETH``/``XRP/ETH``/``BCHEUR``/``btcusdt`` -> (``XRP/ETH``, ``ETH``)."""
    text = text.upper().replace("_", "/").replace("-", "/")
    if "/" in text:
        base, quote = text.split("/")[:2]
        return f"{base}/{quote}", quote
    for quote in _KNOWN_QUOTES:
        if text.endswith(quote) and len(text) > len(quote):
            return f"{text[: -len(quote)]}/{quote}", quote
    return text, "USD"


def _instrument(
    path: Path,
    symbol: str,
    venue: str,
    price_digits: int | None,
    qty_digits: int | None,
    prices: list[FloatArray],
    sizes: list[FloatArray],
) -> Instrument:
    name, quote = _split_symbol(symbol)
    price = price_digits if price_digits is not None else infer_digits(*prices)
    qty = qty_digits if qty_digits is not None else infer_digits(*sizes)
    try:
        return source_template(name, venue, "crypto_spot", quote, price, qty, 1)
    except ValueError as error:
        raise IngestError(f"{path}:1: {error}") from None


def _read_columnar(path: Path, required: list[str]) -> pa.Table:
    """A Parquet or Feather file, with ``required`` columns present."""
    try:
        table = pq.read_table(path) if path.suffix == ".parquet" else feather.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise IngestError(f"{path}:0: not a readable {path.suffix[1:]} file ({error})") from None
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise IngestError(f"{path}:1: missing columns {missing}; has {table.column_names}")
    return table


def _numbers(table: pa.Table, name: str) -> FloatArray:
    """A column as float64 (NaN where missing or not a number)."""
    column = table.column(name)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.cast(pc.if_else(pc.utf8_is_numeric(column), column, None), pa.float64())
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _ids(table: pa.Table, name: str) -> IntArray:
    """An id column as int64 (``MISSING_TS`` where missing or not an integer)."""
    column = table.column(name)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.if_else(pc.match_substring_regex(column, r"^\s*-?\d{1,18}\s*$"), column, None)
        column = pc.cast(pc.utf8_trim_whitespace(column), pa.int64())
    elif pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        whole = np.isfinite(values) & (values == np.round(values))
        return np.where(whole, np.nan_to_num(values), MISSING_TS).astype(np.int64)
    return np.asarray(column.cast(pa.int64()).fill_null(MISSING_TS).to_numpy(), dtype=np.int64)


def _timestamps(path: Path, table: pa.Table, name: str) -> IntArray:
    """A timestamp column (Arrow timestamp, ISO text, or epoch ms) -> UTC ns."""
    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
        stamps = column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        return np.asarray(stamps.fill_null(MISSING_TS).to_numpy(), dtype=np.int64)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return local_to_utc_ns(column, "iso", "UTC")
    return epoch_to_ns(_numbers(table, name), 1_000_000)


def _sides(table: pa.Table, name: str, *, buyer_maker: bool = False) -> npt.NDArray[np.int8]:
    """``buy``/``sell`` (or a buyer-is-maker flag: maker buyer = seller-initiated) -> +1/-1/0."""
    text = [str(value).strip().lower() for value in table.column(name).to_pylist()]
    if buyer_maker:
        mapping = {"true": -1, "false": 1, "1": -1, "0": 1}
    else:
        mapping = {"buy": 1, "sell": -1, "b": 1, "s": -1}
    return np.array([mapping.get(value, 0) for value in text], dtype=np.int8)


# ---- freqtrade / ccxt trades -------------------------------------------------------------------

_FREQTRADE_TRADES = re.compile(r"^(?P<pair>.+?)-trades\.(?P<ext>parquet|feather|json|json\.gz|csv)$")
_CCXT = ["timestamp", "id", "side", "price", "amount"]


def parse_freqtrade_trades(
    path: Path,
    *,
    symbol: str | None = None,
    venue: str = "binance",
    price_digits: int | None = None,
    qty_digits: int | None = None,
) -> Parsed:
    """freqtrade/ccxt public trades. The pair comes from ``--symbol``, the records' ``symbol``
    (ccxt JSON), or the file name ``PAIR-trades.EXT``."""
    path = Path(path)
    match = _FREQTRADE_TRADES.match(path.name)
    ext = match.group("ext") if match else path.name.split(".", 1)[-1]
    lines: IntArray
    if ext in ("parquet", "feather"):
        table = _read_columnar(path, _CCXT)
        lines = np.arange(table.num_rows, dtype=np.int64) + 1
    elif ext == "csv":
        table = read_csv(
            path, required=_CCXT, numeric=["timestamp", "price", "amount"], strings=["id", "side"]
        )
        lines = source_lines(table.num_rows)
    elif ext in ("json", "json.gz"):
        table, found = _ccxt_json(path)
        symbol = symbol or found
        lines = np.arange(table.num_rows, dtype=np.int64) + 1
    else:
        raise IngestError(f"{path}:1: not a trades file (.parquet, .feather, .csv, .json[.gz])")
    symbol = symbol or (match.group("pair") if match else None)
    if not symbol:
        raise IngestError(f"{path}:1: no pair in the file name (PAIR-trades.EXT); pass --symbol")
    trades = TradeInput(
        source=str(path),
        instrument_id=0,
        line=lines,
        ts_ns=epoch_to_ns(_numbers(table, "timestamp"), 1_000_000),
        price=_numbers(table, "price"),
        qty=_numbers(table, "amount"),
        side=_sides(table, "side"),
        trade_id=_ids(table, "id"),
    )
    template = _instrument(path, symbol, venue, price_digits, qty_digits, [trades.price], [trades.qty])
    parsed = Parsed(str(path), None, "24x7", trades=[(template, trades)])
    parsed.ignored_columns = [name for name in table.column_names if name not in _CCXT]
    return parsed


def _ccxt_json(path: Path) -> tuple[pa.Table, str | None]:
    """ccxt trade dicts, or freqtrade's ``[ts, id, type, side, price, amount, cost]`` rows."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            payload = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError, EOFError, OSError) as error:
        line = getattr(error, "lineno", 1)
        raise IngestError(f"{path}:{line}: not valid JSON trades ({error})") from None
    if not isinstance(payload, list):
        raise IngestError(f"{path}:1: expected a JSON array of trades")
    columns: dict[str, list[object]] = {name: [] for name in _CCXT}
    symbol = None
    for index, row in enumerate(payload):
        if isinstance(row, dict) and all(name in row for name in _CCXT):
            for name in _CCXT:
                columns[name].append(row[name])
            symbol = symbol or row.get("symbol")
        elif isinstance(row, list) and len(row) == 7:
            for name, value in zip(_CCXT, (row[0], row[1], row[3], row[4], row[5]), strict=True):
                columns[name].append(value)
        else:
            raise IngestError(f"{path}:{index + 1}: record {index + 1} is not a ccxt trade: {row!r:.80}")
    table = pa.table(
        {
            "timestamp": pa.array([_float(v) for v in columns["timestamp"]], pa.float64()),
            "id": pa.array([None if v is None else str(v) for v in columns["id"]], pa.string()),
            "side": pa.array([str(v) for v in columns["side"]], pa.string()),
            "price": pa.array([_float(v) for v in columns["price"]], pa.float64()),
            "amount": pa.array([_float(v) for v in columns["amount"]], pa.float64()),
        }
    )
    return table, symbol if isinstance(symbol, str) else None


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


# ---- Kraken trade CSV --------------------------------------------------------------------------


def parse_kraken_trades(
    path: Path,
    *,
    symbol: str | None = None,
    venue: str = "kraken",
    price_digits: int | None = None,
    qty_digits: int | None = 8,
) -> Parsed:
    """Kraken's trade history CSV, no header: ``unix_ts_s,price,volume`` (no ids, no side).
    The pair defaults to the file name up to the first ``_`` (``BCHEUR_q2.csv`` -> BCH/EUR)."""
    path = Path(path)
    names = ["unix_ts_s", "price", "volume"]
    table = read_csv(path, required=names, numeric=names, names=names)
    trades = TradeInput(
        source=str(path),
        instrument_id=0,
        line=source_lines(table.num_rows, header=False),
        ts_ns=epoch_to_ns(floats(table, "unix_ts_s"), 1_000_000_000),
        price=floats(table, "price"),
        qty=floats(table, "volume"),
        side=np.zeros(table.num_rows, dtype=np.int8),
        trade_id=None,
    )
    name = symbol or path.name.split(".")[0].split("_")[0]
    template = _instrument(path, name, venue, price_digits, qty_digits, [trades.price], [trades.qty])
    return Parsed(str(path), None, "24x7", trades=[(template, trades)])


# ---- nautilus_trader Binance samples -----------------------------------------------------------

_NAUTILUS_TRADES = ["timestamp", "trade_id", "price", "quantity", "buyer_maker"]
_NAUTILUS_QUOTES = ["timestamp", "ask_size", "ask", "bid_size", "bid"]


def _nautilus_table(path: Path, required: list[str], numeric: list[str], strings: list[str]) -> pa.Table:
    if path.suffix in (".parquet", ".feather"):
        return _read_columnar(path, required)
    return read_csv(path, required=required, numeric=numeric, strings=strings)


def _nautilus_lines(path: Path, rows: int) -> IntArray:
    return source_lines(rows) if path.suffix == ".csv" else np.arange(rows, dtype=np.int64) + 1


def _name_symbol(path: Path) -> str:
    return path.name.split(".")[0].split("-")[0]


def parse_nautilus_trades(
    path: Path,
    *,
    symbol: str | None = None,
    venue: str = "binance",
    price_digits: int | None = None,
    qty_digits: int | None = None,
) -> Parsed:
    """``timestamp, trade_id, price, quantity, buyer_maker`` (a maker buyer means the seller
    initiated: side -1). Symbol defaults to the file name (``btcusdt-trades`` -> BTC/USDT)."""
    path = Path(path)
    table = _nautilus_table(
        path, _NAUTILUS_TRADES, ["trade_id", "price", "quantity"], ["timestamp", "buyer_maker"]
    )
    trades = TradeInput(
        source=str(path),
        instrument_id=0,
        line=_nautilus_lines(path, table.num_rows),
        ts_ns=_timestamps(path, table, "timestamp"),
        price=_numbers(table, "price"),
        qty=_numbers(table, "quantity"),
        side=_sides(table, "buyer_maker", buyer_maker=True),
        trade_id=_ids(table, "trade_id"),
    )
    name = symbol or _name_symbol(path)
    template = _instrument(path, name, venue, price_digits, qty_digits, [trades.price], [trades.qty])
    parsed = Parsed(str(path), None, "24x7", trades=[(template, trades)])
    parsed.ignored_columns = [c for c in table.column_names if c not in _NAUTILUS_TRADES]
    return parsed


def parse_nautilus_quotes(
    path: Path,
    *,
    symbol: str | None = None,
    venue: str = "binance",
    price_digits: int | None = None,
    qty_digits: int | None = None,
) -> Parsed:
    """Best bid/ask ``timestamp, symbol, ask_size, ask, bid_size, bid``; the symbol comes from
    ``--symbol``, the ``symbol`` column, or the file name."""
    path = Path(path)
    numeric = ["ask_size", "ask", "bid_size", "bid"]
    table = _nautilus_table(path, _NAUTILUS_QUOTES, numeric, ["timestamp"])
    quotes = QuoteInput(
        source=str(path),
        instrument_id=0,
        line=_nautilus_lines(path, table.num_rows),
        ts_ns=_timestamps(path, table, "timestamp"),
        bid_price=_numbers(table, "bid"),
        bid_qty=_numbers(table, "bid_size"),
        ask_price=_numbers(table, "ask"),
        ask_qty=_numbers(table, "ask_size"),
    )
    name = symbol
    if name is None and "symbol" in table.column_names and table.num_rows:
        name = str(table.column("symbol")[0].as_py())
    name = name or _name_symbol(path)
    template = _instrument(
        path,
        name,
        venue,
        price_digits,
        qty_digits,
        [quotes.bid_price, quotes.ask_price],
        [quotes.bid_qty, quotes.ask_qty],
    )
    parsed = Parsed(str(path), None, "24x7", quotes=[(template, quotes)])
    parsed.ignored_columns = [c for c in table.column_names if c not in [*_NAUTILUS_QUOTES, "symbol"]]
    return parsed
