"""Trading calendars and sessions: XSHG / XNYS from ``exchange_calendars`` (package data, no
I/O), 24x7 for crypto, A-share intraday phases (call auctions, lunch break), US extended hours.

A calendar is asked only about years it covers. ``exchange_calendars`` hard-codes XSHG holidays
up to a last year; past it this module raises ``CalendarNotCovered`` rather than guess.
Every calendar is built with an explicit start and end: the library's defaults depend on
today's date, which would make results depend on the wall clock.
Sources: ``MARKET_RULES.md`` sections 5 (exchange_calendars), 1.4 (A-share phases), 2.1 (US).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import functools
import warnings
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

from domain.markets._dated import Dated, date_to_day, day_to_date

__all__ = [
    "CALENDARS",
    "CalendarNotCovered",
    "CnPhase",
    "cn_phase",
    "is_session",
    "last_covered_day",
    "session_intervals_ns",
    "sessions",
    "us_extended_intervals_ns",
]

CALENDARS = ("XSHG", "XNYS", "24x7")
"""XSHG serves SSE, SZSE and BSE (no separate calendar; MARKET_RULES.md §5, U for SZSE/BSE)."""

_NS_PER_DAY = 86_400 * 10**9
_EASTERN = ZoneInfo("America/New_York")


@contextlib.contextmanager
def _library_warnings_silenced() -> Iterator[None]:
    """exchange_calendars trips pandas' future-behaviour warnings internally; not ours to fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


class CalendarNotCovered(ValueError):
    """The calendar does not know this date (before its first or after its last covered year)."""


def _check_code(code: str) -> None:
    if code not in CALENDARS:
        raise ValueError(f"unknown calendar {code!r}; known: {', '.join(CALENDARS)}")


def _bounds(code: str) -> tuple[int | None, int | None]:
    if code == "24x7":
        return None, None
    cls = type(_year_calendar(code, 2020))
    low, high = cls.bound_min(), cls.bound_max()
    return (
        None if low is None else date_to_day(low.date()),
        None if high is None else date_to_day(high.date()),
    )


def last_covered_day(code: str) -> int | None:
    """The last day the calendar knows holidays for (``None``: rule-based, no hard end)."""
    _check_code(code)
    return _bounds(code)[1]


def _check_covered(code: str, day: int) -> None:
    low, high = _bounds(code)
    if high is not None and day > high:
        raise CalendarNotCovered(
            f"{code}: exchange_calendars {xcals.__version__} records holidays only through {high}; "
            f"{day} is past it. Update exchange_calendars (or add the year) instead of guessing."
        )
    if low is not None and day < low:
        raise CalendarNotCovered(f"{code}: calendar starts at {low}; {day} is before it")


@functools.lru_cache(maxsize=256)
def _year_calendar(code: str, year: int) -> Any:
    start = pd.Timestamp(year=year, month=1, day=1)
    end = pd.Timestamp(year=year, month=12, day=31)
    with _library_warnings_silenced():
        probe = xcals.get_calendar(code, start=pd.Timestamp(2020, 1, 1), end=pd.Timestamp(2020, 12, 31))
        low, high = type(probe).bound_min(), type(probe).bound_max()
        if low is not None:
            start = max(start, low)
        if high is not None:
            end = min(end, high)
        return xcals.get_calendar(code, start=start, end=end)


def sessions(code: str, start_day: int, end_day: int) -> list[int]:
    """Session days (YYYYMMDD) from ``start_day`` to ``end_day`` inclusive."""
    _check_code(code)
    start, end = day_to_date(start_day), day_to_date(end_day)
    if end < start:
        raise ValueError(f"end_day {end_day} is before start_day {start_day}")
    if code == "24x7":
        return [date_to_day(start + dt.timedelta(days=offset)) for offset in range((end - start).days + 1)]
    _check_covered(code, start_day)
    _check_covered(code, end_day)
    days: list[int] = []
    for year in range(start.year, end.year + 1):
        for session in _year_calendar(code, year).sessions:
            day = date_to_day(session.date())
            if start_day <= day <= end_day:
                days.append(day)
    return days


def is_session(code: str, day: int) -> bool:
    return bool(sessions(code, day, day))


