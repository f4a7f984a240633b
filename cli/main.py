"""``tape``: one verb per command. The composition root; nothing imports it."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
from rich.markup import escape

from cli import projections_cmd
from cli.alerts_cmd import add_alerts_parser, cmd_alerts
from cli.arguments import output_file, sqlite_path
from cli.cockpit_cmd import add_cockpit_parser, cmd_cockpit, session_day
from cli.compare_cmd import add_compare_parser, cmd_compare
from cli.exits import (
    EXIT_DAMAGED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TERMINATED,
    EXIT_UNFINISHED,
    EXIT_VENUE,
    Stopped,
    unfinished_status,
)
from cli.ingest import (
    add_export_parser,
    add_health_parser,
    add_ingest_parser,
    cmd_export,
    cmd_health,
    cmd_ingest,
)
from cli.jobs_cmd import add_jobs_parsers, cmd_jobs, cmd_scheduler
from cli.live_cmd import add_live_parser, cmd_live
from cli.logs import mask_url_passwords
from cli.models_cmd import add_models_parser, cmd_models
from cli.montecarlo_cmd import add_montecarlo_parser, cmd_montecarlo
from cli.options_cmd import add_option_chain_parser, cmd_option_chain
from cli.paper_cmd import add_command_parser, add_paper_parser, cmd_command, cmd_paper
from cli.progress import console, notice, one_stdout, progress_bar, results_on_stderr, write_output
from cli.qlib_cmd import add_qlib_parser, cmd_qlib
from cli.reconcile_cmd import add_reconcile_parser, cmd_reconcile
from cli.report_cmd import add_report_parser, cmd_report, print_report
from cli.research_tables import Column, print_fitted
from cli.sweep_cmd import add_sweep_parsers, cmd_runs, cmd_sweep
from cli.tearsheet_cmd import add_tearsheet_parser, cmd_tearsheet
from cli.train_cmd import add_train_parser, cmd_train
from cli.walkforward_cmd import add_walkforward_parser, cmd_walkforward
from cli.wiring import (
    ConfigError,
    journal_override,
    load_config,
    new_run_strategies,
    replay_builder,
)
from domain.events import DatasetReferenced
from domain.markets import CalendarNotCovered, RuleNotDefined
from kernel.journal import ChainBroken, Journal, JournalError, StoreDamaged
from kernel.loop import KernelError
from kernel.replay import CORRUPT_RECORD, Divergence, ReplayResult, replay
from kernel.store import open_journal
from kernel.strategy import StrategyError
from lake.store import DatasetError, read_manifest
from lake.synth import synth_dataset
from models.plugins import ENTRY_POINT_GROUP, PluginError, installed_strategies
from projections import ProjectionError, SchemaMismatch, TargetRefused, TargetUnavailable
from projections.metrics_influx import InfluxError
from sim.attribution import AttributionError
from sim.backtest import BacktestResult, run_backtest
from sim.execution_report import ExecutionQualityError
from sim.metrics import NoRunStarted, RunReport
from venues.ccxt_venue import VenueError

__all__ = [
    "EXIT_DAMAGED", "EXIT_INTERNAL", "EXIT_OK", "EXIT_REFUSED", "EXIT_UNFINISHED",
    "Stopped", "build_parser", "main", "stop_on_signals",
]  # fmt: skip


def cmd_synth(args: argparse.Namespace) -> int:
    to_stdout = one_stdout(json=args.json)
    ref = synth_dataset(
        Path(args.out),
        seed=args.seed,
        symbols=args.symbols,
        bars=args.bars,
        frequency=args.frequency,
        calendar=args.calendar,
        start=args.start,
    )
    summary = {
        "dataset": str(args.out),
        "content_hash": ref.content_hash,
        "seed": args.seed,
        "symbols": args.symbols,
        "bars": args.bars,
        "frequency": args.frequency,
        "calendar": args.calendar,
        "start": args.start,
    }
    with results_on_stderr(to_stdout):
        console.print(f"wrote {args.out} (content hash {ref.content_hash[:16]}...)", soft_wrap=True)
    _write_outputs(args, summary)
    return 0


def _write_outputs(args: argparse.Namespace, data: dict[str, Any], csv_text: str | None = None) -> None:
    """``--json`` (``data``, one object) and ``--csv`` (``csv_text``) where asked (``-``: stdout),
    a ``wrote PATH`` line for each file. ``cli.demo`` builds the namespace without them."""
    json_path, csv_path = getattr(args, "json", None), getattr(args, "csv", None)
    if json_path:
        write_output(json_path, json.dumps(data, indent=1) + "\n", option="--json")
    if csv_path and csv_text is not None:
        write_output(csv_path, csv_text, option="--csv")
    with results_on_stderr("-" in (json_path, csv_path)):
        for path in dict.fromkeys(path for path in (json_path, csv_path) if path and path != "-"):
            console.print(f"wrote {escape(path)}", soft_wrap=True, highlight=False)


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if value is None else value for value in row] for row in rows])
    return buffer.getvalue()


def cmd_backtest(args: argparse.Namespace) -> int:
    with results_on_stderr(one_stdout(json=args.json, csv=args.csv)):  # stdout carries the data alone
        summary = backtest_and_report(args)
    _write_outputs(args, summary, flat_csv([summary]))
    return 0


def backtest_and_report(args: argparse.Namespace) -> dict[str, Any]:
    """Run the backtest, print its journal line and report; ``backtest_summary`` of it."""
    config = load_config(Path(args.config), journal_override(args.journal))
    strategies = new_run_strategies(config)
    steps = _steps_of(config.dataset)  # a [window]'s steps once the run knows them
    with progress_bar(f"backtest {config.run_id}", steps) as update:
        result = run_backtest(config, strategies, progress=update, notice=notice)
    console.print(
        f"journal {result.journal}: {result.records:,} records, chain head {result.last_hash[:16]}...",
        soft_wrap=True,
    )
    return backtest_summary(result, print_report(result.journal).report)


def flat_csv(objects: Sequence[dict[str, Any]]) -> str:
    """A row per object, a column per leaf (``summary.returns.sharpe``, ...), in first-seen order:
    ``backtest --csv`` (one run) and ``demo --csv`` (one per config)."""
    rows = [dict(_flat(data)) for data in objects]
    header = list(dict.fromkeys(name for row in rows for name in row))
    return _csv_text(header, [[row.get(name) for name in header] for row in rows])


def backtest_summary(result: BacktestResult, report: RunReport) -> dict[str, Any]:
    """``backtest --json``: the run's journal, its records and whole chain head, its final NAV,
    and every figure of the report's summary (``tape report --json`` has the orders too)."""
    return {
        "run_id": report.run_id,
        "journal": str(result.journal),
        "records": result.records,
        "chain_head": result.last_hash,
        "steps": result.steps,
        "currency": report.currency,
        "final_nav": report.final_nav,
        "summary": report.to_json(),
    }


