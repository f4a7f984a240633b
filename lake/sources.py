"""Source formats: turn files as they come into ``BarInput``/``FundingInput``/contract tables.

Parsing is strict about structure and lenient about values: a file that is not UTF-8, has
the wrong columns or a line with the wrong number of fields raises ``IngestError`` naming the
file and line; an empty or impossible *value* becomes a row that validation quarantines.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.feather as feather

from domain.instruments import Instrument
from domain.markets import board_from_code, cn_lot_rule
from lake.schema import ACTION_SCALE, MARK_SUFFIX, frequency_ns
from lake.sessions import utc_days, yyyymmdd
from lake.validate import MISSING_TS, BarInput, FundingInput, QuoteInput, TradeInput

__all__ = [
    "DIGITS_MAX",
    "ColumnMap",
    "LOT_RULE_DAY",
    "IngestError",
    "Parsed",
    "epoch_to_ns",
    "infer_digits",
    "parse_ccxt_ohlcv",
    "parse_freqtrade",
    "parse_generic_csv",
    "parse_hikyuu_actions",
    "parse_hikyuu_day",
    "parse_hikyuu_minute",
    "parse_yahoo",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
DIGITS_MAX = 10


class IngestError(ValueError):
    """A file that cannot be parsed at all; the message names the file and line."""


@dataclass
class Parsed:
    """What one source file holds: bar, funding, trade or quote inputs per instrument
    template, or a contract table ready to store (corporate actions)."""

    source: str
    frequency: str | None
    calendar: str
    bars: list[tuple[Instrument, BarInput]] = field(default_factory=list)
    funding: list[tuple[Instrument, FundingInput]] = field(default_factory=list)
    actions: list[tuple[Instrument, dict[str, IntArray]]] = field(default_factory=list)
    trades: list[tuple[Instrument, TradeInput]] = field(default_factory=list)
    quotes: list[tuple[Instrument, QuoteInput]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    # Prices this close to the grid (raw units) are snapped onto it: sources that store float32
    # and print it truncated (hikyuu/TDX: 16.149 for 16.15). 0: none (off-grid is quarantined).
    snap_within: float = 0.0


def infer_digits(*columns: FloatArray, at_least: int = 0) -> int:
    """The fewest decimal digits (``at_least``..10) that put every finite value on the grid."""
    from lake.validate import to_raw

    for digits in range(at_least, DIGITS_MAX + 1):
        if not any(bool(np.any(to_raw(column, digits)[1])) for column in columns):
            return digits
    return DIGITS_MAX


# ---- CSV with diagnostics ----------------------------------------------------------------------


def _number_or_empty(value: str) -> bool:
    if value.strip() == "":
        return True
    try:
        float(value)
    except ValueError:
        return False
    return True


def _diagnose(path: Path, numeric: set[int], header: bool) -> str:
    """Find the first structurally bad line (slow path, only after a parse failure)."""
    with path.open("rb") as handle:
        expected = None
        for number, raw_line in enumerate(handle, start=1):
            try:
                text = raw_line.decode("utf-8")
            except UnicodeDecodeError as error:
                return f"{path}:{number}: not UTF-8 ({error.reason} at byte {error.start})"
            if not text.strip():
                continue
            try:
                fields = next(csv.reader([text]))
            except csv.Error as error:  # e.g. a bare carriage return inside a line
                return f"{path}:{number}: malformed line ({error})"
            if expected is None:
                expected = len(fields)
                if header:
                    continue
            if len(fields) != expected:
                return f"{path}:{number}: expected {expected} fields, got {len(fields)}"
            bad = [index for index in numeric if index < len(fields) and not _number_or_empty(fields[index])]
            if bad:
                return f"{path}:{number}: field {bad[0] + 1} ({fields[bad[0]]!r}) is not a number"
    return f"{path}: unreadable"


def read_csv(
    path: Path,
    *,
    required: list[str],
    numeric: list[str],
    strings: list[str] = (),  # type: ignore[assignment]
    names: list[str] | None = None,
) -> pa.Table:
    """A CSV as an Arrow table with ``numeric`` columns as float64 (empty = null) and
    ``strings`` as text. Raises ``IngestError`` naming the file and line on any structural fault."""
    path = Path(path)
    types = {name: pa.float64() for name in numeric} | {name: pa.string() for name in strings}
    read_options = pacsv.ReadOptions(column_names=names, block_size=1 << 24)
    convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
    try:
        if path.stat().st_size == 0:
            raise IngestError(f"{path}:1: empty file")
        table = pacsv.read_csv(path, read_options=read_options, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        header_names = names or _header(path)
        indices = {header_names.index(name) for name in numeric if name in header_names}
        raise IngestError(f"{_diagnose(path, indices, names is None)} [{error}]") from None
    try:
        columns = table.column_names
    except UnicodeDecodeError as error:
        reason = f"{error.reason} at byte {error.start}"
        raise IngestError(f"{path}:1: the header is not UTF-8 text ({reason})") from None
    missing = [name for name in required if name not in columns]
    if missing:
        raise IngestError(f"{path}:1: missing columns {missing}; the header has {columns}")
    if table.num_rows == 0:
        raise IngestError(f"{path}:2: no data rows after the header")
    for name in strings:
        if name in table.column_names and not pa.types.is_string(table.column(name).type):
            raise IngestError(f"{_diagnose(path, set(), names is None)} (column {name!r} is not text)")
    return table


def _header(path: Path) -> list[str]:
    with path.open("rb") as handle:
        first = handle.readline().decode("utf-8", errors="replace")
    return next(csv.reader([first]), [])


def floats(table: pa.Table, name: str) -> FloatArray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def source_lines(rows: int, header: bool = True) -> IntArray:
    return np.arange(rows, dtype=np.int64) + (2 if header else 1)


def strict_strptime(text: pa.ChunkedArray, pattern: str, unit: str) -> pa.ChunkedArray:
    """``pc.strptime`` with null for a date that does not exist. Arrow rolls an impossible day
    over (``2014-02-31`` reads as 2014-03-03, ``2014-02-29 10:00`` as 03-01): a value whose round
    trip through ``pattern`` changes is checked with Python's ``strptime``, which refuses those
    (and accepts what only formats differently, such as ``2014-2-3``)."""
    parsed = pc.strptime(text, format=pattern, unit=unit, error_is_null=True)
    if len(parsed) == 0:
        return parsed
    seconds = parsed.cast(pa.timestamp("s"), safe=False)
    back = pc.strftime(seconds, format=pattern)
    changed = pc.fill_null(pc.not_equal(back, pc.utf8_trim_whitespace(text)), False)
    changed_at = np.flatnonzero(np.asarray(changed.to_numpy(zero_copy_only=False), dtype=np.bool_))
    if changed_at.size == 0:
        return parsed
    values = text.to_numpy(zero_copy_only=False)
    impossible: set[str] = set()
    for value in {str(values[i]).strip() for i in changed_at}:
        try:
            datetime.datetime.strptime(value, pattern)  # noqa: DTZ007 (whether it parses, no more)
        except ValueError:
            impossible.add(value)
    if not impossible:
        return parsed
    refused = pc.is_in(pc.utf8_trim_whitespace(text), value_set=pa.array(sorted(impossible)))
    return pc.if_else(refused, pa.scalar(None, parsed.type), parsed)


def _dates_to_days(path: Path, text: pa.ChunkedArray, pattern: str = "%Y-%m-%d") -> IntArray:
    """Date strings -> YYYYMMDD (0 where unparseable or not a real date, which validation
    quarantines)."""
    parsed = strict_strptime(text, pattern, "s")
    days = parsed.cast(pa.int64()).to_numpy(zero_copy_only=False)
    valid = ~np.asarray(pc.is_null(parsed).to_numpy(zero_copy_only=False), dtype=np.bool_)
    result = np.zeros(len(days), dtype=np.int64)
    result[valid] = yyyymmdd(days[valid].astype(np.int64) // 86_400)
    return result


def local_to_utc_ns(text: pa.ChunkedArray, pattern: str, timezone: str) -> IntArray:
    """Local wall-clock strings -> UTC ns (``MISSING_TS`` where unparseable, ambiguous or
    nonexistent in ``timezone``)."""
    import pandas as pd

    if pattern == "iso":
        index = pd.DatetimeIndex(pd.to_datetime(text.to_pandas(), format="ISO8601", errors="coerce"))
    else:
        parsed = strict_strptime(text, pattern, "ns")
        index = pd.DatetimeIndex(parsed.to_pandas())
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
        timezone = "UTC"
    if timezone != "UTC":
        index = index.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").tz_convert("UTC")
    values = index.as_unit("ns").asi8.copy()
    values[index.isna()] = MISSING_TS
    return values.astype(np.int64)


def _symbol_of(path: Path) -> str:
    return path.name.split(".txt")[0].split(".csv")[0]


# ---- Yahoo / backtrader daily ------------------------------------------------------------------

_YAHOO = ["Date", "Open", "High", "Low", "Close", "Volume"]


def parse_yahoo(
    path: Path,
    *,
    symbol: str | None = None,
    venue: str = "XNYS",
    calendar: str = "XNYS",
    currency: str = "USD",
    price_digits: int | None = None,
) -> Parsed:
    """Yahoo-style / backtrader daily CSV (``Date,Open,High,Low,Close[,Adj Close],Volume[,OpenInterest]``).
    Prices are raw; ``Adj Close`` is a derived view and not stored (adjustment is ``lake.adjust``)."""
    table = read_csv(path, required=_YAHOO, numeric=_YAHOO[1:], strings=["Date"])
    name = symbol or _symbol_of(Path(path)).split("-")[0].upper()
    bars = BarInput(
        source=str(path),
        instrument_id=0,
        line=source_lines(table.num_rows),
        ts_ns=np.zeros(table.num_rows, dtype=np.int64),
        day=_dates_to_days(Path(path), table.column("Date")),
        open=floats(table, "Open"),
        high=floats(table, "High"),
        low=floats(table, "Low"),
        close=floats(table, "Close"),
        volume=floats(table, "Volume"),
        daily=True,
    )
    digits = (
        price_digits if price_digits is not None else infer_digits(bars.open, bars.high, bars.low, bars.close)
    )
    template = source_template(name, venue, "equity", currency, digits, 0, 1)
    parsed = Parsed(str(path), "1d", calendar, bars=[(template, bars)])
    parsed.ignored_columns = [c for c in table.column_names if c not in _YAHOO]
    return parsed


def source_template(
    symbol: str, venue: str, asset_class: str, currency: str, price_digits: int, qty_digits: int, lot_raw: int
) -> Instrument:
    return Instrument(
        instrument_id=0,
        symbol=symbol,
        venue=venue,
        asset_class=asset_class,
        currency=currency,
        price_digits=price_digits,
        tick_raw=1,
        qty_digits=qty_digits,
        lot_raw=lot_raw,
    )


# ---- A-shares (hikyuu test data) ---------------------------------------------------------------

_CN_VENUE = {"SH": "SSE", "SZ": "SZSE", "BJ": "BJSE"}  # not "BSE": exchange_calendars reads it as Bombay


def _cn_symbol(path: Path) -> tuple[str, str, bool]:
    """``600000.SH`` from ``h5_600000.SH_day_raw.csv`` / ``time1min_600000.SH.csv``; is it an index?"""
    match = re.search(r"(\d{6})\.(SH|SZ|BJ)", path.name)
    if match is None:
        raise IngestError(
            f"{path}:1: cannot tell the A-share symbol from the file name (want e.g. 600000.SH)"
        )
    return f"{match.group(1)}.{match.group(2)}", _CN_VENUE[match.group(2)], "index" in path.name


def _cn_template(symbol: str, venue: str, is_index: bool, digits: int) -> Instrument:
    """An A-share (board from the code; lot: the board's quantity step — 100 shares on the main
    board and ChiNext, 1 share on STAR and BSE, whose minimum order the market rules check) or
    index (lot 1, no board) template."""
    if is_index:
        return source_template(symbol, venue, "index", "CNY", digits, 0, 1)
    template = source_template(symbol, venue, "equity", "CNY", digits, 0, 100)
    try:
        board = board_from_code(symbol.split(".")[0])
    except ValueError:
        return template  # not a stock code the board table knows (the kernel then refuses it)
    step = cn_lot_rule(board, LOT_RULE_DAY).qty_step
    return msgspec.structs.replace(template, board=board.value, lot_raw=step)


LOT_RULE_DAY = 99991231
"""The day the lot step is read at: each board's step has not changed since it began."""


