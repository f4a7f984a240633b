"""``tape projections ...`` and ``tape audit``: rebuild, audit, follow, grant, bars.

Wiring (``cli/main.py``): see ``add_arguments``; each ``cmd_*`` takes the parsed namespace
and returns the exit status.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from cli.arguments import ledger_target, output_file, postgres_url, schema_name
from cli.exits import unfinished_status
from cli.progress import console, one_stdout, progress_bar, results_on_stderr, write_output
from cli.wiring import ConfigError
from kernel.store import open_journal
from projections import (
    DEFAULT_SCHEMA,
    LedgerRebuild,
    RebuildReport,
    TargetUnavailable,
    describe_target,
    open_ledger,
    rebuild_ledger,
)

if TYPE_CHECKING:
    from projections.metrics_influx import InfluxTransport


def _target(args: argparse.Namespace) -> Path | str:
    if args.db:
        return ledger_target(str(args.db))
    return Path(str(args.journal).rstrip("/") + ".ledger.sqlite")


def _journal_length(path: str) -> int:
    with open_journal(path) as journal:
        return len(journal)


class RebuildProgress:
    """A rebuild's progress callback that remembers how far it got, so a rebuild stopped by
    Ctrl-C or SIGTERM can say so and that the ledger stands as before (``said_where``)."""

    def __init__(self, update: Callable[[int], None]) -> None:
        self._update = update
        self.next_seq = 0

    def __call__(self, next_seq: int) -> None:
        self.next_seq = next_seq
        self._update(next_seq)

    @contextmanager
    def said_where(self, where: str) -> Iterator[None]:
        """Around the rebuild: on a stop (not an error), one line saying where it stopped, then
        the stop goes on to ``cli.main`` (its ``interrupted:`` / ``terminated:`` line, 130 / 143)."""
        try:
            yield
        except Exception:
            raise
        except BaseException:
            console.print(
                f"rebuild of {where} stopped after {self.next_seq:,} records, before it finished: "
                "nothing of it was kept, the ledger is as it was before the rebuild; "
                "`tape projections rebuild` starts it over",
                soft_wrap=True,
                markup=False,
            )
            raise


def print_rebuild(
    title: str,
    where: str,
    report: LedgerRebuild | RebuildReport,
    *,
    json_path: str | None = None,
    csv_path: str | None = None,
) -> None:
    """A rebuild's per-table checksums: a table whose hashes wrap (never cut: they are what a
    user compares between two ledgers); ``json_path`` one object with every field, ``csv_path``
    ``table,rows,sha256`` rows (``-``: stdout, the table and any other line on stderr)."""
    tables = {}
    for name, checksum in sorted(report.checksums.items()):
        fields = dict(part.split("=", 1) for part in checksum.split())
        tables[name] = {"rows": int(fields["rows"]), "sha256": fields["sha256"]}
    if csv_path:
        lines = [
            "table,rows,sha256",
            *(f"{name},{row['rows']},{row['sha256']}" for name, row in tables.items()),
        ]
        write_output(csv_path, "\n".join(lines) + "\n", option="--csv")
    if json_path:
        summary = {
            "ledger": where,
            "records": report.records_applied,
            "checkpoint_seq": report.checkpoint_seq,
            "tables": tables,
        }
        write_output(json_path, json.dumps(summary, indent=1) + "\n", option="--json")
    heading = f"{title} ({report.records_applied:,} records, seq 0..{report.checkpoint_seq})"
    rows = [(name, f"{row['rows']:,}", str(row["sha256"])) for name, row in tables.items()]
    with results_on_stderr("-" in (json_path, csv_path)):
        console.print(_checksum_table(heading, rows), soft_wrap=True)
        _said_written(json_path, csv_path)


def _checksum_table(heading: str, rows: list[tuple[str, str, str]]) -> Table | str:
    """Table, rows and sha256 in three columns where they fit the terminal; else each table's
    name and rows on a line and its hash whole on the next (a hash is what a user compares
    between two ledgers, or copies: never cut, never split over two lines)."""
    headers = ("table", "rows", "sha256")
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]
    if sum(widths) + 10 <= console.width:  # "│ " + " │ " x2 + " │" around the three columns
        table = Table(title=heading)
        table.add_column("table", no_wrap=True)
        table.add_column("rows", justify="right", no_wrap=True)
        table.add_column("sha256", no_wrap=True)
        for row in rows:
            table.add_row(*row)
        return table
    lines = [escape(heading)]
    for name, count, digest in rows:
        lines += [f"{escape(name):<{widths[0]}}  {count:>{widths[1]}} rows", f"  sha256 {digest}"]
    return "\n".join(lines)


def _said_written(*paths: str | None) -> None:
    """A ``wrote PATH`` line for each output that went to a file (not ``-``, not unasked)."""
    for path in dict.fromkeys(path for path in paths if path and path != "-"):
        console.print(f"wrote {path}", soft_wrap=True, highlight=False, markup=False)


def cmd_projections_rebuild(args: argparse.Namespace) -> int:
    """Rebuild the ledger (SQLite or PostgreSQL); exit 3 with ``tape rebuild``'s "unfinished
    run" line where the journal's run never finished (it exited 0 there: the same rebuild said
    two things; the ledger is rebuilt and kept either way)."""
    to_stdout = one_stdout(json=args.json, csv=args.csv)
    target = _target(args)
    with progress_bar("rebuild ledger", _journal_length(args.journal)) as update:
        progress = RebuildProgress(update)
        with progress.said_where(describe_target(target, args.schema)):
            report = rebuild_ledger(args.journal, target, schema=args.schema, progress=progress)
    where = describe_target(target, args.schema)
    print_rebuild(f"ledger {where}", where, report, json_path=args.json, csv_path=args.csv)
    with open_journal(args.journal) as journal, results_on_stderr(to_stdout):  # beside the data
        return unfinished_status(journal)


def cmd_audit(args: argparse.Namespace) -> int:
    from projections import SchemaMismatch
    from projections.audit import audit

    to_stdout = one_stdout(json=args.json, csv=args.csv)
    open_journal(args.journal).close()  # a path that is no journal is said as such, before the ledger
    target = _target(args)
    try:
        report = audit(args.journal, target, schema=args.schema)
    except SchemaMismatch as error:  # a Tape ledger of another schema version: rebuild it
        raise ConfigError(f"--db {error}") from None
    differences = [
        {
            "table": difference.table,
            "live": difference.live,
            "rebuilt": difference.rebuilt,
            "first_difference": difference.first_difference,
        }
        for difference in report.differences
    ]
    summary = {
        "ledger": describe_target(target, args.schema),
        "ok": report.ok,
        "checkpoint_seq": report.checkpoint_seq,
        "tables": report.tables,
        "differences": differences,
    }
    if args.csv:
        write_output(args.csv, _audit_csv(summary), option="--csv")
    if args.json:
        write_output(args.json, json.dumps(summary, indent=1) + "\n", option="--json")
    with results_on_stderr(to_stdout):  # stdout carries the data alone
        for text in report.lines():
            console.print(text, markup=False, highlight=False)
        _said_written(args.json, args.csv)
    return report.exit_status


def _audit_csv(summary: dict[str, Any]) -> str:
    """``audit --csv``: a row per table that differs (its live and rebuilt checksums, the first
    differing row), each with the verdict; one row with the table fields empty when all agree."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ("ledger", "ok", "checkpoint_seq", "tables", "table", "live", "rebuilt", "first_difference")
    )
    head = (summary["ledger"], summary["ok"], summary["checkpoint_seq"], summary["tables"])
    for row in summary["differences"] or [
        dict.fromkeys(("table", "live", "rebuilt", "first_difference"), "")
    ]:
        writer.writerow((*head, row["table"], row["live"], row["rebuilt"], row["first_difference"]))
    return buffer.getvalue()


