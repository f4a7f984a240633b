"""The job scheduler with an injected clock: runs on trading days, skips holidays and weekends
(exchange_calendars' XNYS), honours the exchange's time zone across a DST change, retries a
failing job with backoff and records every attempt; the job log feeds the failed_jobs alert."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from cli.main import main
from cli.scheduler import JobLog, JobRun, Scheduler, load_scheduler_config, parse_cron
from cli.wiring import ConfigError
from projections.alerts import AlertEngine, AlertStore, rules_from_config

ROOT = Path(__file__).resolve().parents[2]
NY = ZoneInfo("America/New_York")
NS = 1_000_000_000


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=NY).timestamp()) * NS


def local(at_ns: int) -> str:
    return datetime.fromtimestamp(at_ns / NS, tz=NY).strftime("%Y-%m-%d %H:%M %a")


class FakeClock:
    def __init__(self, start_ns: int) -> None:
        self.now_ns = start_ns
        self.sleeps: list[float] = []

    def __call__(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_ns += int(seconds * NS)


def write_jobs(tmp_path: Path, jobs: str) -> Path:
    path = tmp_path / "jobs.toml"
    path.write_text('[scheduler]\ncalendar = "XNYS"\njob_log = "jobs.sqlite"\n\n' + jobs)
    return path


EOD = '[[jobs]]\nname = "eod"\nshell = "true"\ncron = "30 17 * * *"\n'


def test_cron_fields_lists_ranges_steps_and_refusals() -> None:
    spec = parse_cron("*/15 9-16 * * 1-5")
    assert spec.minutes == (0, 15, 30, 45)
    assert spec.hours == tuple(range(9, 17))
    assert spec.weekdays == frozenset({1, 2, 3, 4, 5})
    assert parse_cron("0 0 * * 7").weekdays == frozenset({0})  # 7 = Sunday
    for bad in ("0 0 * *", "60 0 * * *", "a 0 * * *", "0 0 0 * *", "0 0 * * 1/0"):
        with pytest.raises(ConfigError):
            parse_cron(bad)


def test_cron_day_fields_combine_as_in_vixie_cron() -> None:
    """A day field that starts with ``*`` (``*/2`` too) is unrestricted: the two day fields then
    combine by AND; only when both are restricted does either match (OR)."""
    odd_mondays = parse_cron("0 0 */2 * 1")  # odd days of the month that are Mondays
    assert odd_mondays.matches_day(date(2024, 7, 1))  # Mon 1st
    assert not odd_mondays.matches_day(date(2024, 7, 3))  # Wed 3rd: odd, not a Monday
    assert not odd_mondays.matches_day(date(2024, 7, 8))  # Mon 8th: a Monday, even
    assert odd_mondays.matches_day(date(2024, 7, 15))  # Mon 15th
    first_on_weekdays = parse_cron("0 0 1 * */2")  # the 1st, on Sun/Tue/Thu/Sat only
    assert not first_on_weekdays.matches_day(date(2024, 7, 1))  # Mon 1st
    assert first_on_weekdays.matches_day(date(2024, 8, 1))  # Thu 1st
    assert not first_on_weekdays.matches_day(date(2024, 8, 3))  # Sat 3rd: not the 1st
    either = parse_cron("0 0 1,15 * 1")  # both restricted: the 1st, the 15th or any Monday
    assert either.matches_day(date(2024, 7, 8))  # Mon 8th
    assert either.matches_day(date(2024, 8, 15))  # Thu 15th
    assert not either.matches_day(date(2024, 8, 14))  # Wed 14th
    assert parse_cron("0 0 1-31/2 * 1").matches_day(date(2024, 7, 3))  # "1-31/2" is restricted: OR


def test_next_run_skips_the_independence_day_holiday_and_the_weekend(tmp_path: Path) -> None:
    config = load_scheduler_config(write_jobs(tmp_path, EOD))
    job = config.jobs["eod"]
    assert job.timezone.key == "America/New_York"  # the calendar's zone by default
    fires = []
    at = ns("2024-07-02T18:00")
    for _ in range(4):
        at = job.next_fire_ns(at)
        fires.append(local(at))
    assert fires == [
        "2024-07-03 17:30 Wed",
        "2024-07-05 17:30 Fri",
        "2024-07-08 17:30 Mon",
        "2024-07-09 17:30 Tue",
    ]


def test_a_job_in_another_zone_runs_after_the_calendars_session_of_that_moment(tmp_path: Path) -> None:
    """06:00 in Shanghai is 18:00 the evening before in New York: an XNYS job there runs after
    each New York session. The session was looked up by the Shanghai date, so the run after
    Friday's session (Saturday in Shanghai) was skipped and the one after the Independence Day
    holiday (Friday in Shanghai) ran."""
    jobs = '[[jobs]]\nname = "asia"\nshell = "true"\ncron = "0 6 * * *"\ntimezone = "Asia/Shanghai"\n'
    job = load_scheduler_config(write_jobs(tmp_path, jobs)).jobs["asia"]
    shanghai = ZoneInfo("Asia/Shanghai")
    fires, at = [], ns("2024-07-02T12:00")
    for _ in range(4):
        at = job.next_fire_ns(at)
        fires.append(datetime.fromtimestamp(at / NS, tz=shanghai).strftime("%m-%d %H:%M %a"))
        assert job.sessions.is_session(job.session_day(datetime.fromtimestamp(at / NS, tz=shanghai)))
    # after Tue 2nd, Wed 3rd, Fri 5th and Mon 8th July in New York (the 4th: a holiday)
    assert fires == ["07-03 06:00 Wed", "07-04 06:00 Thu", "07-06 06:00 Sat", "07-09 06:00 Tue"]


def test_the_time_is_read_in_the_exchange_zone_across_dst(tmp_path: Path) -> None:
    job = load_scheduler_config(write_jobs(tmp_path, EOD)).jobs["eod"]
    friday = job.next_fire_ns(ns("2024-03-08T12:00"))
    monday = job.next_fire_ns(friday)
    assert datetime.fromtimestamp(friday / NS).astimezone(ZoneInfo("UTC")).hour == 22  # EST
    assert datetime.fromtimestamp(monday / NS).astimezone(ZoneInfo("UTC")).hour == 21  # EDT


def test_scheduler_runs_on_trading_days_and_skips_the_holiday(tmp_path: Path) -> None:
    config = load_scheduler_config(write_jobs(tmp_path, EOD))
    clock = FakeClock(ns("2024-07-03T17:00"))
    with JobLog(config.job_log) as job_log:
        scheduler = Scheduler(config, job_log, clock=clock, sleep=clock.sleep)
        runs = scheduler.run_forever(should_stop=lambda now: now >= ns("2024-07-06T00:00"))
        rows = list(reversed(job_log.runs()))
    assert runs == 2
    assert [(local(r.scheduled_ns), r.outcome, r.attempt, r.final, r.trigger) for r in rows] == [
        ("2024-07-03 17:30 Wed", "ok", 1, 1, "schedule"),
        ("2024-07-05 17:30 Fri", "ok", 1, 1, "schedule"),
    ]
    assert max(clock.sleeps) <= 30  # it wakes at least every tick_s_max


def test_a_failing_job_is_retried_with_backoff_and_every_attempt_recorded(tmp_path: Path) -> None:
    jobs = (
        '[[jobs]]\nname = "flaky"\n'
        'shell = "test -f flaky.done || { touch flaky.done; echo boom >&2; exit 3; }"\n'
        'cron = "0 18 * * *"\nretries = 2\nbackoff_s = 5\n\n'
        '[[jobs]]\nname = "broken"\nshell = "echo failing >&2; exit 4"\ncron = "0 18 * * *"\nretries = 2\n'
        "backoff_s = 5\nbackoff_factor = 3\n"
    )
    config = load_scheduler_config(write_jobs(tmp_path, jobs))
    clock = FakeClock(ns("2024-07-05T17:59"))
    with JobLog(config.job_log) as job_log:
        scheduler = Scheduler(config, job_log, clock=clock, sleep=clock.sleep)
        scheduler.run_forever(should_stop=lambda now: now >= ns("2024-07-05T18:30"))
        rows = list(reversed(job_log.runs()))
        outcomes = job_log.final_outcomes()
    table = [(r.job, r.attempt, r.final, r.outcome, r.exit_status) for r in rows]
    assert table == [
        ("broken", 1, 0, "failed", 4),
        ("broken", 2, 0, "failed", 4),
        ("broken", 3, 1, "failed", 4),
        ("flaky", 1, 0, "failed", 3),
        ("flaky", 2, 1, "ok", 0),
    ]
    assert rows[0].detail == "failing"
    assert 5.0 in clock.sleeps and 15.0 in clock.sleeps  # broken: 5 s, then 5 x 3
    assert [(o.job, o.outcome) for o in outcomes] == [("broken", "failed"), ("flaky", "ok")]
    # the job log drives the failed_jobs alert
    store = AlertStore(tmp_path / "alerts.sqlite", "")
    report = AlertEngine(rules_from_config([{"kind": "failed_jobs"}]), store).evaluate(
        None, clock(), outcomes
    )
    assert [(a.rule, a.key) for a in report.fired] == [("failed_jobs", "broken")]


def test_a_huge_backoff_factor_waits_the_cap_and_never_overflows(tmp_path: Path) -> None:
    """``backoff_s * backoff_factor ** (attempt - 1)`` overflowed a float: OverflowError on the
    third attempt of a job with backoff_factor = 1e300, which stopped the scheduler."""
    jobs = (
        '[[jobs]]\nname = "x"\nshell = "true"\ncron = "0 8 * * *"\nretries = 9\n'
        "backoff_s = 5\nbackoff_factor = 1e300\nbackoff_max_s = 600\n\n"
        '[[jobs]]\nname = "y"\nshell = "true"\ncron = "0 8 * * *"\nretries = 9\n'
        "backoff_s = 0\nbackoff_factor = 1e300\n"
    )
    config = load_scheduler_config(write_jobs(tmp_path, jobs))
    x, y = config.jobs["x"], config.jobs["y"]
    assert [x.backoff_after(attempt) for attempt in range(1, 6)] == [5.0, 600.0, 600.0, 600.0, 600.0]
    assert [y.backoff_after(attempt) for attempt in range(1, 6)] == [0.0] * 5  # no wait stays none
    z = dataclasses.replace(x, backoff_s=30.0, backoff_factor=2.0, backoff_max_s=100.0)
    assert [z.backoff_after(attempt) for attempt in range(1, 5)] == [30.0, 60.0, 100.0, 100.0]


def test_a_job_past_its_timeout_is_recorded_as_timeout(tmp_path: Path) -> None:
    jobs = '[[jobs]]\nname = "slow"\nshell = "sleep 5"\ncron = "0 18 * * *"\ntimeout_s = 0.3\n'
    config = load_scheduler_config(write_jobs(tmp_path, jobs))
    with JobLog(config.job_log) as job_log:
        run = Scheduler(config, job_log).run_job(config.jobs["slow"], scheduled_ns=0, trigger="manual")
    assert run.outcome == "timeout"
    assert run.exit_status is None
    assert run.detail == "killed after 0.3 s (its timeout_s); no output"


def test_a_refused_jobs_file_creates_no_job_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_jobs(tmp_path, '[[jobs]]\nname = "x"\nshell = "true"\ncron = "0 8 31 2 *"\n')
    assert main(["jobs", "list", "--config", str(config)]) == 2
    assert "matches no" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.toml"]


def test_a_timed_out_run_is_worded_without_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = '[[jobs]]\nname = "slow"\nshell = "sleep 5"\ncron = "0 18 * * *"\ntimeout_s = 0.3\n'
    assert main(["jobs", "run", "slow", "--config", str(write_jobs(tmp_path, jobs))]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "no exit status (killed or not started)" in out and "None" not in out


def test_jobs_run_and_list_verbs_with_a_tape_verb_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = (
        '[[jobs]]\nname = "strategies"\ntape = ["strategies", "--json"]\ncron = "0 8 * * 1-5"\n\n'
        '[[jobs]]\nname = "fails"\nshell = "exit 1"\ncron = "0 8 * * 1-5"\ncalendar = "24x7"\n'
        'timezone = "Asia/Shanghai"\n'
    )
    config = write_jobs(tmp_path, jobs)
    assert main(["jobs", "run", "strategies", "--config", str(config)]) == 0
    assert main(["jobs", "run", "fails", "--config", str(config)]) == 1
    assert main(["jobs", "run", "nope", "--config", str(config)]) == 2
    capsys.readouterr()
    assert main(["jobs", "list", "--config", str(config), "--runs", "5"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "strategies" in out
    assert "never run" not in out
    with JobLog(tmp_path / "jobs.sqlite") as job_log:
        assert [(r.job, r.outcome, r.trigger) for r in job_log.runs()] == [
            ("fails", "failed", "manual"),
            ("strategies", "ok", "manual"),
        ]


def test_jobs_list_at_80_columns_keeps_times_whole_and_has_json_and_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 80 columns every cell of `tape jobs list` was folded at 8 characters: names
    ('verify-j' / 'ournal'), commands and the next run time ('2026-12-' / '07T17:15' /
    ':00-05:0' / '0'); it had no machine form. The table is fitted now (a name over its command,
    a cron over its calendar; a time, a name or an option never broken) and --json / --csv give
    every field."""
    import csv
    import io
    import json

    from cli.progress import console

    jobs = (
        '[[jobs]]\nname = "reconcile-paper-book"\ncron = "40 17 * * 1-5"\ntimezone = "America/New_York"\n'
        'tape = ["reconcile", "journals/paper", "--statement", "statements/latest.csv", "--json", '
        '"reports/reconcile.json"]\n\n' + EOD
    )
    config = write_jobs(tmp_path, jobs)
    assert main(["jobs", "run", "eod", "--config", str(config)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(console, "width", 80)
    assert main(["jobs", "list", "--config", str(config), "--runs", "3"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    words = out.split()
    for whole in ("reconcile-paper-book", "eod", "--statement"):
        assert whole in words, whole  # names and options whole; paths break after a '/' or '.'
    assert "tape reconcile" in out and "0.0 s" in out
    assert main(["jobs", "list", "--config", str(config), "--json", "-"]) == 0
    listed = json.loads(capsys.readouterr().out)
    reconcile, eod = listed["jobs"]
    assert (reconcile["job"], reconcile["last"], eod["last"]["outcome"]) == (
        "reconcile-paper-book",
        None,
        "ok",
    )
    assert main(["jobs", "list", "--config", str(config), "--csv", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["job"], r["next_run"], r["last_outcome"]) for r in rows] == [
        ("reconcile-paper-book", reconcile["next_run"], ""), ("eod", eod["next_run"], "ok")
    ]  # fmt: skip
    assert reconcile["next_run"] in words and eod["next_run"] in words  # each time whole


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ('[[jobs]]\nname = "x"\ncron = "0 8 * * *"\n', "either tape"),
        ('[[jobs]]\nname = "x"\nshell = "true"\n', "cron is required"),
        ('[[jobs]]\nname = "x"\nshell = "true"\ncron = "0 8 * * *"\ncalendar = "NOPE"\n', "calendar"),
        ('[[jobs]]\nname = "x"\nshell = "true"\ncron = "0 8 * * *"\nretries = -1\n', "non-negative"),
        ('[[jobs]]\nname = "x"\nshell = "true"\ncron = "0 8 * * *"\nbackoff_s = nan\n', "finite"),
        ('[[jobs]]\nname = "x"\nshell = "true"\ncron = "0 8 * * *"\ntimeout_s = inf\n', "finite"),
        ('[[jobs]]\nname = "x"\nshell = "true"\ncron = "0 8 * * *"\nbackoff_factor = inf\n', "finite"),
        ('[[jobs]]\nname = "x"\nshell = "true"\ncron = "0 8 31 2 *"\n', "matches no"),
        ('[[jobs]]\nname = "x"\nshell = "true"\ncron = "0 8 * * *"\ntimeout_s = 0\n', "more than 0 s"),
        ('[[jobs]]\nname = "x"\nshell = "true"\ncron = "0 8 * * *"\ncwd = "nowhere"\n', "is not a folder"),
        ('[[jobs]]\nname = "x"\ntape = ["verfy", "j"]\ncron = "0 8 * * *"\n', "no tape verb"),
    ],
)
def test_bad_job_definitions_are_refused(tmp_path: Path, jobs: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config = load_scheduler_config(write_jobs(tmp_path, jobs))
        for job in config.jobs.values():
            job.next_fire_ns(ns("2024-01-02T00:00"))


def test_a_job_runs_in_its_documented_cwd(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    jobs = '[[jobs]]\nname = "a"\nshell = "pwd > here.txt"\ncron = "0 18 * * *"\ncwd = "work"\n'
    config = write_jobs(tmp_path, jobs)
    assert main(["jobs", "run", "a", "--config", str(config)]) == 0
    assert (tmp_path / "work" / "here.txt").read_text().strip() == str(tmp_path / "work")


def test_a_stopping_scheduler_records_the_failed_attempt_as_final_and_does_not_retry(tmp_path: Path) -> None:
    jobs = '[[jobs]]\nname = "broken"\nshell = "exit 4"\ncron = "0 18 * * *"\nretries = 3\n'
    config = load_scheduler_config(write_jobs(tmp_path, jobs))
    with JobLog(config.job_log) as job_log:
        run = Scheduler(config, job_log, stopping=lambda: True).run_job(
            config.jobs["broken"], scheduled_ns=0, trigger="schedule"
        )
        assert [(o.job, o.outcome) for o in job_log.final_outcomes()] == [("broken", "failed")]
    assert (run.attempt, run.final) == (1, 1)


def test_the_shipped_example_files_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.alerts_cmd import load_alerts_config
    from cli.logs import Redactor

    defaults = Path(__file__).resolve().parents[2] / "cli" / "defaults"
    jobs = load_scheduler_config(defaults / "jobs.toml")
    assert sorted(jobs.jobs) == [
        "backup-journals", "daily-report", "ledger-audit", "reconcile", "verify-journal",
    ]  # fmt: skip
    nexts = {name: local(job.next_fire_ns(ns("2024-07-03T20:00"))) for name, job in jobs.jobs.items()}
    assert nexts == {
        "verify-journal": "2024-07-05 17:15 Fri",
        "ledger-audit": "2024-07-05 17:30 Fri",
        "reconcile": "2024-07-05 17:40 Fri",
        "daily-report": "2024-07-05 17:45 Fri",
        "backup-journals": "2024-07-05 19:00 Fri",
    }
    monkeypatch.setenv("TAPE_SMTP_PASSWORD", "example-password")
    monkeypatch.setenv("TAPE_TELEGRAM_TOKEN", "123:example-token")
    alerts = load_alerts_config(defaults / "alerts.toml", Redactor())
    assert [rule.name for rule in alerts.rules] == [
        "drawdown_warning",
        "drawdown",
        "daily_loss",
        "reject_rate",
        "kill_switch",
        "staleness",
        "failed_jobs",
        "venue_latency",
        "venue_latency_critical",
        "bar_lag",
        "reconciliation",
    ]
    assert [route.name for route in alerts.routes] == ["smtp", "telegram"]


@pytest.mark.parametrize(
    ("stop", "status", "line"), [(signal.SIGINT, 130, "interrupted:"), (signal.SIGTERM, 143, "terminated:")]
)
def test_the_scheduler_stopped_by_a_signal_says_so_and_exits_130_or_143(
    tmp_path: Path, stop: signal.Signals, status: int, line: str
) -> None:
    config = write_jobs(tmp_path, EOD)
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "scheduler", "--config", str(config)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "jobs.sqlite").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # waiting for its next job
    process.send_signal(stop)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == status, output
    assert line in output and "Traceback" not in output


JOB = '[[jobs]]\nname = "x"\nshell = "exit 1"\ncron = "0 8 * * *"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[jobs]\nname = "x"\nshell = "true"\ncron = "0 8 * * *"\n', "jobs must be [[jobs]] tables"),
        ('jobs = "x"\n', "jobs must be [[jobs]] tables"),
        ("scheduler = 5\n" + JOB, "scheduler must be a [scheduler] table"),
        # a misspelt key left every job on the 24x7 default: run on holidays
        ('[scheduler]\ncalender = "XNYS"\n' + JOB, "unknown keys ['calender']"),
        ('calendar = "XNYS"\n' + JOB, "unknown settings ['calendar']"),
        # a text, not a list: its letters were taken as variable names and nothing was redacted
        ('[scheduler]\nredact_env = "PGPASSWORD"\n' + JOB, "redact_env must be a list"),
        ("[scheduler]\njob_log = 5\n" + JOB, "job_log must be a text"),
        (JOB + "retries = 1.5\n", "retries must be a whole number"),
        (JOB.replace('"exit 1"', '["exit", "1"]'), "shell must be a text"),
    ],
)
def test_a_malformed_jobs_file_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    config = tmp_path / "jobs.toml"
    config.write_text(text)
    assert main(["jobs", "run", "x", "--config", str(config)]) == 2
    out = capsys.readouterr().out
    assert message in " ".join(out.split())
    assert "internal error" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.toml"]  # no job log, no run