CN_FLOAT32_SNAP = 0.15
"""hikyuu's files carry float32 prices printed truncated (8.029 for 8.03, 16.149 for 16.15): a
price within 0.15 of a fen of the grid is that fen; 0.5 fen off (16.145) is not snapped."""


def parse_hikyuu_day(path: Path, *, price_digits: int | None = None) -> Parsed:
    """hikyuu/TDX raw daily bars: ``date,open,high,low,close,amount|amount_cny,volume``.
    ``h5_`` files count volume in lots of 100 shares; TDX files in shares."""
    path = Path(path)
    header = _header(path)
    amount = "amount_cny" if "amount_cny" in header else "amount"
    fields = ["open", "high", "low", "close", amount, "volume"]
    table = read_csv(path, required=["date", *fields], numeric=fields, strings=["date"])
    symbol, venue, is_index = _cn_symbol(path)
    volume = floats(table, "volume") * (100.0 if path.name.startswith("h5_") and not is_index else 1.0)
    bars = BarInput(
        source=str(path),
        instrument_id=0,
        line=source_lines(table.num_rows),
        ts_ns=np.zeros(table.num_rows, dtype=np.int64),
        day=_dates_to_days(path, table.column("date")),
        open=floats(table, "open"),
        high=floats(table, "high"),
        low=floats(table, "low"),
        close=floats(table, "close"),
        volume=volume,
        turnover=floats(table, amount),
        daily=True,
    )
    digits = price_digits
    if digits is None:
        digits = 2 if not is_index else infer_digits(bars.open, bars.high, bars.low, bars.close, at_least=2)
    template = _cn_template(symbol, venue, is_index, digits)
    return Parsed(str(path), "1d", "XSHG", bars=[(template, bars)], snap_within=CN_FLOAT32_SNAP)