def cmd_projections_follow(args: argparse.Namespace) -> int:
    from projections.runner import follow, journal_not_there_yet

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    target = _target(args)
    if journal_not_there_yet(args.journal):  # a session about to write it: wait, and say so
        logging.getLogger("tape.projections").info("waiting for a journal at %s", args.journal)
    else:  # a path that holds no journal (or a damaged one) is said as such, before the ledger
        open_journal(args.journal).close()
    # Ctrl-C or SIGTERM (the normal ways to stop it): finish the batch in hand, stop at its
    # checkpoint and say where.
    stopping = threading.Event()
    previous_int = signal.signal(signal.SIGINT, lambda *_: stopping.set())
    previous_term = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        if args.influx:
            from projections.metrics_influx import InfluxMetrics

            stats = follow(
                args.journal,
                lambda: InfluxMetrics.open(_influx_transport(args)),
                name="metrics",
                poll_s=args.poll_s,
                should_stop=lambda _: stopping.is_set(),
            )
        else:
            stats = follow(
                args.journal,
                lambda: open_ledger(target, schema=args.schema),
                poll_s=args.poll_s,
                should_stop=lambda _: stopping.is_set(),
            )
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    console.print(
        f"{'stopped' if stopping.is_set() else 'done'} at checkpoint seq {stats.checkpoint_seq}: applied "
        f"{stats.records_applied:,} records; {stats.outages} outages"
    )
    return 130 if stopping.is_set() else 0