def _flat(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, object]]:
    """A nested object's leaves as ``summary.returns.sharpe``-style names (a CSV's rows)."""
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from _flat(value, name)
        else:
            yield name, value


def _steps_of(dataset: str) -> int:
    return int(str(read_manifest(Path(dataset))["steps"]))


def cmd_verify(args: argparse.Namespace) -> int:
    """Walk the hash chain: the verdict line (``--json`` / ``--csv``: the same as data, ``-``
    stdout alone, the line on stderr), and the exit status 0 / 1 damaged / 3 unfinished."""
    json_path, csv_path = getattr(args, "json", None), getattr(args, "csv", None)  # cli.demo: none
    to_stdout = one_stdout(json=json_path, csv=csv_path)
    journal = open_journal(args.journal)
    with results_on_stderr(to_stdout):
        status, summary = _verify_and_print(journal, args.journal)
    _write_outputs(args, summary, _csv_text(list(VERIFY_CSV), [[_flat_get(summary, c) for c in VERIFY_CSV]]))
    return status


VERIFY_CSV = (
    "journal", "ok", "records", "chain_head", "first_bad_seq", "reason", "finished", "unfinished",
    "torn_tail.cut_from_seq", "torn_tail.records_cut", "torn_tail.reason",
)  # fmt: skip
"""``verify --csv``'s columns: the JSON's keys, ``torn_tail``'s fields flat (always all, empty
where there is none, so a header never changes with the verdict)."""