def parse_hikyuu_minute(path: Path, *, price_digits: int = 2) -> Parsed:
    """hikyuu 分时 ``datetime,price,vol`` (Asia/Shanghai wall clock, labelled by the minute's
    start): one-price 1m bars stamped at the minute's close, UTC."""
    path = Path(path)
    table = read_csv(
        path, required=["datetime", "price", "vol"], numeric=["price", "vol"], strings=["datetime"]
    )
    symbol, venue, is_index = _cn_symbol(path)
    start = local_to_utc_ns(table.column("datetime"), "%Y-%m-%d %H:%M", "Asia/Shanghai")
    ts = np.where(start == MISSING_TS, MISSING_TS, start + frequency_ns("1m"))
    price = floats(table, "price")
    bars = BarInput(
        source=str(path),
        instrument_id=0,
        line=source_lines(table.num_rows),
        ts_ns=ts,
        day=np.zeros(table.num_rows, dtype=np.int64),
        open=price,
        high=price,
        low=price,
        close=price,
        volume=floats(table, "vol"),
    )
    digits = price_digits if not is_index else infer_digits(price, at_least=2)
    template = _cn_template(symbol, venue, is_index, digits)
    return Parsed(str(path), "1m", "XSHG", bars=[(template, bars)])


_ACTION_FIELDS = {
    "bonus_shares_per10": "bonus_per10_e4",
    "capitalization_shares_per10": "capitalization_per10_e4",
    "rights_shares_per10": "rights_per10_e4",
    "cash_dividend_per10": "cash_per10_e4",
}


