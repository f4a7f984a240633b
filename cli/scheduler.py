"""The built-in job scheduler: ``tape scheduler``, ``tape jobs run NAME``, ``tape jobs list``.

Jobs are ``[[jobs]]`` tables of a TOML file (``docs/operations.md``): a ``tape`` verb with its
arguments (run as ``python -m cli.main ...`` with this interpreter) or a ``shell`` command, a
cron-style time (``minute hour day-of-month month day-of-week``) read in an exchange's time
zone, that exchange's calendar (``exchange_calendars``: the job runs on trading sessions only,
so holidays and weekends are skipped; ``24x7`` runs every day), and retries with exponential
backoff. Every attempt is a row of the SQLite job log (outcome, exit status, duration, the tail
of its output, redacted), which ``tape alerts`` reads for its ``failed_jobs`` rule.

The scheduler runs jobs one after another in the order they fall due; a run missed while the
scheduler was down is not caught up. The clock and the sleep are injected (tests drive a fake
clock through holidays in milliseconds); the wall clock is read only in ``cli``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cli.exits import Stopped
from cli.logs import SECRET_LENGTH_MIN, Redactor
from cli.wiring import ConfigError
from domain.markets import EXTENDABLE_CALENDARS, HolidayYears, exchange_calendar
from lake.holidays import HolidayFileError, read_holidays
from projections.alerts import JobOutcome

__all__ = [
    "HOLIDAYS_SETTING",
    "RUNNING",
    "CalendarEnds",
    "CronSpec",
    "JobLog",
    "JobRun",
    "JobSpec",
    "Scheduler",
    "SchedulerConfig",
    "StopSignal",
    "exit_text",
    "hold_lock",
    "job_log_lock_path",
    "load_scheduler_config",
    "lock_holder",
    "parse_cron",
    "run_command",
    "stop_on_signals",
]

log = logging.getLogger("tape.scheduler")

NS = 1_000_000_000
SEARCH_DAYS_MAX = 400  # a cron time that matches no session within this many days is an error
OUTPUT_TAIL_CHARS = 500

_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)


@dataclass(frozen=True)
class CronSpec:
    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # cron numbering: 0 = Sunday ... 6 = Saturday
    days_restricted: bool  # the field does not start with "*" (``*/2`` is unrestricted, as in cron)
    weekdays_restricted: bool

    @property
    def day_or(self) -> bool:
        """Whether a day matching either day field runs (both restricted), else both must match."""
        return self.days_restricted and self.weekdays_restricted

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.day_or:
            return in_days or in_weekdays  # Vixie cron: both restricted, either may match
        return in_days and in_weekdays


def _cron_field(text: str, name: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        spec, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if spec == "*":
                start, end = low, high
            elif "-" in spec:
                start, end = (int(v) for v in spec.split("-", 1))
            else:
                start = end = int(spec)
        except ValueError:
            raise ConfigError(f"cron {name} field {text!r}: not a number, range, list or step") from None
        if not low <= start <= end <= high or step < 1:
            raise ConfigError(f"cron {name} field {text!r}: values must lie in {low}..{high}")
        values.update(range(start, end + 1, step))
    return values


def parse_cron(text: str) -> CronSpec:
    """Five fields: minute hour day-of-month month day-of-week (0 or 7 = Sunday)."""
    fields = text.split()
    if len(fields) != len(_CRON_FIELDS):
        raise ConfigError(f"cron {text!r}: need 5 fields (minute hour day-of-month month day-of-week)")
    parsed = [
        _cron_field(f, name, low, high) for f, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True)
    ]
    weekdays = {d % 7 for d in parsed[4]}
    return CronSpec(
        text=text,
        minutes=tuple(sorted(parsed[0])),
        hours=tuple(sorted(parsed[1])),
        days=frozenset(parsed[2]),
        months=frozenset(parsed[3]),
        weekdays=frozenset(weekdays),
        # Vixie cron (entry.c: DOM_STAR / DOW_STAR): a day field whose text starts with "*" (``*``,
        # ``*/2``) is unrestricted, so it combines with the other day field by AND, not OR
        days_restricted=not fields[2].startswith("*"),
        weekdays_restricted=not fields[4].startswith("*"),
    )


class CalendarEnds(ConfigError):
    """A calendar whose sessions are known only up to a day before the one asked for
    (``exchange_calendars`` records some exchanges' holidays a year at a time: XSHG's end
    with 2026 in 4.13; a jobs file's ``[scheduler.holidays]`` extends it by the years it gives)."""


HOLIDAYS_SETTING = "[scheduler.holidays]"
"""The jobs file's table naming a holiday file per calendar (``XSHG = "holidays/xshg.csv"``)."""


def _yyyymmdd(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


class Sessions:
    """Is a date a trading session? ``exchange_calendars`` for a code, every day for 24x7.

    The calendar is built with ``exchange_calendars``' default span (20 years back, one year
    ahead) and built again further ahead when a later day is asked for, so a scheduler that
    runs for more than a year goes on; past the last day the library knows (its
    ``bound_max``) ``CalendarEnds`` is raised. With ``holidays`` (the years past the library's,
    read from ``holidays_file``) the calendar is ``domain.markets.exchange_calendar``'s extended
    one, which knows those years too: the same calendar a data set exported with ``tape export
    --holidays`` runs on."""

    def __init__(self, code: str, holidays: HolidayYears | None = None, holidays_file: str = "") -> None:
        self.code = code
        self.holidays = holidays
        self.holidays_file = holidays_file
        self._calendar: Any = None
        if code != "24x7":
            import exchange_calendars

            try:
                self._calendar = exchange_calendars.get_calendar(code)
            except Exception as error:  # InvalidCalendarName and friends
                raise ConfigError(f"calendar {code!r}: {error}") from None
            if holidays is not None:
                last = self._calendar.last_session.date() + timedelta(days=2 * SEARCH_DAYS_MAX)
                self._calendar = self._built(self._calendar.first_session.date(), last)

    @property
    def timezone(self) -> str:
        return "UTC" if self._calendar is None else str(self._calendar.tz)

    def is_session(self, day: date) -> bool:
        if self._calendar is None:
            return True
        first = self._calendar.first_session.date()
        if day < first:
            raise ConfigError(
                f"calendar {self.code} covers {first}..{self._calendar.last_session.date()}, not {day}"
            )
        if day > self._calendar.last_session.date():
            self._extend(day)
        return bool(self._calendar.is_session(day.isoformat()))

    def _built(self, first: date, last: date) -> Any:
        """The calendar from ``first`` to ``last`` (cut to what it covers, with the holidays)."""
        if self.holidays is not None:
            return exchange_calendar(self.code, _yyyymmdd(first), _yyyymmdd(last), holidays=self.holidays)
        return type(self._calendar)(start=first.isoformat(), end=last.isoformat())

    def _extend(self, day: date) -> None:
        bound = type(self._calendar).bound_max()
        if bound is not None and day > bound.date():
            raise CalendarEnds(self._ends(bound.date(), day))
        end = day + timedelta(days=2 * SEARCH_DAYS_MAX)
        if bound is not None:
            end = min(end, bound.date())
        self._calendar = self._built(self._calendar.first_session.date(), end)

    def _ends(self, bound: date, day: date) -> str:
        """Why no run on ``day`` can be scheduled, and what to do."""
        import exchange_calendars

        library = f"exchange_calendars {exchange_calendars.__version__}"
        setting = f'{HOLIDAYS_SETTING} {self.code} = "FILE" in the jobs file (docs/operations.md)'
        if self.holidays is not None:
            known = f"{library} and the holidays of {self.holidays_file} reach no further"
            remedy = f"add {bound.year + 1}'s closures to {self.holidays_file}"
        elif self.code in EXTENDABLE_CALENDARS:
            known = f"{library} records its holidays no further"
            remedy = (
                f"name a file of the exchange's holidays for {bound.year + 1} as {setting}, "
                "upgrade exchange_calendars, or give the job another calendar"
            )
        else:
            known = f"{library} records its holidays no further"
            remedy = "upgrade exchange_calendars or give the job another calendar"
        return (
            f"calendar {self.code}'s sessions are known only up to {bound} ({known}): no run on "
            f"{day} or later can be scheduled; {remedy}"
        )


@dataclass(frozen=True)
class JobSpec:
    name: str
    argv: tuple[str, ...]
    cron: CronSpec
    sessions: Sessions
    timezone: ZoneInfo
    retries: int = 0
    backoff_s: float = 30.0
    backoff_factor: float = 2.0
    backoff_max_s: float = 600.0
    timeout_s: float = 3600.0
    command_text: str = ""
    cwd: Path = Path()  # where the command runs: the jobs file's folder unless `cwd` says
    ok_exit: tuple[int, ...] = (0,)  # the exit statuses that count as success (0 always among them)

    def judged(self, outcome: str, exit_status: int | None, detail: str) -> tuple[str, str]:
        """An attempt's (outcome, detail) under ``ok_exit``: a command that exited with a status
        listed there is ``ok`` (its detail says so), with any other ``failed``; a timeout or a
        command that never started stays as it is. An ``ok`` attempt is never retried."""
        if exit_status is None or outcome not in ("ok", "failed"):
            return outcome, detail
        if exit_status not in self.ok_exit:
            return "failed", detail
        if exit_status == 0:
            return "ok", detail
        said = f"exit {exit_status} counts as ok ({self.ok_exit_text})"
        return "ok", f"{said}; its output: {detail}" if detail else f"{said}; no output"

    @property
    def ok_exit_text(self) -> str:
        return f"ok_exit = [{', '.join(map(str, self.ok_exit))}]"

    def next_fire_ns(self, after_ns: int) -> int:
        """The first cron time strictly after ``after_ns`` on a session day (ns, UTC). The cron
        fields are read in the job's time zone; the session is the calendar's date at that
        moment (``session_day``), which differs when the two zones do."""
        after = datetime.fromtimestamp(after_ns / NS, tz=self.timezone)
        sessions: dict[date, bool] = {}
        for offset in range(SEARCH_DAYS_MAX):
            day = after.date() + timedelta(days=offset)
            if not self.cron.matches_day(day):
                continue
            for fire_ns, local in self._day_fires(day):
                if fire_ns <= after_ns:
                    continue
                session = self.session_day(local)
                if session not in sessions:
                    sessions[session] = self._is_session(session)
                if sessions[session]:
                    return fire_ns
        raise ConfigError(
            f"job {self.name}: cron {self.cron.text!r} matches no {self.sessions.code} "
            f"session within {SEARCH_DAYS_MAX} days"
        )

    def _day_fires(self, day: date) -> list[tuple[int, datetime]]:
        """The cron times of ``day`` in the job's zone, in time order (ns, local time). A time
        the clocks skip (02:30 on a spring-forward night) fires once, at the same moment an
        hour later on the wall clock; a time the clocks repeat (01:30 on a fall-back night)
        fires once -- but for a job that runs every hour, which fires in both (as cron does:
        "jobs that run more frequently [than hourly] are scheduled normally"), so an every
        15 minutes job does not pause for an hour."""
        every_hour = len(self.cron.hours) == 24
        fires: dict[int, datetime] = {}
        for hour in self.cron.hours:
            for minute in self.cron.minutes:
                local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.timezone)
                for moment in (local, local.replace(fold=1)) if every_hour else (local,):
                    fires.setdefault(int(moment.timestamp()) * NS, moment)
        return sorted(fires.items())

    def session_day(self, moment: datetime) -> date:
        """The calendar's date at ``moment``: the day whose session decides whether the job
        runs. A job at 06:00 Asia/Shanghai on XNYS runs after the New York session of the
        evening before (17:00 or 18:00 there), so it is that session that must be one."""
        return moment.astimezone(ZoneInfo(self.sessions.timezone)).date()

    def _is_session(self, day: date) -> bool:
        try:
            return self.sessions.is_session(day)
        except CalendarEnds as error:
            raise CalendarEnds(f"job {self.name}: {error}") from None

    def backoff_after(self, attempt: int) -> float:
        """The wait before attempt ``attempt + 1``: ``backoff_s`` x ``backoff_factor`` per attempt
        before, up to ``backoff_max_s``. Grown step by step and stopped at the cap, so no factor
        overflows (``1e300 ** 2`` is an OverflowError, not a long wait)."""
        wait = self.backoff_s
        for _ in range(attempt - 1):
            if wait >= self.backoff_max_s:
                break
            wait *= self.backoff_factor
        return float(min(wait, self.backoff_max_s))


@dataclass
class SchedulerConfig:
    path: Path
    jobs: dict[str, JobSpec]
    job_log: Path
    log: Path | None
    redactor: Redactor = field(default_factory=Redactor)


_TEXT_KEYS = ("name", "shell", "cron", "calendar", "timezone", "cwd", "job_log", "log")
# What [scheduler] sets for every job, and a job for itself.
_JOB_DEFAULT_KEYS = {"calendar", "timezone", "retries", "backoff_s", "backoff_factor", "backoff_max_s",
                     "timeout_s", "cwd"}  # fmt: skip
_SCHEDULER_KEYS = {"job_log", "log", "redact_env", "holidays", *_JOB_DEFAULT_KEYS}
_JOB_KEYS = {"name", "tape", "shell", "cron", "ok_exit", *_JOB_DEFAULT_KEYS}


def _command(name: str, table: dict[str, Any]) -> tuple[tuple[str, ...], str]:
    """A job's argv and how it reads: a tape verb (checked when the file is loaded, not when the
    job first runs) or a shell command."""
    if ("tape" in table) == ("shell" in table):
        raise ConfigError(f'job {name}: give either tape = [verb, args...] or shell = "command"')
    if "tape" in table:
        verb_args = table["tape"]
        if not isinstance(verb_args, list) or not verb_args or not all(isinstance(a, str) for a in verb_args):
            raise ConfigError(f'job {name}: tape must be a list of strings, e.g. ["verify", "journal"]')
        from cli.main import VERBS  # here: cli.main imports this module

        if verb_args[0] not in {*VERBS, "projections", "audit"}:
            raise ConfigError(f"job {name}: tape {verb_args[0]!r} is no tape verb (tape --help lists them)")
        argv = (sys.executable, "-m", "cli.main", *verb_args)
        text = "tape " + " ".join(verb_args)
    else:
        argv = ("/bin/sh", "-c", str(table["shell"]))
        text = str(table["shell"])
    return argv, text


def _numbers(name: str, table: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A job's retries, backoff and timeout (its own, else [scheduler]'s; None: the default)."""
    numbers = {
        k: table.get(k, defaults.get(k))
        for k in ("retries", "backoff_s", "backoff_factor", "backoff_max_s", "timeout_s")
    }
    for key, value in numbers.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf
        ):  # TOML reads nan and inf as floats: a nan passed `< 0` and waited nan seconds
            raise ConfigError(f"job {name}: {key} must be a finite non-negative number, got {value!r}")
    if numbers["retries"] is not None and not isinstance(numbers["retries"], int):
        raise ConfigError(f"job {name}: retries must be a whole number, got {numbers['retries']!r}")
    if numbers["timeout_s"] is not None and numbers["timeout_s"] <= 0:
        raise ConfigError(f"job {name}: timeout_s must be more than 0 s (every run would time out)")
    return numbers


EXIT_STATUS_MAX = 255


def _ok_exit(name: str, value: object) -> tuple[int, ...]:
    """A job's ``ok_exit``: the exit statuses that count as success, 0 among them (``[0, 3]``: a
    tape verb's "sound but unfinished" over the journal of a session still running)."""
    example = "e.g. ok_exit = [0, 3]"
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(f"job {name}: ok_exit must be a list of exit statuses, {example}; got {value!r}")
    wrong = [v for v in value if not 0 <= v <= EXIT_STATUS_MAX]
    if wrong:
        raise ConfigError(f"job {name}: ok_exit {value}: an exit status is 0..{EXIT_STATUS_MAX}, not {wrong}")
    if len(set(value)) != len(value):
        raise ConfigError(f"job {name}: ok_exit {value} lists a status twice")
    if 0 not in value:
        raise ConfigError(
            f"job {name}: ok_exit {value} leaves out 0: a command's success would count as a "
            f"failure; list 0 with the others, {example}"
        )
    return tuple(sorted(value))


def _job_from(
    table: dict[str, Any], defaults: dict[str, Any], sessions: dict[str, Sessions], base: Path
) -> JobSpec:
    if not isinstance(table, dict):
        raise ConfigError("jobs must be [[jobs]] tables (an array of tables), one per job")
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError("every [[jobs]] table needs a name")
    unknown = set(table) - _JOB_KEYS
    if unknown:
        raise ConfigError(f"job {name}: unknown keys {sorted(unknown)}")
    _check_types(f"job {name}", table)
    argv, text = _command(name, table)
    code = str(table.get("calendar", defaults.get("calendar", "24x7")))
    if code not in sessions:  # one calendar per code, shared by its jobs ([scheduler.holidays]'s)
        sessions[code] = Sessions(code)
    calendar = sessions[code]
    zone = str(table.get("timezone", defaults.get("timezone", calendar.timezone)))
    try:
        timezone = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"job {name}: unknown time zone {zone!r}") from None
    if "cron" not in table:
        raise ConfigError(f'job {name}: cron is required, e.g. cron = "30 17 * * 1-5"')
    numbers = _numbers(name, table, defaults)
    cwd = base / Path(str(table.get("cwd", defaults.get("cwd", ".")))).expanduser()
    if not cwd.is_dir():
        raise ConfigError(f"job {name}: cwd {cwd} is not a folder")
    ok_exit = _ok_exit(name, table["ok_exit"]) if "ok_exit" in table else (0,)
    return JobSpec(
        name=name,
        argv=argv,
        cron=parse_cron(str(table["cron"])),
        sessions=calendar,
        timezone=timezone,
        command_text=text,
        cwd=cwd,
        ok_exit=ok_exit,
        **{k: v for k, v in numbers.items() if v is not None},
    )