def cmd_projections_influx_setup(args: argparse.Namespace) -> int:
    """Retention policies and the downsampling continuous query (``projections.influx_retention``)."""
    from projections.influx_retention import RetentionPlan, backfill, setup_retention
    from projections.metrics_influx import InfluxV1

    if args.influx_org or args.influx_bucket or args.influx_token_file:
        raise ConfigError(
            "influx-setup is for InfluxDB 1.x (credentials: --influx-credentials FILE or "
            "$INFLUX_USERNAME / $INFLUX_PASSWORD); 2.x keeps data by bucket retention"
        )
    try:
        plan = RetentionPlan(raw_days=args.raw_days, keep_days=args.keep_days, every=args.every)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    influx = _influx_transport(args)
    assert isinstance(influx, InfluxV1)
    for statement in setup_retention(influx, plan):
        console.print(statement, soft_wrap=True, markup=False)
    if args.backfill:
        backfill(influx, plan)
        console.print(f"downsampled everything the raw policy holds into {args.influx_db}.downsampled")
    return 0


def cmd_projections_host_metrics(args: argparse.Namespace) -> int:
    """Sample the host every ``--every`` seconds into the ``host`` measurement until Ctrl-C or
    SIGTERM (or once); an unreachable Influx is reported and retried at the next sample."""
    import socket

    from projections.host_metrics import host_lines

    disks = [Path(d) for d in (args.disk or ["."])]
    for disk in disks:
        if not disk.exists():
            raise ConfigError(f"--disk {disk}: no such path")
    influx = _influx_transport(args)
    influx.create_database()
    hostname = socket.gethostname()
    stopping = threading.Event()
    previous_int = signal.signal(signal.SIGINT, lambda *_: stopping.set())
    previous_term = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    samples = 0
    try:
        while not stopping.is_set():
            try:
                influx.write(host_lines(hostname, disks, time.time_ns()))
                samples += 1
            except TargetUnavailable as error:
                console.print(f"host metrics: {error}; next try in {args.every:g} s", soft_wrap=True)
            if args.once:
                break
            stopping.wait(args.every)
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    console.print(f"host metrics: {samples} sample(s) of {hostname} written to {args.influx_db}")
    return 0 if samples else 1


def _influx_transport(args: argparse.Namespace) -> InfluxTransport:
    """``--influx URL`` with the v1 API (``--influx-db``) or, given ``--influx-org``, the v2 API
    (``--influx-bucket``, token from ``--influx-token-file`` or ``$INFLUX_TOKEN``)."""
    from projections.metrics_influx import InfluxV1, InfluxV2

    if args.influx_org:
        return InfluxV2(
            args.influx, args.influx_org, args.influx_bucket or args.influx_db, influx_token(args)
        )
    user, password = influx_credentials(getattr(args, "influx_credentials", None))
    return InfluxV1(args.influx, args.influx_db, username=user, password=password)