def parse_hikyuu_actions(path: Path) -> Parsed:
    """hikyuu 权息 table: one row per (market, code, ex-date); ratios kept exactly (1e-4)."""
    path = Path(path)
    numeric = [*_ACTION_FIELDS, "rights_price", "total_shares_10k", "free_shares_10k"]
    table = read_csv(
        path,
        required=["market", "code", "date", *numeric],
        numeric=numeric,
        strings=["market", "code", "date"],
    )
    market = np.asarray(table.column("market").to_pylist(), dtype=object)
    code = np.asarray(table.column("code").to_pylist(), dtype=object)
    date = np.asarray(table.column("date").to_pylist(), dtype=object)
    parsed = Parsed(str(path), None, "XSHG")
    keys = market + "." + code
    order = np.argsort(keys, kind="stable")
    boundaries = np.flatnonzero(np.r_[True, keys[order][1:] != keys[order][:-1], True])
    for begin, end in zip(boundaries[:-1].tolist(), boundaries[1:].tolist(), strict=True):
        rows = order[begin:end]
        exchange = str(market[rows[0]])
        if exchange not in _CN_VENUE:
            raise IngestError(f"{path}:{int(rows[0]) + 2}: unknown market {exchange!r}")
        template = _cn_template(f"{code[rows[0]]}.{exchange}", _CN_VENUE[exchange], False, 2)
        columns = {
            target: np.rint(floats(table, source)[rows] * ACTION_SCALE).astype(np.int64)
            for source, target in _ACTION_FIELDS.items()
        }
        columns["rights_price"] = np.rint(floats(table, "rights_price")[rows] * 100).astype(np.int64)
        columns["total_shares"] = np.rint(floats(table, "total_shares_10k")[rows] * 10_000).astype(np.int64)
        columns["free_shares"] = np.rint(floats(table, "free_shares_10k")[rows] * 10_000).astype(np.int64)
        columns["ex_date"] = np.array([int(d) if str(d).isdigit() else 0 for d in date[rows]], dtype=np.int64)
        columns["line"] = rows.astype(np.int64) + 2
        parsed.actions.append((template, columns))
    return parsed