def _check_types(where: str, table: dict[str, Any]) -> None:
    for key in _TEXT_KEYS:
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise ConfigError(f"{where}: {key} must be a text, got {table[key]!r}")


def _scheduler_table(data: dict[str, Any]) -> dict[str, Any]:
    """The [scheduler] table, checked: a misspelt key (``calender``) would silently leave every
    job on the 24x7 default, running on holidays."""
    unknown = set(data) - {"scheduler", "jobs"}
    if unknown:
        raise ConfigError(f"unknown settings {sorted(unknown)}: settings go in [scheduler], jobs in [[jobs]]")
    defaults = data.get("scheduler", {})
    if not isinstance(defaults, dict):
        raise ConfigError("scheduler must be a [scheduler] table")
    unknown = set(defaults) - _SCHEDULER_KEYS
    if unknown:
        raise ConfigError(f"[scheduler]: unknown keys {sorted(unknown)}")
    _check_types("[scheduler]", defaults)
    return dict(defaults)


def _holiday_sessions(table: object, base: Path) -> dict[str, Sessions]:
    """The calendars ``[scheduler.holidays]`` extends, each by the holiday file it names (the
    format and checks of ``tape export --holidays``: ``lake.holidays.read_holidays``), read and
    checked whole now, every problem named with its line, so a bad file is refused when the jobs
    file is loaded rather than at the year end."""
    example = f'{HOLIDAYS_SETTING} XSHG = "holidays/xshg.csv"'
    if not isinstance(table, dict):
        raise ConfigError(
            f"[scheduler]: holidays must be a table of calendar = FILE ({example}), got {table!r}"
        )
    sessions: dict[str, Sessions] = {}
    for code, name in sorted(table.items()):
        setting = f"{HOLIDAYS_SETTING} {code}"
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{setting}: must name a holiday file ({example}), got {name!r}")
        path = base / Path(name).expanduser()
        try:
            holidays = read_holidays(path, code, setting=setting)
        except HolidayFileError as error:
            raise ConfigError(str(error)) from None
        sessions[code] = Sessions(code, holidays, str(path))
    return sessions


