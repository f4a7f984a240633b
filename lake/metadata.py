"""Instrument metadata the user supplies: a CSV or TOML file applied to the lake's instrument
master (``tape ingest metadata FILE --out LAKE``).

One row per instrument, matched by ``symbol`` (and ``venue`` where a symbol is on several).
A key left out (or an empty CSV cell) keeps the stored value. Keys:

==================  =================================================================
``asset_class``     ``equity``, ``etf``, ``future``, ``option``, ``crypto_spot``, ... (text)
``multiplier``      contract size, a positive integer (300 for CFFEX IF)
``tick``            price increment, decimal (``0.2``); exact at the stored price digits
``lot``             order quantity step, decimal (``100``); exact at the stored qty digits
``board``           A-shares: ``main``, ``star``, ``chinext``, ``bse``, ``fund``
``listing_date``    ``YYYY-MM-DD``: the first session (A-share no-limit IPO days count from it)
``delisting_date``  ``YYYY-MM-DD``: the last session; checked against the stored bars
``st_periods``      ST (special treatment) periods, inclusive: CSV ``2008-04-01..2009-05-05;
                    2012-01-04..`` (an open end: still ST), TOML a list of ``[first, last]``
``sector``          risk group (``[risk] sector`` limits)
``country``         risk group (``[risk] country`` limits)
==================  =================================================================

Validation is all or nothing: every problem is reported with its line (CSV) or table index
(TOML), and a file with any problem leaves the lake unchanged. Checks: known keys, a known
instrument, one row per instrument, values of the right form, the ``Instrument``'s own checks
(positive tick, lot and multiplier, option fields), an A-share board's lot a whole number of
the board's quantity steps (100 shares on the main board and ChiNext), every stored bar price
on the new tick, no stored bar before the listing date or after the delisting date, ST periods
ordered and not overlapping. Applied rows become a new lake version (its content hash changes); ``tape
export`` copies the instruments into the data set, and a run journals them
(``instruments.defined.v1``), so the kernel uses them: ST periods select the 5% price band,
``asset_class = "future"`` daily settlement and futures margin, the multiplier every notional.

The delisting date is checked and recorded in the lake's metadata report
(``reports/metadata-NNNNNN.json``), not in the ``Instrument`` (a new field would change the
bytes of every journal's ``instruments.defined.v1``): ``tape export`` carries the reports' dates
into the data set's own ``delistings.parquet`` (``Lake.delistings``; a later report's date
wins), and a run journals ``instrument.delisted.v1`` from it (``kernel/delisting.py``).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow.compute as pc

from domain.instruments import Instrument
from domain.markets import Board, cn_lot_rule
from lake.partitioned import Lake
from lake.schema import BAR_FREQUENCIES, Kind
from lake.sources import LOT_RULE_DAY

__all__ = ["METADATA_KEYS", "MetadataError", "MetadataReport", "apply_metadata", "read_metadata"]

METADATA_KEYS = (
    "symbol",
    "venue",
    "asset_class",
    "multiplier",
    "tick",
    "lot",
    "board",
    "listing_date",
    "delisting_date",
    "st_periods",
    "sector",
    "country",
)
BOARDS = ("main", "star", "chinext", "bse", "fund")
_OPEN_END = 99991231


class MetadataError(ValueError):
    """A metadata file that cannot be applied; ``problems`` lists every one found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class Row:
    where: str  # "line 3" (CSV) or "instrument[2]" (TOML)
    values: dict[str, Any]


@dataclass
class MetadataReport:
    """What a metadata file did: rows in = applied (changed) + unchanged."""

    lake: str
    source: str
    content_hash: str
    rows_in: int
    changed: dict[str, list[str]] = field(default_factory=dict)  # "VENUE:SYMBOL" -> ["field: old -> new"]
    unchanged: list[str] = field(default_factory=list)
    delisting: dict[str, int] = field(default_factory=dict)  # "VENUE:SYMBOL" -> YYYYMMDD

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)


