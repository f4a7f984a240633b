"""``tape report``: what a journal says about its run — summary, strategies, execution quality —
printed to fit 80 columns, and all of it as JSON (``--json``) or CSV files (``--csv DIR``)."""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path

import msgspec
from rich.table import Table

from cli.arguments import output_file, output_folder
from cli.attribution_tables import attribution_rows, print_attribution, write_attribution
from cli.execution_tables import print_execution_quality
from cli.exits import EXIT_OK, unfinished_status
from cli.progress import console, one_stdout, progress_bar, results_on_stderr, write_output
from cli.research_tables import wrap_text
from cli.wiring import ConfigError
from kernel.run_status import run_status
from kernel.store import open_journal
from sim.attribution import Attribution, strategy_attribution
from sim.execution_report import ExecutionReport, execution_reports, orders_csv, write_orders_csv
from sim.metrics import RunReport, report_from_journal

__all__ = ["add_report_parser", "cmd_report", "print_report"]


@dataclass(frozen=True)
class Gathered:
    report: RunReport
    attribution: Attribution | None
    quality: ExecutionReport  # the only one, or the first currency's of several
    # One per currency the orders traded in (a book of several currencies), sorted by currency.
    qualities: tuple[ExecutionReport, ...] = ()

    @property
    def by_currency(self) -> dict[str, ExecutionReport]:
        """Several currencies' execution quality by currency; empty for one currency."""
        if len(self.qualities) <= 1:
            return {}
        return {quality.total.currency: quality for quality in self.qualities}


def gather(path: Path) -> Gathered:
    """Every fold of the report, from one open of the journal."""
    with open_journal(path) as journal:
        report = report_from_journal(journal)
        attribution = strategy_attribution(journal)
        with progress_bar(f"execution quality {path.name}", len(journal)) as update:
            qualities = execution_reports(journal, progress=update)
    if attribution is not None:
        attribution.check()
    return Gathered(report, attribution, qualities[0], tuple(qualities))