def test_a_secret_too_short_to_redact_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_SHORT_SECRET", "abc")
    config = tmp_path / "jobs.toml"
    config.write_text('[scheduler]\nredact_env = ["QA_SHORT_SECRET"]\n' + JOB)
    assert main(["jobs", "run", "x", "--config", str(config)]) == 2
    assert "QA_SHORT_SECRET" in capsys.readouterr().out


def test_a_secret_cut_by_the_output_tail_is_not_kept_in_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cret-Passw0rd-canary"
    monkeypatch.setenv("QA_DB_PASSWORD", secret)
    # the last 500 characters of the output start 12 characters into the secret
    script = "import os; print('x' * 10 + os.environ['QA_DB_PASSWORD'] + 'y' * 490)"
    (tmp_path / "leak.py").write_text(script)
    config = tmp_path / "jobs.toml"
    config.write_text(
        '[scheduler]\nredact_env = ["QA_DB_PASSWORD"]\njob_log = "jobs.sqlite"\n'
        f'[[jobs]]\nname = "leak"\nshell = "{sys.executable} leak.py; exit 1"\ncron = "0 8 * * *"\n'
    )
    assert main(["jobs", "run", "leak", "--config", str(config)]) == 1
    printed = capsys.readouterr().out
    with JobLog(tmp_path / "jobs.sqlite") as job_log:
        (run,) = job_log.runs()
    for text in (run.detail, printed):
        assert secret[-8:] not in text  # cut first, the secret's last 10 characters were kept
    assert run.detail == "x" * 7 + "***" + "y" * 490