def read_metadata(path: Path) -> list[Row]:
    """The rows of a CSV (header line) or TOML (``[[instrument]]`` tables) metadata file."""
    if not path.exists():
        raise MetadataError(str(path), ["no such file"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:  # was an internal error
        raise MetadataError(str(path), [f"not UTF-8 (byte {error.start})"]) from None
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise MetadataError(str(path), [f"not TOML: {error}"]) from None
        tables = data.get("instrument")
        extra = sorted(set(data) - {"instrument"})
        if not isinstance(tables, list) or extra or not tables:
            raise MetadataError(str(path), ["a TOML metadata file holds [[instrument]] tables only"])
        return [Row(f"instrument[{index}]", dict(table)) for index, table in enumerate(tables)]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    for raw in reader:
        where = f"line {reader.line_num}"
        if None in raw:  # more fields than the header names (was an AttributeError)
            fields, named = len(raw) - 1 + len(raw[None]), len(reader.fieldnames or [])
            raise MetadataError(str(path), [f"{where}: {fields} fields, the header has {named}"])
        rows.append(Row(where, {key: value.strip() for key, value in raw.items() if value and value.strip()}))
    unknown = sorted(set(reader.fieldnames or []) - set(METADATA_KEYS))
    if unknown:
        raise MetadataError(
            str(path), [f"line 1: unknown column(s) {unknown}; known: {', '.join(METADATA_KEYS)}"]
        )
    if not rows:  # an empty file, or a header alone, was "rows 0", exit 0
        raise MetadataError(str(path), ["no instrument rows (an empty file, or a header alone)"])
    return rows


def _day(text: object, key: str) -> int:
    try:
        return int(date.fromisoformat(str(text)).strftime("%Y%m%d"))
    except ValueError:
        raise ValueError(f"{key} must be a date (YYYY-MM-DD), got {text!r}") from None


def _scaled(text: object, digits: int, key: str) -> int:
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"{key} must be a decimal number, got {text!r}") from None
    if not value.is_finite():  # nan, inf: not "finer than the stored digits"
        raise ValueError(f"{key} must be a finite decimal number, got {text!r}")
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{key} {text} is finer than the stored {digits} digits")
    return int(scaled)


def _st_periods(value: object) -> list[tuple[int, int]]:
    if isinstance(value, str):
        pairs: list[list[str]] = [part.split("..") for part in value.split(";") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"st_periods must read FIRST..LAST[;FIRST..LAST], got {value!r}")
    elif isinstance(value, list) and all(isinstance(pair, list) and len(pair) == 2 for pair in value):
        pairs = [[str(first), str(last)] for first, last in value]
    else:
        raise ValueError(f"st_periods must be a list of [first, last] dates, got {value!r}")
    periods = []
    for first, last in pairs:
        start = _day(first.strip(), "st_periods")
        end = _day(last.strip(), "st_periods") if last.strip() else _OPEN_END
        if end < start:
            raise ValueError(f"st_periods: {first}..{last} ends before it starts")
        periods.append((start, end))
    periods.sort()
    for (_, end), (start, _) in itertools.pairwise(periods):
        if start <= end:
            raise ValueError("st_periods overlap")
    return periods


def _multiplier(value: object) -> int:
    text = str(value)
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"multiplier must be a positive integer, got {value!r}")
    return int(text)


def _board(value: object) -> str:
    if value not in BOARDS:
        raise ValueError(f"board must be one of {BOARDS}, got {value!r}")
    return str(value)


def _updated(instrument: Instrument, values: dict[str, Any]) -> tuple[Instrument, int]:
    """The instrument with the row's values; and the delisting day (0: none given). Every
    value's problem is reported, joined by "; "."""
    parsers: dict[str, tuple[str, Any]] = {
        "asset_class": ("asset_class", str),
        "sector": ("sector", str),
        "country": ("country", str),
        "multiplier": ("multiplier", _multiplier),
        "tick": ("tick_raw", lambda v: _scaled(v, instrument.price_digits, "tick")),
        "lot": ("lot_raw", lambda v: _scaled(v, instrument.qty_digits, "lot")),
        "board": ("board", _board),
        "listing_date": ("listing_day", lambda v: _day(v, "listing_date")),
        "st_periods": ("st_periods", _st_periods),
        "delisting_date": ("", lambda v: _day(v, "delisting_date")),
    }
    changes: dict[str, Any] = {}
    errors: list[str] = []
    delisting = 0
    for key, (name, parse) in parsers.items():
        if key not in values:
            continue
        try:
            parsed = parse(values[key])
        except ValueError as error:
            errors.append(str(error))
            continue
        if name:
            changes[name] = parsed
        else:
            delisting = parsed
    if errors:
        raise ValueError("; ".join(errors))
    listing = changes.get("listing_day", instrument.listing_day)
    if delisting and listing and delisting < listing:
        raise ValueError("delisting_date is before listing_date")
    merged = msgspec.structs.asdict(instrument) | changes
    new = msgspec.convert(merged, Instrument)  # the Instrument's own checks
    _check_board_lot(new, given="lot" in values)
    return new, delisting


def _check_board_lot(instrument: Instrument, *, given: bool) -> None:
    """An A-share's lot must be a whole number of its board's quantity steps (100 shares on the
    main board and ChiNext): orders are sized in lots, and a buy off the board's steps is
    refused (``CN_LOT``), so a lot of 1 (a CSV source's default) would have every buy refused."""
    if not instrument.board or instrument.asset_class == "index" or instrument.board == Board.FUND.value:
        return
    step = cn_lot_rule(Board(instrument.board), LOT_RULE_DAY).qty_step
    if instrument.lot_raw % step:
        lot = Decimal(instrument.lot_raw).scaleb(-instrument.qty_digits)
        where = "lot" if given else "stored lot"
        raise ValueError(
            f"board {instrument.board} buys in steps of {step} shares, the {where} is {lot}: "
            f"give lot = {Decimal(step).scaleb(-instrument.qty_digits)} (every buy would be refused)"
        )


