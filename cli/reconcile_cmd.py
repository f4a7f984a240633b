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
from domain.fixed import minor_digits
from kernel.run_status import run_status
from kernel.store import open_journal
from projections import SchemaMismatch, describe_target, open_ledger, require_built_ledger
from projections.daybook import fold_journal_book
from projections.reconcile import (
    Line,
    ReconcileRefused,
    Reconciliation,
    Statement,
    StatementScope,
    check_statement_quantities,
    combine_statements,
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


def _statements(args: argparse.Namespace, day: int | None) -> list[Statement]:
    """The statements named, each read as of ``day`` (several: one per broker)."""
    if not args.statement and (args.currencies or args.venues):
        raise ReconcileRefused("--currencies / --venues scope a statement: give --statement")
    return [read_statement(Path(path), day, args.account) for path in args.statement or []]


def _scope(args: argparse.Namespace, venues_known: set[str]) -> StatementScope | None:
    """``--currencies`` / ``--venues`` as a scope: a currency code must be one Tape knows and a
    venue one an instrument of the journal trades at (a typo would scope everything out)."""
    if not args.currencies and not args.venues:
        return None
    currencies = frozenset(args.currencies or ())
    for currency in sorted(currencies):
        try:
            minor_digits(currency)
        except ValueError:
            raise ReconcileRefused(f"--currencies: {currency!r} is not a currency code Tape knows") from None
    venues = frozenset(args.venues or ())
    unknown = sorted(venues - venues_known)
    if unknown:
        raise ReconcileRefused(
            f"--venues: no instrument of the journal trades at {', '.join(unknown)} "
            f"(its venues: {', '.join(sorted(venues_known)) or 'none'})"
        )
    return StatementScope(currencies, venues)


def run_reconcile(args: argparse.Namespace) -> Reconciliation:
    try:
        day = parse_day(args.day) if args.day else None
        statements = _statements(args, day)
        statement = combine_statements(statements) if statements else None  # same day, each file once
    except ReconcileRefused as error:
        raise ConfigError(str(error)) from None
    day = statement.day if statement and day is None else day
    with open_journal(args.journal) as journal:
        book = fold_journal_book(journal)
    try:
        cut = resolve_cut(book, day)
        scope = _scope(args, {instrument.venue for instrument in book.instruments.values()})
        for each in statements:  # a quantity finer than its instrument: refused naming its file and line
            check_statement_quantities(each, book.instruments)
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
            scope=scope,
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
    statements = plural(len(result.statements), "statement") if len(result.statements) > 1 else "statement"
    # the sources compared with: a ledger (none with --no-ledger) and the statements (--statement);
    # the column of one not compared with would be empty, and is not shown
    given = [(name, bool(of)) for name, of in (("ledger", result.ledger), (statements, result.statement))]
    sources = [name for name, source in given if source]
    # phrases kept whole when the title wraps at 80 columns ("(seq" and "33)" were split)
    title = (f"reconcile {result.journal},", f"{when} (seq {result.cut_seq:,})", f"vs {', '.join(sources)}")
    shown = [True, True, *(source for _, source in given), True]
    rows = [
        _shown(
            (
                f"{line.item} {line.key}".strip(),
                *("" if v is None else f"{v:,}" for v in (line.journal, line.ledger)),
                "outside" if line.outside else ("" if line.statement is None else f"{line.statement:,}"),
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
    _print_scope(result)
    for line in result.differences:
        console.print(f"[red]difference[/] {line.describe()}", highlight=False)
    left = f"; {_left_out(result)}" if result.outside else ""
    compared = len(result.lines) - (0 if result.ledger else len(result.outside))
    if result.ok:
        matches = "matches" if compared == 1 else "match"
        within = f" ({len(result.roundings)} within rounding)" if result.roundings else ""
        console.print(f"[green]reconciled[/]: {plural(compared, 'line')} {matches}{within}{left}")
    else:
        differ = "differs" if len(result.differences) == 1 else "differ"
        console.print(f"[red]{len(result.differences)} of {plural(compared, 'line')} {differ}[/]{left}")


def _left_out(result: Reconciliation) -> str:
    against = "compared with the ledger only" if result.ledger else "not compared"
    return f"{len(result.outside)} outside the statement's scope ({against})"


def _print_scope(result: Reconciliation) -> None:
    """Several statements, and what a scoped statement leaves out: said, never dropped silently."""
    if len(result.statements) > 1:
        each = ", ".join(f"{path} ({account})" for path, account in result.statements)
        console.print(f"statements summed line by line: {each}", highlight=False, soft_wrap=False)
    if result.scope is not None:
        names = ", ".join(f"{line.item} {line.key}" for line in result.outside) or "nothing"
        console.print(
            f"[yellow]statement scope {result.scope.describe()}[/]: left out {names}",
            highlight=False,
        )


def _shown(cells: tuple[_Cell, ...], shown: list[bool]) -> tuple[_Cell, ...]:
    """The cells of the columns shown."""
    return tuple(cell for cell, keep in zip(cells, shown, strict=True) if keep)


def _verdict(line: Line) -> str | Text:
    if line.outside and line.ledger is None:
        return Text("-", style="dim")  # the journal alone: nothing to compare it with
    if not line.ok:
        return Text("DIFF", style="red")
    return Text("rounding", style="yellow") if line.within_rounding else "ok"


def _csv_text(result: Reconciliation) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = ["item", "key", "unit", "journal", "ledger", "statement", "ok", "note", "rounding"]
    writer.writerow(["day", *columns, "rounding_bound", "outside_scope"])
    day = result.to_json()["day"] or ""
    for line in result.lines:
        row = line.to_json()
        bound = "" if line.rounding is None else str(line.rounding.bound)
        outside = "true" if line.outside else ""
        writer.writerow([day, *("" if row[c] is None else row[c] for c in columns), bound, outside])
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


def _codes(text: str) -> list[str]:
    """``CNY,USD`` -> ["CNY", "USD"]: comma-separated codes, none empty."""
    codes = [code.strip() for code in text.split(",")]
    if not all(codes):
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of codes, none empty")
    return codes


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
        "--statement",
        metavar="CSV",
        action="append",
        help="broker statement (docs/data_contracts/statement.md); repeat it for one per broker: "
        "their figures are summed and together they must cover the book",
    )
    parser.add_argument(
        "--account", help="the statement's account, when it holds several (every statement's)"
    )
    parser.add_argument(
        "--currencies",
        type=_codes,
        metavar="CCY[,CCY]",
        help="the statement covers cash in these currencies (and, without --venues, the "
        "instruments priced in them); the rest is left out, and said so",
    )
    parser.add_argument(
        "--venues",
        type=_codes,
        metavar="VENUE[,VENUE]",
        help="the statement covers the instruments at these venues, as the journal names them "
        "(and, without --currencies, cash in their currencies)",
    )
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
