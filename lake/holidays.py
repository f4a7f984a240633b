"""An operator's file of exchange holidays for years past ``exchange_calendars``' (XSHG's are
hard-coded up to a last year; China's State Council publishes the next year's each winter).

The file is CSV, checked whole by ``domain.markets.parse_holidays`` (every problem named with its
line; nothing used on any)::

    # XSHG closures for 2027 (weekdays only: weekends are closed anyway, 调休 opens nothing)
    year,date,name
    2027,2027-01-01,New Year's Day

``tape export --holidays FILE`` checks the bars on the extended calendar and carries the
holidays in the data set (``holidays.parquet``, under its content hash): the file itself is read
once, at export, so a run never depends on a file that can change under it. ``tape health``,
``tape ingest`` and ``tape cockpit --lake LAKE --holidays FILE`` check a lake's bars on it (the
lake does not keep it); ``lake.resample.resample(..., holidays=)`` cuts bars on it.
``tape scheduler`` reads one per calendar from its jobs file (``[scheduler.holidays]``) when the
file is loaded: it decides only on which days a job runs, never what a run computes.
"""

from __future__ import annotations

from pathlib import Path

from domain.markets import EXTENDABLE_CALENDARS, HolidaysInvalid, HolidayYears, parse_holidays

__all__ = ["HolidayFileError", "read_holidays"]


class HolidayFileError(ValueError):
    """A holiday file that cannot be read or used (its problems named)."""


def read_holidays(path: Path, calendar: str, *, setting: str = "--holidays") -> HolidayYears:
    """The holidays of ``path`` for a data set declaring ``calendar`` (XSHG, or ``mixed``: a set
    of several markets whose A-shares trade on XSHG), or for a scheduler's calendar. Every
    problem starts with ``setting``, where the file was named (``tape export --holidays``, a
    jobs file's ``[scheduler.holidays]``)."""
    target = "XSHG" if calendar == "mixed" else calendar
    if target not in EXTENDABLE_CALENDARS:
        raise HolidayFileError(
            f"{setting}: {calendar} has no year-by-year holidays to extend (XNYS is rule-based, "
            f"24x7 has none); holiday files extend {', '.join(EXTENDABLE_CALENDARS)}"
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise HolidayFileError(f"{setting} {path}: {error}") from None
    try:
        return parse_holidays(text, str(path), calendar=target)
    except HolidaysInvalid as error:
        raise HolidayFileError(f"{setting} {error}") from None