def test_a_timed_out_job_is_killed_with_its_children_and_its_stderr_kept(tmp_path: Path) -> None:
    jobs = (
        '[[jobs]]\nname = "slow"\n'
        'shell = "echo starting >&2; (sleep 1; touch late.txt) & sleep 30"\n'
        'cron = "0 18 * * *"\ntimeout_s = 0.3\n'
    )
    config = load_scheduler_config(write_jobs(tmp_path, jobs))
    with JobLog(config.job_log) as job_log:
        run = Scheduler(config, job_log).run_job(config.jobs["slow"], scheduled_ns=0, trigger="manual")
    time.sleep(1.5)
    assert not (tmp_path / "late.txt").exists()  # the shell's child ran on after the kill
    assert run.outcome == "timeout"
    assert run.detail == "killed after 0.3 s (its timeout_s); its output: starting"  # stderr was dropped


def test_a_stop_during_the_backoff_wait_runs_no_further_attempt(tmp_path: Path) -> None:
    jobs = '[[jobs]]\nname = "broken"\nshell = "echo ran >> runs.txt; exit 4"\n'
    jobs += 'cron = "0 18 * * *"\nretries = 3\n'
    config = load_scheduler_config(write_jobs(tmp_path, jobs))
    stop = threading.Event()

    def wait(seconds: float) -> bool:  # SIGTERM lands during the backoff (stop.wait in tape scheduler)
        stop.set()
        return stop.wait(seconds)

    with JobLog(config.job_log) as job_log:
        run = Scheduler(config, job_log, sleep=wait, stopping=stop.is_set).run_job(
            config.jobs["broken"], scheduled_ns=0, trigger="schedule"
        )
        rows = [(r.attempt, r.final, r.outcome) for r in job_log.runs()]
        outcomes = [(o.job, o.outcome) for o in job_log.final_outcomes()]
    assert (tmp_path / "runs.txt").read_text().split() == ["ran"]  # one attempt: it ran a second
    assert rows == [(1, 1, "failed")]  # the failed attempt ends the run: failed_jobs sees it
    assert outcomes == [("broken", "failed")]
    assert (run.attempt, run.final) == (1, 1)


