"""Exchange rates the user supplies, carried into a data set (``tape export --fx FILE``).

A CSV file with a header, one rate per line::

    date,currency,base,rate
    2014-06-10,CNY,USD,0.16037
    2014-06-10,USD,CNY,6.2356

``date`` is the day the rate applies to (``YYYY-MM-DD``); one unit of ``currency`` is worth
``rate`` units of ``base`` (decimal text, positive, exact at 1e-8: ``0.123456789`` is refused,
never rounded). Both currencies must be codes ``domain.fixed`` knows and differ; one line per
(date, currency, base). Validation is all or nothing: every problem is reported with its line,
and a file with any problem writes no data set. The rows become the data set's ``fx.parquet``
(``docs/data_contracts/dataset.md``), covered by its content hash, so a run's journal pins them
like the bars (``kernel.currencies`` reads them; a run uses the rows whose ``base`` is its
``currency``).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from domain.fixed import minor_digits
from domain.fx import FxRate
from lake.margins import read_csv_table

__all__ = ["FX_COLUMNS", "FxFileError", "read_fx_rows"]

FX_COLUMNS = ("date", "currency", "base", "rate")
_E8 = Decimal(100_000_000)


class FxFileError(ValueError):
    """An exchange-rate file with problems: every one, with its line."""


def read_fx_rows(path: Path) -> list[FxRate]:
    """The file's rates sorted by (day, currency, base); ``FxFileError`` listing every problem."""
    header, lines = read_csv_table(path, FxFileError)
    if sorted(header) != sorted(FX_COLUMNS):
        raise FxFileError(f"{path}: the header must be {','.join(FX_COLUMNS)} (got {','.join(header)})")
    problems: list[str] = []
    seen: dict[tuple[int, str, str], int] = {}
    rows: list[FxRate] = []
    for number, line in enumerate(lines, start=2):
        try:
            row = _row({name: (line.get(name) or "").strip() for name in FX_COLUMNS})
        except ValueError as error:
            problems.append(f"{path}:{number}: {error}")
            continue
        key = (row.day, row.currency, row.base)
        if key in seen:
            pair = f"{row.currency}/{row.base}"
            problems.append(f"{path}:{number}: a second {pair} rate on {row.day} (line {seen[key]})")
            continue
        seen[key] = number
        rows.append(row)
    if problems:
        raise FxFileError("; ".join(problems))
    if not rows:
        raise FxFileError(f"{path}: no rates")
    return sorted(rows, key=lambda r: (r.day, r.currency, r.base))


def _row(texts: dict[str, str]) -> FxRate:
    try:
        day = int(date.fromisoformat(texts["date"]).strftime("%Y%m%d"))
    except ValueError:
        raise ValueError(f"date {texts['date']!r} is not a date (YYYY-MM-DD)") from None
    currency, base = texts["currency"], texts["base"]
    for name, code in (("currency", currency), ("base", base)):
        try:
            minor_digits(code)
        except ValueError:
            raise ValueError(f"{name} {code!r} is not a known currency") from None
    if currency == base:
        raise ValueError(f"currency and base are both {currency}")
    try:
        scaled = Decimal(texts["rate"]) * _E8
    except InvalidOperation:
        raise ValueError(f"rate {texts['rate']!r} is not a decimal number") from None
    if not scaled.is_finite():  # nan, inf: not "more than 8 decimal places"
        raise ValueError(f"rate {texts['rate']!r} is not a finite decimal number")
    if scaled != scaled.to_integral_value():
        raise ValueError(f"rate {texts['rate']!r} has more than 8 decimal places")
    if not 0 < scaled < 2**63:
        raise ValueError(f"rate {texts['rate']!r} must be positive (and below 9.2e10)")
    return FxRate(day=day, currency=currency, base=base, rate_e8=int(scaled))
