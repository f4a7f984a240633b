"""``tape reconcile``: end-of-day reconciliation of a journal against its ledger projection and
a broker statement (``projections.reconcile``); exit 0 when every line matches, 1 otherwise."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import TypeVar

from rich.text import Text

from cli.arguments import ledger_target, output_file, schema_name
from cli.exits import EXIT_DAMAGED, EXIT_OK
from cli.progress import console, one_stdout, plural, write_output
from cli.research_tables import Column, print_fitted
from cli.wiring import ConfigError
from kernel.run_status import run_status
from kernel.store import open_journal
from projections import SchemaMismatch, describe_target, open_ledger, require_built_ledger
from projections.daybook import fold_journal_book
from projections.reconcile import (
    Line,
    ReconcileRefused,
    Reconciliation,
    ledger_figures,
    parse_day,
    read_statement,
    reconcile,
    resolve_cut,
)

__all__ = ["add_reconcile_parser", "cmd_reconcile", "run_reconcile"]


def _target(args: argparse.Namespace) -> tuple[Path | str | None, bool]:
    """The ledger to read and whether it was named (a default one that is absent is skipped)."""
    if args.no_ledger:
        return None, False
    if args.db:
        return ledger_target(str(args.db)), True
    return Path(str(args.journal).rstrip("/") + ".ledger.sqlite"), False


def run_reconcile(args: argparse.Namespace) -> Reconciliation:
    try:
        day = parse_day(args.day) if args.day else None
        statement = read_statement(Path(args.statement), day, args.account) if args.statement else None
    except ReconcileRefused as error:
        raise ConfigError(str(error)) from None
    day = statement.day if statement and day is None else day
    with open_journal(args.journal) as journal:
        book = fold_journal_book(journal)
    try:
        cut = resolve_cut(book, day)
    except ReconcileRefused as error:
        raise ConfigError(f"{args.journal}: {error}") from None
    target, named = _target(args)
    figures, name = None, None
    if target is not None and (named or (isinstance(target, Path) and target.is_file())):
        require_built_ledger(target, args.schema)  # refused untouched, as tape audit refuses it
        name = describe_target(target, args.schema)
        try:
            with open_ledger(target, schema=args.schema) as ledger:
                figures = ledger_figures(ledger, cut, book.share_changes_after(cut.seq))
        except SchemaMismatch as error:
            raise ConfigError(f"{args.journal}: --db {error}") from None
        except sqlite3.DatabaseError as error:
            raise ConfigError(
                f"{args.journal}: --db {target}: not a readable SQLite ledger ({error}); "
                "rebuild it with tape rebuild"
            ) from None
    if figures is None and statement is None:
        where = f" (no ledger at {target})" if target is not None else ""
        raise ConfigError(f"{args.journal}: nothing to reconcile with{where}: give --db or --statement")
    try:
        return reconcile(
            str(args.journal),
            book,
            cut,
            ledger=figures,
            ledger_name=name,
            statement=statement,
            exact=args.exact,
        )
    except ReconcileRefused as error:  # a statement quantity finer than its instrument allows
        raise ConfigError(str(error)) from None


_Cell = TypeVar("_Cell")
_COLUMNS = (
    Column("line", 9, wraps=True, min_width=12),
    Column("journal", 8),
    Column("ledger", 7),
    Column("statement", 6),
    Column("ok", 9),
)


def _print(result: Reconciliation) -> None:
    when = f"day {result.to_json()['day']}" if result.day else "journal end"
    # the sources compared with: a ledger (none with --no-ledger) and a statement (--statement);
    # the column of one not compared with would be empty, and is not shown
    compared = [
        (name, bool(given)) for name, given in (("ledger", result.ledger), ("statement", result.statement))
    ]
    sources = [name for name, given in compared if given]
    # phrases kept whole when the title wraps at 80 columns ("(seq" and "33)" were split)
    title = (f"reconcile {result.journal},", f"{when} (seq {result.cut_seq:,})", f"vs {', '.join(sources)}")
    shown = [True, True, *(given for _, given in compared), True]
    rows = [
        _shown(
            (
                f"{line.item} {line.key}".strip(),
                *("" if v is None else f"{v:,}" for v in (line.journal, line.ledger, line.statement)),
                _verdict(line),
            ),
            shown,
        )
        for line in result.lines
    ]
    columns = _shown(_COLUMNS, shown)
    print_fitted(title, columns, rows, elsewhere="--json / --csv have every figure")  # numbers never split
    for line in result.roundings:
        name = f"{line.item} {line.key}".strip()
        console.print(f"[yellow]{name}[/]: {line.rounding_text()}", highlight=False)
    for line in result.differences:
        console.print(f"[red]difference[/] {line.describe()}", highlight=False)
    if result.ok:
        matches = "matches" if len(result.lines) == 1 else "match"
        within = f" ({len(result.roundings)} within rounding)" if result.roundings else ""
        console.print(f"[green]reconciled[/]: {plural(len(result.lines), 'line')} {matches}{within}")
    else:
        differ = "differs" if len(result.differences) == 1 else "differ"
        console.print(f"[red]{len(result.differences)} of {plural(len(result.lines), 'line')} {differ}[/]")


def _shown(cells: tuple[_Cell, ...], shown: list[bool]) -> tuple[_Cell, ...]:
    """The cells of the columns shown."""
    return tuple(cell for cell, keep in zip(cells, shown, strict=True) if keep)


def _verdict(line: Line) -> str | Text:
    if not line.ok:
        return Text("DIFF", style="red")
    return Text("rounding", style="yellow") if line.within_rounding else "ok"


def _csv_text(result: Reconciliation) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = ["item", "key", "unit", "journal", "ledger", "statement", "ok", "note", "rounding"]
    writer.writerow(["day", *columns, "rounding_bound"])
    day = result.to_json()["day"] or ""
    for line in result.lines:
        row = line.to_json()
        bound = "" if line.rounding is None else str(line.rounding.bound)
        writer.writerow([day, *("" if row[c] is None else row[c] for c in columns), bound])
    return buffer.getvalue()


def cmd_reconcile(args: argparse.Namespace) -> int:
    one_stdout(json=args.json, csv=args.csv)
    result = run_reconcile(args)
    if args.json:
        write_output(args.json, json.dumps(result.to_json(), indent=1) + "\n", option="--json")
    if args.csv:
        write_output(args.csv, _csv_text(result), option="--csv")
    if "-" not in (args.json, args.csv):
        _print(result)
    with open_journal(args.journal) as journal:
        status = run_status(journal)
    if not status.finished and "-" not in (args.json, args.csv):
        # A paper or live session's journal is unfinished while it runs, and reconciling it at a
        # day's close is the daily routine: said, not an exit status of its own.
        console.print(f"[yellow]note: {args.journal}: {status.describe()}[/]", soft_wrap=True)
    return EXIT_OK if result.ok else EXIT_DAMAGED


def add_reconcile_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "reconcile", help="positions and cash: journal vs ledger vs broker statement; exit 1 on a difference"
    )
    parser.add_argument("journal")
    parser.add_argument(
        "--db",
        type=ledger_target,
        help="the ledger: SQLite path or postgresql://... (default JOURNAL.ledger.sqlite)",
    )
    parser.add_argument(
        "--schema", default="tape_ledger", type=schema_name, help="PostgreSQL schema of the ledger"
    )
    parser.add_argument("--no-ledger", action="store_true", help="compare with the statement only")
    parser.add_argument(
        "--statement", metavar="CSV", help="broker statement (docs/data_contracts/statement.md)"
    )
    parser.add_argument("--account", help="the statement's account, when it holds several")
    parser.add_argument(
        "--exact",
        action="store_true",
        help="compare the statement's cash exactly: no allowance for the book's rounding of its fills",
    )
    parser.add_argument(
        "--day", help="YYYY-MM-DD: as of that day's close (default: the statement's day, else the last)"
    )
    parser.add_argument(
        "--json",
        type=output_file,
        metavar="PATH",
        nargs="?",
        const="-",
        help="write the reconciliation as JSON (alone or '-': stdout, no table)",
    )
    parser.add_argument(
        "--csv",
        type=output_file,
        metavar="PATH",
        help="write one row per line as CSV ('-': stdout, no table)",
    )
