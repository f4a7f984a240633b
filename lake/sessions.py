"""Trading sessions as arrays (UTC ns), from ``exchange_calendars`` or a 24x7 UTC calendar.

Validation uses them to place bars (a daily bar's timestamp is its session's close; an
intraday bar must close inside a session and outside the lunch break) and resampling uses
them to cut bars at session boundaries.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["DAY_NS", "Sessions", "sessions_for", "utc_days", "yyyymmdd"]

IntArray = npt.NDArray[np.int64]
DAY_NS = 86_400 * 1_000_000_000
NO_BREAK = -1


def yyyymmdd(day_index: IntArray) -> IntArray:
    """Days since 1970-01-01 -> YYYYMMDD integers (proleptic Gregorian, integer arithmetic:
    H. Hinnant's ``civil_from_days``)."""
    days = np.asarray(day_index, dtype=np.int64)
    if days.size > 4096:  # long arrays span few distinct days: convert the span once, then gather
        low, high = int(days.min()), int(days.max())
        if high - low < days.size // 4:
            return _civil(np.arange(low, high + 1, dtype=np.int64))[days - low]
    return _civil(days)


def _civil(day_index: IntArray) -> IntArray:
    z = np.asarray(day_index, dtype=np.int64) + 719_468
    era = np.floor_divide(z, 146_097)
    day_of_era = z - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = np.where(month_index < 10, month_index + 3, month_index - 9)
    year = year_of_era + era * 400 + (month <= 2)
    return (year * 10_000 + month * 100 + day).astype(np.int64)


def utc_days(ts_ns: IntArray) -> IntArray:
    """The UTC calendar day (YYYYMMDD) of each bar, given bar-close timestamps."""
    return yyyymmdd((np.asarray(ts_ns, dtype=np.int64) - 1) // DAY_NS)


@dataclass(frozen=True, eq=False)
class Sessions:
    """Sessions sorted by day; ``break_start_ns``/``break_end_ns`` are -1 without a break."""

    name: str
    day: IntArray
    open_ns: IntArray
    close_ns: IntArray
    break_start_ns: IntArray
    break_end_ns: IntArray

    def close_of(self, days: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """Each day's session close and whether the day is a session at all."""
        position = np.searchsorted(self.day, days)
        clipped = np.minimum(position, len(self.day) - 1)
        found = (position < len(self.day)) & (self.day[clipped] == days)
        return np.where(found, self.close_ns[clipped], 0), found

    def locate(self, ts_ns: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """For bar-close timestamps: the session day and whether the bar lies in trading hours
        (``open < ts <= close`` and not inside the break)."""
        position = np.searchsorted(self.close_ns, ts_ns, side="left")
        clipped = np.minimum(position, len(self.day) - 1)
        inside = (
            (position < len(self.day)) & (ts_ns > self.open_ns[clipped]) & (ts_ns <= self.close_ns[clipped])
        )
        has_break = self.break_start_ns[clipped] != NO_BREAK
        in_break = has_break & (ts_ns > self.break_start_ns[clipped]) & (ts_ns <= self.break_end_ns[clipped])
        return np.where(inside, self.day[clipped], 0), inside & ~in_break


@functools.lru_cache(maxsize=16)
def sessions_for(calendar: str, first_day: int, last_day: int) -> Sessions:
    """Sessions of ``calendar`` (an exchange_calendars name, or ``24x7``) covering the days."""
    if calendar == "24x7":
        start = np.datetime64(_iso(first_day), "D").astype(np.int64)
        stop = np.datetime64(_iso(last_day), "D").astype(np.int64)
        index = np.arange(start, stop + 1, dtype=np.int64)
        none = np.full(len(index), NO_BREAK, dtype=np.int64)
        return Sessions(calendar, yyyymmdd(index), index * DAY_NS, (index + 1) * DAY_NS, none, none.copy())
    import pandas as pd

    cal = _calendar(calendar, first_day, last_day)
    schedule = cal.schedule.loc[_iso(first_day) : _iso(last_day)]  # type: ignore[attr-defined]

    def ns(column: str) -> IntArray:
        values = pd.DatetimeIndex(schedule[column].array).as_unit("ns")
        return np.where(values.isna(), NO_BREAK, values.asi8).astype(np.int64)

    days = np.array([int(d.strftime("%Y%m%d")) for d in schedule.index], dtype=np.int64)
    return Sessions(calendar, days, ns("open"), ns("close"), ns("break_start"), ns("break_end"))


def _calendar(name: str, first_day: int, last_day: int) -> object:
    import warnings

    import exchange_calendars as xcals

    start = f"{first_day // 10000 - 1}-01-01"
    end = f"{last_day // 10000 + 1}-12-31"
    with warnings.catch_warnings():  # exchange_calendars' own pandas deprecation noise
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return xcals.get_calendar(name, start=start, end=end)
        except ValueError:  # the calendar's history starts later: take what it has
            return xcals.get_calendar(name, start=f"{max(first_day // 10000, 1991)}-01-01", end=end)


def _iso(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"
