"""The jobs TOML as Prefect flows (cli.prefect_flows), run under Prefect's local test harness
(a temporary Prefect server on 127.0.0.1 with its own database): a job runs on its calendar's
session and is skipped on a holiday, a failing job is retried by Prefect with the job's
retries and every attempt lands in the same job log the failed_jobs rule reads, and each job
becomes a deployment with its cron time in its exchange's time zone.

Needs the ``prefect`` extra (``make test`` installs it); skipped without it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Prefect reads its settings at import: keep its home (profiles, the harness's database) out
# of the user's ~/.prefect, and tell its server not to phone home.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="tape-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
prefect = pytest.importorskip("prefect", reason="needs the prefect extra: pip install -e '.[prefect]'")

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from cli.main import main  # noqa: E402
from cli.prefect_flows import deployments, tape_job  # noqa: E402
from cli.scheduler import JobLog, load_scheduler_config  # noqa: E402
from projections.alerts import FailedJobsRule  # noqa: E402

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module", autouse=True)
def harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


def write_jobs(tmp_path: Path, jobs: str) -> Path:
    path = tmp_path / "jobs.toml"
    path.write_text(
        '[scheduler]\ncalendar = "XNYS"\njob_log = "jobs.sqlite"\nredact_env = ["TAPE_TEST_CANARY"]\n\n'
        + jobs
    )
    return path


def rows(path: Path) -> list[Any]:
    with JobLog(load_scheduler_config(path).job_log) as job_log:
        return list(reversed(job_log.runs()))


def test_a_job_runs_on_a_session_and_is_recorded_in_the_job_log(tmp_path: Path) -> None:
    path = write_jobs(
        tmp_path, '[[jobs]]\nname = "eod"\nshell = "echo done > out.txt"\ncron = "30 17 * * 1-5"\n'
    )
    result = tape_job(str(path), "eod", day="2025-12-23")
    assert result["outcome"] == "ok" and result["attempt"] == 1
    assert (tmp_path / "out.txt").read_text() == "done\n"  # ran in the jobs file's folder
    [run] = rows(path)
    assert (run.job, run.trigger, run.attempt, run.final, run.outcome, run.exit_status) == (
        "eod",
        "prefect",
        1,
        1,
        "ok",
        0,
    )


def test_a_holiday_is_skipped_without_running_the_command(tmp_path: Path) -> None:
    path = write_jobs(tmp_path, '[[jobs]]\nname = "eod"\nshell = "touch ran"\ncron = "30 17 * * *"\n')
    for holiday in ("2025-12-25", "2025-12-27"):  # Christmas, a Saturday
        result = tape_job(str(path), "eod", day=holiday)
        assert result["outcome"] == "skipped"
        assert "not a XNYS session" in result["reason"]
    assert not (tmp_path / "ran").exists()
    assert rows(path) == []
    # Asked to run regardless (``tape jobs prefect-run``), it runs.
    assert tape_job(str(path), "eod", day="2025-12-25", check_calendar=False)["outcome"] == "ok"
    assert (tmp_path / "ran").exists()


def test_a_failing_job_is_retried_by_prefect_and_every_attempt_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAPE_TEST_CANARY", "canary-s3cr3t")
    path = write_jobs(
        tmp_path,
        '[[jobs]]\nname = "fetch"\nshell = "echo token canary-s3cr3t >&2; exit 4"\ncron = "0 18 * * *"\n'
        "retries = 2\nbackoff_s = 0\n",
    )
    state = tape_job(str(path), "fetch", day="2025-12-23", return_state=True)
    assert state.is_failed()
    runs = rows(path)
    assert [(r.attempt, r.final, r.outcome, r.exit_status) for r in runs] == [
        (1, 0, "failed", 4),
        (2, 0, "failed", 4),
        (3, 1, "failed", 4),
    ]
    assert len({r.run_id for r in runs}) == 1
    assert all("canary-s3cr3t" not in r.detail and "***" in r.detail for r in runs)
    with JobLog(load_scheduler_config(path).job_log) as job_log:
        [observation] = FailedJobsRule("failed_jobs", "warning").observe_now(0, job_log.final_outcomes())
    assert observation.breached and observation.key == "fetch"


def test_a_flaky_job_succeeds_on_its_retry(tmp_path: Path) -> None:
    path = write_jobs(
        tmp_path,
        '[[jobs]]\nname = "flaky"\nshell = "test -f seen || { touch seen; exit 1; }"\n'
        'cron = "0 18 * * *"\nretries = 3\nbackoff_s = 0\n',
    )
    result = tape_job(str(path), "flaky", day="2025-12-23")
    assert result["outcome"] == "ok" and result["attempt"] == 2
    assert [(r.attempt, r.final, r.outcome) for r in rows(path)] == [(1, 0, "failed"), (2, 1, "ok")]


def test_an_ok_exit_status_succeeds_the_flow_without_a_retry(tmp_path: Path) -> None:
    """A job's ``ok_exit`` holds under Prefect as under the scheduler: exit 3 (a journal still
    running) with ``ok_exit = [0, 3]`` failed the task and was retried."""
    path = write_jobs(
        tmp_path,
        '[[jobs]]\nname = "unfinished"\nshell = "exit 3"\ncron = "0 18 * * *"\nretries = 2\n'
        "backoff_s = 0\nok_exit = [0, 3]\n",
    )
    result = tape_job(str(path), "unfinished", day="2025-12-23")
    assert (result["outcome"], result["attempt"], result["exit"]) == ("ok", 1, 3)
    assert [(r.attempt, r.final, r.outcome, r.exit_status) for r in rows(path)] == [(1, 1, "ok", 3)]


def test_each_job_is_a_deployment_with_its_cron_time_in_its_zone(tmp_path: Path) -> None:
    path = write_jobs(
        tmp_path,
        '[[jobs]]\nname = "eod"\nshell = "true"\ncron = "30 17 * * 1-5"\n\n'
        '[[jobs]]\nname = "shanghai"\ntape = ["verify", "j"]\ncron = "0 16 * * 1-5"\n'
        'calendar = "XSHG"\ntimezone = "Asia/Shanghai"\n',
    )
    built = {d.name: d for d in deployments(load_scheduler_config(path))}
    assert set(built) == {"eod", "shanghai"}
    for name, cron, zone in (
        ("eod", "30 17 * * 1-5", "America/New_York"),
        ("shanghai", "0 16 * * 1-5", "Asia/Shanghai"),
    ):
        [schedule] = built[name].schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == (cron, zone)
        assert built[name].parameters == {"config_path": str(path.resolve()), "job": name}
        assert built[name].entrypoint == "cli.prefect_flows.tape_job"


def test_deployments_combine_the_day_fields_as_the_scheduler_does(tmp_path: Path) -> None:
    """Prefect's croniter ORs the day fields whenever neither is exactly ``*``; the scheduler (as
    Vixie cron) treats ``*/2`` as unrestricted and ANDs: the deployment passes ``day_or``."""
    path = write_jobs(
        tmp_path,
        '[[jobs]]\nname = "odd-mondays"\nshell = "true"\ncron = "0 18 */2 * 1"\n\n'
        '[[jobs]]\nname = "either"\nshell = "true"\ncron = "0 18 1,15 * 1"\n',
    )
    built = {d.name: d for d in deployments(load_scheduler_config(path))}
    assert [s.schedule.day_or for s in built["odd-mondays"].schedules] == [False]
    assert [s.schedule.day_or for s in built["either"].schedules] == [True]


def test_prefect_run_verb_runs_the_job_and_reports_its_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jobs(
        tmp_path,
        '[[jobs]]\nname = "ok"\nshell = "true"\ncron = "0 18 * * *"\n\n'
        '[[jobs]]\nname = "bad"\nshell = "exit 3"\ncron = "0 18 * * *"\n',
    )
    assert main(["jobs", "prefect-run", "ok", "--config", str(path)]) == 0
    assert main(["jobs", "prefect-run", "bad", "--config", str(path)]) == 1
    assert main(["jobs", "prefect-run", "nope", "--config", str(path)]) == 2
    out = capsys.readouterr().out
    assert "Completed" in out and "Failed" in out and "no job 'nope'" in out
    assert [(r.job, r.outcome) for r in rows(path)] == [("ok", "ok"), ("bad", "failed")]
