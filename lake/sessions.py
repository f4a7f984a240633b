"""Trading sessions as arrays (UTC ns), from ``exchange_calendars`` or a 24x7 UTC calendar.

Validation uses them to place bars (a daily bar's timestamp is its session's close; an
intraday bar must close inside a session and outside the lunch break) and resampling uses
them to cut bars at session boundaries.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from domain.markets import HolidayYears

__all__ = [
    "DAY_NS",
    "SESSION_CHOICES",
    "Sessions",
    "known_calendar",
    "frequency_ns",
    "outside_sessions",
    "segments_around",
    "segments_for",
    "sessions_around",
    "sessions_for",
    "step_grid",
    "utc_days",
    "yyyymmdd",
]

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
    """Sessions sorted by day; ``break_start_ns``/``break_end_ns`` are -1 without a break.

    A *segment* table (``segments_for``) has one row per trading segment instead (several rows
    share a ``day``, no breaks): ``day_close_ns`` is then each row's whole-day ``1d`` stamp and
    ``single`` marks segments that are one bucket whatever the frequency (call auctions)."""

    name: str
    day: IntArray
    open_ns: IntArray
    close_ns: IntArray
    break_start_ns: IntArray
    break_end_ns: IntArray
    day_close_ns: IntArray | None = None
    single: npt.NDArray[np.bool_] | None = None

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


@functools.lru_cache(maxsize=64)
def known_calendar(name: str) -> bool:
    """``24x7`` or a calendar ``exchange_calendars`` has (an alias such as NYSE too)."""
    if name == "24x7":
        return True
    import exchange_calendars as xcals

    return name in xcals.get_calendar_names(include_aliases=True)


def sessions_for(
    calendar: str, first_day: int, last_day: int, holidays: HolidayYears | None = None
) -> Sessions:
    """Sessions of ``calendar`` (an exchange_calendars name, or ``24x7``) covering the days;
    ``holidays`` extends XSHG past the library's last year (a data set's ``Panel.holidays``).
    A day past what the calendar covers raises ``CalendarNotCovered``, which says what to do."""
    if calendar == "24x7":
        start = np.datetime64(_iso(first_day), "D").astype(np.int64)
        stop = np.datetime64(_iso(last_day), "D").astype(np.int64)
        index = np.arange(start, stop + 1, dtype=np.int64)
        none = np.full(len(index), NO_BREAK, dtype=np.int64)
        return Sessions(calendar, yyyymmdd(index), index * DAY_NS, (index + 1) * DAY_NS, none, none.copy())
    import pandas as pd

    cal = _calendar(calendar, first_day, last_day, holidays)
    schedule = cal.schedule.loc[_iso(first_day) : _iso(last_day)]  # type: ignore[attr-defined]

    def ns(column: str) -> IntArray:
        values = pd.DatetimeIndex(schedule[column].array).as_unit("ns")
        return np.where(values.isna(), NO_BREAK, values.asi8).astype(np.int64)

    days = np.array([int(d.strftime("%Y%m%d")) for d in schedule.index], dtype=np.int64)
    return Sessions(calendar, days, ns("open"), ns("close"), ns("break_start"), ns("break_end"))


def sessions_around(
    calendar: str, first_day: int, last_day: int, holidays: HolidayYears | None = None
) -> Sessions:
    """``sessions_for`` from the day before ``first_day`` to the day after ``last_day`` (UTC
    days of bars or events: a session's local date can differ from its bars' UTC date), the
    day after only where the calendar knows it: a lake ending on the calendar's last covered
    day is checked, not refused for the day after (``tape health`` refused a lake ending on
    2026-12-31). A ``last_day`` past the coverage raises ``CalendarNotCovered``."""
    before = _shifted(first_day, -1)
    after = max(last_day, _covered_through(calendar, _shifted(last_day, 1), holidays))
    return sessions_for(calendar, before, after, holidays)


def _shifted(day: int, days: int) -> int:
    index = np.datetime64(_iso(day), "D").astype(np.int64)
    return int(yyyymmdd(np.array([index + days]))[0])


def outside_sessions(
    calendar: str, ts_ns: IntArray, day: IntArray, *, daily: bool, holidays: HolidayYears | None = None
) -> npt.NDArray[np.bool_]:
    """Which bars fall outside ``calendar``'s sessions: a daily bar (``daily``) whose ``day`` is
    not a session day; an intraday bar whose close ``ts_ns`` is not inside a session's
    ``(open, close]`` (early closes per the calendar) or is inside its lunch break. ``24x7``
    holds every bar (its sessions are the UTC days)."""
    ts_ns, day = np.asarray(ts_ns, dtype=np.int64), np.asarray(day, dtype=np.int64)
    if len(ts_ns) == 0 or calendar == "24x7":
        return np.zeros(len(ts_ns), dtype=np.bool_)
    if daily:
        sessions = sessions_for(calendar, int(day.min()), int(day.max()), holidays)
        if len(sessions.day) == 0:
            return np.ones(len(day), dtype=np.bool_)
        _, found = sessions.close_of(day)
        return ~found
    # Sessions from the UTC day before the first close to the day after the last: a session's
    # local date can differ from the UTC date of its bars (XSHG opens at 01:30 UTC).
    first = int(yyyymmdd(np.array([(int(ts_ns.min()) - 1) // DAY_NS - 1]))[0])
    last = int(yyyymmdd(np.array([int(ts_ns.max()) // DAY_NS + 1]))[0])
    # The day after the last close is asked only where the calendar knows it: a bar of the
    # calendar's last covered day still closes inside that day's session.
    last = min(last, _covered_through(calendar, last, holidays))
    sessions = sessions_for(calendar, first, last, holidays)
    if len(sessions.day) == 0:
        return np.ones(len(ts_ns), dtype=np.bool_)
    _, inside = sessions.locate(ts_ns)
    return ~inside


SESSION_CHOICES = {"XNYS": ("regular", "extended"), "XSHG": ("regular", "auctions"), "24x7": ("regular",)}
"""Per calendar, the session sets ``segments_for`` knows; ``regular`` is ``sessions_for``."""


@functools.lru_cache(maxsize=16)
def segments_for(
    calendar: str,
    first_day: int,
    last_day: int,
    session: str,
    exchange: str | None = None,
    holidays: HolidayYears | None = None,
) -> Sessions:
    """Trading segments (UTC ns, ``(open, close]`` for bar closes) of ``calendar`` under a
    session set: ``regular`` is ``sessions_for`` as is; XNYS ``extended`` is pre-market
    (04:00 ET, open], the regular session, post-market (close, 20:00 ET], ``1d`` stamped at
    20:00 ET; XSHG ``auctions`` (needs ``exchange`` SSE or SZSE) is the opening call auction
    (09:15, 09:25] and, where ``cn_phase`` has one, the closing call auction (14:57, 15:00] as
    single-bucket segments, plus the continuous segments (09:30, 11:30], (13:00, 14:57 or 15:00].
    ``holidays`` extends XSHG past the library's last year, as for ``sessions_for``."""
    choices = SESSION_CHOICES.get(calendar, ("regular",))
    if session not in choices:
        raise ValueError(f"session for {calendar} must be one of {choices}, got {session!r}")
    if session == "regular":
        return sessions_for(calendar, first_day, last_day, holidays)
    from domain.markets.calendars import CnPhase, cn_phase, us_extended_intervals_ns

    base = sessions_for(calendar, first_day, last_day, holidays)
    rows: list[tuple[int, int, int, int, bool]] = []  # day, open, close, day_close, single
    if session == "extended":
        for day, open_ns, close_ns in zip(
            base.day.tolist(), base.open_ns.tolist(), base.close_ns.tolist(), strict=True
        ):
            (pre_open, _), (_, post_close) = us_extended_intervals_ns(day)
            for start, stop in ((pre_open, open_ns), (open_ns, close_ns), (close_ns, post_close)):
                rows.append((day, start, stop, post_close, False))
    else:
        if exchange not in ("SSE", "SZSE"):
            raise ValueError(f"XSHG auctions need exchange SSE or SZSE, got {exchange!r}")
        minute = 60 * 1_000_000_000
        for k, day in enumerate(base.day.tolist()):
            open_ns, close_ns = int(base.open_ns[k]), int(base.close_ns[k])  # 09:30, 15:00 Shanghai
            auction_close = cn_phase(exchange, day, 1457) is CnPhase.CLOSE_AUCTION
            pm_close = close_ns - 3 * minute if auction_close else close_ns
            rows.append((day, open_ns - 15 * minute, open_ns - 5 * minute, close_ns, True))
            if base.break_start_ns[k] == NO_BREAK:
                rows.append((day, open_ns, pm_close, close_ns, False))
            else:
                rows.append((day, open_ns, int(base.break_start_ns[k]), close_ns, False))
                rows.append((day, int(base.break_end_ns[k]), pm_close, close_ns, False))
            if auction_close:
                rows.append((day, pm_close, close_ns, close_ns, True))
    table = np.array(rows, dtype=np.int64).reshape(-1, 5)
    none = np.full(len(table), NO_BREAK, dtype=np.int64)
    return Sessions(
        f"{calendar} {session}",
        table[:, 0].copy(),
        table[:, 1].copy(),
        table[:, 2].copy(),
        none,
        none.copy(),
        table[:, 3].copy(),
        table[:, 4].astype(np.bool_),
    )