# ---- freqtrade / ccxt candles ------------------------------------------------------------------

_FREQTRADE_NAME = re.compile(
    r"^(?P<pair>.+?)-(?P<tf>\d+[mhdw])(?:-(?P<kind>futures|mark|funding_rate|spot))?\.(?P<ext>feather|json|json\.gz)$"
)


def _freqtrade_symbol(pair: str, kind: str | None) -> tuple[str, str]:
    parts = pair.split("_")
    base, quote = parts[0], parts[1] if len(parts) > 1 else "BTC"
    symbol = f"{base}/{quote}" + (f":{parts[2]}" if len(parts) > 2 else "")
    if kind == "mark":
        symbol += MARK_SUFFIX
    return symbol, quote


def parse_freqtrade(
    path: Path, *, venue: str = "binance", price_digits: int | None = None, qty_digits: int = 8
) -> Parsed:
    """freqtrade candle files (``PAIR-TF[-futures|-mark].feather|json``, open-time stamped,
    UTC) and funding-rate files (``PAIR-8h-funding_rate.feather``, the rate in ``open``)."""
    path = Path(path)
    match = _FREQTRADE_NAME.match(path.name)
    if match is None:
        raise IngestError(f"{path}:1: not a freqtrade file name (PAIR-TIMEFRAME[-kind].feather|json)")
    frequency, kind = match.group("tf"), match.group("kind")
    frequency_ns(frequency)
    rows = _freqtrade_rows(path, match.group("ext"))
    symbol, quote = _freqtrade_symbol(match.group("pair"), kind)
    open_time = rows["date"]
    lines = np.arange(len(open_time), dtype=np.int64) + 1
    asset_class = "crypto_perp" if ":" in symbol else "crypto_spot"
    if kind == "funding_rate":
        funding = FundingInput(str(path), 0, lines, open_time, rows["open"])
        template = source_template(symbol, venue, asset_class, quote, 8, qty_digits, 1)
        return Parsed(str(path), None, "24x7", funding=[(template, funding)])
    if kind == "mark":  # mark-price candles carry no traded volume
        rows["volume"] = np.nan_to_num(rows["volume"], nan=0.0)
    return _candles(str(path), symbol, quote, venue, asset_class, frequency, rows, price_digits, qty_digits)


def _candles(
    source: str,
    symbol: str,
    quote: str,
    venue: str,
    asset_class: str,
    frequency: str,
    rows: dict[str, npt.NDArray],  # type: ignore[type-arg]
    price_digits: int | None,
    qty_digits: int,
) -> Parsed:
    open_time = rows["date"]
    close_ts = np.where(open_time == MISSING_TS, MISSING_TS, open_time + frequency_ns(frequency))
    bars = BarInput(
        source=source,
        instrument_id=0,
        line=np.arange(len(open_time), dtype=np.int64) + 1,
        ts_ns=close_ts,
        day=utc_days(close_ts),
        open=rows["open"],
        high=rows["high"],
        low=rows["low"],
        close=rows["close"],
        volume=rows["volume"],
    )
    digits = (
        price_digits if price_digits is not None else infer_digits(bars.open, bars.high, bars.low, bars.close)
    )
    try:
        template = source_template(symbol, venue, asset_class, quote, digits, qty_digits, 1)
    except ValueError as error:
        raise IngestError(f"{source}:1: {error}") from None
    return Parsed(source, frequency, "24x7", bars=[(template, bars)])