def _private_text(option: str, path: str) -> str:
    """A secret file's text: refused (exit 2, one line) when unreadable or readable by others."""
    file = Path(path)
    try:
        mode = file.stat().st_mode
        text = file.read_text()
    except OSError as error:
        raise ConfigError(f"{option} {path}: {error.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"{option} {path}: readable by others (mode {mode & 0o777:o}); chmod 600 it")
    return text


def influx_credentials(path: str | None) -> tuple[str, str]:
    """InfluxDB 1.x credentials kept off the command line (which ``ps`` shows): from a file
    readable only by its owner (``username=...`` and ``password=...`` lines), else from
    ``$INFLUX_USERNAME`` / ``$INFLUX_PASSWORD``; a ``user:password@`` in the URL also works."""
    if path:
        text = _private_text("--influx-credentials", path)
        values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        return values.get("username", "").strip(), values.get("password", "").strip()
    return os.environ.get("INFLUX_USERNAME", ""), os.environ.get("INFLUX_PASSWORD", "")


def influx_token(args: argparse.Namespace) -> str:
    """The InfluxDB 2.x token, kept off the command line as the 1.x credentials are: from
    ``--influx-token-file`` (readable only by its owner), else ``$INFLUX_TOKEN``."""
    path = getattr(args, "influx_token_file", None)
    token = _private_text("--influx-token-file", path).strip() if path else os.environ.get("INFLUX_TOKEN", "")
    if path and not token:
        raise ConfigError(f"--influx-token-file {path}: empty")
    return token


def _on_command_line(what: str, instead: str) -> Callable[[str], str]:
    """An argparse type for an option that would put a secret on the command line: refused
    without echoing it (exit 2, one line), saying how to pass it instead."""

    def refused(text: str) -> str:
        raise argparse.ArgumentTypeError(
            f"a {what} on the command line is visible to every user (ps); {instead}"
        )

    return refused


def dashboard_password(args: argparse.Namespace) -> str | None:
    """The dashboard role's password, kept off the command line: from ``--password-file``
    (readable only by its owner), else ``$TAPE_DASHBOARDS_PASSWORD`` (the variable the compose
    file and Grafana's data source read); None: the role gets no password."""
    if args.password_file:
        password = _private_text("--password-file", args.password_file).strip()
        if not password:
            raise ConfigError(f"--password-file {args.password_file}: empty")
        return password
    return os.environ.get("TAPE_DASHBOARDS_PASSWORD") or None


def cmd_projections_bars(args: argparse.Namespace) -> int:
    """Write a lake data set's bars to Influx as ``ohlcv_{tf}`` (tf: the data set's frequency)."""
    from lake.store import load_panel
    from projections.metrics_influx import ohlcv_measurement, write_bars

    to_stdout = one_stdout(json=args.json)
    panel, ref = load_panel(Path(args.dataset))
    timeframe = args.timeframe or ref.frequency
    transport = _influx_transport(args)
    try:
        written = write_bars(transport, panel, timeframe)
    finally:
        transport.close()
    measurement = ohlcv_measurement(timeframe)
    with results_on_stderr(to_stdout):  # stdout carries the data alone
        console.print(f"{written:,} bars of {len(panel.instruments)} instruments -> {measurement}")
    if args.json:
        summary = {
            "dataset": str(args.dataset),
            "content_hash": ref.content_hash,
            "influx": args.influx,
            "database": args.influx_bucket or args.influx_db if args.influx_org else args.influx_db,
            "measurement": measurement,
            "bars": written,
            "instruments": len(panel.instruments),
        }
        write_output(args.json, json.dumps(summary, indent=1) + "\n", option="--json")
        if args.json != "-":
            console.print(f"wrote {args.json}", soft_wrap=True, highlight=False, markup=False)
    return 0


def cmd_projections_grant(args: argparse.Namespace) -> int:
    from projections.ledger_postgres import grant_readonly

    grant_readonly(args.db, args.role, args.schema, password=dashboard_password(args))
    console.print(f"role {args.role}: read-only on schema {args.schema}")
    return 0


def _influx_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--influx-db", default="tape", help="v1 database")
    parser.add_argument("--influx-org", help="v2 API (InfluxDB 2.x/3.x): organisation")
    parser.add_argument("--influx-bucket", help="v2 bucket (default: --influx-db)")
    parser.add_argument(
        "--influx-token-file", metavar="FILE", help="v2 token in a file of mode 600 (default: $INFLUX_TOKEN)"
    )
    parser.add_argument(
        "--influx-token",
        type=_on_command_line("token", "set $INFLUX_TOKEN or pass --influx-token-file FILE (mode 600)"),
        help=argparse.SUPPRESS,  # refused
    )
    parser.add_argument(
        "--influx-credentials",
        metavar="FILE",
        help="v1 username=/password= lines, mode 600 (default: $INFLUX_USERNAME, $INFLUX_PASSWORD)",
    )


def add_checksum_outputs(rebuild: argparse.ArgumentParser) -> None:
    """``--json [PATH]`` and ``--csv PATH`` of ``tape rebuild`` and ``tape projections rebuild``."""
    rebuild.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                         help="write the ledger, records and each table's rows and sha256 as JSON "
                         "(alone or '-': stdout, the table on stderr)")  # fmt: skip
    rebuild.add_argument(
        "--csv",
        type=output_file,
        metavar="PATH",
        help="write table,rows,sha256 rows as CSV ('-': stdout, the table on stderr)",
    )


