"""Trading calendars and sessions: XSHG / XNYS from ``exchange_calendars`` (package data, no
I/O), 24x7 for crypto, A-share intraday phases (call auctions, lunch break), US extended hours.

A calendar is asked only about years it covers. ``exchange_calendars`` hard-codes XSHG holidays
up to a last year; past it this module raises ``CalendarNotCovered`` rather than guess, unless
the caller hands it the following years' holidays (``HolidayYears``: whole years the operator
supplied from the exchange's published closures, ``parse_holidays``), which extend the coverage
by exactly those years. The holidays are an argument, never read from a file here: a run carries
them in its data set (``holidays.parquet``), so a replay uses the same ones.
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
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

from domain.markets._dated import Dated, date_to_day, day_to_date

__all__ = [
    "CALENDARS",
    "CalendarNotCovered",
    "CnPhase",
    "EXTENDABLE_CALENDARS",
    "HOLIDAYS_HINT",
    "HolidayYears",
    "HolidaysInvalid",
    "check_covered",
    "cn_phase",
    "exchange_calendar",
    "holidays_hint",
    "is_session",
    "last_covered_day",
    "parse_holidays",
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
    """The calendar does not know this date (before its first or after its last covered year).
    ``reason`` says what is not known; ``hint``, when holidays would help, says where to give
    them (``HOLIDAYS_HINT``: a data set's; a lake verb points at its own option, ``pointing``)."""

    def __init__(self, reason: str, hint: str = "") -> None:
        super().__init__(f"{reason}: {hint}" if hint else reason)
        self.reason, self.hint = reason, hint

    def pointing(self, hint: str) -> CalendarNotCovered:
        """The same refusal with ``hint`` for what to do (``holidays_hint``); one without a hint
        (a day before the calendar starts: no holidays help) is kept as it is."""
        return CalendarNotCovered(self.reason, hint) if self.hint else self


class HolidaysInvalid(ValueError):
    """Supplied exchange holidays that cannot extend a calendar (each problem named)."""


EXTENDABLE_CALENDARS = ("XSHG",)
"""Calendars whose holidays ``exchange_calendars`` hard-codes up to a last year (XNYS is
rule-based and 24x7 has no holidays: nothing to extend)."""


@dataclass(frozen=True)
class HolidayYears:
    """Whole years of an exchange's holidays the calendar library does not record: ``years``
    (consecutive, ascending) and every weekday closure in them (``days``, YYYYMMDD, ascending).
    A weekday of such a year that is not in ``days`` is a session (regular hours). Weekends are
    always closed, so a make-up working weekend (China's 调休) opens nothing and is not listed."""

    calendar: str
    years: tuple[int, ...]
    days: tuple[int, ...]

    def __post_init__(self) -> None:
        problems = _intrinsic_problems(self)
        if problems:
            raise HolidaysInvalid(f"{self.calendar} holidays: " + "; ".join(problems))


def _intrinsic_problems(holidays: HolidayYears) -> list[str]:
    problems: list[str] = []
    if holidays.calendar not in EXTENDABLE_CALENDARS:
        extendable = ", ".join(EXTENDABLE_CALENDARS)
        problems.append(f"{holidays.calendar} has no year-by-year holidays to extend (only {extendable})")
    years = list(holidays.years)
    if not years:
        problems.append("no year given")
    elif years != list(range(years[0], years[0] + len(years))):
        problems.append(f"the years {years} are not consecutive and ascending")
    if list(holidays.days) != sorted(set(holidays.days)):
        problems.append("the days are not ascending and distinct")
    for day in holidays.days:
        try:
            date = day_to_date(day)
        except ValueError:
            problems.append(f"{day} is not a YYYYMMDD date")
            continue
        if date.year not in holidays.years:
            problems.append(f"{day} is not in the years given ({', '.join(map(str, years))})")
        elif date.weekday() >= 5:
            problems.append(f"{day} is a {date.strftime('%A')} (only weekday closures are listed)")
    return problems


def _check_code(code: str) -> None:
    if code not in CALENDARS:
        raise ValueError(f"unknown calendar {code!r}; known: {', '.join(CALENDARS)}")


@functools.lru_cache(maxsize=8)
def _library_class(code: str) -> Any:
    with _library_warnings_silenced():
        probe = xcals.get_calendar(code, start=pd.Timestamp(2020, 1, 1), end=pd.Timestamp(2020, 12, 31))
    return type(probe)


def _library_last_year(code: str) -> int | None:
    high = _library_class(code).bound_max()
    return None if high is None else int(high.year)


def _applies(code: str, holidays: HolidayYears | None) -> HolidayYears | None:
    """The holidays that extend ``code`` (``None``: none given, another calendar's, or years
    that leave a gap after the library's last year, which would call a closed year open)."""
    if holidays is None or holidays.calendar != code:
        return None
    last = _library_last_year(code)
    if last is None or holidays.years[0] > last + 1:
        return None
    return holidays


def _bounds(code: str, holidays: HolidayYears | None = None) -> tuple[int | None, int | None]:
    if code == "24x7":
        return None, None
    cls = _calendar_class(code, _applies(code, holidays))
    low, high = cls.bound_min(), cls.bound_max()
    return (
        None if low is None else date_to_day(low.date()),
        None if high is None else date_to_day(high.date()),
    )


def last_covered_day(code: str, *, holidays: HolidayYears | None = None) -> int | None:
    """The last day the calendar knows holidays for, with ``holidays``' years when they follow
    the library's (``None``: rule-based, no hard end)."""
    _check_code(code)
    return _bounds(code, holidays)[1]


def holidays_hint(option: str, then: str = "") -> str:
    """What to do when a date is past a calendar's coverage, for a verb whose ``option`` takes
    the holiday file (``tape health LAKE --holidays FILE``); ``then``: what to do after."""
    return (
        "supply the exchange's holidays for that year as a file (docs/markets.md, \"Calendar years "
        f'past exchange_calendars") with {option}' + (f", {then}" if then else "")
    )


HOLIDAYS_HINT = holidays_hint("tape export --holidays FILE", "and export the data set again")
"""What to do when a run's date is past a calendar's coverage: the holidays come with its data
set (``check_covered`` ends with it; a lake verb re-points it, ``CalendarNotCovered.pointing``)."""


def check_covered(code: str, day: int, *, holidays: HolidayYears | None = None) -> None:
    """Raise ``CalendarNotCovered`` (saying what to do) when ``code`` does not know ``day``."""
    low, high = _bounds(code, holidays)
    if high is not None and day > high:
        extended = _applies(code, holidays)
        supplied = "" if extended is None else f" and the supplied holidays through {extended.years[-1]}"
        if holidays is not None and extended is None and holidays.calendar == code:
            supplied = (
                f" (the supplied holidays start at {holidays.years[0]}, not the year after "
                f"{_library_last_year(code)}: not used)"
            )
        raise CalendarNotCovered(
            f"{code}: exchange_calendars {xcals.__version__} records holidays only through "
            f"{_library_last_year(code)}-12-31{supplied}; {day} is past it",
            HOLIDAYS_HINT,
        )
    if low is not None and day < low:
        raise CalendarNotCovered(f"{code}: calendar starts at {low}; {day} is before it")


@functools.lru_cache(maxsize=16)
def _calendar_class(code: str, holidays: HolidayYears | None) -> Any:
    """The library's calendar class, or (with ``holidays``) a subclass whose precomputed
    holidays are the library's outside the supplied years and the supplied ones in them."""
    base = _library_class(code)
    if holidays is None:
        return base
    supplied = set(holidays.years)
    with _library_warnings_silenced():
        kept = [stamp for stamp in base.precomputed_holidays() if stamp.year not in supplied]
        added = [pd.Timestamp(day_to_date(day)) for day in holidays.days]
        merged = pd.DatetimeIndex(sorted([*kept, *added]))
    last_year = max(int(base.bound_max().year), holidays.years[-1])
    return type(
        f"{base.__name__}Extended",
        (base,),
        {
            "precomputed_holidays": classmethod(lambda cls: merged),
            "bound_max": classmethod(lambda cls: pd.Timestamp(year=last_year, month=12, day=31)),
        },
    )


@functools.lru_cache(maxsize=256)
def _year_calendar(code: str, year: int, holidays: HolidayYears | None = None) -> Any:
    return exchange_calendar(code, year * 10000 + 101, year * 10000 + 1231, holidays=holidays)


def exchange_calendar(
    code: str, first_day: int, last_day: int, *, holidays: HolidayYears | None = None
) -> Any:
    """The ``exchange_calendars`` calendar of ``code`` built for ``first_day`` to ``last_day``
    (YYYYMMDD), cut to what it covers (with ``holidays`` when they extend it): always with an
    explicit start and end (the library's defaults read today's date)."""
    cls = _calendar_class(code, _applies(code, holidays))
    start, end = pd.Timestamp(day_to_date(first_day)), pd.Timestamp(day_to_date(last_day))
    low, high = cls.bound_min(), cls.bound_max()
    if low is not None:
        start = max(start, low)
    if high is not None:
        end = min(end, high)
    with _library_warnings_silenced():
        return cls(start=start, end=max(start, end))


def parse_holidays(text: str, source: str, *, calendar: str = "XSHG") -> HolidayYears:
    """An operator's holiday file, checked whole: a header naming ``year`` and ``date`` (other
    columns, a holiday's name, are kept out), then one weekday closure a line as
    ``YEAR,YYYY-MM-DD``; ``#`` lines and blank lines skipped. Every problem is reported with its
    line: a date that is not one, not in its row's year, on a weekend, or listed twice; years
    that are not consecutive, or that the library already records, or that leave a gap after
    its last year. The years given are covered whole: every weekday not listed is a session."""
    problems: list[str] = []
    rows: list[tuple[int, int, int]] = []  # line, year, day
    header: list[str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if header is None:
            header = [cell.lower() for cell in cells]
            if "year" not in header or "date" not in header:
                problems.append(
                    f"line {number}: the header must name the columns year and date, got {line!r}"
                )
                break
            continue
        if len(cells) != len(header):
            problems.append(f"line {number}: {len(cells)} fields, the header has {len(header)}")
            continue
        row = dict(zip(header, cells, strict=True))
        parsed = _holiday_row(number, row["year"], row["date"], problems)
        if parsed is not None:
            rows.append((number, *parsed))
    if header is None and not problems:
        problems.append("no header (year,date) and no holidays")
    first_seen = _first_lines(rows, problems)
    years = sorted({year for _, year, _ in rows})
    if not years and not problems:
        problems.append("no holidays listed: give every weekday closure of each year supplied")
    problems.extend(_year_problems(calendar, years))
    if problems:
        raise HolidaysInvalid(f"{source}: " + "; ".join(problems))
    return HolidayYears(calendar, tuple(years), tuple(sorted(first_seen)))


def _first_lines(rows: list[tuple[int, int, int]], problems: list[str]) -> dict[int, int]:
    """Each day's first line; a day listed again is a problem naming both lines."""
    first_seen: dict[int, int] = {}
    for number, _, day in rows:
        if day in first_seen:
            problems.append(f"line {number}: {_iso(day)} is listed twice (first on line {first_seen[day]})")
        else:
            first_seen[day] = number
    return first_seen


def _holiday_row(number: int, year_text: str, date_text: str, problems: list[str]) -> tuple[int, int] | None:
    if not year_text.isdigit() or len(year_text) != 4:
        problems.append(f"line {number}: year {year_text!r} is not a year like 2027")
        return None
    try:
        date = dt.date.fromisoformat(date_text)
    except ValueError:
        problems.append(f"line {number}: {date_text!r} is not a date YYYY-MM-DD")
        return None
    if len(date_text) != 10:
        problems.append(f"line {number}: {date_text!r} is not a date YYYY-MM-DD")
        return None
    if date.year != int(year_text):
        problems.append(f"line {number}: {date_text} is not in {year_text}")
        return None
    if date.weekday() >= 5:
        problems.append(
            f"line {number}: {date_text} is a {date.strftime('%A')}: the exchange is closed on weekends "
            "anyway (a make-up working weekend, 调休, does not open it); list weekday closures only"
        )
        return None
    return int(year_text), date_to_day(date)


def _year_problems(calendar: str, years: list[int]) -> list[str]:
    if calendar not in EXTENDABLE_CALENDARS:
        return [f"{calendar} has no year-by-year holidays to extend (only {', '.join(EXTENDABLE_CALENDARS)})"]
    if not years:
        return []
    last = _library_last_year(calendar)
    problems: list[str] = []
    recorded = [year for year in years if last is not None and year <= last]
    if recorded:
        problems.append(
            f"exchange_calendars {xcals.__version__} already records {calendar}'s holidays for "
            f"{', '.join(map(str, recorded))} (through {last}): give only later years"
        )
    later = [year for year in years if last is None or year > last]
    expected = list(range(later[0], later[0] + len(later))) if later else []
    if later and (later != expected or (last is not None and later[0] != last + 1)):
        missing = sorted(set(range((last or later[0]) + 1, later[-1] + 1)) - set(later))
        problems.append(
            f"the years given leave {', '.join(map(str, missing))} out: {calendar} is covered through "
            f"{last}, so give every year from {(last or 0) + 1} on"
        )
    return problems


def _iso(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


def sessions(code: str, start_day: int, end_day: int, *, holidays: HolidayYears | None = None) -> list[int]:
    """Session days (YYYYMMDD) from ``start_day`` to ``end_day`` inclusive (``holidays``: the
    supplied years past the library's, a data set's ``Panel.holidays``)."""
    _check_code(code)
    start, end = day_to_date(start_day), day_to_date(end_day)
    if end < start:
        raise ValueError(f"end_day {end_day} is before start_day {start_day}")
    if code == "24x7":
        return [date_to_day(start + dt.timedelta(days=offset)) for offset in range((end - start).days + 1)]
    check_covered(code, start_day, holidays=holidays)
    check_covered(code, end_day, holidays=holidays)
    days: list[int] = []
    for year in range(start.year, end.year + 1):
        for session in _year_calendar(code, year, _applies(code, holidays)).sessions:
            day = date_to_day(session.date())
            if start_day <= day <= end_day:
                days.append(day)
    return days


def is_session(code: str, day: int, *, holidays: HolidayYears | None = None) -> bool:
    return bool(sessions(code, day, day, holidays=holidays))


def session_intervals_ns(
    code: str, day: int, *, holidays: HolidayYears | None = None
) -> tuple[tuple[int, int], ...]:
    """Continuous-trading intervals ``[open, close)`` of a session, UTC ns; the A-share lunch
    break splits the day in two. Call auctions are not included (see ``cn_phase``)."""
    if not is_session(code, day, holidays=holidays):
        raise ValueError(f"{day} is not a {code} session")
    if code == "24x7":
        midnight = _utc_midnight_ns(day)
        return ((midnight, midnight + _NS_PER_DAY),)
    calendar = _year_calendar(code, day // 10000, _applies(code, holidays))
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