def _freqtrade_rows(path: Path, ext: str) -> dict[str, npt.NDArray]:  # type: ignore[type-arg]
    names = ["date", "open", "high", "low", "close", "volume"]
    if ext == "feather":
        try:
            table = feather.read_table(path)
        except (pa.ArrowInvalid, OSError) as error:
            raise IngestError(f"{path}:0: not a readable feather file ({error})") from None
        missing = [name for name in names if name not in table.column_names]
        if missing:
            raise IngestError(f"{path}:1: missing columns {missing}; has {table.column_names}")
        date = table.column("date").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        result = {"date": date.fill_null(MISSING_TS).to_numpy()}
        for name in names[1:]:
            result[name] = floats(table, name)
        return result
    opener = gzip.open if ext.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            payload = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError, OSError) as error:
        line = getattr(error, "lineno", 1)
        raise IngestError(f"{path}:{line}: not valid JSON candles ({error})") from None
    return _array_rows(str(path), payload, unit_ns=1_000_000)


def _array_rows(source: str, payload: object, *, unit_ns: int) -> dict[str, npt.NDArray]:  # type: ignore[type-arg]
    """``[[ts_ms, o, h, l, c, v], ...]`` (freqtrade JSON, ccxt OHLCV) -> columns."""
    if not isinstance(payload, list):
        raise IngestError(f"{source}:1: expected a JSON array of [ts, o, h, l, c, v] rows")
    for index, row in enumerate(payload):
        if not isinstance(row, list) or len(row) != 6:
            raise IngestError(
                f"{source}:{index + 1}: record {index + 1} is not [ts, o, h, l, c, v]: {row!r:.80}"
            )
    data = np.array([[_to_float(v) for v in row] for row in payload], dtype=np.float64).reshape(-1, 6)
    return {
        "date": epoch_to_ns(data[:, 0], unit_ns),
        **{name: data[:, i + 1] for i, name in enumerate(("open", "high", "low", "close", "volume"))},
    }


