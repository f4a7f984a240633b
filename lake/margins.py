"""Futures margin rows the user supplies, carried into a data set (``tape export --margins FILE``).

A CSV file with a header, one published requirement per line::

    symbol,since,initial,maintenance,initial_e8,maintenance_e8
    *,2015-07-01,,,12000000,10000000
    IF2507,2015-07-08,400000,300000,,

``symbol`` is a future of the lake (or ``*``: every exported future); ``since`` the first
session day it is in force (``YYYY-MM-DD``); per contract (``initial`` / ``maintenance``, decimal
money in the future's currency, exact at its minor unit) or a share of notional (``initial_e8``
/ ``maintenance_e8``, 1e-8), one pair per line. Validation is all or nothing: every problem is
reported with its line, and a file with any problem writes no data set. A row for a future of
the lake that is not exported is skipped (counted); a symbol the lake does not have, or that is
not a daily-settled future, is an error. The rows become the data set's ``margins.parquet``
(``docs/data_contracts/dataset.md``), covered by its content hash, so a run's journal pins them
like the bars; the kernel uses them where the run's ``[[account.futures_margin]]`` names no row
for the future (``kernel.margin``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from domain.fixed import minor_digits
from domain.futures import is_daily_settled
from domain.instruments import Instrument
from domain.market import MarginRow

__all__ = ["MARGIN_COLUMNS", "MarginFileError", "MarginRows", "read_csv_table", "read_margin_rows"]

MARGIN_COLUMNS = ("symbol", "since", "initial", "maintenance", "initial_e8", "maintenance_e8")


class MarginFileError(ValueError):
    """A margin file with problems: every one, with its line."""


@dataclass(frozen=True)
class MarginRows:
    rows: list[MarginRow]
    lines: int  # data lines read
    skipped: int  # lines for futures of the lake not exported


def read_csv_table(path: Path, error: type[ValueError]) -> tuple[tuple[str, ...], list[dict[str, str]]]:
    """A user's CSV file: its header and its lines as dicts; a file that cannot be read (missing,
    not UTF-8, not CSV) raises ``error`` naming it."""
    try:
        with Path(path).open(newline="") as handle:
            reader = csv.DictReader(handle)
            return tuple(reader.fieldnames or ()), list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as problem:
        raise error(f"{path}: {problem}") from None


def read_margin_rows(
    path: Path, lake_instruments: list[Instrument], exported: list[Instrument]
) -> MarginRows:
    """The file's rows resolved to the exported futures (``MarginRow``s sorted by instrument
    and day); ``MarginFileError`` listing every problem."""
    header, lines = read_csv_table(path, MarginFileError)
    unknown = sorted(set(header) - set(MARGIN_COLUMNS))
    if unknown or not {"symbol", "since"} <= set(header):
        raise MarginFileError(
            f"{path}: the header must be {','.join(MARGIN_COLUMNS)} (got {','.join(header)})"
        )
    lake = {inst.symbol: inst for inst in lake_instruments}
    out = {inst.instrument_id for inst in exported if is_daily_settled(inst)}
    problems: list[str] = []
    rows: dict[tuple[int, int], MarginRow] = {}
    skipped = 0
    for number, line in enumerate(lines, start=2):
        where = f"{path}:{number}"
        symbol = (line.get("symbol") or "").strip()
        try:
            targets = _targets(symbol, lake)
            since = _since((line.get("since") or "").strip())
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        for inst in targets:
            if inst.instrument_id not in out:
                skipped += symbol != "*"
                continue
            try:
                row = _row(line, inst, since)
            except ValueError as error:
                problems.append(f"{where}: {error}")
                break
            key = (inst.instrument_id, since)
            if key in rows:
                problems.append(f"{where}: a second row for {inst.symbol} since {since}")
                break
            rows[key] = row
    if problems:
        raise MarginFileError("; ".join(problems))
    return MarginRows([rows[key] for key in sorted(rows)], len(lines), skipped)


def _since(text: str) -> int:
    try:
        return int(date.fromisoformat(text).strftime("%Y%m%d"))
    except ValueError:
        raise ValueError(f"since {text!r} is not a date (YYYY-MM-DD)") from None


def _targets(symbol: str, lake: dict[str, Instrument]) -> list[Instrument]:
    """The futures a line's symbol names (``*``: every future of the lake)."""
    if symbol == "*":
        return [lake[name] for name in sorted(lake) if is_daily_settled(lake[name])]
    inst = lake.get(symbol)
    if inst is None:
        raise ValueError(f"no instrument {symbol!r} in the lake")
    if not is_daily_settled(inst):
        raise ValueError(f"{symbol} is asset_class {inst.asset_class!r}, not a future")
    return [inst]


def _row(line: dict[str, str], inst: Instrument, since: int) -> MarginRow:
    texts = {name: (line.get(name) or "").strip() for name in MARGIN_COLUMNS[2:]}
    money = bool(texts["initial"] or texts["maintenance"])
    share = bool(texts["initial_e8"] or texts["maintenance_e8"])
    if money == share:
        raise ValueError(
            "give initial and maintenance (per contract) or initial_e8 and maintenance_e8, one pair"
        )
    if share:
        try:
            initial, maintenance = int(texts["initial_e8"]), int(texts["maintenance_e8"])
        except ValueError:
            raise ValueError("initial_e8 and maintenance_e8 are integers (1e-8)") from None
        if not 0 < maintenance <= initial <= 100_000_000:
            raise ValueError(f"need 0 < maintenance_e8 ({maintenance}) <= initial_e8 ({initial}) <= 1e8")
        return MarginRow(inst.instrument_id, since, initial_e8=initial, maintenance_e8=maintenance)
    initial, maintenance = (_minor(texts[name], inst.currency, name) for name in ("initial", "maintenance"))
    if not 0 < maintenance <= initial:
        raise ValueError(f"need 0 < maintenance ({maintenance}) <= initial ({initial}) minor units")
    return MarginRow(inst.instrument_id, since, initial_minor=initial, maintenance_minor=maintenance)


def _minor(text: str, currency: str, name: str) -> int:
    try:
        value = Decimal(text) * 10 ** minor_digits(currency)
    except InvalidOperation:
        raise ValueError(f"{name} {text!r} is not a decimal amount") from None
    if not value.is_finite():  # inf was an OverflowError (internal error), nan "more digits"
        raise ValueError(f"{name} {text!r} is not a finite decimal amount")
    if value != value.to_integral_value():
        raise ValueError(f"{name} {text!r} has more digits than {currency}'s minor unit")
    if abs(value) >= 2**63:  # the data set stores int64 minor units
        raise ValueError(f"{name} {text!r} is too large (int64 {currency} minor units)")
    return int(value)
