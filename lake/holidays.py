"""An operator's file of exchange holidays for years past ``exchange_calendars``' (XSHG's are
hard-coded up to a last year; China's State Council publishes the next year's each winter).

The file is CSV, checked whole by ``domain.markets.parse_holidays`` (every problem named with its
line; nothing used on any)::

    # XSHG closures for 2027 (weekdays only: weekends are closed anyway, 调休 opens nothing)
    year,date,name
    2027,2027-01-01,New Year's Day

``tape export --holidays FILE`` checks the bars on the extended calendar and carries the
holidays in the data set (``holidays.parquet``, under its content hash): the file itself is read
once, at export, so a run never depends on a file that can change under it.
"""

from __future__ import annotations

from pathlib import Path

from domain.markets import EXTENDABLE_CALENDARS, HolidaysInvalid, HolidayYears, parse_holidays

__all__ = ["HolidayFileError", "read_holidays"]


class HolidayFileError(ValueError):
    """A holiday file that cannot be read or used (its problems named)."""


def read_holidays(path: Path, calendar: str) -> HolidayYears:
    """The holidays of ``path`` for a data set declaring ``calendar`` (XSHG, or ``mixed``: a set
    of several markets whose A-shares trade on XSHG)."""
    target = "XSHG" if calendar == "mixed" else calendar
    if target not in EXTENDABLE_CALENDARS:
        raise HolidayFileError(
            f"--holidays: {calendar} has no year-by-year holidays to extend (XNYS is rule-based, "
            f"24x7 has none); holiday files extend {', '.join(EXTENDABLE_CALENDARS)}"
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise HolidayFileError(f"--holidays {path}: {error}") from None
    try:
        return parse_holidays(text, str(path), calendar=target)
    except HolidaysInvalid as error:
        raise HolidayFileError(str(error)) from None
