"""``tape scheduler`` and ``tape jobs run|list`` (the scheduler itself: ``cli.scheduler``)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.arguments import at_least, output_file
from cli.logs import configure_logging
from cli.progress import console, notice, one_stdout, plural, results_on_stderr, write_output
from cli.research_tables import Column, print_fitted
from cli.scheduler import (
    RUNNING,
    JobLog,
    JobRun,
    Scheduler,
    SchedulerConfig,
    describe_ns,
    exit_text,
    hold_lock,
    job_log_lock_path,
    load_scheduler_config,
    lock_holder,
    stop_on_signals,
    wall_ns,
)
from cli.wiring import ConfigError

__all__ = ["add_jobs_parsers", "cmd_jobs", "cmd_scheduler"]


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Run forever (SIGTERM or Ctrl-C stop it between jobs or during a wait). One scheduler per
    job log: a second one is refused (it would run every job again). ``--json``: the runs it
    made, written when it stops."""
    one_stdout(json=args.json)
    config = load_scheduler_config(Path(args.config))
    nexts = {name: job.next_fire_ns(wall_ns()) for name, job in config.jobs.items()}  # refused: no log made
    lock_path = job_log_lock_path(config.job_log)
    lock = hold_lock(lock_path, f"tape scheduler --config {config.path}")
    if lock is None:
        raise ConfigError(
            f"{config.job_log}: {lock_holder(lock_path)} already runs the jobs of this job log; "
            "one scheduler per job log (stop that one first: it would run every job twice)"
        )
    try:
        stop = stop_on_signals()
        setup = configure_logging(
            "scheduler", run=config.path.stem, path=config.log, redactor=config.redactor
        )
        with JobLog(config.job_log) as job_log:
            # this process holds the lock: an attempt a scheduler left running died with it
            for run in job_log.settle_abandoned(wall_ns(), scheduler_gone=True):
                setup.logger.error("job %s run %d attempt %d: %s", run.job, run.run_id, run.attempt,
                                   run.detail, extra={"job": run.job})  # fmt: skip
            scheduler = Scheduler(config, job_log, sleep=stop.wait, stopping=stop.is_set)
            for name, at_ns in sorted(nexts.items()):
                at = describe_ns(at_ns, config.jobs[name].timezone)
                setup.logger.info("job %s next at %s", name, at, extra={"job": name})
            first_run_id = job_log.next_run_id()
            try:
                runs = scheduler.run_forever(should_stop=lambda now_ns: stop.is_set())
                setup.logger.info("scheduler stopped after %d runs", runs)
            finally:
                setup.close()
            if args.json:
                made = _runs_since(config, job_log, first_run_id, runs)
                write_output(args.json, json.dumps(made, indent=1) + "\n", option="--json")
    finally:
        os.close(lock)
    stop.raise_if_stopped()
    return 0


def _runs_since(config: SchedulerConfig, job_log: JobLog, first_run_id: int, runs: int) -> dict[str, Any]:
    """``scheduler --json``: the runs this scheduler made (each run's final attempt), counted by
    outcome."""
    attempts_max = max((job.retries + 1 for job in config.jobs.values()), default=1)
    made = [
        _run_json(run)
        for run in reversed(job_log.runs(limit=max(1, runs * attempts_max)))
        if run.run_id >= first_run_id and run.final
    ]
    outcomes: dict[str, int] = {}
    for run in made:
        outcomes[run["outcome"]] = outcomes.get(run["outcome"], 0) + 1
    return {
        "config": str(config.path),
        "job_log": str(config.job_log),
        "runs": len(made),
        "outcomes": outcomes,
        "final_attempts": made,
    }