def add_arguments(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``projections {rebuild,follow,bars,grant-readonly}`` and ``audit`` to ``verbs``."""
    projections = verbs.add_parser("projections", help="ledger and metrics projections")
    sub = projections.add_subparsers(dest="projections_verb", required=True)
    audit = verbs.add_parser("audit", help="rebuild into scratch and compare checksums with the live ledger")
    rebuild = sub.add_parser("rebuild", help="drop and replay from seq 0")
    for parser in (rebuild, audit):
        parser.add_argument("journal")
        parser.add_argument(
            "--db",
            type=ledger_target,
            help="SQLite path or postgresql:// URL (default JOURNAL.ledger.sqlite)",
        )
        parser.add_argument("--schema", default=DEFAULT_SCHEMA, type=schema_name, help="PostgreSQL schema")
    add_checksum_outputs(rebuild)
    audit.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                       help="write the verdict and each differing table as JSON (alone or '-': "
                       "stdout, the lines on stderr; same exit status)")  # fmt: skip
    audit.add_argument(
        "--csv",
        type=output_file,
        metavar="PATH",
        help="write a row per differing table (one row when all agree) with the verdict as CSV "
        "('-': stdout, the lines on stderr; same exit status)",
    )
    follow = sub.add_parser("follow", help="tail the journal into the ledger (or Influx)")
    follow.add_argument("journal")
    follow.add_argument("--db", type=ledger_target, help="SQLite path or postgresql:// URL")
    follow.add_argument("--schema", default=DEFAULT_SCHEMA, type=schema_name)
    follow.add_argument("--influx", help="Influx URL, e.g. http://127.0.0.1:8086 (metrics instead of ledger)")
    _influx_arguments(follow)
    follow.add_argument("--poll-s", type=float, default=0.5)
    bars = sub.add_parser("bars", help="write a lake data set's bars to Influx as ohlcv_{tf}")
    bars.add_argument("dataset", help="lake data set folder (with manifest.json)")
    bars.add_argument("--influx", required=True, help="Influx URL, e.g. http://127.0.0.1:8086")
    bars.add_argument("--timeframe", help="e.g. 1m, 1h, 1d (default: the data set's frequency)")
    bars.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                      help="write the measurement and the bars written as JSON "
                      "(alone or '-': stdout)")  # fmt: skip
    _influx_arguments(bars)
    setup = sub.add_parser("influx-setup", help="InfluxDB 1.x retention policies and downsampling")
    setup.add_argument("--influx", required=True, help="Influx URL, e.g. http://127.0.0.1:8086")
    setup.add_argument("--raw-days", type=int, default=30, help="days the raw points are kept (default 30)")
    setup.add_argument("--keep-days", type=int, default=730, help="days the downsampled points are kept")
    setup.add_argument("--every", default="1h", help="downsampling interval: 30s, 5m, 1h, 1d (default 1h)")
    setup.add_argument("--backfill", action="store_true", help="also downsample what the raw policy holds")
    _influx_arguments(setup)
    host = sub.add_parser("host-metrics", help="CPU, memory, disk and processes of this host, to Influx")
    host.add_argument("--influx", required=True, help="Influx URL, e.g. http://127.0.0.1:8086")
    host.add_argument("--disk", action="append", help="a path whose file system is watched (default .)")
    host.add_argument("--every", type=float, default=10.0, help="seconds between samples (default 10)")
    host.add_argument("--once", action="store_true", help="one sample, then exit")
    _influx_arguments(host)
    grant = sub.add_parser("grant-readonly", help="create a read-only PostgreSQL role for dashboards")
    grant.add_argument("--db", required=True, type=postgres_url, help="postgresql:// URL")
    grant.add_argument("--schema", default=DEFAULT_SCHEMA, type=schema_name)
    grant.add_argument("--role", default="tape_dashboards")
    grant.add_argument(
        "--password-file",
        metavar="FILE",
        help="the role's password, a file of mode 600 (default: $TAPE_DASHBOARDS_PASSWORD, else none)",
    )
    grant.add_argument(
        "--password",
        type=_on_command_line(
            "password", "set $TAPE_DASHBOARDS_PASSWORD or pass --password-file FILE (mode 600)"
        ),
        help=argparse.SUPPRESS,  # refused
    )


COMMANDS = {
    ("projections", "rebuild"): cmd_projections_rebuild,
    ("projections", "follow"): cmd_projections_follow,
    ("projections", "bars"): cmd_projections_bars,
    ("projections", "grant-readonly"): cmd_projections_grant,
    ("projections", "influx-setup"): cmd_projections_influx_setup,
    ("projections", "host-metrics"): cmd_projections_host_metrics,
    ("audit", None): cmd_audit,
}