def session_intervals_ns(code: str, day: int) -> tuple[tuple[int, int], ...]:
    """Continuous-trading intervals ``[open, close)`` of a session, UTC ns; the A-share lunch
    break splits the day in two. Call auctions are not included (see ``cn_phase``)."""
    if not is_session(code, day):
        raise ValueError(f"{day} is not a {code} session")
    if code == "24x7":
        midnight = _utc_midnight_ns(day)
        return ((midnight, midnight + _NS_PER_DAY),)
    calendar = _year_calendar(code, day // 10000)
    label = pd.Timestamp(day_to_date(day))
    with _library_warnings_silenced():
        open_ns = int(calendar.session_open(label).value)
        close_ns = int(calendar.session_close(label).value)
        break_start = calendar.session_break_start(label)
        break_end = calendar.session_break_end(label)
    if pd.isna(break_start):
        return ((open_ns, close_ns),)
    return ((open_ns, int(break_start.value)), (int(break_end.value), close_ns))


def _utc_midnight_ns(day: int) -> int:
    date = day_to_date(day)
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC).timestamp()) * 10**9


def _eastern_ns(day: int, hour: int, minute: int) -> int:
    date = day_to_date(day)
    local = dt.datetime(date.year, date.month, date.day, hour, minute, tzinfo=_EASTERN)
    return int(local.timestamp()) * 10**9


def us_extended_intervals_ns(day: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Opt-in US pre-market (04:00 ET to the open) and after-hours (the close to 20:00 ET),
    UTC ns (MARKET_RULES.md §2.1, Nasdaq). Broker windows differ: a venue property."""
    regular = session_intervals_ns("XNYS", day)
    open_ns, close_ns = regular[0][0], regular[-1][1]
    return (_eastern_ns(day, 4, 0), open_ns), (close_ns, _eastern_ns(day, 20, 0))


# --- A-share intraday phases -----------------------------------------------------------------


class CnPhase(enum.Enum):
    CLOSED = "closed"
    OPEN_AUCTION = "open_auction"  # 09:15-09:25
    PRE_OPEN = "pre_open"  # 09:25-09:30: orders accepted, no matching
    CONTINUOUS = "continuous"
    LUNCH = "lunch"  # 11:30-13:00
    CLOSE_AUCTION = "close_auction"  # 14:57-15:00


_Phases = tuple[tuple[int, int, CnPhase], ...]  # (from_hhmm, to_hhmm exclusive, phase)
_MORNING: _Phases = (
    (915, 925, CnPhase.OPEN_AUCTION),
    (925, 930, CnPhase.PRE_OPEN),
    (930, 1130, CnPhase.CONTINUOUS),
    (1130, 1300, CnPhase.LUNCH),
)
_WITH_CLOSE_AUCTION = (*_MORNING, (1300, 1457, CnPhase.CONTINUOUS), (1457, 1500, CnPhase.CLOSE_AUCTION))
_WITHOUT_CLOSE_AUCTION = (*_MORNING, (1300, 1500, CnPhase.CONTINUOUS))

# MARKET_RULES.md §1.4: phases are U except the 09:30-11:30 / 13:00-15:00 continuous session (P).
# SZSE's closing auction is "long-standing" (start date U; table starts 2006-07-01, U);
# SSE adopted it in 2018 ("believed 2018-08-20", U).
_CN_PHASES: dict[str, Dated[_Phases]] = {
    "SSE": Dated.of("SSE phases", [(19961216, _WITHOUT_CLOSE_AUCTION), (20180820, _WITH_CLOSE_AUCTION)]),
    "SZSE": Dated.of("SZSE phases", [(19961216, _WITHOUT_CLOSE_AUCTION), (20060701, _WITH_CLOSE_AUCTION)]),
}


def cn_phase(exchange: str, day: int, hhmm: int) -> CnPhase:
    """Trading phase at local (Beijing) time ``hhmm`` on a session ``day`` of SSE or SZSE."""
    if exchange not in _CN_PHASES:
        raise ValueError(f"exchange must be SSE or SZSE, got {exchange!r}")
    if not 0 <= hhmm <= 2359 or hhmm % 100 >= 60:
        raise ValueError(f"hhmm must be a time of day as HHMM, got {hhmm}")
    for start, end, phase in _CN_PHASES[exchange].at(day):
        if start <= hhmm < end:
            return phase
    return CnPhase.CLOSED