def test_jobs_run_interrupted_during_the_backoff_wait_ends_the_run_at_its_last_attempt(
    tmp_path: Path,
) -> None:
    jobs = '[[jobs]]\nname = "broken"\nshell = "exit 4"\ncron = "0 18 * * *"\nretries = 3\n'
    config = load_scheduler_config(write_jobs(tmp_path, jobs))

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with JobLog(config.job_log) as job_log:
        with pytest.raises(KeyboardInterrupt):
            Scheduler(config, job_log, sleep=interrupted).run_job(
                config.jobs["broken"], scheduled_ns=0, trigger="manual"
            )
        assert [(o.job, o.outcome) for o in job_log.final_outcomes()] == [("broken", "failed")]


def test_jobs_list_fits_80_columns_without_cutting_a_time_and_writes_json_and_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.progress import console

    jobs = (
        '[[jobs]]\nname = "verify-the-paper-journal"\nshell = "echo checked journals/paper"\n'
        'cron = "15 17 * * 1-5"\n\n'
        '[[jobs]]\nname = "broken"\nshell = "echo boom >&2; exit 4"\ncron = "0 18 * * *"\n'
        'calendar = "XLON"\n'
    )
    config = str(write_jobs(tmp_path, jobs))
    assert main(["jobs", "run", "verify-the-paper-journal", "--config", config]) == 0
    assert main(["jobs", "run", "broken", "--config", config]) == 1
    capsys.readouterr()
    monkeypatch.setattr(console, "width", 80)
    assert main(["jobs", "list", "--config", config, "--runs", "5"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "verify-the-paper-journal" in out  # a job's name is never cut
    next_runs = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", out)
    assert len(next_runs) == 2 + 2  # each job's next run and each attempt's start, whole
    assert "not shown at this width" in out
    assert main(["jobs", "list", "--config", config, "--runs", "5", "--json", "-"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [(j["job"], j["calendar"], j["timezone"]) for j in document["jobs"]] == [
        ("verify-the-paper-journal", "XNYS", "America/New_York"),
        ("broken", "XLON", "Europe/London"),
    ]
    assert document["jobs"][1]["last"]["outcome"] == "failed"
    assert [(r["job"], r["outcome"], r["exit_status"], r["detail"]) for r in document["runs"]] == [
        ("broken", "failed", 4, "boom"),
        ("verify-the-paper-journal", "ok", 0, "checked journals/paper"),
    ]
    assert main(["jobs", "list", "--config", config, "--csv", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["job"], r["cron"], r["last_outcome"]) for r in rows] == [
        ("verify-the-paper-journal", "15 17 * * 1-5", "ok"),
        ("broken", "0 18 * * *", "failed"),
    ]
    assert main(["jobs", "list", "--config", config, "--runs", "1", "--csv", str(tmp_path / "runs.csv")]) == 0
    (row,) = csv.DictReader((tmp_path / "runs.csv").open())
    assert (row["job"], row["exit_status"], row["detail"]) == ("broken", "4", "boom")


@pytest.mark.parametrize("runs", ["-1", "-5", "two"])
def test_jobs_list_refuses_a_negative_or_non_numeric_runs_count(
    tmp_path: Path, runs: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: ``--runs -1`` listed every attempt (SQLite's LIMIT -1). Refused in one line, exit 2,
    before the job log is made."""
    config = str(write_jobs(tmp_path, EOD))
    with pytest.raises(SystemExit) as stopped:
        main(["jobs", "list", "--config", config, "--runs", runs])
    assert stopped.value.code == 2
    assert "argument --runs: " in capsys.readouterr().err
    assert not (tmp_path / "jobs.sqlite").exists()


def test_a_scheduler_outlives_the_calendars_first_year(tmp_path: Path) -> None:
    job = load_scheduler_config(write_jobs(tmp_path, EOD)).jobs["eod"]
    built_to = job.sessions._calendar.last_session.date()  # exchange_calendars: a year ahead
    later_ns = int(datetime(built_to.year + 2, 7, 2, 18, tzinfo=NY).timestamp()) * NS
    fire_ns = job.next_fire_ns(later_ns)  # a scheduler running since: ConfigError "covers ..."
    assert 0 < fire_ns - later_ns < 7 * 86_400 * NS
    assert local(fire_ns)[11:16] == "17:30"


def test_a_job_whose_calendar_ends_is_dropped_and_the_others_run_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import exchange_calendars

    bound = type(exchange_calendars.get_calendar("XSHG")).bound_max()
    assert bound is not None  # XSHG's holidays are recorded a year at a time
    jobs = (
        '[[jobs]]\nname = "cn"\nshell = "true"\ncron = "0 6 * * *"\ncalendar = "XSHG"\n'
        'timezone = "America/New_York"\n\n' + EOD
    )
    config = load_scheduler_config(write_jobs(tmp_path, jobs))
    clock = FakeClock(ns(f"{(bound - pd.Timedelta(days=6)).date()}T00:00"))
    end = ns(f"{(bound + pd.Timedelta(days=8)).date()}T00:00")
    with JobLog(config.job_log) as job_log:
        scheduler = Scheduler(config, job_log, clock=clock, sleep=clock.sleep)
        scheduler.run_forever(should_stop=lambda now: now >= end)  # raised ConfigError at the bound
        rows = list(reversed(job_log.runs()))
    cn = [local(r.scheduled_ns)[:10] for r in rows if r.job == "cn"]
    eod = [local(r.scheduled_ns)[:10] for r in rows if r.job == "eod"]
    assert cn and cn[-1] <= str(bound.date())
    assert eod[-1] > str(bound.date())  # the XNYS job runs on past XSHG's last known day
    assert any("XSHG's sessions are known only up to" in r.getMessage() for r in caplog.records)


def test_a_second_scheduler_on_the_same_job_log_is_refused(tmp_path: Path) -> None:
    """Two schedulers of one job log ran every job twice (two backups, two reconciles writing
    one report); the second is refused in one line, naming the first."""
    config = write_jobs(tmp_path, EOD)
    first = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "scheduler", "--config", str(config)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "jobs.sqlite").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(
            [sys.executable, "-m", "cli.main", "scheduler", "--config", str(config)],
            cwd=ROOT, capture_output=True, text=True, timeout=30, env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert second.returncode == 2, second.stdout + second.stderr
    said = " ".join(second.stdout.split())
    assert f"tape scheduler --config {config} (pid {first.pid}) already runs the jobs" in said
    assert "one scheduler per job log" in said and "Traceback" not in second.stderr
    assert first.returncode == 143  # the first ran on until stopped


def test_a_url_password_in_a_job_command_is_masked_in_the_log_the_job_log_and_jobs_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``--db postgresql://user:PASSWORD@...`` in a job's command (the compose example wrote
    one) was logged with every attempt and printed by ``jobs list`` (table, JSON, CSV)."""
    url = "postgresql://tape:S3cret-pw@127.0.0.1:1/tape"
    config = tmp_path / "jobs.toml"
    config.write_text(
        '[scheduler]\njob_log = "jobs.sqlite"\nlog = "logs/scheduler.jsonl"\n\n'
        f'[[jobs]]\nname = "pg"\nshell = "echo could not reach {url}; exit 1"\ncron = "0 8 * * *"\n'
    )
    assert main(["jobs", "run", "pg", "--config", str(config)]) == 1
    assert main(["jobs", "list", "--config", str(config), "--runs", "1"]) == 0
    assert main(["jobs", "list", "--config", str(config), "--runs", "1", "--json", "-"]) == 0
    assert main(["jobs", "list", "--config", str(config), "--csv", "-"]) == 0
    out = capsys.readouterr().out
    logged = (tmp_path / "logs" / "scheduler.jsonl").read_text()
    with JobLog(tmp_path / "jobs.sqlite") as job_log:
        (run,) = job_log.runs()
    for text in (out, logged, run.detail):
        assert "S3cret-pw" not in text
    assert "postgresql://tape:***@127.0.0.1:1/tape" in run.detail
    assert "postgresql://tape:***@127.0.0.1:1/tape" in logged


def _wait_for(condition: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_run_whose_process_is_killed_9_is_a_failed_run_in_the_job_log(tmp_path: Path) -> None:
    """SIGKILL of the process running a job (a scheduler killed by systemd after its stop
    timeout, the OOM killer) left no row at all: an attempt was recorded only when it ended, so
    `jobs list` said "never run" (or the previous outcome), failed_jobs stayed quiet, and the
    command's process group ran on unnamed. The attempt is now recorded as it starts
    (`running`, with the command's process group); once its process is gone it reads as a
    failed final attempt that names the group still running."""
    jobs = '[[jobs]]\nname = "long"\nshell = "touch started; exec sleep 120"\ncron = "0 18 * * *"\n'
    config = write_jobs(tmp_path, jobs)
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "jobs", "run", "long", "--config", str(config)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    group = None
    try:
        _wait_for(lambda: (tmp_path / "started").exists())
        with JobLog(tmp_path / "jobs.sqlite") as job_log:
            (running,) = job_log.runs()
        assert running.outcome == "running" and running.final == 0
        match = re.search(r"process group (\d+)", running.detail)
        assert match, running.detail
        group = int(match[1])
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        with JobLog(tmp_path / "jobs.sqlite") as job_log:
            settled = job_log.settle_abandoned(time.time_ns(), scheduler_gone=False)
            outcomes = job_log.final_outcomes()
        assert [(r.job, r.attempt, r.final, r.outcome, r.exit_status) for r in settled] == [
            ("long", 1, 1, "failed", None)
        ]
        assert f"pid {process.pid}" in settled[0].detail
        assert f"process group {group} still runs (kill -- -{group} stops it)" in settled[0].detail
        assert [(o.job, o.outcome) for o in outcomes] == [("long", "failed")]  # failed_jobs sees it
        with JobLog(tmp_path / "jobs.sqlite") as job_log:  # settled once
            assert job_log.settle_abandoned(time.time_ns(), scheduler_gone=False) == []
    finally:
        if process.poll() is None:
            process.kill()
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def test_a_schedule_attempt_left_running_is_settled_by_the_next_scheduler_only(tmp_path: Path) -> None:
    """A `running` attempt of a live process is left alone (a `tape jobs run` beside the
    scheduler), but a scheduled one is the dead scheduler's once a scheduler holds the job
    log's lock (its pid may have been reused); and `jobs list` shows it as failed."""
    config = load_scheduler_config(write_jobs(tmp_path, EOD))
    with JobLog(config.job_log) as job_log:
        for trigger in ("schedule", "manual"):
            job_log.start(
                JobRun(0, job_log.next_run_id(), "eod", 1, 0, trigger, 0, 5 * NS, 5 * NS, 0.0, "running",
                       None, f"running in pid {os.getpid()}")
            )  # fmt: skip
        assert job_log.settle_abandoned(9 * NS, scheduler_gone=False) == []
        (settled,) = job_log.settle_abandoned(9 * NS, scheduler_gone=True)
        assert (settled.trigger, settled.outcome, settled.final) == ("schedule", "failed", 1)
        assert settled.duration_s == 4.0
        assert settled.detail.startswith(f"abandoned: pid {os.getpid()}, which ran this attempt, ended")
        (manual,) = job_log.settle_abandoned(9 * NS, scheduler_gone=False, alive=lambda pid: False)
        assert manual.trigger == "manual"


def test_jobs_run_stopped_during_an_attempt_records_it(tmp_path: Path) -> None:
    """Ctrl-C during an attempt of `tape jobs run` killed the command and recorded nothing."""
    config = load_scheduler_config(write_jobs(tmp_path, EOD))

    def interrupted(*args: object) -> tuple[str, int | None, str]:
        raise KeyboardInterrupt

    with JobLog(config.job_log) as job_log:
        with pytest.raises(KeyboardInterrupt):
            Scheduler(config, job_log, runner=interrupted).run_job(
                config.jobs["eod"], scheduled_ns=0, trigger="manual"
            )
        (row,) = job_log.runs()
    assert (row.outcome, row.final) == ("failed", 1)
    assert row.detail == "stopped during the attempt: its command was killed"


def test_jobs_run_says_on_stderr_that_it_waits_for_a_retry(tmp_path: Path) -> None:
    """With the log in a file, `tape jobs run` printed nothing during the backoff (60 s for the
    shipped verify-journal job): the terminal looked hung until the run ended."""
    (tmp_path / "jobs.toml").write_text(
        '[scheduler]\ncalendar = "24x7"\nlog = "logs/jobs.jsonl"\n[[jobs]]\nname = "broken"\n'
        'shell = "exit 4"\ncron = "0 18 * * *"\nretries = 1\nbackoff_s = 0.2\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "jobs", "run", "broken", "--config", str(tmp_path / "jobs.toml")],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "job broken attempt 1/2: failed (exit 4); retry in 0.2 s (Ctrl-C ends the run here)" in done.stderr
    assert "job broken run 1: failed after 2 attempt(s), exit 4" in done.stdout


def test_an_every_hour_job_runs_through_the_repeated_hour_and_a_daily_one_once(tmp_path: Path) -> None:
    """On a fall-back night (2026-11-01 in New York, 01:00-01:59 twice) an every-15-minutes job
    skipped the second 01:00-01:45 (each local time was read at its first occurrence only, so
    after 01:45 EDT came 02:00 EST, an hour and a quarter later). It now runs through it, as
    cron runs jobs more frequent than hourly; a job at a fixed 01:30 still runs once."""
    jobs = (
        '[[jobs]]\nname = "often"\nshell = "true"\ncron = "*/15 * * * *"\ncalendar = "24x7"\n'
        'timezone = "America/New_York"\n\n'
        '[[jobs]]\nname = "daily"\nshell = "true"\ncron = "30 1 * * *"\ncalendar = "24x7"\n'
        'timezone = "America/New_York"\n'
    )
    config = load_scheduler_config(write_jobs(tmp_path, jobs))

    def fires(name: str, start: str, count: int) -> list[str]:
        at, out = ns(start), []
        for _ in range(count):
            at = config.jobs[name].next_fire_ns(at)
            out.append(datetime.fromtimestamp(at / NS, tz=NY).strftime("%H:%M%z"))
        return out

    assert fires("often", "2026-11-01T00:50", 9) == [
        "01:00-0400", "01:15-0400", "01:30-0400", "01:45-0400",
        "01:00-0500", "01:15-0500", "01:30-0500", "01:45-0500", "02:00-0500",
    ]  # fmt: skip
    assert fires("daily", "2026-10-31T12:00", 2) == ["01:30-0400", "01:30-0500"]  # Nov 1 once, Nov 2
    assert fires("often", "2027-03-14T01:40", 3) == ["01:45-0500", "03:00-0400", "03:15-0400"]


SHANGHAI = ZoneInfo("Asia/Shanghai")
HOLIDAYS_2027 = "year,date,name\n2027,2027-01-01,synthetic one\n2027,2027-01-13,synthetic two\n"
"""Two synthetic 2027 XSHG closures (a Friday and a Wednesday), as in test_calendar_holidays."""
CN_JOB = '[[jobs]]\nname = "cn"\nshell = "true"\ncron = "0 16 * * 1-5"\ncalendar = "XSHG"\n'


def sh(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()) * NS


def cn_jobs(tmp_path: Path, holidays: str | None = HOLIDAYS_2027) -> Path:
    """A jobs file with an XSHG job, naming ``xshg.csv`` (written with ``holidays``) for XSHG."""
    table = ""
    if holidays is not None:
        (tmp_path / "xshg.csv").write_text(holidays)
        table = '[scheduler.holidays]\nXSHG = "xshg.csv"\n\n'
    path = tmp_path / "jobs.toml"
    path.write_text(f'[scheduler]\njob_log = "jobs.sqlite"\n\n{table}{CN_JOB}')
    return path


def test_a_holiday_file_carries_an_xshg_scheduler_across_the_year_end(tmp_path: Path) -> None:
    """exchange_calendars 4.13 records XSHG's holidays only through 2026-12-31 and no newer
    release exists: a scheduler of XSHG jobs stopped scheduling at the year end (CalendarEnds,
    "upgrade exchange_calendars or give the job another calendar") and the jobs file had no way
    to supply 2027. ``[scheduler.holidays] XSHG = FILE`` (tape export --holidays' format) now
    extends the calendar by the file's years: the job runs on 2027's sessions, skipping the
    file's closures, and stops at the end of the last year given, saying what to add."""
    config = load_scheduler_config(cn_jobs(tmp_path))
    clock = FakeClock(sh("2026-12-30T12:00"))
    with JobLog(config.job_log) as job_log:
        scheduler = Scheduler(config, job_log, clock=clock, sleep=clock.sleep)
        scheduler.run_forever(should_stop=lambda now: now >= sh("2027-01-16T00:00"))
        days = [
            datetime.fromtimestamp(r.scheduled_ns / NS, tz=SHANGHAI).strftime("%m-%d") for r in job_log.runs()
        ]
    assert list(reversed(days)) == [
        "12-30", "12-31", "01-04", "01-05", "01-06", "01-07", "01-08", "01-11", "01-12", "01-14", "01-15",
    ]  # fmt: skip
    job = config.jobs["cn"]
    with pytest.raises(ConfigError, match=r"known only up to 2027-12-31 .*add 2028's closures to .*xshg.csv"):
        job.next_fire_ns(sh("2027-12-31T17:00"))


def test_without_a_holiday_file_the_year_end_names_the_setting(tmp_path: Path) -> None:
    job = load_scheduler_config(cn_jobs(tmp_path, holidays=None)).jobs["cn"]
    assert local(job.next_fire_ns(sh("2026-12-30T17:00")))[:10] == "2026-12-31"
    with pytest.raises(ConfigError) as ends:
        job.next_fire_ns(sh("2026-12-31T17:00"))
    message = str(ends.value)
    assert "XSHG's sessions are known only up to 2026-12-31" in message
    assert '[scheduler.holidays] XSHG = "FILE"' in message and "for 2027" in message


def test_jobs_list_shows_the_next_run_past_the_year_end_with_the_holiday_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tape jobs list` on 2026-12-31 after the day's run: the next run is Monday 4 January 2027
    (1 January a closure of the file), not a refusal."""
    import cli.jobs_cmd

    config = cn_jobs(tmp_path)
    monkeypatch.setattr(cli.jobs_cmd, "wall_ns", lambda: sh("2026-12-31T17:00"))
    assert main(["jobs", "list", "--config", str(config), "--json", "-"]) == 0
    (cn,) = json.loads(capsys.readouterr().out)["jobs"]
    assert cn["next_run"] == "2027-01-04T16:00:00+08:00"
    assert (cn["calendar"], cn["holidays"]) == ("XSHG", str(tmp_path / "xshg.csv"))
    monkeypatch.setattr(cli.jobs_cmd, "wall_ns", lambda: sh("2027-01-12T17:00"))
    assert main(["jobs", "list", "--config", str(config)]) == 0
    assert "2027-01-14T16:00:00+08:00" in capsys.readouterr().out  # the 13th: the file's closure


@pytest.mark.parametrize(
    ("holidays", "table", "message"),
    [
        ("year,date\n2027,2027-01-02\n", 'XSHG = "xshg.csv"', r"xshg.csv: line 2: 2027-01-02 is a Saturday"),
        ("year,date\n2027,2027-01-04\n2027,2027-01-04\n", 'XSHG = "xshg.csv"', r"line 3: .* listed twice"),
        ("year,date\n2026,2026-12-30\n", 'XSHG = "xshg.csv"', "already records XSHG's holidays for 2026"),
        (HOLIDAYS_2027, 'XSHG = "nowhere.csv"', r"\[scheduler.holidays\] XSHG .*nowhere.csv"),
        (HOLIDAYS_2027, 'XNYS = "xshg.csv"', r"\[scheduler.holidays\] XNYS: XNYS has no year-by-year"),
        (HOLIDAYS_2027, "XSHG = 3", r"\[scheduler.holidays\] XSHG: must name a holiday file"),
    ],
)
def test_a_bad_holiday_file_is_refused_when_the_jobs_file_is_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], holidays: str, table: str, message: str
) -> None:
    (tmp_path / "xshg.csv").write_text(holidays)
    config = tmp_path / "jobs.toml"
    config.write_text(f'[scheduler]\njob_log = "jobs.sqlite"\n\n[scheduler.holidays]\n{table}\n\n{CN_JOB}')
    assert main(["jobs", "list", "--config", str(config)]) == 2
    assert re.search(message, " ".join(capsys.readouterr().out.split()))
    assert not (tmp_path / "jobs.sqlite").exists()


def test_an_ok_exit_status_counts_as_success_and_is_not_retried(tmp_path: Path) -> None:
    """`tape verify`, `tape report` and `projections rebuild` exit 3 over the journal of a run
    still going (a paper session): the scheduler recorded every non-zero exit as failed, so the
    shipped nightly jobs failed (and retried) every night of a paper session and `failed_jobs`
    fired each time. `ok_exit = [0, 3]` counts 3 as success: one attempt, outcome ok, the detail
    saying why; a status not listed still fails and is retried."""
    jobs = (
        '[[jobs]]\nname = "unfinished"\nshell = "echo sound but unfinished; exit 3"\ncron = "0 18 * * *"\n'
        "retries = 2\nbackoff_s = 5\nok_exit = [0, 3]\n\n"
        '[[jobs]]\nname = "damaged"\nshell = "echo damaged; exit 1"\ncron = "0 18 * * *"\n'
        "retries = 1\nbackoff_s = 5\nok_exit = [0, 3]\n\n"
        '[[jobs]]\nname = "plain"\nshell = "exit 3"\ncron = "0 18 * * *"\n'
    )
    config = load_scheduler_config(write_jobs(tmp_path, jobs))
    assert config.jobs["unfinished"].ok_exit == (0, 3) and config.jobs["plain"].ok_exit == (0,)
    clock = FakeClock(ns("2024-07-05T17:59"))
    with JobLog(config.job_log) as job_log:
        scheduler = Scheduler(config, job_log, clock=clock, sleep=clock.sleep)
        scheduler.run_forever(should_stop=lambda now: now >= ns("2024-07-05T18:30"))
        rows = list(reversed(job_log.runs()))
        outcomes = job_log.final_outcomes()
    assert [(r.job, r.attempt, r.final, r.outcome, r.exit_status) for r in rows] == [
        ("damaged", 1, 0, "failed", 1),
        ("damaged", 2, 1, "failed", 1),
        ("plain", 1, 1, "failed", 3),
        ("unfinished", 1, 1, "ok", 3),
    ]
    assert rows[-1].detail == "exit 3 counts as ok (ok_exit = [0, 3]); its output: sound but unfinished"
    store = AlertStore(tmp_path / "alerts.sqlite", "")
    report = AlertEngine(rules_from_config([{"kind": "failed_jobs"}]), store).evaluate(
        None, clock(), outcomes
    )
    assert sorted(a.key for a in report.fired) == ["damaged", "plain"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3", "must be a list of exit statuses"),
        ("[]", "must be a list of exit statuses"),
        ('["3"]', "must be a list of exit statuses"),
        ("[true]", "must be a list of exit statuses"),
        ("[0, 256]", r"0\.\.255, not \[256\]"),
        ("[0, -1]", r"0\.\.255, not \[-1\]"),
        ("[0, 3, 3]", "twice"),
        ("[3]", "leaves out 0"),
    ],
)
def test_a_bad_ok_exit_is_refused(tmp_path: Path, value: str, message: str) -> None:
    jobs = f'[[jobs]]\nname = "x"\nshell = "true"\ncron = "0 8 * * *"\nok_exit = {value}\n'
    with pytest.raises(ConfigError, match=message):
        load_scheduler_config(write_jobs(tmp_path, jobs))


def test_jobs_list_and_run_show_ok_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.progress import console

    jobs = (
        '[[jobs]]\nname = "verify"\nshell = "echo unfinished run; exit 3"\ncron = "0 18 * * *"\n'
        "ok_exit = [3, 0]\n"
    )
    config = write_jobs(tmp_path, jobs)
    assert main(["jobs", "run", "verify", "--config", str(config)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "ok after 1 attempt(s), exit 3" in said and "exit 3 counts as ok (ok_exit = [0, 3])" in said
    monkeypatch.setattr(console, "width", 80)
    assert main(["jobs", "list", "--config", str(config), "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "(ok_exit 0 3)" in " ".join(out.split())
    assert main(["jobs", "list", "--config", str(config), "--json", "-"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["jobs"]
    assert listed["ok_exit"] == [0, 3]
    assert (listed["last"]["outcome"], listed["last"]["exit_status"]) == ("ok", 3)
    assert main(["jobs", "list", "--config", str(config), "--csv", "-"]) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert (row["ok_exit"], row["last_outcome"]) == ("0 3", "ok")


def test_the_shipped_nightly_jobs_pass_over_a_paper_session_still_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped verify-journal and daily-report jobs over a journal whose run has not
    finished (cut after 30 records, as a paper session's is while it runs): `tape verify` and
    `tape report` exit 3 and write their work; the jobs were recorded failed, now ok."""
    import shutil

    from tests.factories import killed_copy, make_config, make_dataset, run

    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=40), tmp_path / "j"))
    (tmp_path / "journals").mkdir()
    killed_copy(tmp_path / "j", tmp_path / "journals" / "paper", 30)
    shutil.copy(ROOT / "cli" / "defaults" / "jobs.toml", tmp_path / "jobs.toml")
    config = str(tmp_path / "jobs.toml")
    assert main(["jobs", "run", "verify-journal", "--config", config]) == 0
    assert main(["jobs", "run", "daily-report", "--config", config]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "reports" / "latest.json").read_text())
    with JobLog(tmp_path / "jobs.sqlite") as job_log:
        assert [(r.job, r.attempt, r.outcome, r.exit_status) for r in job_log.runs()] == [
            ("daily-report", 1, "ok", 3),
            ("verify-journal", 1, "ok", 3),
        ]
