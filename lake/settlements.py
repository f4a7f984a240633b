"""Futures settlement prices the user supplies, carried into a data set (``tape export
--settlements FILE``).

A CSV file with a header, one exchange-published settlement price per future and session::

    symbol,date,settle
    FESX,2006-01-02,3588.0
    FESX,2006-01-03,3623

``symbol`` is a daily-settled future of the lake (``asset_class`` ``future``, set with ``tape
ingest metadata``); ``date`` the session day (``YYYY-MM-DD``); ``settle`` the price as decimal
text, exact at the future's ``price_digits`` (never rounded) and on its tick. Validation is all or
nothing: every problem is reported with its line, and a file with any problem writes no data
set. A row for a future of the lake that is not exported, or for a day outside the exported
bars' sessions, is skipped (counted): a window's data set holds the prices it settles on, and its
content hash does not depend on the rest. A symbol the lake does not have, or that is not a
daily-settled future, is an error. The rows become the data set's ``settlements.parquet``
(``docs/data_contracts/dataset.md``), covered by its content hash; a run's ``[futures]
settlement = "dataset"`` (the default) settles on them (``kernel.futures``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from domain.futures import is_daily_settled
from domain.instruments import Instrument
from lake.margins import read_csv_table

__all__ = ["SETTLEMENT_COLUMNS", "SettlementFileError", "SettlementRows", "read_settlement_rows"]

SETTLEMENT_COLUMNS = ("symbol", "date", "settle")


class SettlementFileError(ValueError):
    """A settlement file with problems: every one, with its line."""


@dataclass(frozen=True)
class SettlementRows:
    rows: list[tuple[int, int, int]]  # (day YYYYMMDD, instrument_id, settle raw), sorted
    lines: int  # data lines read
    skipped: int  # lines for futures not exported, or days outside the exported sessions


def read_settlement_rows(
    path: Path, lake_instruments: list[Instrument], exported: list[Instrument], days: tuple[int, int]
) -> SettlementRows:
    """The file's rows for the exported futures on days within ``days`` (the exported bars'
    first and last session); ``SettlementFileError`` listing every problem."""
    header, lines = read_csv_table(path, SettlementFileError)
    if tuple(name.strip() for name in header) != SETTLEMENT_COLUMNS:
        raise SettlementFileError(
            f"{path}: the header must be {','.join(SETTLEMENT_COLUMNS)} (got {','.join(header)})"
        )
    lake = {inst.symbol: inst for inst in lake_instruments}
    out = {inst.instrument_id for inst in exported}
    problems: list[str] = []
    rows: dict[tuple[int, int], int] = {}
    skipped = 0
    for number, line in enumerate(lines, start=2):
        where = f"{path}:{number}"
        try:
            inst = _future((line.get("symbol") or "").strip(), lake)
            day = _day((line.get("date") or "").strip())
            settle = _raw((line.get("settle") or "").strip(), inst)
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        if inst.instrument_id not in out or not days[0] <= day <= days[1]:
            skipped += 1
            continue
        if (day, inst.instrument_id) in rows:
            problems.append(f"{where}: a second row for {inst.symbol} on {day}")
            continue
        rows[(day, inst.instrument_id)] = settle
    if problems:
        shown = "; ".join(problems[:10])
        more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise SettlementFileError(shown + more)
    return SettlementRows([(day, iid, rows[(day, iid)]) for day, iid in sorted(rows)], len(lines), skipped)


def _future(symbol: str, lake: dict[str, Instrument]) -> Instrument:
    inst = lake.get(symbol)
    if inst is None:
        raise ValueError(f"no instrument {symbol!r} in the lake")
    if not is_daily_settled(inst):
        raise ValueError(
            f"{symbol} is asset_class {inst.asset_class!r}, not a daily-settled future "
            "(tape ingest metadata sets asset_class future)"
        )
    return inst


def _day(text: str) -> int:
    try:
        return int(date.fromisoformat(text).strftime("%Y%m%d"))
    except ValueError:
        raise ValueError(f"date {text!r} is not a date (YYYY-MM-DD)") from None


def _raw(text: str, inst: Instrument) -> int:
    try:
        value = Decimal(text) * 10**inst.price_digits
    except InvalidOperation:
        raise ValueError(f"settle {text!r} is not a decimal price") from None
    if not value.is_finite():
        raise ValueError(f"settle {text!r} is not a finite decimal price")
    if value != value.to_integral_value():
        raise ValueError(
            f"settle {text!r} has more digits than {inst.symbol}'s price_digits {inst.price_digits}"
        )
    raw = int(value)
    if not 0 < raw < 2**63:
        raise ValueError(f"settle {text!r} must be positive (and within int64 at price_digits)")
    if raw % inst.tick_raw:
        raise ValueError(f"settle {text!r} is not on {inst.symbol}'s tick ({inst.tick_raw} raw)")
    return raw