def print_report(path: Path, *, worst: int = 10, days: int = 10) -> Gathered:
    gathered = gather(path)
    title = f"report {path}" if gathered.report.finished else f"report {path} (run not finished)"
    # its own lines, a path broken after a '/' or '_' where the terminal is too narrow: as the
    # table's title it was wrapped to the table's width inside a name (".../ml_ranke", "r_us")
    console.print(wrap_text(title, console.width, "/_."), style="italic", highlight=False, markup=False)
    table = Table(show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for metric, value in gathered.report.rows():
        table.add_row(metric, value)
    console.print(table)
    if gathered.attribution is not None:
        print_attribution(gathered.attribution)
    for quality in gathered.qualities or (gathered.quality,):
        print_execution_quality(quality, worst=worst, days=days)
    return gathered


def cmd_report(args: argparse.Namespace) -> int:
    if args.worst < 0 or args.days < 0:
        raise ConfigError("--worst and --days must not be negative")
    to_stdout = _check_outputs(args)
    with open_journal(args.journal) as journal:
        if len(journal) == 0:  # a run stopped before its first commit: no figures, exit 3
            return unfinished_status(journal)
        unfinished = not run_status(journal).finished
    with results_on_stderr(to_stdout):  # stdout carries the data alone
        if unfinished:  # said before the figures, whose "final" NAV is then the last one journaled
            console.print("[yellow]the figures below are those of an unfinished run[/]", soft_wrap=True)
        gathered = print_report(Path(args.journal), worst=args.worst, days=args.days)
    wrote = _write_outputs(args, gathered)  # after the block: '-' is the real stdout
    with results_on_stderr(to_stdout):
        for line in wrote:
            console.print(line)
    if unfinished:
        with open_journal(args.journal) as journal:
            return unfinished_status(journal)
    return EXIT_OK


def _check_outputs(args: argparse.Namespace) -> bool:
    """Refuses ``--csv -`` and two outputs on stdout before any work (exit 2); True when one
    output goes to stdout (``-``), so the tables go to stderr."""
    if args.csv == "-":
        raise ConfigError(
            "--csv takes a folder: it writes several files (summary.csv, orders.csv, ...), so it "
            "cannot be '-'; --json - writes all of it to stdout, --orders - the orders' CSV"
        )
    return one_stdout(json=args.json, orders=args.orders, strategies=args.strategies)


def _write_outputs(args: argparse.Namespace, gathered: Gathered) -> list[str]:
    """``--strategies``, ``--orders``, ``--json`` and ``--csv``, each where asked (``-``:
    stdout); returns a "wrote" line for each file written."""
    wrote = []
    if args.strategies:
        if gathered.attribution is None:
            raise ConfigError(f"{args.journal}: a run of one strategy has no per-strategy attribution")
        write_attribution(gathered.attribution, args.strategies, option="--strategies")
        if args.strategies != "-":
            count = len(gathered.attribution.strategies)
            wrote.append(f"wrote {count} strategies' attribution to {args.strategies}")
    if args.orders:
        wrote.extend(_write_orders(gathered, args.orders))
    if args.json:
        write_output(args.json, report_json(gathered), option="--json")
        if args.json != "-":
            wrote.append(f"wrote the report ({len(gathered.quality.rows):,} orders) to {args.json}")
    if args.csv:
        names = write_csv(gathered, Path(args.csv))
        wrote.append(f"wrote {', '.join(names)} to {args.csv}")
    return wrote


def _write_orders(gathered: Gathered, path: str) -> list[str]:
    """``--orders``: one file, or one per currency of several (``.CCY`` before the suffix);
    ``-``: one CSV on stdout, every currency's rows in turn (each row names its currency)."""
    if path == "-":
        write_output(path, orders_csv(*(gathered.qualities or (gathered.quality,))), option="--orders")
        return []
    wrote = []
    for currency, quality in gathered.by_currency.items() or [("", gathered.quality)]:
        target = _per_currency(Path(path), currency)
        write_output(str(target), orders_csv(quality), option="--orders")
        wrote.append(f"wrote {len(quality.rows):,} order rows to {target}")
    return wrote


def report_json(gathered: Gathered) -> str:
    """The summary, the strategies (null for one strategy) and the execution quality: its
    totals overall, by strategy and by day, and every parent order."""
    data: dict[str, object] = {
        "summary": gathered.report.to_json(),
        "strategies": attribution_rows(gathered.attribution) if gathered.attribution else None,
    }
    if gathered.by_currency:  # several currencies: the execution quality of each
        data["execution_by_currency"] = {ccy: q.to_json() for ccy, q in gathered.by_currency.items()}
    else:
        data.update(gathered.quality.to_json())
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def write_csv(gathered: Gathered, folder: Path) -> list[str]:
    """``summary.csv`` (metric, value), ``strategies.csv`` (several strategies),
    ``execution_by_strategy.csv``, ``execution_by_day.csv`` and ``orders.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    flat: list[tuple[str, object]] = []

    def flatten(prefix: str, value: object) -> None:  # currencies.CNY.cash, returns.sharpe, ...
        if isinstance(value, dict):
            for inner, item in value.items():
                flatten(f"{prefix}.{inner}" if prefix else str(inner), item)
        else:
            flat.append((prefix, value))

    flatten("", gathered.report.to_json())
    _write_rows(folder / "summary.csv", ["metric", "value"], [list(pair) for pair in flat])
    written = ["summary.csv"]
    if gathered.attribution is not None:
        write_attribution(gathered.attribution, str(folder / "strategies.csv"), option="--csv")
        written.append("strategies.csv")
    for currency, quality in gathered.by_currency.items() or [("", gathered.quality)]:
        written.extend(_write_quality_csv(quality, folder, currency))
    return written


def _per_currency(path: Path, currency: str) -> Path:
    return path.with_name(f"{path.stem}.{currency}{path.suffix}") if currency else path


def _write_quality_csv(quality: ExecutionReport, folder: Path, currency: str) -> list[str]:
    """The execution quality's CSV files (``currency``: a book of several, named in them)."""
    written = []
    for name, label, totals in (
        ("execution_by_strategy.csv", "strategy", {str(k): v for k, v in quality.by_strategy.items()}),
        ("execution_by_day.csv", "day", {str(k): v for k, v in quality.by_day.items()}),
    ):
        fields = list(msgspec.structs.asdict(quality.total))
        rows = [[key, *msgspec.structs.astuple(value)] for key, value in totals.items()]
        path = _per_currency(folder / name, currency)
        _write_rows(path, [label, *fields], rows)
        written.append(path.name)
    path = _per_currency(folder / "orders.csv", currency)
    write_orders_csv(quality, path)
    written.append(path.name)
    return written


def _write_rows(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def add_report_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = verbs.add_parser("report", help="print the run's report, strategies and execution quality")
    report.add_argument("journal")
    report.add_argument(
        "--json",
        type=output_file,
        metavar="PATH",
        nargs="?",
        const="-",
        help="write everything the report prints, as JSON (alone or '-': stdout)",
    )
    report.add_argument(
        "--csv",
        type=output_folder,
        metavar="DIR",
        help="write everything as CSV files into the folder DIR (not '-')",
    )
    report.add_argument(
        "--orders",
        type=output_file,
        metavar="CSV",
        help="write one row per (parent) order to this CSV ('-': stdout)",
    )
    report.add_argument(
        "--strategies",
        type=output_file,
        metavar="CSV|JSON",
        help="write the per-strategy attribution, several strategies ('-': CSV on stdout)",
    )
    report.add_argument("--worst", type=int, default=10, help="orders listed by shortfall (default 10)")
    report.add_argument("--days", type=int, default=10, help="latest days listed (default 10)")
