"""Audit: rebuild the ledger from the journal into a scratch place and compare it with the
live tables, table by table; on a mismatch name the first differing row.

The scratch rebuild stops at the live ledger's checkpoint, so a live projection that is
behind the journal (follow mode) is compared with what it *should* hold at that point, not
with the journal's head. The scratch is a temporary SQLite file for a SQLite ledger and a
sibling schema ``<schema>_audit`` (dropped afterwards) for a PostgreSQL ledger.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from projections.base import (
    DEFAULT_SCHEMA,
    LedgerNotFound,
    LedgerProjection,
    TargetRefused,
    check_identifier,
    describe_target,
    open_ledger,
    rebuild_ledger,
    require_built_ledger,
)

__all__ = ["AuditReport", "LedgerNotFound", "TableDifference", "audit", "first_difference"]

_SCRATCH_SUFFIX = "_audit"


@dataclass(frozen=True)
class TableDifference:
    table: str
    live: str  # "rows=N sha256=..." or "absent"
    rebuilt: str
    first_difference: str


@dataclass(frozen=True)
class AuditReport:
    checkpoint_seq: int
    tables: int
    differences: list[TableDifference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def exit_status(self) -> int:
        """0 when the live ledger equals a fresh rebuild, 1 otherwise (for ``tape audit``)."""
        return 0 if self.ok else 1

    def lines(self) -> list[str]:
        if self.ok:
            return [f"audit ok: {self.tables} tables equal a rebuild to seq {self.checkpoint_seq}"]
        count = len(self.differences)
        lines = [f"audit FAILED: {count} of {self.tables} tables differ (seq {self.checkpoint_seq})"]
        for difference in self.differences:
            lines.append(f"  {difference.table}: live {difference.live}, rebuilt {difference.rebuilt}")
            lines.append(f"    first difference: {difference.first_difference}")
        return lines


def _key_of(row: tuple[Any, ...], key_indexes: list[int]) -> tuple[Any, ...]:
    return tuple(row[index] for index in key_indexes)


def _next(rows: Iterator[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    return next(rows, None)


def first_difference(live: LedgerProjection, rebuilt: LedgerProjection, table: str) -> str:
    """Walk both tables in primary-key order; describe the first row that differs."""
    columns, keys, _ = live.table_columns(table)
    rebuilt_columns, _, _ = rebuilt.table_columns(table)
    if columns != rebuilt_columns:
        return f"columns differ: live {columns}, rebuilt {rebuilt_columns}"
    key_indexes = [columns.index(key) for key in keys] or list(range(len(columns)))
    key_names = [columns[index] for index in key_indexes]
    live_rows, rebuilt_rows = live.ordered_rows(table), rebuilt.ordered_rows(table)
    live_row, rebuilt_row = _next(live_rows), _next(rebuilt_rows)
    while live_row is not None or rebuilt_row is not None:
        if live_row is None or rebuilt_row is None:
            break
        live_key, rebuilt_key = _key_of(live_row, key_indexes), _key_of(rebuilt_row, key_indexes)
        if live_key == rebuilt_key and tuple(live_row) != tuple(rebuilt_row):
            changed = [
                f"{name}: live {a!r} rebuilt {b!r}"
                for name, a, b in zip(columns, live_row, rebuilt_row, strict=True)
                if a != b
            ]
            return f"row {dict(zip(key_names, live_key, strict=True))}: " + "; ".join(changed)
        if live_key < rebuilt_key:
            return f"live has an extra row {dict(zip(columns, live_row, strict=True))}"
        if rebuilt_key < live_key:
            return f"live is missing row {dict(zip(columns, rebuilt_row, strict=True))}"
        live_row, rebuilt_row = _next(live_rows), _next(rebuilt_rows)
    if live_row is not None:
        return f"live has an extra row {dict(zip(columns, live_row, strict=True))}"
    if rebuilt_row is not None:
        return f"live is missing row {dict(zip(columns, rebuilt_row, strict=True))}"
    return "checksums differ but every row is equal (column types differ?)"


def _compare(live: LedgerProjection, rebuilt: LedgerProjection) -> tuple[int, list[TableDifference]]:
    live_sums, rebuilt_sums = live.table_checksums(), rebuilt.table_checksums()
    differences: list[TableDifference] = []
    for table in sorted(set(live_sums) | set(rebuilt_sums)):
        live_sum, rebuilt_sum = live_sums.get(table, "absent"), rebuilt_sums.get(table, "absent")
        if live_sum == rebuilt_sum:
            continue
        if "absent" in (live_sum, rebuilt_sum):
            where = "live" if live_sum == "absent" else "the rebuild"
            detail = f"table missing in {where}"
        else:
            detail = first_difference(live, rebuilt, table)
        differences.append(TableDifference(table, live_sum, rebuilt_sum, detail))
    return len(set(live_sums) | set(rebuilt_sums)), differences


def _free_scratch_schema(url: str, schema: str) -> str:
    """The schema the audit rebuilds into, ``<schema>_audit``: refused (``TargetRefused``,
    before anything is written) where that name is too long or the schema holds tables, since
    the rebuild drops every table there and the audit drops the schema after (the old audit
    dropped a ledger a user had built at ``tape_ledger_audit`` when auditing ``tape_ledger``)."""
    from projections.ledger_postgres import peek_postgres_ledger

    scratch = schema + _SCRATCH_SUFFIX
    try:
        check_identifier(scratch)
    except ValueError:
        raise TargetRefused(
            f"--schema {schema}: too long to audit (its scratch schema {scratch} would pass "
            "PostgreSQL's 63 characters); give the ledger a shorter schema"
        ) from None
    tables, _ = peek_postgres_ledger(url, scratch)
    if tables:
        raise TargetRefused(
            f"{describe_target(url, scratch)} holds {len(tables)} tables; the audit of schema {schema} "
            f"rebuilds into it and drops it after, so it refuses: move that ledger to another schema, "
            "or drop it if it is what an audit killed part-way left"
        )
    return scratch


def audit(
    journal_path: Path | str,
    target: Path | str,
    *,
    schema: str = DEFAULT_SCHEMA,
    batch_records_max: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Rebuild into a scratch place up to the live checkpoint and compare per-table checksums.
    A target that is not a built Tape ledger is refused untouched (``require_built_ledger``:
    ``LedgerNotFound`` or ``TargetRefused``): nothing is created, a SQLite file keeps its mode."""
    require_built_ledger(target, schema)
    with open_ledger(target, schema=schema) as live:
        checkpoint_seq = live.checkpoint_seq
        if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
            scratch_schema = _free_scratch_schema(target, schema)
            try:
                rebuild_ledger(
                    journal_path,
                    target,
                    schema=scratch_schema,
                    batch_records_max=batch_records_max,
                    progress=progress,
                    stop_seq=checkpoint_seq,
                )
                with open_ledger(target, schema=scratch_schema) as rebuilt:
                    tables, differences = _compare(live, rebuilt)
            finally:
                from projections.ledger_postgres import drop_schema

                drop_schema(target, scratch_schema)
            return AuditReport(checkpoint_seq, tables, differences)
        with tempfile.TemporaryDirectory(prefix="tape-audit-") as scratch_dir:
            scratch = Path(scratch_dir) / "rebuilt.sqlite"
            rebuild_ledger(
                journal_path,
                scratch,
                batch_records_max=batch_records_max,
                progress=progress,
                stop_seq=checkpoint_seq,
            )
            with open_ledger(scratch) as rebuilt:
                tables, differences = _compare(live, rebuilt)
        return AuditReport(checkpoint_seq, tables, differences)