def epoch_to_ns(values: FloatArray, unit_ns: int) -> IntArray:
    """Epoch numbers in units of ``unit_ns`` (1_000_000: ms) -> int64 UTC ns, exact for whole
    units: the whole part is multiplied as an integer, the fraction rounded to the ns.
    (``rint(ms * 1e6)`` in float64 was off by up to 128 ns at 2019 dates; ``int64(ms) * 1e6``
    wrapped around for 1e30 and truncated 1.5 s to 1 s.) NaN, infinities and values past
    int64 ns are ``MISSING_TS`` (quarantined as ``missing_value``)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & (np.abs(values) < 2.0**62 / unit_ns)
    safe = np.where(ok, values, 0.0)
    whole = np.trunc(safe)
    ns = whole.astype(np.int64) * unit_ns + np.rint((safe - whole) * unit_ns).astype(np.int64)
    return np.where(ok, ns, MISSING_TS).astype(np.int64)


def _to_float(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number


def parse_ccxt_ohlcv(
    rows: list[list[float]],
    *,
    source: str,
    symbol: str,
    venue: str,
    frequency: str,
    price_digits: int,
    qty_digits: int = 8,
) -> Parsed:
    """Candles already parsed by ccxt (``exchange.parse_ohlcvs``): open-time ms, UTC."""
    base_quote = symbol.split(":")[0].split("/")
    quote = base_quote[1] if len(base_quote) > 1 else "USDT"
    asset_class = "crypto_perp" if ":" in symbol else "crypto_spot"
    columns = _array_rows(source, rows, unit_ns=1_000_000)
    return _candles(source, symbol, quote, venue, asset_class, frequency, columns, price_digits, qty_digits)


# ---- generic CSV with a column mapping ---------------------------------------------------------


@dataclass(frozen=True)
class ColumnMap:
    """Which source column feeds each contract field, and how to read the time.

    ``ts`` holds a date (``daily=True``) or a timestamp in ``timezone`` (``ts_format`` is a
    strptime pattern, ``iso`` for ISO 8601 with optional fractions/offset, or
    ``epoch_ms``/``epoch_s``); ``Date+Time`` names columns whose texts, joined by a space, are
    the timestamp (``ts_format`` then reads the joined text: ``%Y-%m-%d %H:%M:%S``).
    ``label='start'`` stamps bars at the label plus one period; ``'end'`` takes the label as
    the close."""

    ts: str
    open: str
    high: str
    low: str
    close: str
    volume: str
    turnover: str | None = None
    ts_format: str = "%Y-%m-%d"
    timezone: str = "UTC"
    daily: bool = True
    label: str = "end"

    @classmethod
    def parse(cls, text: str, **options: object) -> ColumnMap:
        """``ts=Date,open=Open,...`` (the CLI's ``--map``)."""
        items = [item for item in text.split(",") if item]
        unpaired = [item for item in items if "=" not in item]
        if unpaired:
            raise IngestError(f"bad column map {text!r}: {unpaired[0]!r} is not FIELD=COLUMN")
        pairs = dict(item.split("=", 1) for item in items)
        try:
            mapping = cls(**pairs, **options)  # type: ignore[arg-type]
        except TypeError as error:
            raise IngestError(f"bad column map {text!r}: {error}") from None
        if mapping.timezone != "UTC":
            import zoneinfo

            try:
                zoneinfo.ZoneInfo(mapping.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise IngestError(f"unknown time zone {mapping.timezone!r} (an IANA name such as "
                                  "America/New_York or Asia/Shanghai)") from None  # fmt: skip
        if len(mapping.ts_columns) > 1 and mapping.ts_format.startswith("epoch"):
            raise IngestError(
                f"bad column map {text!r}: {mapping.ts_format} reads one column, not {mapping.ts}"
            )
        if not all(mapping.ts_columns):
            raise IngestError(f"bad column map {text!r}: ts={mapping.ts} names an empty column")
        return mapping

    @property
    def ts_columns(self) -> list[str]:
        """The column or columns (``Date+Time``) the timestamp is read from."""
        return self.ts.split("+")


def parse_generic_csv(
    path: Path,
    mapping: ColumnMap,
    *,
    symbol: str,
    venue: str,
    calendar: str,
    frequency: str,
    currency: str = "USD",
    asset_class: str = "equity",
    price_digits: int | None = None,
    qty_digits: int = 0,
) -> Parsed:
    numeric = [mapping.open, mapping.high, mapping.low, mapping.close, mapping.volume]
    numeric += [mapping.turnover] if mapping.turnover else []
    epoch = mapping.ts_format.startswith("epoch")
    stamps = mapping.ts_columns
    table = read_csv(
        path,
        required=[*stamps, *numeric],
        numeric=numeric + (stamps if epoch else []),
        strings=[] if epoch else stamps,
    )
    if len(stamps) > 1:  # Date+Time: the texts joined by a space (null where any part is empty)
        stamp = pc.binary_join_element_wise(*(table.column(name) for name in stamps), " ")
    else:
        stamp = table.column(mapping.ts)
    ts, day = _generic_times(Path(path), stamp, mapping, frequency)
    bars = BarInput(
        source=str(path),
        instrument_id=0,
        line=source_lines(table.num_rows),
        ts_ns=ts,
        day=day,
        open=floats(table, mapping.open),
        high=floats(table, mapping.high),
        low=floats(table, mapping.low),
        close=floats(table, mapping.close),
        volume=floats(table, mapping.volume),
        turnover=floats(table, mapping.turnover) if mapping.turnover else None,
        daily=mapping.daily,
    )
    digits = (
        price_digits if price_digits is not None else infer_digits(bars.open, bars.high, bars.low, bars.close)
    )
    template = source_template(symbol, venue, asset_class, currency, digits, qty_digits, 1)
    parsed = Parsed(str(path), frequency, calendar, bars=[(template, bars)])
    parsed.ignored_columns = [c for c in table.column_names if c not in {*stamps, *numeric}]
    return parsed


def _generic_times(
    path: Path, column: pa.ChunkedArray, mapping: ColumnMap, frequency: str
) -> tuple[IntArray, IntArray]:
    if mapping.daily:
        return np.zeros(len(column), dtype=np.int64), _dates_to_days(path, column, mapping.ts_format)
    if mapping.ts_format.startswith("epoch"):
        unit = 1_000_000 if mapping.ts_format == "epoch_ms" else 1_000_000_000
        ts = epoch_to_ns(column.to_numpy(zero_copy_only=False).astype(np.float64), unit)
    else:
        ts = local_to_utc_ns(column, mapping.ts_format, mapping.timezone)
    if mapping.label == "start":
        ts = np.where(ts == MISSING_TS, MISSING_TS, ts + frequency_ns(frequency))
    return ts.astype(np.int64), utc_days(ts)
