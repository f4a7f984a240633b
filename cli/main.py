"""``tape``: one verb per command. The composition root; nothing imports it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from cli import projections_cmd
from cli.execution_tables import print_execution_quality
from cli.ingest import (
    add_export_parser,
    add_health_parser,
    add_ingest_parser,
    cmd_export,
    cmd_health,
    cmd_ingest,
)
from cli.options_cmd import add_option_chain_parser, cmd_option_chain
from cli.progress import console, progress_bar
from cli.wiring import ConfigError, load_config, make_strategy, replay_builder
from domain.events import DatasetReferenced
from domain.markets import RuleNotDefined
from kernel.journal import ChainBroken, Journal, JournalError, StoreDamaged
from kernel.loop import KernelError
from kernel.replay import ReplayResult, replay
from kernel.run_status import run_status
from kernel.store import open_journal
from lake.store import DatasetError
from lake.synth import synth_dataset
from projections import ProjectionError, TargetUnavailable
from sim.backtest import run_backtest
from sim.execution_report import ExecutionQualityError, execution_report, write_orders_csv, write_orders_json
from sim.metrics import report_from_journal

__all__ = ["EXIT_DAMAGED", "EXIT_INTERNAL", "EXIT_OK", "EXIT_REFUSED", "EXIT_UNFINISHED", "main"]

# Exit statuses of every verb (docs/runbook.md, "Exit statuses").
EXIT_OK = 0
EXIT_DAMAGED = 1  # the journal is damaged (a bad record or store) or a replay diverged
EXIT_REFUSED = 2  # bad arguments, configuration, data or a path that is not a journal
EXIT_UNFINISHED = 3  # a sound journal of a run that never finished (no run.finished.v1)
EXIT_INTERNAL = 70  # a bug: an unexpected exception (TAPE_TRACEBACK=1 shows its traceback)


def cmd_synth(args: argparse.Namespace) -> int:
    ref = synth_dataset(
        Path(args.out),
        seed=args.seed,
        symbols=args.symbols,
        bars=args.bars,
        frequency=args.frequency,
        calendar=args.calendar,
        start=args.start,
    )
    console.print(f"wrote {args.out} (content hash {ref.content_hash[:16]}...)")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    overrides = {"journal": args.journal} if args.journal else {}
    config = load_config(Path(args.config), overrides)
    strategy = make_strategy(config.strategy)
    steps = _steps_of(config.dataset)
    with progress_bar(f"backtest {config.run_id}", steps) as update:
        result = run_backtest(config, strategy, progress=update)
    console.print(
        f"journal {result.journal}: {result.records:,} records, chain head {result.last_hash[:16]}..."
    )
    _print_report(result.journal)
    return 0


def _steps_of(dataset: str) -> int:
    return int(json.loads((Path(dataset) / "manifest.json").read_text())["steps"])


def cmd_verify(args: argparse.Namespace) -> int:
    journal = open_journal(args.journal)
    if journal.tail_repair is not None:
        repair = journal.tail_repair
        console.print(
            f"[yellow]torn tail: {repair.records_cut} records from seq {repair.cut_from_seq} "
            f"({repair.reason}); a writable open cuts them[/]"
        )
    result = journal.verify()
    if not result.ok:
        console.print(
            f"[red]FAIL[/] first bad seq {result.first_bad_seq}: {result.reason} "
            "(every record before it verifies)"
        )
        return EXIT_DAMAGED
    console.print(f"[green]OK[/] {result.records:,} records, chain head {result.last_hash.hex()[:16]}...")
    return _unfinished_status(journal)


def _unfinished_status(journal: Journal) -> int:
    """EXIT_UNFINISHED, with one line saying so, for a journal of a run that never finished."""
    status = run_status(journal)
    if status.finished:
        return EXIT_OK
    console.print(f"[yellow]{status.describe()}[/]", soft_wrap=True)
    return EXIT_UNFINISHED


def cmd_replay(args: argparse.Namespace) -> int:
    journal = open_journal(args.journal)
    if len(journal) == 0:
        return _unfinished_status(journal)
    day = int(args.day.replace("-", "")) if args.day else None
    try:
        steps = _steps_of(replay_builder_dataset(journal))
    except (JournalError, OSError, KeyError):
        steps = 0  # replay reports the unreadable record itself
    with progress_bar(f"replay {Path(args.journal).name}", steps) as update:
        result = replay(journal, replay_builder, day=day, progress=update)
    return _print_replay(result)


def replay_builder_dataset(journal: Journal) -> str:
    """The data set path a journal's run read (its second record)."""
    event = journal.record(1).event()
    if not isinstance(event, DatasetReferenced):
        raise JournalError("journal does not start with run.started and dataset.referenced")
    return event.uri