def segments_around(
    calendar: str,
    first_day: int,
    last_day: int,
    session: str,
    exchange: str | None = None,
    holidays: HolidayYears | None = None,
) -> Sessions:
    """``segments_for`` from the day before ``first_day`` to the day after ``last_day`` (UTC
    days of bars), the day after only where the calendar knows it, as ``sessions_around``:
    resampling XSHG bars ending on the calendar's last covered day asked for the day after and
    was refused. A ``last_day`` past the coverage raises ``CalendarNotCovered``."""
    before = _shifted(first_day, -1)
    after = max(last_day, _covered_through(calendar, _shifted(last_day, 1), holidays))
    return segments_for(calendar, before, after, session, exchange, holidays)


def _covered_through(calendar: str, day: int, holidays: HolidayYears | None) -> int:
    """``day``, or the calendar's last covered day when ``day`` is past it (24x7 and rule-based
    calendars cover every day)."""
    from domain.markets import CALENDARS, last_covered_day

    if calendar not in CALENDARS:
        return day
    high = last_covered_day(calendar, holidays=holidays)
    return day if high is None else min(day, high)


def _calendar(name: str, first_day: int, last_day: int, holidays: HolidayYears | None = None) -> object:
    """The library calendar from a year before ``first_day`` to a year after ``last_day``, cut
    to what it covers (XSHG's holidays end at a year: the padding past it asked the library for
    a year it does not have, which refused every XSHG day of that last year). A ``last_day``
    past the coverage raises ``CalendarNotCovered`` (with what to do)."""
    import warnings

    import exchange_calendars as xcals

    from domain.markets import CALENDARS, check_covered, exchange_calendar

    start_day = (first_day // 10000 - 1) * 10000 + 101
    end_day = (last_day // 10000 + 1) * 10000 + 1231
    if name in CALENDARS:
        check_covered(name, last_day, holidays=holidays)
        return exchange_calendar(name, start_day, end_day, holidays=holidays)
    start, end = _iso(start_day), _iso(end_day)
    with warnings.catch_warnings():  # exchange_calendars' own pandas deprecation noise
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return xcals.get_calendar(name, start=start, end=end)
        except ValueError:  # the calendar's history starts later: take what it has
            return xcals.get_calendar(name, start=f"{max(first_day // 10000, 1991)}-01-01", end=end)


def _iso(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


_UNIT_NS = {"m": 60 * 1_000_000_000, "h": 3_600 * 1_000_000_000, "d": DAY_NS}


def frequency_ns(frequency: str) -> int:
    """A bar interval (``1m``, ``5m``, ``1h``, ``1d`` ...) in nanoseconds."""
    count, unit = frequency[:-1], frequency[-1:]
    if unit not in _UNIT_NS or not count.isdigit() or int(count) <= 0:
        raise ValueError(f"frequency must be like 1m, 5m, 1h or 1d, got {frequency!r}")
    return int(count) * _UNIT_NS[unit]


def step_grid(
    calendar: str, frequency: str, first_ns: int, last_ns: int, holidays: HolidayYears | None = None
) -> tuple[IntArray, IntArray]:
    """The steps a live run will see between two times (inclusive): each bar's close (UTC ns)
    and its session day. ``24x7``: every interval from midnight UTC; an exchange calendar:
    each session's bars from its open (a ``1d`` bar closes at the session's close), none in
    the lunch break. Known before any bar arrives, so session ends are known at each step.
    ``holidays``: the data set's supplied years past the library's (``Panel.holidays``)."""
    interval = frequency_ns(frequency)
    if last_ns < first_ns:
        raise ValueError(f"the grid ends ({last_ns}) before it starts ({first_ns})")
    first_day = int(yyyymmdd(np.array([(first_ns - 1) // DAY_NS]))[0])
    last_day = int(yyyymmdd(np.array([last_ns // DAY_NS]))[0])
    if calendar == "24x7":
        ts = _every(-(-first_ns // interval) * interval, last_ns, interval)
        return ts, utc_days(ts)
    sessions = sessions_for(calendar, first_day, last_day, holidays)
    closes: list[IntArray] = []
    days: list[IntArray] = []
    for index, day in enumerate(sessions.day.tolist()):
        open_ns, close_ns = int(sessions.open_ns[index]), int(sessions.close_ns[index])
        if interval >= DAY_NS:
            ts = np.array([close_ns], dtype=np.int64)
        else:
            ts = _every(open_ns + interval, close_ns, interval)
            brk, brk_end = int(sessions.break_start_ns[index]), int(sessions.break_end_ns[index])
            if brk != NO_BREAK:
                ts = ts[(ts <= brk) | (ts > brk_end)]
        ts = ts[(ts >= first_ns) & (ts <= last_ns)]
        closes.append(ts)
        days.append(np.full(len(ts), day, dtype=np.int64))
    if not closes:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(closes), np.concatenate(days)


def _every(first_ns: int, last_ns: int, interval: int) -> IntArray:
    """``first_ns``, ``first_ns + interval``, ... up to ``last_ns`` inclusive, in integers
    (``np.arange`` sizes its result in floating point, one step short at nanosecond scale)."""
    if last_ns < first_ns:
        return np.zeros(0, dtype=np.int64)
    count = (last_ns - first_ns) // interval + 1
    return first_ns + interval * np.arange(count, dtype=np.int64)