def _flat_get(summary: dict[str, Any], column: str) -> object:
    head, _, field = column.partition(".")
    value = summary.get(head)
    return (value or {}).get(field) if field else value


def _verify_and_print(journal: Journal, path: str) -> tuple[int, dict[str, Any]]:
    """Print the verdict (a torn tail first); the exit status and the ``verify --json`` object:
    the journal, the verdict, the whole chain head, the run's state and a torn tail's cut."""
    from kernel.run_status import run_status

    repair = journal.tail_repair
    if repair is not None:
        console.print(
            f"[yellow]torn tail: {repair.records_cut} records from seq {repair.cut_from_seq} "
            f"({repair.reason}); a writable open cuts them[/]"
        )
    result = journal.verify()
    status = run_status(journal) if result.ok else None
    summary = {
        "journal": str(path),
        "ok": result.ok,
        "records": result.records if result.ok else None,  # a failed walk has no head
        "chain_head": result.last_hash.hex() if result.ok else None,
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason or None,
        "finished": None if status is None else status.finished,
        "unfinished": None if status is None or status.finished else status.describe(),
        "torn_tail": None
        if repair is None
        else {
            "cut_from_seq": repair.cut_from_seq,
            "records_cut": repair.records_cut,
            "reason": repair.reason,
        },
    }
    if not result.ok:
        console.print(
            f"[red]FAIL[/] first bad seq {result.first_bad_seq}: {result.reason} "
            "(every record before it verifies)"
        )
        return EXIT_DAMAGED, summary
    console.print(
        f"[green]OK[/] {result.records:,} records, chain head {result.last_hash.hex()[:16]}...",
        soft_wrap=True,
    )
    return unfinished_status(journal), summary


def cmd_replay(args: argparse.Namespace) -> int:
    with results_on_stderr(one_stdout(json=args.json, csv=args.csv)):  # stdout carries the data alone
        status, summary = replay_and_print(args)
    _write_outputs(args, summary, replay_csv(summary))
    return status


def replay_and_print(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """Replay the journal (or ``args.day``), print the verdict; the exit status and the
    ``replay_summary``."""
    journal = open_journal(args.journal)
    day: int | None = args.day  # session_day: YYYYMMDD, a real date
    if len(journal) == 0:  # a run stopped before its first commit: nothing to re-derive
        return unfinished_status(journal), replay_summary(args.journal, day, None)
    try:
        steps = _steps_of(replay_builder_dataset(journal))
    except (JournalError, DatasetError, OSError, KeyError):
        steps = 0  # replay reports the unreadable record itself
    label = f"replay {Path(args.journal).name}" + ("" if day is None else f" day {day}")
    with progress_bar(label, steps) as update:  # one day's replay sets its own total: its steps
        result = replay(journal, replay_builder, day=day, progress=update)
    return _print_replay(result, args.journal), replay_summary(args.journal, day, result)


_REPLAY_CSV = (
    "journal", "day", "ok", "unfinished", "records_compared", "first_seq", "last_seq",
    "segments_rehashed", "divergence_seq", "divergence_reason",
)  # fmt: skip


def replay_summary(path: str, day: int | None, result: ReplayResult | None) -> dict[str, Any]:
    """``replay --json``: the verdict and what was compared; a divergence with its seq, reason
    and both events whole (``journal_record``: an event, a corrupt record or none). ``result``
    None: an empty journal (a run stopped before its first commit), nothing compared."""
    divergence = None if result is None else result.divergence
    return {
        "journal": str(path),
        "day": None if day is None else f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}",
        "ok": divergence is None,
        "unfinished": result is None or result.unfinished,
        "records_compared": 0 if result is None else result.records_compared,
        "first_seq": None if result is None else result.first_seq,
        "last_seq": None if result is None else result.last_seq,
        "segments_rehashed": 0 if result is None else result.segments_rehashed,
        "divergence": None if divergence is None else _divergence_json(divergence),
    }