def _redactor(names: object) -> Redactor:
    """A redactor of the values of ``redact_env``'s variables (those that are set)."""
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"[scheduler]: redact_env must be a list of variable names, got {names!r}")
    redactor = Redactor()
    for name in names:
        value = os.environ.get(name, "")
        if not value:
            continue
        if len(value) < SECRET_LENGTH_MIN:
            raise ConfigError(
                f"[scheduler]: redact_env {name}: its value is shorter than {SECRET_LENGTH_MIN} "
                "characters and cannot be redacted safely (it would hide ordinary words)"
            )
        redactor.add(value)
    return redactor


def load_scheduler_config(path: Path) -> SchedulerConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not a valid TOML file: {error}") from None
    defaults = _scheduler_table(data)
    tables = data.get("jobs", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{path}: jobs must be [[jobs]] tables (an array of tables), one per job")
    sessions = _holiday_sessions(defaults.get("holidays", {}), path.parent)
    jobs: dict[str, JobSpec] = {}
    for table in tables:
        job = _job_from(table, defaults, sessions, path.parent)
        if job.name in jobs:
            raise ConfigError(f"{path}: two jobs named {job.name}")
        jobs[job.name] = job
    if not jobs:
        raise ConfigError(f"{path}: no [[jobs]] defined")
    redactor = _redactor(defaults.get("redact_env", []))
    # how a command reads in logs, `jobs list` and Prefect's deployments: a --db URL's password and
    # redact_env's values masked (the command itself runs as written)
    jobs = {name: replace(job, command_text=redactor.redact(job.command_text)) for name, job in jobs.items()}
    base = path.parent
    job_log = Path(defaults.get("job_log", path.with_suffix(".log.sqlite").name)).expanduser()
    log_path = defaults.get("log")
    return SchedulerConfig(
        path=path,
        jobs=jobs,
        job_log=job_log if job_log.is_absolute() else base / job_log,
        log=(base / Path(log_path).expanduser()) if log_path else None,
        redactor=redactor,
    )


# --- the job log ------------------------------------------------------------------------------

_JOB_LOG_DDL = """
CREATE TABLE IF NOT EXISTS job_runs (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,          -- one run = its attempts
    job TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    final INTEGER NOT NULL,           -- 1: the run's last attempt (ok, or retries exhausted)
    trigger TEXT NOT NULL,            -- schedule | manual
    scheduled_ns INTEGER NOT NULL,
    started_ns INTEGER NOT NULL,
    finished_ns INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    outcome TEXT NOT NULL,            -- ok | failed | timeout; running while an attempt runs
    exit_status INTEGER,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_runs_by_job ON job_runs (job, run_id);
"""


@dataclass(frozen=True)
class JobRun:
    id: int
    run_id: int
    job: str
    attempt: int
    final: int
    trigger: str
    scheduled_ns: int
    started_ns: int
    finished_ns: int
    duration_s: float
    outcome: str
    exit_status: int | None
    detail: str


_RUN_COLUMNS = ", ".join(JobRun.__dataclass_fields__)


class JobLog:
    """Every attempt of every job run (SQLite; readers may open it while the scheduler writes)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_JOB_LOG_DDL)

    def __enter__(self) -> JobLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def next_run_id(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(run_id), 0) + 1 FROM job_runs").fetchone()[0])

    def record(self, run: JobRun) -> int:
        """Add an attempt; its row id."""
        values = list(run.__dict__.values())[1:]
        cursor = self._db.execute(
            f"INSERT INTO job_runs ({_RUN_COLUMNS.split(', ', 1)[1]}) "
            f"VALUES ({', '.join('?' * len(values))})",
            values,
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def start(self, run: JobRun) -> int:
        """Record an attempt as it starts (outcome ``running``, its detail ``running_detail``):
        a process killed during it (SIGKILL, the OOM killer, a power cut) leaves that row, which
        ``settle_abandoned`` turns into a failed final attempt. Its row id, for ``finish``."""
        assert run.outcome == RUNNING
        return self.record(run)

    def finish(self, row_id: int, run: JobRun) -> None:
        """The attempt of ``row_id`` (``start``) ended as ``run`` says."""
        assert run.outcome != RUNNING
        names = _RUN_COLUMNS.split(", ")[1:]
        values = list(run.__dict__.values())[1:]
        self._db.execute(
            f"UPDATE job_runs SET {', '.join(f'{name} = ?' for name in names)} WHERE id = ?",
            [*values, row_id],
        )

    def note(self, row_id: int, detail: str) -> None:
        """Replace the detail of the running attempt ``row_id`` (the command's process group)."""
        self._db.execute(
            "UPDATE job_runs SET detail = ? WHERE id = ? AND outcome = ?", [detail, row_id, RUNNING]
        )

    def settle_abandoned(
        self, now_ns: int, *, scheduler_gone: bool, alive: Callable[[int], bool] | None = None
    ) -> list[JobRun]:
        """Attempts still ``running`` whose process is gone: each becomes the failed final
        attempt of its run, found at ``now_ns``, its detail saying so (and naming the command's
        process group when it still runs: it is not killed, its id may have been reused). A
        ``schedule`` attempt is gone when ``scheduler_gone`` (the caller holds the scheduler's
        lock: no scheduler runs), any attempt when ``alive`` says its pid is not running."""
        alive = alive or pid_alive
        rows = self._db.execute(
            f"SELECT {_RUN_COLUMNS} FROM job_runs WHERE outcome = ? ORDER BY id", [RUNNING]
        ).fetchall()
        settled = []
        for row in rows:
            run = JobRun(*row)
            pid, group = running_pids(run.detail)
            if not ((scheduler_gone and run.trigger == "schedule") or pid is None or not alive(pid)):
                continue
            still = (
                f"; its command's process group {group} still runs (kill -- -{group} stops it)"
                if group is not None and group_alive(group)
                else ""
            )
            who = f"pid {pid}" if pid is not None else "the process"
            detail = (
                f"abandoned: {who}, which ran this attempt, ended without recording its end "
                f"(killed?); found {describe_ns(now_ns)}{still}"
            )
            ended = replace(
                run, final=1, finished_ns=now_ns, duration_s=max(0, now_ns - run.started_ns) / NS,
                outcome="failed", exit_status=None, detail=detail,
            )  # fmt: skip
            self.finish(run.id, ended)
            settled.append(ended)
        return settled

    def mark_final(self, row_id: int) -> None:
        """The attempt of ``row_id`` ends its run after all (stopped before its retry)."""
        self._db.execute("UPDATE job_runs SET final = 1 WHERE id = ?", [row_id])

    def runs(self, job: str | None = None, limit: int = 100) -> list[JobRun]:
        where, params = ("WHERE job = ?", [job]) if job else ("", [])
        rows = self._db.execute(
            f"SELECT {_RUN_COLUMNS} FROM job_runs {where} ORDER BY id DESC LIMIT ?", [*params, limit]
        ).fetchall()
        return [JobRun(*row) for row in rows]

    def final_outcomes(self) -> list[JobOutcome]:
        rows = self._db.execute(
            "SELECT job, run_id, outcome, finished_ns, detail FROM job_runs WHERE final = 1 ORDER BY id"
        ).fetchall()
        return [
            JobOutcome(job, run_id, outcome, finished_ns, detail[-200:])
            for job, run_id, outcome, finished_ns, detail in rows
        ]


RUNNING = "running"  # the outcome of an attempt in progress


def running_detail(pid: int, group: int | None = None) -> str:
    """The detail of an attempt in progress: the process that runs it (and records its end)
    and, once started, the command's process group."""
    text = f"running in pid {pid}"
    return text if group is None else f"{text}, its command in process group {group}"


def running_pids(detail: str) -> tuple[int | None, int | None]:
    """(pid, process group) of a ``running_detail``; None where it does not say."""
    match = re.fullmatch(r"running in pid (\d+)(?:, its command in process group (\d+))?", detail)
    if match is None:
        return None, None
    return int(match[1]), (int(match[2]) if match[2] else None)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- one long-running process per file ---------------------------------------------------------


def hold_lock(path: Path, holder: str) -> int | None:
    """Take an exclusive ``flock`` on ``path`` without waiting and write ``holder`` into it: the
    open descriptor (closing it releases the lock; the kernel releases it when the process dies,
    however it dies), or None when another process holds it (``lock_holder`` says who). Two
    schedulers on one job log would run every job twice; two alert followers on one state would
    send every notification twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{holder} (pid {os.getpid()})".encode())
    return fd


def lock_holder(path: Path) -> str:
    """Who holds the lock of ``path`` (as ``hold_lock`` wrote it)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def job_log_lock_path(job_log: Path) -> Path:
    return job_log.with_name(job_log.name + ".lock")


# --- running ----------------------------------------------------------------------------------

CommandRunner = Callable[
    [tuple[str, ...], float, Path, Callable[[str], str], Callable[[int], object]], tuple[str, int | None, str]
]
KILL_WAIT_S = 5.0  # after a timeout's kill: how long the output of what is left is awaited


def _unchanged(text: str) -> str:
    return text


def _ignore(group: int) -> None:
    return None


def run_command(
    argv: tuple[str, ...],
    timeout_s: float,
    cwd: Path,
    redact: Callable[[str], str] = _unchanged,
    started: Callable[[int], object] = _ignore,
) -> tuple[str, int | None, str]:
    """(outcome, exit status, output tail) of one attempt: stdout and stderr as they came,
    ``redact``-ed whole before the last ``OUTPUT_TAIL_CHARS`` are kept (cut first, a secret that
    straddled the cut would be left in part). The command runs in a process group of its own,
    killed whole at its timeout: a shell job's children (a ``tar``) would otherwise run on after
    the attempt was recorded as killed, beside its retry. ``started`` is told the group's id."""
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as error:
        return "failed", None, redact(f"could not start: {error}")
    try:
        started(process.pid)  # start_new_session: the group's id is the command's pid
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        tail = _tail(redact(_kill_group(process)))
        said = f"; its output: {tail}" if tail else "; no output"
        return "timeout", None, f"killed after {timeout_s:g} s (its timeout_s){said}"
    except BaseException:  # stopped while waiting (Ctrl-C in tape jobs run): the job stops too
        _kill_group(process)
        raise
    status = process.returncode
    return ("ok" if status == 0 else "failed"), status, _tail(redact(output))


def _tail(output: str) -> str:
    return output.strip()[-OUTPUT_TAIL_CHARS:]


def _kill_group(process: subprocess.Popen[str]) -> str:
    """Kill the command's process group; what it wrote until then."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        output, _ = process.communicate(timeout=KILL_WAIT_S)
    except subprocess.TimeoutExpired:  # a child that left the group holds the pipe open
        if process.stdout is not None:
            process.stdout.close()
        process.wait()
        return ""
    return output or ""


def exit_text(exit_status: int | None) -> str:
    """An attempt's exit status in words: none when it was killed (timeout) or never started."""
    return "no exit status (killed or not started)" if exit_status is None else f"exit {exit_status}"


def wall_ns() -> int:
    return time.time_ns()  # clock-edge: the scheduler's own time


class StopSignal(threading.Event):
    """Set by SIGTERM or SIGINT; remembers which (``signum``)."""

    signum: int | None = None

    def raise_if_stopped(self) -> None:
        """Once the verb has stopped at its clean point: ``Stopped`` for the signal, which
        ``cli.main`` turns into its one ``interrupted:`` / ``terminated:`` line and exit 130 / 143,
        as for every verb (docs/runbook.md)."""
        if self.signum is not None:
            raise Stopped(self.signum)


def stop_on_signals() -> StopSignal:
    """An event set by SIGTERM (systemd, ``kill``) or SIGINT (Ctrl-C): a long-running verb
    stops between two cycles or jobs, never half-way through one (an alert sent but not yet
    recorded as sent would be sent again after a restart), then calls ``raise_if_stopped``.
    A background job's SIGINT may be ignored by its shell; SIGTERM never is."""
    stop = StopSignal()

    def _set(signum: int, frame: object) -> None:
        stop.signum = signum
        stop.set()

    signal.signal(signal.SIGTERM, _set)
    signal.signal(signal.SIGINT, _set)
    return stop


class Scheduler:
    def __init__(
        self,
        config: SchedulerConfig,
        job_log: JobLog,
        *,
        clock: Callable[[], int] = wall_ns,
        sleep: Callable[[float], object] = time.sleep,
        runner: CommandRunner = run_command,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.config, self.job_log = config, job_log
        self.clock, self.sleep, self.runner = clock, sleep, runner
        self.stopping = stopping  # asked before a retry: a stopping scheduler does not retry

    def run_job(self, job: JobSpec, *, scheduled_ns: int, trigger: str) -> JobRun:
        """One run with its retries; every attempt recorded. Returns the final attempt."""
        run_id = self.job_log.next_run_id()
        attempts = job.retries + 1
        for attempt in range(1, attempts + 1):
            log.info(
                "job %s run %d attempt %d/%d: %s",
                job.name,
                run_id,
                attempt,
                attempts,
                job.command_text,
                extra={"job": job.name, "attempt": attempt},
            )
            now_ns = self.clock()
            started = JobRun(0, run_id, job.name, attempt, 0, trigger, scheduled_ns, now_ns, now_ns, 0.0,
                             RUNNING, None, "")  # fmt: skip
            row_id, outcome, exit_status, detail = self._attempt(job, started)
            finished_ns = self.clock()
            final = outcome == "ok" or attempt == attempts or self.stopping()
            run = replace(
                started,
                id=row_id,
                final=int(final),
                finished_ns=finished_ns,
                duration_s=(finished_ns - started.started_ns) / NS,
                outcome=outcome,
                exit_status=exit_status,
                detail=self.config.redactor.redact(detail),
            )
            self.job_log.finish(row_id, run)
            level = logging.INFO if outcome == "ok" else logging.ERROR
            log.log(
                level,
                "job %s run %d attempt %d: %s (%s, %.1f s)",
                job.name,
                run_id,
                attempt,
                outcome,
                exit_text(exit_status)
                + (f" in {job.ok_exit_text}" if outcome == "ok" and exit_status else ""),
                run.duration_s,
                extra={"job": job.name, "attempt": attempt},
            )
            if final:
                return run
            wait_s = job.backoff_after(attempt)
            log.info("job %s: retry in %.0f s", job.name, wait_s, extra={"job": job.name})
            try:
                self.sleep(wait_s)  # the scheduler's wait ends early on a stop signal
            except BaseException:  # tape jobs run stopped (Ctrl-C) during the wait
                self.job_log.mark_final(row_id)
                raise
            if self.stopping():  # stopped during the wait: no retry, this attempt ends the run
                self.job_log.mark_final(row_id)
                log.info("job %s: stopped before its retry", job.name, extra={"job": job.name})
                return replace(run, final=1)
        raise AssertionError("unreachable: the last attempt is final")

    def _attempt(self, job: JobSpec, started: JobRun) -> tuple[int, str, int | None, str]:
        """Run one attempt, recorded as ``running`` while it runs (with the command's process
        group once started), so a process killed during it leaves a row that says so
        (``JobLog.settle_abandoned``). (row id, outcome, exit status, output tail)."""
        pid = os.getpid()
        row_id = self.job_log.start(
            replace(started, finished_ns=started.started_ns, detail=running_detail(pid))
        )

        def command_started(group: int) -> None:
            self.job_log.note(row_id, running_detail(pid, group))

        try:
            outcome, exit_status, detail = self.runner(
                job.argv, job.timeout_s, job.cwd, self.config.redactor.redact, command_started
            )
        except BaseException:  # tape jobs run stopped (Ctrl-C) during the attempt: its command was killed
            stopped_ns = self.clock()
            stopped = replace(started, id=row_id, final=1, finished_ns=stopped_ns,
                              duration_s=(stopped_ns - started.started_ns) / NS, outcome="failed",
                              detail="stopped during the attempt: its command was killed")  # fmt: skip
            self.job_log.finish(row_id, stopped)
            raise
        outcome, detail = job.judged(outcome, exit_status, detail)  # ok_exit: an ok is not retried
        return row_id, outcome, exit_status, detail

    def next_fires(self, after_ns: int) -> dict[str, int]:
        return {name: job.next_fire_ns(after_ns) for name, job in self.config.jobs.items()}

    def run_forever(
        self, should_stop: Callable[[int], bool] = lambda now_ns: False, tick_s_max: float = 30.0
    ) -> int:
        """Run jobs as they fall due until ``should_stop(now_ns)``; returns the runs made."""
        due = self.next_fires(self.clock())
        runs = 0
        while True:
            now_ns = self.clock()
            if should_stop(now_ns):
                return runs
            for name in _in_order(due, now_ns):
                self.run_job(self.config.jobs[name], scheduled_ns=due[name], trigger="schedule")
                runs += 1
                self._plan_next(due, name)
            now_ns = self.clock()
            wait_s = (min(due.values()) - now_ns) / NS
            if wait_s > 0:
                self.sleep(min(wait_s, tick_s_max))

    def _plan_next(self, due: dict[str, int], name: str) -> None:
        """The job's next run after the one just made. A job whose calendar ends before it has
        none: logged, and the others run on (the scheduler stops, with the reason, when no job
        is left)."""
        try:
            due[name] = self.config.jobs[name].next_fire_ns(max(self.clock(), due[name]))
        except CalendarEnds as error:
            del due[name]
            if not due:
                raise
            log.error("%s; the other jobs run on", error, extra={"job": name})


def _in_order(due: dict[str, int], now_ns: int) -> Iterable[str]:
    return [name for name, at in sorted(due.items(), key=lambda item: (item[1], item[0])) if at <= now_ns]


def describe_ns(ns: int, zone: ZoneInfo | None = None) -> str:
    moment = datetime.fromtimestamp(ns / NS, tz=zone or UTC)
    return moment.isoformat(timespec="seconds")