def _journal_length(path: str) -> int:
    with open_journal(path) as journal:
        return len(journal)


def _print_replay(result: ReplayResult) -> int:
    if result.ok and result.unfinished:
        console.print(
            f"[yellow]replay matched an unfinished run[/]: {result.records_compared:,} derived records "
            f"(seq {result.first_seq}..{result.last_seq}) re-derived byte for byte, "
            f"{result.segments_rehashed} segment hashes rebuilt; the journal ends at seq "
            f"{result.last_seq} without run.finished.v1 (the run was stopped before its end)"
        )
        return EXIT_UNFINISHED
    if result.ok:
        console.print(
            f"[green]replay matched[/] the hash chain: {result.records_compared:,} derived "
            f"records (seq {result.first_seq}..{result.last_seq}) re-derived byte for byte, "
            f"{result.segments_rehashed} segment hashes rebuilt"
        )
        return 0
    divergence = result.divergence
    assert divergence is not None
    console.print(f"[red]replay diverged[/] at seq {divergence.seq}: {divergence.reason}")
    console.print(f"  journal: {divergence.expected!r}")
    console.print(f"  replay : {divergence.actual!r}")
    return EXIT_DAMAGED


def cmd_rebuild(args: argparse.Namespace) -> int:
    from projections import rebuild

    db_path = Path(args.db) if args.db else Path(str(args.journal).rstrip("/") + ".ledger.sqlite")
    with progress_bar(f"rebuild {db_path.name}", _journal_length(args.journal)) as update:
        report = rebuild(Path(args.journal), db_path, progress=update)
    table = Table(
        title=f"SQLite ledger {db_path} ({report.records_applied:,} records, seq 0..{report.checkpoint_seq})"
    )
    table.add_column("table")
    table.add_column("checksum")
    for name, checksum in sorted(report.checksums.items()):
        table.add_row(name, checksum)
    console.print(table)
    with open_journal(args.journal) as journal:
        return _unfinished_status(journal)


def cmd_report(args: argparse.Namespace) -> int:
    if args.worst < 0 or args.days < 0:
        raise ConfigError("--worst and --days must not be negative")
    with open_journal(args.journal) as journal:
        unfinished = not run_status(journal).finished
    if unfinished:  # said before the figures, whose "final" NAV is then the last one journaled
        console.print("[yellow]the figures below are those of an unfinished run[/]", soft_wrap=True)
    _print_report(Path(args.journal), worst=args.worst, days=args.days)
    if args.orders or args.json:
        with open_journal(args.journal) as journal:
            quality = execution_report(journal)
        if args.orders:
            write_orders_csv(quality, Path(args.orders))
            console.print(f"wrote {len(quality.rows):,} order rows to {args.orders}")
        if args.json:
            write_orders_json(quality, Path(args.json))
            console.print(f"wrote execution quality ({len(quality.rows):,} orders) to {args.json}")
    if unfinished:
        with open_journal(args.journal) as journal:
            return _unfinished_status(journal)
    return EXIT_OK