def cmd_jobs_run(args: argparse.Namespace) -> int:
    """Run one job now, with its retries; exit 1 when its last attempt failed. ``--json``: its
    outcome, attempts, exit status and duration (the same exit status)."""
    on_stdout = one_stdout(json=args.json)
    config = load_scheduler_config(Path(args.config))
    job = config.jobs.get(args.name)
    if job is None:
        raise ConfigError(f"{args.config}: no job {args.name!r} (jobs: {', '.join(sorted(config.jobs))})")
    setup = configure_logging("jobs", run=config.path.stem, path=config.log, redactor=config.redactor)
    try:
        with JobLog(config.job_log) as job_log:
            now = wall_ns()
            job_log.settle_abandoned(now, scheduler_gone=False)
            scheduler = Scheduler(config, job_log, sleep=_told_wait(job_log, job.name, job.retries + 1))
            run = scheduler.run_job(job, scheduled_ns=now, trigger="manual")
    finally:
        setup.close()
    colour = "green" if run.outcome == "ok" else "red"
    with results_on_stderr(on_stdout):
        console.print(
            f"job {job.name} run {run.run_id}: [{colour}]{run.outcome}[/] after {run.attempt} attempt(s), "
            f"{exit_text(run.exit_status)}, {run.duration_s:.1f} s"
        )
        if (run.outcome != "ok" or run.exit_status) and run.detail:  # an ok exit 3: ok_exit said so
            console.print(run.detail, markup=False, highlight=False)
    if args.json:
        document = {"config": str(config.path), "job_log": str(config.job_log), "attempts": run.attempt,
                    **_run_json(run)}  # fmt: skip
        write_output(args.json, json.dumps(document, indent=1) + "\n", option="--json")
    return 0 if run.outcome == "ok" else 1


def _told_wait(job_log: JobLog, name: str, attempts: int) -> Callable[[float], None]:
    """``jobs run``'s wait before a retry, said on stderr first: with the log in a file
    (``log = ...``) the terminal showed nothing for the whole backoff, as if the job hung."""

    def wait(seconds: float) -> None:
        (last,) = job_log.runs(name, limit=1)
        notice(
            f"job {name} attempt {last.attempt}/{attempts}: {last.outcome} ({exit_text(last.exit_status)}); "
            f"retry in {seconds:g} s (Ctrl-C ends the run here)"
        )
        time.sleep(seconds)

    return wait


_JOB_COLUMNS = (
    Column("job", 10),
    Column("next run", 9),
    Column("last", 8),  # the last attempt's outcome
    Column("run", 5),
    Column("attempt", 4),
    Column("duration", 3),
    Column("cron", 6),
    Column("calendar", 2),
    Column("command", 7, wraps=True, breaks="/."),
)
_RUN_COLUMNS = (
    Column("run", 8),
    Column("job", 10),
    Column("attempt", 7),
    Column("trigger", 3),
    Column("started", 9),
    Column("outcome", 9),
    Column("exit", 6),
    Column("duration", 5),
)
_RUN_FIELDS = ("run_id", "job", "attempt", "final", "trigger", "scheduled", "started", "finished",
               "duration_s", "outcome", "exit_status", "detail")  # fmt: skip


def _job_rows(config: SchedulerConfig, job_log: JobLog, now_ns: int) -> list[dict[str, Any]]:
    """Every job with its next run and its last attempt (None: never run), as JSON values."""
    rows = []
    for name, job in config.jobs.items():
        last = job_log.runs(name, limit=1)
        rows.append(
            {
                "job": name,
                "command": job.command_text,
                "cron": job.cron.text,
                "calendar": job.sessions.code,
                "holidays": job.sessions.holidays_file or None,  # [scheduler.holidays]' file
                "timezone": job.timezone.key,
                "ok_exit": list(job.ok_exit),
                "next_run": describe_ns(job.next_fire_ns(now_ns), job.timezone),
                "last": _run_json(last[0]) if last else None,
            }
        )
    return rows


