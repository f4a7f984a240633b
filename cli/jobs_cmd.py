"""``tape scheduler`` and ``tape jobs run|list`` (the scheduler itself: ``cli.scheduler``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from cli.logs import configure_logging
from cli.progress import console
from cli.scheduler import (
    JobLog,
    Scheduler,
    describe_ns,
    exit_text,
    load_scheduler_config,
    stop_on_signals,
    wall_ns,
)
from cli.wiring import ConfigError

__all__ = ["add_jobs_parsers", "cmd_jobs", "cmd_scheduler"]


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Run forever (SIGTERM or Ctrl-C stop it between jobs or during a wait)."""
    config = load_scheduler_config(Path(args.config))
    nexts = {name: job.next_fire_ns(wall_ns()) for name, job in config.jobs.items()}  # refused: no log made
    stop = stop_on_signals()
    setup = configure_logging("scheduler", run=config.path.stem, path=config.log, redactor=config.redactor)
    with JobLog(config.job_log) as job_log:
        scheduler = Scheduler(config, job_log, sleep=stop.wait, stopping=stop.is_set)
        for name, at_ns in sorted(nexts.items()):
            setup.logger.info(
                "job %s next at %s", name, describe_ns(at_ns, config.jobs[name].timezone), extra={"job": name}
            )
        try:
            runs = scheduler.run_forever(should_stop=lambda now_ns: stop.is_set())
            setup.logger.info("scheduler stopped after %d runs", runs)
        finally:
            setup.close()
    stop.raise_if_stopped()
    return 0


def cmd_jobs_run(args: argparse.Namespace) -> int:
    """Run one job now, with its retries; exit 1 when its last attempt failed."""
    config = load_scheduler_config(Path(args.config))
    job = config.jobs.get(args.name)
    if job is None:
        raise ConfigError(f"{args.config}: no job {args.name!r} (jobs: {', '.join(sorted(config.jobs))})")
    setup = configure_logging("jobs", run=config.path.stem, path=config.log, redactor=config.redactor)
    try:
        with JobLog(config.job_log) as job_log:
            now = wall_ns()
            run = Scheduler(config, job_log).run_job(job, scheduled_ns=now, trigger="manual")
    finally:
        setup.close()
    colour = "green" if run.outcome == "ok" else "red"
    console.print(
        f"job {job.name} run {run.run_id}: [{colour}]{run.outcome}[/] after {run.attempt} attempt(s), "
        f"{exit_text(run.exit_status)}, {run.duration_s:.1f} s"
    )
    if run.outcome != "ok" and run.detail:
        console.print(run.detail, markup=False, highlight=False)
    return 0 if run.outcome == "ok" else 1


def cmd_jobs_list(args: argparse.Namespace) -> int:
    config = load_scheduler_config(Path(args.config))
    now = wall_ns()
    nexts = {name: job.next_fire_ns(now) for name, job in config.jobs.items()}  # refused: no log made
    with JobLog(config.job_log) as job_log:
        table = Table(title=f"jobs in {config.path}")
        for column in ("job", "command", "cron", "calendar", "next run", "last outcome", "duration"):
            table.add_column(column, overflow="fold")
        for name, job in config.jobs.items():
            last = job_log.runs(name, limit=1)
            table.add_row(
                name,
                job.command_text,
                job.cron.text,
                f"{job.sessions.code} ({job.timezone.key})",
                describe_ns(nexts[name], job.timezone),
                f"{last[0].outcome} (run {last[0].run_id}, attempt {last[0].attempt})"
                if last
                else "never run",
                f"{last[0].duration_s:.1f} s" if last else "",
            )
        console.print(table)
        if args.runs:
            runs = Table(title=f"last {args.runs} attempts ({config.job_log})")
            for column in ("run", "job", "attempt", "trigger", "started", "duration", "outcome", "exit"):
                runs.add_column(column)
            for run in job_log.runs(limit=args.runs):
                runs.add_row(
                    str(run.run_id),
                    run.job,
                    str(run.attempt),
                    run.trigger,
                    describe_ns(run.started_ns),
                    f"{run.duration_s:.1f} s",
                    run.outcome,
                    "" if run.exit_status is None else str(run.exit_status),
                )
            console.print(runs)
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
    listing = sub.add_parser("list", help="jobs, next run times and last outcomes")
    listing.add_argument("--runs", type=int, default=0, help="also show the last N attempts")
    serve = sub.add_parser("prefect-serve", help="serve the jobs as Prefect deployments (the prefect extra)")
    prefect_run = sub.add_parser(
        "prefect-run", help="run a job now as a Prefect flow run (the prefect extra)"
    )
    prefect_run.add_argument("name")
    for parser in (run, listing, serve, prefect_run):
        parser.add_argument("--config", required=True, help="jobs TOML")
