"""The jobs of a ``tape scheduler`` TOML file as Prefect flows (the ``prefect`` extra).

For users who already run Prefect: ``tape jobs prefect-serve --config jobs.toml`` serves one
deployment per ``[[jobs]]`` table, each a run of the same flow, ``tape-job``, with the job's
cron time in its time zone; the flow runs the same command as ``tape scheduler`` does
(``cli.scheduler.run_command``), with the job's retries and backoff as Prefect task retries,
and records every attempt in the same job log (trigger ``prefect``), so ``tape jobs list`` and
the ``failed_jobs`` alert rule see Prefect's runs as they see the built-in scheduler's.

Prefect's cron knows no exchange calendar: the flow itself skips a day that is not a session
of the job's calendar (a holiday, a weekend), as the built-in scheduler does, and returns
``skipped`` without running the command or writing the job log.

This module imports Prefect at import time; ``cli.jobs_cmd`` imports it only when a Prefect
verb runs (Prefect's own import costs seconds).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from prefect import flow, serve, task
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.runtime import flow_run, task_run
from prefect.schedules import Cron

from cli.scheduler import NS, JobLog, JobRun, JobSpec, SchedulerConfig, load_scheduler_config, run_command
from cli.scheduler import wall_ns as _wall_ns
from cli.wiring import ConfigError

__all__ = ["JobFailed", "deployments", "serve_jobs", "tape_job"]

TRIGGER = "prefect"
_RETRY_DELAYS_MAX = 50  # Prefect accepts at most 50 explicit retry delays


class JobFailed(RuntimeError):
    """An attempt of a job failed or timed out (the message: outcome, exit status, output)."""


def _job(config_path: str, name: str) -> tuple[SchedulerConfig, JobSpec]:
    config = load_scheduler_config(Path(config_path))
    job = config.jobs.get(name)
    if job is None:
        raise ConfigError(f"{config_path}: no job {name!r} (jobs: {', '.join(sorted(config.jobs))})")
    return config, job


@task(name="tape-job-attempt")
def _attempt(config_path: str, name: str, run_id: int, scheduled_ns: int) -> dict[str, Any]:
    """One attempt of the job's command, recorded in the job log; raises ``JobFailed`` so that
    Prefect retries it (the task's retries are the job's ``retries``)."""
    config, job = _job(config_path, name)
    attempt = int(task_run.run_count or 1)
    started_ns = _wall_ns()
    outcome, exit_status, detail = run_command(job.argv, job.timeout_s, job.cwd, config.redactor.redact)
    outcome, detail = job.judged(outcome, exit_status, detail)  # ok_exit: an ok is not retried
    finished_ns = _wall_ns()
    final = outcome == "ok" or attempt >= job.retries + 1
    run = JobRun(
        0,
        run_id,
        job.name,
        attempt,
        int(final),
        TRIGGER,
        scheduled_ns,
        started_ns,
        finished_ns,
        (finished_ns - started_ns) / NS,
        outcome,
        exit_status,
        config.redactor.redact(detail),
    )
    with JobLog(config.job_log) as job_log:
        job_log.record(run)
    if outcome != "ok":
        raise JobFailed(f"job {job.name} attempt {attempt}: {outcome} (exit {exit_status}): {run.detail}")
    return {"job": job.name, "run_id": run_id, "attempt": attempt, "outcome": outcome, "exit": exit_status}


def _run_day(job: JobSpec, day: str) -> date:
    """The day whose session decides: ``day`` when given, else the calendar's date at the flow
    run's scheduled start (Prefect's runtime; the wall clock for a flow called directly), as
    the built-in scheduler decides (``JobSpec.session_day``)."""
    if day:
        try:
            return date.fromisoformat(day)
        except ValueError:
            raise ConfigError(f"day must be YYYY-MM-DD, got {day!r}") from None
    start = flow_run.scheduled_start_time
    return job.session_day(datetime.fromtimestamp(start.timestamp(), tz=job.timezone))


@flow(name="tape-job", flow_run_name="{job}", validate_parameters=True)
def tape_job(config_path: str, job: str, day: str = "", check_calendar: bool = True) -> dict[str, Any]:
    """Run ``job`` of the jobs TOML ``config_path`` once, with its retries: on a session of its
    calendar (``day`` or the scheduled day), or on any day with ``check_calendar=False``."""
    config, spec = _job(config_path, job)
    on = _run_day(spec, day)
    if check_calendar and not spec.sessions.is_session(on):
        return {
            "job": spec.name,
            "outcome": "skipped",
            "reason": f"{on} is not a {spec.sessions.code} session",
        }
    with JobLog(config.job_log) as job_log:
        run_id = job_log.next_run_id()
    delays = [spec.backoff_after(n) for n in range(1, min(spec.retries, _RETRY_DELAYS_MAX) + 1)]
    attempt = _attempt.with_options(retries=spec.retries, retry_delay_seconds=delays or 0)
    return attempt(str(config.path), spec.name, run_id, _wall_ns())


def deployments(config: SchedulerConfig) -> list[RunnerDeployment]:
    """One deployment of ``tape-job`` per job: its cron time in its time zone, its parameters."""
    config_path = str(config.path.resolve())
    return [
        tape_job.to_deployment(
            name=name,
            # croniter's day_or would OR "*/2" with a weekday: pass the scheduler's rule
            schedules=[Cron(spec.cron.text, timezone=spec.timezone.key, day_or=spec.cron.day_or)],
            parameters={"config_path": config_path, "job": name},
            description=f"{spec.command_text} (calendar {spec.sessions.code}; non-sessions are skipped)",
            tags=["tape"],
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        for name, spec in config.jobs.items()
    ]


def serve_jobs(config_path: Path) -> None:
    """Serve every job as a deployment until Ctrl-C (Prefect's runner polls its API)."""
    serve(*deployments(load_scheduler_config(config_path)))
