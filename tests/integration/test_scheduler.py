"""The job scheduler with an injected clock: runs on trading days, skips holidays and weekends
(exchange_calendars' XNYS), honours the exchange's time zone across a DST change, retries a
failing job with backoff and records every attempt; the job log feeds the failed_jobs alert."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cli.main import main
from cli.scheduler import JobLog, Scheduler, load_scheduler_config, parse_cron
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
    assert main(["jobs", "list", "--config", str(config), "--json"]) == 0
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