def _print_report(path: Path, *, worst: int = 10, days: int = 10) -> None:
    with open_journal(path) as journal:
        report = report_from_journal(journal)
        with progress_bar(f"execution quality {path.name}", len(journal)) as update:
            quality = execution_report(journal, progress=update)
    table = Table(title=f"report {path}", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for metric, value in report.rows():
        table.add_row(metric, value)
    console.print(table)
    print_execution_quality(quality, worst=worst, days=days)


def cmd_demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo(Path(args.workdir), fresh=not args.keep)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tape", description="Event-sourced trading kernel")
    verbs = parser.add_subparsers(dest="verb", required=True)
    synth = verbs.add_parser("synth", help="generate a seeded synthetic data set")
    synth.add_argument("out")
    synth.add_argument("--seed", type=int, default=7)
    synth.add_argument("--symbols", type=int, default=20)
    synth.add_argument("--bars", type=int, default=756)
    synth.add_argument("--frequency", choices=("1d", "1m"), default="1d")
    synth.add_argument("--calendar", default="XNYS", help="exchange_calendars code or 24x7")
    synth.add_argument("--start", default="2015-01-02")
    backtest = verbs.add_parser("backtest", help="run a backtest from a TOML config")
    backtest.add_argument("config")
    backtest.add_argument("--journal", help="override the config's journal path")
    verbs.add_parser("verify", help="walk the hash chain").add_argument("journal")
    report = verbs.add_parser("report", help="print the run's report and its execution quality")
    report.add_argument("journal")
    report.add_argument("--orders", metavar="CSV", help="write one row per (parent) order to this CSV")
    report.add_argument("--json", metavar="PATH", help="write totals and per-order rows as JSON")
    report.add_argument("--worst", type=int, default=10, help="orders listed by shortfall (default 10)")
    report.add_argument("--days", type=int, default=10, help="latest days listed (default 10)")
    rep = verbs.add_parser("replay", help="re-derive the journal with a fresh kernel and compare")
    rep.add_argument("journal")
    rep.add_argument("--day", help="replay one session day (YYYY-MM-DD) from its snapshot")
    rebuild = verbs.add_parser("rebuild", help="drop and rebuild the SQLite ledger projection")
    rebuild.add_argument("journal")
    rebuild.add_argument("--db", help="ledger path (default: JOURNAL.ledger.sqlite)")
    demo = verbs.add_parser("demo", help="generate data, run two backtests, rebuild, report, replay")
    demo.add_argument("--workdir", default="var/demo")
    demo.add_argument("--keep", action="store_true", help="keep existing data and journals")
    projections_cmd.add_arguments(verbs)
    add_ingest_parser(verbs)
    add_health_parser(verbs)
    add_export_parser(verbs)
    add_option_chain_parser(verbs)
    return parser


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "synth": cmd_synth,
    "backtest": cmd_backtest,
    "verify": cmd_verify,
    "replay": cmd_replay,
    "rebuild": cmd_rebuild,
    "report": cmd_report,
    "demo": cmd_demo,
    "ingest": cmd_ingest,
    "health": cmd_health,
    "export": cmd_export,
    "option-chain": cmd_option_chain,
}


_USER_ERRORS = (
    ConfigError,
    DatasetError,
    JournalError,
    FileNotFoundError,
    TargetUnavailable,
    ProjectionError,
    RuleNotDefined,
    ExecutionQualityError,
    KernelError,  # a run whose configuration and data cannot work together (named in the message)
    OSError,  # a file the verb cannot read or write (named in the message)
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.verb in ("projections", "audit"):
            return projections_cmd.COMMANDS[(args.verb, getattr(args, "projections_verb", None))](args)
        return VERBS[args.verb](args)
    except (StoreDamaged, ChainBroken) as error:
        _print_error(args, error)
        return EXIT_DAMAGED
    except _USER_ERRORS as error:
        _print_error(args, error)
        return EXIT_REFUSED
    except Exception as error:
        if os.environ.get("TAPE_TRACEBACK"):
            raise
        _print_error(args, error, prefix="internal error", kind=True)
        return EXIT_INTERNAL


def _print_error(
    args: argparse.Namespace, error: Exception, *, prefix: str = "error", kind: bool = False
) -> None:
    """One line (never wrapped) naming the file the verb was given, then the problem."""
    message = " ".join(str(error).split()) or type(error).__name__
    if kind:
        message = f"{type(error).__name__}: {message} (a bug: please report it; TAPE_TRACEBACK=1 shows where)"
    subject = getattr(args, "config", None) or getattr(args, "journal", None)
    if isinstance(subject, str) and subject not in message:
        message = f"{subject}: {message}"
    console.print(f"[red]{prefix}:[/] {escape(message)}", soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