def _match(row: Row, known: list[Instrument]) -> Instrument:
    symbol = row.values.get("symbol")
    if not symbol:
        raise ValueError("no symbol")
    venue = row.values.get("venue")
    found = [i for i in known if i.symbol == symbol and (venue is None or i.venue == venue)]
    if not found:
        names = ", ".join(sorted(f"{i.venue}:{i.symbol}" for i in known)[:8])
        raise ValueError(
            f"no instrument {venue + ':' if venue else ''}{symbol} in the lake (known: {names}...)"
        )
    if len(found) > 1:
        raise ValueError(
            f"{symbol} is on several venues ({', '.join(i.venue for i in found)}); give the venue"
        )
    return found[0]


def _bar_problems(lake: Lake, instrument: Instrument, delisting: int) -> list[str]:
    """Stored bars that contradict the metadata: off the tick, before listing, after delisting."""
    problems = []
    for frequency in BAR_FREQUENCIES:
        bars = lake.read(Kind.BARS, frequency, instrument_ids=[instrument.instrument_id])
        if not bars.num_rows:
            continue
        prices = np.stack([bars.column(name).to_numpy() for name in ("open", "high", "low", "close")])
        off = int(np.count_nonzero((prices % instrument.tick_raw).any(axis=0)))
        if off:
            problems.append(f"{off} {frequency} bar(s) have prices off the tick_raw {instrument.tick_raw}")
        days = bars.column("day").to_numpy() if "day" in bars.column_names else None
        if days is None:
            continue
        if instrument.listing_day and int(pc.min(bars.column("day")).as_py()) < instrument.listing_day:
            problems.append(f"{frequency} bars before the listing date {instrument.listing_day}")
        if delisting and int(pc.max(bars.column("day")).as_py()) > delisting:
            after = int(np.count_nonzero(days > delisting))
            problems.append(f"{after} {frequency} bar(s) after the delisting date {delisting}")
    return problems


def apply_metadata(lake_root: Path, path: Path) -> MetadataReport:
    """Validate ``path`` against the lake and store it (a new lake version), or raise a
    ``MetadataError`` listing every problem, the lake unchanged."""
    lake = Lake(lake_root)
    if not (lake_root / "lake.json").exists():
        raise MetadataError(str(lake_root), ["not a lake (no lake.json)"])
    rows = read_metadata(path)
    known = lake.instruments()
    updated, seen, delisting, problems = _validated(lake, rows, known)
    if problems:
        raise MetadataError(str(path), problems)
    report = MetadataReport(str(lake_root), str(path), lake.content_hash, len(rows))
    for inst in known:
        if inst.instrument_id in seen:
            _report_row(report, inst, updated[inst.instrument_id], delisting.get(inst.instrument_id, 0))
    if report.changed:
        report.content_hash = lake.commit([], instruments=[updated[i.instrument_id] for i in known])
    folder = lake_root / "reports"
    folder.mkdir(exist_ok=True)
    version = int(lake.manifest()["version"])
    target = folder / f"metadata-{version:06d}.json"
    temp = target.with_suffix(".json.tmp")  # whole or absent, as the ingest reports
    temp.write_text(report.to_json() + "\n")
    os.replace(temp, target)
    return report


def _validated(
    lake: Lake, rows: list[Row], known: list[Instrument]
) -> tuple[dict[int, Instrument], dict[int, str], dict[int, int], list[str]]:
    """(instruments after the rows, the row of each instrument named, delisting days, problems)."""
    problems: list[str] = []
    updated = {inst.instrument_id: inst for inst in known}
    seen: dict[int, str] = {}
    delisting: dict[int, int] = {}
    for row in rows:
        unknown = sorted(set(row.values) - set(METADATA_KEYS))
        if unknown:
            problems.append(f"{row.where}: unknown key(s) {unknown}")
            continue
        try:
            instrument = _match(row, known)
            if instrument.instrument_id in seen:
                raise ValueError(f"{instrument.symbol} has another row at {seen[instrument.instrument_id]}")
            seen[instrument.instrument_id] = row.where
            new, delisted = _updated(instrument, row.values)
        except (ValueError, msgspec.ValidationError) as error:
            problems.append(f"{row.where}: {row.values.get('symbol', '?')}: {error}")
            continue
        problems.extend(f"{row.where}: {new.symbol}: {p}" for p in _bar_problems(lake, new, delisted))
        updated[new.instrument_id] = new
        if delisted:
            delisting[new.instrument_id] = delisted
    return updated, seen, delisting, problems


def _report_row(report: MetadataReport, old: Instrument, new: Instrument, delisting: int) -> None:
    name = f"{old.venue}:{old.symbol}"
    changes = [
        f"{key}: {getattr(old, key)!r} -> {getattr(new, key)!r}"
        for key in Instrument.__struct_fields__
        if getattr(old, key) != getattr(new, key)
    ]
    if changes:
        report.changed[name] = changes
    else:
        report.unchanged.append(name)
    if delisting:
        report.delisting[name] = delisting