def _divergence_json(divergence: Divergence) -> dict[str, Any]:
    if divergence.expected is not None:
        record = "event"
    elif divergence.reason.startswith(CORRUPT_RECORD):
        record = "corrupt"
    else:
        record = "none"
    return {
        "seq": divergence.seq,
        "reason": divergence.reason,
        "journal_record": record,
        "expected": None if divergence.expected is None else msgspec.to_builtins(divergence.expected),
        "actual": None if divergence.actual is None else msgspec.to_builtins(divergence.actual),
    }


def replay_row(summary: dict[str, Any]) -> dict[str, Any]:
    """``replay_summary`` as a CSV row's fields: a divergence by its seq and reason alone."""
    divergence = summary["divergence"] or {}
    row = {name: summary[name] for name in _REPLAY_CSV[:-2]}
    return {**row, "divergence_seq": divergence.get("seq"), "divergence_reason": divergence.get("reason")}


def replay_csv(summary: dict[str, Any]) -> str:
    """``replay --csv``: the verdict in one row, a divergence's seq and reason in the last columns."""
    return flat_csv([replay_row(summary)])


def replay_builder_dataset(journal: Journal) -> str:
    """The data set path a journal's run read (its second record)."""
    event = journal.record(1).event()
    if not isinstance(event, DatasetReferenced):
        raise JournalError("journal does not start with run.started and dataset.referenced")
    return event.uri


def _journal_length(path: str) -> int:
    with open_journal(path) as journal:
        return len(journal)


