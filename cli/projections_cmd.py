"""``tape projections ...`` and ``tape audit``: rebuild, audit, follow, grant, metrics.

Wiring (``cli/main.py``): see ``add_arguments``; each ``cmd_*`` takes the parsed namespace
and returns the exit status.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rich.table import Table

from cli.progress import console, progress_bar
from kernel.store import open_journal
from projections import DEFAULT_SCHEMA, describe_target, open_ledger, rebuild_ledger


def _target(args: argparse.Namespace) -> Path | str:
    if args.db:
        return str(args.db) if str(args.db).startswith(("postgresql://", "postgres://")) else Path(args.db)
    return Path(str(args.journal).rstrip("/") + ".ledger.sqlite")


def _journal_length(path: str) -> int:
    with open_journal(path) as journal:
        return len(journal)


def cmd_projections_rebuild(args: argparse.Namespace) -> int:
    target = _target(args)
    with progress_bar("rebuild ledger", _journal_length(args.journal)) as update:
        report = rebuild_ledger(args.journal, target, schema=args.schema, progress=update)
    table = Table(
        title=f"ledger {describe_target(target, args.schema)} "
        f"({report.records_applied:,} records, seq 0..{report.checkpoint_seq})"
    )
    table.add_column("table")
    table.add_column("checksum")
    for name, checksum in sorted(report.checksums.items()):
        table.add_row(name, checksum)
    console.print(table)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from projections.audit import audit

    report = audit(args.journal, _target(args), schema=args.schema)
    for text in report.lines():
        console.print(text, markup=False, highlight=False)
    return report.exit_status


def cmd_projections_follow(args: argparse.Namespace) -> int:
    from projections.runner import follow

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    target = _target(args)
    if args.influx:
        from projections.metrics_influx import InfluxMetrics, InfluxV1

        transport = InfluxV1(args.influx, args.influx_db)
        stats = follow(
            args.journal, lambda: InfluxMetrics.open(transport), name="metrics", poll_s=args.poll_s
        )
    else:
        stats = follow(args.journal, lambda: open_ledger(target, schema=args.schema), poll_s=args.poll_s)
    console.print(f"applied {stats.records_applied:,} records; {stats.outages} outages")
    return 0


def cmd_projections_grant(args: argparse.Namespace) -> int:
    from projections.ledger_postgres import grant_readonly

    grant_readonly(args.db, args.role, args.schema, password=args.password)
    console.print(f"role {args.role}: read-only on schema {args.schema}")
    return 0


def add_arguments(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``projections {rebuild,follow,grant-readonly}`` and ``audit`` to ``verbs``."""
    projections = verbs.add_parser("projections", help="ledger and metrics projections")
    sub = projections.add_subparsers(dest="projections_verb", required=True)
    audit = verbs.add_parser("audit", help="rebuild into scratch and compare checksums with the live ledger")
    for parser in (sub.add_parser("rebuild", help="drop and replay from seq 0"), audit):
        parser.add_argument("journal")
        parser.add_argument("--db", help="SQLite path or postgresql:// URL (default JOURNAL.ledger.sqlite)")
        parser.add_argument("--schema", default=DEFAULT_SCHEMA, help="PostgreSQL schema")
    follow = sub.add_parser("follow", help="tail the journal into the ledger (or Influx)")
    follow.add_argument("journal")
    follow.add_argument("--db")
    follow.add_argument("--schema", default=DEFAULT_SCHEMA)
    follow.add_argument(
        "--influx", help="Influx v1 URL, e.g. http://127.0.0.1:8086 (metrics instead of ledger)"
    )
    follow.add_argument("--influx-db", default="tape")
    follow.add_argument("--poll-s", type=float, default=0.5)
    grant = sub.add_parser("grant-readonly", help="create a read-only PostgreSQL role for dashboards")
    grant.add_argument("--db", required=True, help="postgresql:// URL")
    grant.add_argument("--schema", default=DEFAULT_SCHEMA)
    grant.add_argument("--role", default="tape_dashboards")
    grant.add_argument("--password")


COMMANDS = {
    ("projections", "rebuild"): cmd_projections_rebuild,
    ("projections", "follow"): cmd_projections_follow,
    ("projections", "grant-readonly"): cmd_projections_grant,
    ("audit", None): cmd_audit,
}