def _run_json(run: JobRun) -> dict[str, Any]:
    values = {
        "run_id": run.run_id,
        "job": run.job,
        "attempt": run.attempt,
        "final": bool(run.final),
        "trigger": run.trigger,
        "scheduled": describe_ns(run.scheduled_ns),
        "started": describe_ns(run.started_ns),
        "finished": describe_ns(run.finished_ns),
        "duration_s": round(run.duration_s, 3),
        "outcome": run.outcome,
        "exit_status": run.exit_status,
        "detail": run.detail,
    }
    assert tuple(values) == _RUN_FIELDS
    return values


def _csv_text(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(("" if value is None else value for value in row) for row in rows)
    return buffer.getvalue()


def _jobs_csv(jobs: list[dict[str, Any]]) -> str:
    header = ("job", "command", "cron", "calendar", "timezone", "next_run", "holidays", "ok_exit",
              "last_outcome", "last_run_id", "last_attempt", "last_started", "last_duration_s")  # fmt: skip
    rows = []
    for job in jobs:
        last = job["last"] or {}
        rows.append(
            (
                *(job[key] for key in header[:7]),
                " ".join(map(str, job["ok_exit"])),
                *(last.get(key) for key in ("outcome", "run_id", "attempt", "started", "duration_s")),
            )
        )
    return _csv_text(header, rows)


def _print_jobs(config: SchedulerConfig, jobs: list[dict[str, Any]]) -> None:
    rows = []
    for job in jobs:
        last = job["last"]
        rows.append(
            (
                job["job"],
                job["next_run"],
                last["outcome"] if last else "never run",
                str(last["run_id"]) if last else "",
                str(last["attempt"]) if last else "",
                _duration(last),
                job["cron"],
                f"{job['calendar']} {job['timezone']}",
                " ".join(job["command"].split()) + _ok_exit_words(job["ok_exit"]),
            )
        )
    print_fitted(f"jobs in {config.path}", _JOB_COLUMNS, rows, left=len(_JOB_COLUMNS))


def _ok_exit_words(ok_exit: list[int]) -> str:
    """Under a job's command in ``jobs list``: the exit statuses that count as ok, when more than 0."""
    return "" if ok_exit == [0] else f"\n(ok_exit {' '.join(map(str, ok_exit))})"


def _print_runs(config: SchedulerConfig, runs: list[dict[str, Any]]) -> None:
    rows = [
        (
            str(run["run_id"]),
            run["job"],
            str(run["attempt"]),
            run["trigger"],
            run["started"],
            run["outcome"],
            "" if run["exit_status"] is None else str(run["exit_status"]),
            _duration(run),
        )
        for run in runs
    ]
    print_fitted(f"last {plural(len(runs), 'attempt')} ({config.job_log})", _RUN_COLUMNS, rows, left=6)


def _duration(run: dict[str, Any] | None) -> str:
    """An attempt's duration; none while it runs (or for a job never run)."""
    return "" if run is None or run["outcome"] == RUNNING else f"{run['duration_s']:.1f} s"


def cmd_jobs_list(args: argparse.Namespace) -> int:
    """The jobs, next runs and last outcomes (``--runs N``: the last N attempts), fitted to the
    terminal; ``--json`` / ``--csv`` (``-``: stdout, no table) hold every field."""
    one_stdout(json=args.json, csv=args.csv)
    config = load_scheduler_config(Path(args.config))
    now = wall_ns()
    for job in config.jobs.values():
        job.next_fire_ns(now)  # refused before the job log is made
    with JobLog(config.job_log) as job_log:
        job_log.settle_abandoned(now, scheduler_gone=False)
        jobs = _job_rows(config, job_log, now)
        runs = [_run_json(run) for run in job_log.runs(limit=args.runs)] if args.runs else []
    if args.json:
        document: dict[str, Any] = {"config": str(config.path), "job_log": str(config.job_log), "jobs": jobs}
        if args.runs:
            document["runs"] = runs
        write_output(args.json, json.dumps(document, indent=1) + "\n", option="--json")
    if args.csv:
        text = _csv_text(_RUN_FIELDS, [tuple(r.values()) for r in runs]) if args.runs else _jobs_csv(jobs)
        write_output(args.csv, text, option="--csv")
    if "-" in (args.json, args.csv):
        return 0
    _print_jobs(config, jobs)
    if args.runs:
        _print_runs(config, runs)
    return 0


def _prefect_flows() -> Any:
    """``cli.prefect_flows`` (imports Prefect: the ``prefect`` extra), or one line saying so."""
    try:
        import cli.prefect_flows as flows
    except ImportError as error:
        raise ConfigError(f"Prefect is not installed ({error}): pip install 'tape[prefect]'") from None
    return flows


def cmd_jobs_prefect_serve(args: argparse.Namespace) -> int:
    """Serve every job as a Prefect deployment (its cron time and zone) until Ctrl-C."""
    config = load_scheduler_config(Path(args.config))  # a bad file is refused before Prefect loads
    flows = _prefect_flows()
    console.print(f"serving {len(config.jobs)} jobs of {config.path} as Prefect deployments of tape-job")
    flows.serve_jobs(config.path)
    return 0


def cmd_jobs_prefect_run(args: argparse.Namespace) -> int:
    """Run one job now as a Prefect flow run (any day: the calendar is not checked)."""
    config = load_scheduler_config(Path(args.config))
    if args.name not in config.jobs:
        raise ConfigError(f"{args.config}: no job {args.name!r} (jobs: {', '.join(sorted(config.jobs))})")
    flows = _prefect_flows()
    state = flows.tape_job(str(config.path), args.name, check_calendar=False, return_state=True)
    ok = state.is_completed()
    colour = "green" if ok else "red"
    console.print(f"job {args.name} as a Prefect flow run: [{colour}]{state.name}[/] ({state.message or ''})")
    return 0 if ok else 1


_JOBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_jobs_run,
    "list": cmd_jobs_list,
    "prefect-serve": cmd_jobs_prefect_serve,
    "prefect-run": cmd_jobs_prefect_run,
}