def _print_replay(result: ReplayResult, path: str) -> int:
    if result.ok and result.unfinished:
        console.print(
            f"[yellow]replay matched an unfinished run[/]: {result.records_compared:,} derived records "
            f"(seq {result.first_seq}..{result.last_seq}) re-derived byte for byte, "
            f"{result.segments_rehashed} segment hashes rebuilt; the journal ends at seq "
            f"{result.last_seq} without run.finished.v1 (the run was stopped before its end)"
            + ("" if result.refused is None else f"; there the strategy refuses again: {result.refused}")
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
    seq, where = divergence.seq, escape(str(path))
    console.print(f"[red]replay diverged[/] at seq {seq} of {where}: {escape(divergence.reason)}")
    # A side with no event says what is there instead (a record that cannot be read, or none).
    if divergence.expected is not None:
        console.print(f"  journal: {escape(repr(divergence.expected))}")
    elif divergence.reason.startswith(CORRUPT_RECORD):
        console.print(
            f"  journal: {where}, the record at seq {seq} is corrupt: nothing from it on was "
            f"compared (tape verify {where} checks the whole chain)"
        )
    elif divergence.actual is not None:
        console.print(f"  journal: {where} holds no record at seq {seq}")
    if divergence.actual is not None:
        console.print(f"  replay : {escape(repr(divergence.actual))}")
    return EXIT_DAMAGED


def cmd_rebuild(args: argparse.Namespace) -> int:
    from projections import rebuild

    to_stdout = one_stdout(json=args.json, csv=args.csv)
    db_path = Path(args.db) if args.db else Path(str(args.journal).rstrip("/") + ".ledger.sqlite")
    with progress_bar(f"rebuild {db_path.name}", _journal_length(args.journal)) as update:
        progress = projections_cmd.RebuildProgress(update)
        with progress.said_where(str(db_path)):
            report = rebuild(Path(args.journal), db_path, progress=progress)
    where = str(db_path)
    projections_cmd.print_rebuild(
        f"SQLite ledger {where}", where, report, json_path=args.json, csv_path=args.csv
    )
    with open_journal(args.journal) as journal, results_on_stderr(to_stdout):  # beside the data
        return unfinished_status(journal)


def cmd_strategies(args: argparse.Namespace) -> int:
    """The strategies a run can name: the ``tape.strategies`` entry points installed."""
    to_stdout = one_stdout(json=args.json, csv=args.csv)
    try:
        installed = installed_strategies()
    except PluginError as error:
        raise ConfigError(str(error)) from None
    title = f"installed strategies ({ENTRY_POINT_GROUP}); any class also by entry"
    # an entry wider than its column breaks after a '.' or the ':', never inside a name
    columns = (Column("name", 9), Column("entry (module:attr)", 8, wraps=True, breaks=".:"))
    with results_on_stderr(to_stdout):  # stdout carries the data alone
        print_fitted(title, columns, list(installed.items()), left=1, elsewhere="--json / --csv have them")
    _write_outputs(args, installed, _csv_text(["name", "entry"], list(installed.items())))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    with results_on_stderr(one_stdout(json=args.json, csv=args.csv)):  # stdout carries the data alone
        status, runs = run_demo(Path(args.workdir), fresh=not args.keep)
    summary = {"workdir": args.workdir, "ok": status == 0, "runs": runs}
    # a row per config: its backtest's figures, its rebuild's, verify's and replay's verdicts
    rows = [{**run, "replay": replay_row(run["replay"])} for run in runs]
    _write_outputs(args, summary, flat_csv(rows))
    return status


def build_parser() -> argparse.ArgumentParser:
    """Every verb's parser (the tests walk it: each output option's type is checked)."""
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
    synth.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                       help="write the data set's path, content hash and parameters as JSON "
                       "(alone or '-': stdout)")  # fmt: skip
    backtest = verbs.add_parser("backtest", help="run a backtest from a TOML config")
    backtest.add_argument("config")
    backtest.add_argument("--journal", help="override the config's journal path")
    backtest.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                          help="write the journal, chain head, records, final NAV and the summary's "
                          "figures as JSON (alone or '-': stdout)")  # fmt: skip
    backtest.add_argument(
        "--csv",
        type=output_file,
        metavar="PATH",
        help="the same as CSV: a column per figure, one row ('-': stdout)",
    )
    verify = verbs.add_parser("verify", help="walk the hash chain")
    verify.add_argument("journal")
    verify.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                        help="write the verdict, records, whole chain head, run state and a torn "
                        "tail as JSON (alone or '-': stdout; same exit status)")  # fmt: skip
    verify.add_argument(
        "--csv", type=output_file, metavar="PATH", help="the same as one CSV row ('-': stdout)"
    )
    add_paper_parser(verbs)
    add_live_parser(verbs)
    add_command_parser(verbs)
    add_report_parser(verbs)
    add_sweep_parsers(verbs)
    add_walkforward_parser(verbs)
    add_montecarlo_parser(verbs)
    add_tearsheet_parser(verbs)
    rep = verbs.add_parser("replay", help="re-derive the journal with a fresh kernel and compare")
    rep.add_argument("journal")
    rep.add_argument("--day", type=session_day, help="replay one session day (YYYY-MM-DD) from its snapshot")
    rep.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                     help="write the verdict, what was compared and a divergence's events whole as "
                     "JSON (alone or '-': stdout; same exit status)")  # fmt: skip
    rep.add_argument(
        "--csv", type=output_file, metavar="PATH", help="the verdict as one CSV row ('-': stdout)"
    )
    rebuild = verbs.add_parser("rebuild", help="drop and rebuild the SQLite ledger projection")
    rebuild.add_argument("journal")
    rebuild.add_argument("--db", type=sqlite_path, help="ledger path (default: JOURNAL.ledger.sqlite)")
    projections_cmd.add_checksum_outputs(rebuild)
    strategies = verbs.add_parser("strategies", help="list the installed strategies a config can name")
    strategies.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                            help="write name -> entry as JSON (alone or '-': stdout)")  # fmt: skip
    strategies.add_argument(
        "--csv", type=output_file, metavar="PATH", help="write name,entry rows as CSV ('-': stdout)"
    )
    demo = verbs.add_parser("demo", help="generate data, run three backtests, rebuild, report, replay")
    demo.add_argument("--workdir", default="var/demo")
    demo.add_argument("--keep", action="store_true", help="keep existing data and journals")
    demo.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                      help="write each run's journal, chain head, records, final NAV and its verify "
                      "and replay verdicts as JSON (alone or '-': stdout)")  # fmt: skip
    demo.add_argument(
        "--csv", type=output_file, metavar="PATH", help="the same as CSV, a row per run ('-': stdout)"
    )
    projections_cmd.add_arguments(verbs)
    add_ingest_parser(verbs)
    add_health_parser(verbs)
    add_export_parser(verbs)
    add_option_chain_parser(verbs)
    add_cockpit_parser(verbs)
    add_alerts_parser(verbs)
    add_jobs_parsers(verbs)
    add_models_parser(verbs)
    add_train_parser(verbs)
    add_qlib_parser(verbs)
    add_reconcile_parser(verbs)
    add_compare_parser(verbs)
    return parser


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "synth": cmd_synth,
    "backtest": cmd_backtest,
    "verify": cmd_verify,
    "replay": cmd_replay,
    "rebuild": cmd_rebuild,
    "report": cmd_report,
    "demo": cmd_demo,
    "strategies": cmd_strategies,
    "sweep": cmd_sweep,
    "runs": cmd_runs,
    "walkforward": cmd_walkforward,
    "montecarlo": cmd_montecarlo,
    "tearsheet": cmd_tearsheet,
    "ingest": cmd_ingest,
    "health": cmd_health,
    "export": cmd_export,
    "option-chain": cmd_option_chain,
    "cockpit": cmd_cockpit,
    "alerts": cmd_alerts,
    "scheduler": cmd_scheduler,
    "jobs": cmd_jobs,
    "models": cmd_models,
    "train": cmd_train,
    "qlib": cmd_qlib,
    "paper": cmd_paper,
    "live": cmd_live,
    "command": cmd_command,
    "reconcile": cmd_reconcile,
    "compare": cmd_compare,
}


_USER_ERRORS = (
    ConfigError,
    DatasetError,
    JournalError,
    FileNotFoundError,
    TargetUnavailable,
    TargetRefused,
    InfluxError,  # the Influx server refused a request (4xx), named in the message
    ProjectionError,
    NoRunStarted,  # a journal that is not a run's (no run.started.v1): no figures
    SchemaMismatch,  # a ledger of another schema version (rebuild it) or not a Tape ledger
    RuleNotDefined,
    CalendarNotCovered,  # a date past the calendar's holidays: the message says what to supply
    ExecutionQualityError,
    AttributionError,
    KernelError,  # a run whose configuration and data cannot work together (named in the message)
    StrategyError,  # what a strategy returned that the kernel cannot use (it and the step named)
    OSError,  # a file the verb cannot read or write (named in the message)
)


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def _stop_again(hook: Callable[[Any], object]) -> Callable[[Any], None]:
    """A ``sys.unraisablehook`` for while a verb runs. A signal that lands while Python runs code
    whose exceptions it cannot pass on (a weak reference's callback, such as the import system's
    module-lock clean-up, or a finaliser) has its ``Stopped`` dropped ("Exception ignored") and
    the verb would run on to its end. The signal is sent again, from another thread a moment
    later: raised here, its handler would run inside this hook, where it is dropped as well.
    Anything else goes to ``hook``."""

    def stop_again(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, Stopped):
            resend = threading.Timer(0.01, os.kill, (os.getpid(), unraisable.exc_value.signum))
            resend.daemon = True
            resend.start()
            return
        hook(unraisable)

    return stop_again