def cmd_jobs(args: argparse.Namespace) -> int:
    return _JOBS[args.jobs_verb](args)


def add_jobs_parsers(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    scheduler = verbs.add_parser(
        "scheduler", help="run the [[jobs]] of a TOML file on their cron times, forever"
    )
    scheduler.add_argument("--config", required=True, help="jobs TOML (docs/operations.md)")
    jobs = verbs.add_parser("jobs", help="run one scheduled job now, or list jobs and their runs")
    sub = jobs.add_subparsers(dest="jobs_verb", required=True)
    run = sub.add_parser("run", help="run a job now (with its retries), recorded in the job log")
    run.add_argument("name")
    run.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                     help="write the run's outcome, attempts, exit status and duration as JSON (alone or "
                     "'-': stdout; same exit status)")  # fmt: skip
    scheduler.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                           help="when it stops: the runs it made and their outcomes as JSON (alone or "
                           "'-': stdout)")  # fmt: skip
    listing = sub.add_parser("list", help="jobs, next run times and last outcomes")
    listing.add_argument("--runs", type=at_least(0), default=0, help="also show the last N attempts")
    listing.add_argument(
        "--json",
        type=output_file,
        metavar="PATH",
        nargs="?",
        const="-",
        help="write the jobs (and --runs' attempts) as JSON (alone or '-': stdout, no table)",
    )
    listing.add_argument(
        "--csv",
        type=output_file,
        metavar="PATH",
        help="write one row per job as CSV; with --runs N one row per attempt ('-': stdout, no table)",
    )
    serve = sub.add_parser("prefect-serve", help="serve the jobs as Prefect deployments (the prefect extra)")
    prefect_run = sub.add_parser(
        "prefect-run", help="run a job now as a Prefect flow run (the prefect extra)"
    )
    prefect_run.add_argument("name")
    for parser in (run, listing, serve, prefect_run):
        parser.add_argument("--config", required=True, help="jobs TOML")