@contextmanager
def stop_on_signals(*, program: bool = False) -> Iterator[None]:
    """SIGTERM, and SIGINT where it is not ignored (a background job's), stop the verb run
    inside: ``Stopped`` is raised where it is (``cli.main`` turns it into one line and exit 130
    or 143). Only in the main thread (not under a test harness's other threads). A verb with
    its own handling (follow, paper, live, scheduler) installs it over these for its run.
    ``program``: this process is ``tape`` itself, so a signal after the verb is ignored rather
    than killing the process on its way out; otherwise the handlers are put back."""
    previous: dict[int, Any] = {}
    hook = sys.unraisablehook
    if threading.current_thread() is threading.main_thread():
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _stop)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _stop)
        sys.unraisablehook = _stop_again(hook)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_IGN if program else handler)
        sys.unraisablehook = hook


def main(argv: Sequence[str] | None = None, *, program: bool = False) -> int:
    """Run one verb; its exit status. ``program``: this process is ``tape`` itself
    (``entry``), so a signal that comes after the verb has finished is ignored rather than
    killing the process on its way out; called in-process, the handlers are put back."""
    args = build_parser().parse_args(argv)
    with stop_on_signals(program=program):
        return _run(args)


def entry() -> None:
    """The ``tape`` program (``[project.scripts]``, ``python -m cli.main``)."""
    sys.exit(main(program=True))


def _run(args: argparse.Namespace) -> int:
    try:
        if args.verb in ("projections", "audit"):
            return projections_cmd.COMMANDS[(args.verb, getattr(args, "projections_verb", None))](args)
        return VERBS[args.verb](args)
    except (StoreDamaged, ChainBroken) as error:
        _print_error(args, error)
        return EXIT_DAMAGED
    except _USER_ERRORS as error:
        if os.environ.get("TAPE_TRACEBACK") and error.__cause__ is not None:
            raise  # the error wraps another (a strategy's own exception): its traceback
        _print_error(args, error)
        return EXIT_REFUSED
    except VenueError as error:  # tape paper / live: what was committed stays; --resume carries on
        _print_error(args, error, prefix="venue")
        with results_on_stderr(_data_on_stdout(args)):
            console.print("the journal holds what arrived (sound, replays); carry it on with --resume")
        return EXIT_VENUE
    except (Stopped, KeyboardInterrupt) as stop:
        term = isinstance(stop, Stopped) and stop.signum == signal.SIGTERM
        what = "terminated" if term else "interrupted"
        # beside the JSON a stopped verb wrote on stdout (scheduler --json -), not inside it
        with results_on_stderr(_data_on_stdout(args)):
            console.print(f"{what}: what was committed stays (a journal cut short is an unfinished run)")
        return EXIT_TERMINATED if term else EXIT_INTERRUPTED
    except Exception as error:
        if os.environ.get("TAPE_TRACEBACK"):
            raise
        _print_error(args, error, prefix="internal error", kind=True)
        return EXIT_INTERNAL


def _data_on_stdout(args: argparse.Namespace) -> bool:
    """The verb was asked for its data on stdout (``--json -`` or bare, ``--csv -``, ``report
    --orders -`` / ``--strategies -``): every other line goes to stderr, its error line too."""
    outputs = (getattr(args, name, None) for name in ("json", "csv", "orders", "strategies"))
    return any(value in ("-", True) for value in outputs)


def _print_error(
    args: argparse.Namespace, error: Exception, *, prefix: str = "error", kind: bool = False
) -> None:
    """One line (never wrapped) naming the file the verb was given, then the problem; on
    stderr where the verb's data goes to stdout (``| jq`` reads the data or nothing)."""
    message = mask_url_passwords(" ".join(str(error).split()) or type(error).__name__)
    if kind:
        message = f"{type(error).__name__}: {message} (a bug: please report it; TAPE_TRACEBACK=1 shows where)"
    # An error may name its own file (``compare``'s second journal); else the verb's.
    subject = (
        getattr(error, "subject", None) or getattr(args, "config", None) or getattr(args, "journal", None)
    )
    if isinstance(subject, str) and subject not in message:
        message = f"{subject}: {message}"
    with results_on_stderr(_data_on_stdout(args)):
        console.print(f"[red]{prefix}:[/] {escape(message)}", soft_wrap=True, emoji=False)  # :X: is no ❌


if __name__ == "__main__":
    entry()
