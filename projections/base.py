"""The ledger projection port: what SQLite and PostgreSQL ledgers both offer, and how a
target string picks one.

A *target* is either a file path (SQLite, the default) or a ``postgresql://`` URL, in which
case the tables live in ``schema`` (default ``tape_ledger``) of that database. PostgreSQL
support needs the ``postgres`` extra (psycopg 3); it is imported only when asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kernel.journal import Journal, Record
from kernel.store import open_journal

__all__ = [
    "DEFAULT_SCHEMA",
    "LedgerNotFound",
    "LedgerProjection",
    "LedgerRebuild",
    "TargetRefused",
    "TargetUnavailable",
    "check_identifier",
    "describe_target",
    "open_ledger",
    "rebuild_ledger",
    "refuse_foreign_target",
    "require_built_ledger",
]

DEFAULT_SCHEMA = "tape_ledger"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_identifier(name: str) -> str:
    """Schema and role names are plain lower-case identifiers; refuse anything else."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain lower-case SQL identifier: {name!r}")
    return name


class TargetUnavailable(Exception):
    """The projection's database (or metrics server) cannot be reached; retry later."""


class LedgerNotFound(FileNotFoundError):
    """A ledger that was never built (a mistyped path or schema): nothing to read."""


class TargetRefused(Exception):
    """The projection's target refuses for good (no such database, role or host, a wrong
    password): retrying cannot help, so a follower stops with the reason."""


class LedgerProjection(Protocol):
    """One ledger database. Both backends pass ``tests/contracts/projection_contract.py``."""

    @property
    def checkpoint_seq(self) -> int: ...
    def apply(self, records: Iterable[Record]) -> int: ...
    def run(
        self,
        journal: Journal,
        batch_records_max: int = ...,
        progress: Callable[[int], None] | None = None,
        *,
        stop_seq: int | None = None,
    ) -> int: ...
    def reset(self) -> None: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    def table_checksums(self) -> dict[str, str]: ...
    def table_columns(self, table: str) -> tuple[list[str], list[str], set[str]]: ...
    def ordered_rows(self, table: str) -> Iterator[tuple[Any, ...]]: ...
    def query(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...
    def close(self) -> None: ...
    def __enter__(self) -> LedgerProjection: ...
    def __exit__(self, *exc: object) -> None: ...


def _is_postgres(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def describe_target(target: Path | str, schema: str = DEFAULT_SCHEMA) -> str:
    """A log-safe name for a target (a URL's password is not printed)."""
    if not _is_postgres(target):
        return str(target)
    assert isinstance(target, str)
    scheme, _, rest = target.partition("://")
    credentials, at, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{at}{location} schema {schema}"


def open_ledger(
    target: Path | str, *, schema: str = DEFAULT_SCHEMA, check_schema: bool = True
) -> LedgerProjection:
    """Open the ledger at ``target`` (a SQLite path or a ``postgresql://`` URL), creating it
    where nothing is; ``TargetRefused`` for a target that holds something else
    (``refuse_foreign_target``), before anything opens it for writing."""
    refuse_foreign_target(target, schema)
    if _is_postgres(target):
        from projections.ledger_postgres import PostgresLedger

        assert isinstance(target, str)
        return PostgresLedger.open(target, schema, check_schema=check_schema)
    from projections.ledger_sqlite import SqliteLedger, connect_sqlite

    path = Path(target)
    if check_schema:
        return SqliteLedger.open(path)
    return SqliteLedger(connect_sqlite(path), path)


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _peek_target(target: Path | str, schema: str) -> tuple[list[str], int | None] | None:
    """The tables at ``target`` and the ledger's checkpoint (None: no row), read without writing
    anything; None where nothing is there (no file, an empty file). ``TargetRefused`` for a path
    that is not a SQLite file (a directory, text, another format)."""
    if _is_postgres(target):
        from projections.ledger_postgres import peek_postgres_ledger

        assert isinstance(target, str)
        return peek_postgres_ledger(target, schema)
    from projections.ledger_sqlite import peek_sqlite_ledger

    path = Path(target)
    if not path.exists():
        return None
    if not path.is_file():
        raise TargetRefused(f"--db {path}: not a SQLite ledger (not a file)")
    with path.open("rb") as file:
        head = file.read(len(_SQLITE_MAGIC))
    if not head:
        return None
    if head != _SQLITE_MAGIC:
        raise TargetRefused(f"--db {path}: not a SQLite ledger (not a SQLite database file)")
    return peek_sqlite_ledger(path)


def _refuse_foreign(tables: list[str], where: str) -> None:
    if tables and "schema_version" not in tables:
        raise TargetRefused(f"--db {where} is not a Tape ledger (tables: {tables})")


def refuse_foreign_target(target: Path | str, schema: str = DEFAULT_SCHEMA) -> None:
    """Refuse, read-only and before anything opens it for writing, a target that holds something
    other than a Tape ledger: a directory or a file that is not SQLite, a SQLite database or a
    PostgreSQL schema with tables of its own. A rebuild drops every table at its target and
    opening one creates the ledger's tables and switches a SQLite file to WAL, so someone else's
    database given by mistake to ``rebuild`` or ``follow`` must be refused untouched. Nothing there
    (no file, an empty one, an empty or missing schema) and a Tape ledger of any version pass."""
    found = _peek_target(target, schema)
    if found is not None:
        _refuse_foreign(found[0], describe_target(target, schema))


def require_built_ledger(target: Path | str, schema: str = DEFAULT_SCHEMA) -> None:
    """Refuse a target that is not a built Tape ledger *before* anything opens it for writing.

    Opening a ledger creates what is missing (a SQLite file, a PostgreSQL schema and its tables)
    and switches a SQLite database to WAL mode: right for ``rebuild`` and ``follow``, wrong for
    the verbs that only read one (``tape audit``, ``tape reconcile``), where a mistyped path or
    ``--schema`` or someone else's database must stay exactly as it was. This looks read-only:
    ``LedgerNotFound`` for nothing there or a ledger never built (no checkpoint),
    ``TargetRefused`` for a file or schema that is not a Tape ledger."""
    where = describe_target(target, schema)
    if not _is_postgres(target) and not Path(target).exists():
        raise LedgerNotFound(f"no SQLite ledger at {target}: build it first (tape projections rebuild)")
    found = _peek_target(target, schema)
    if found is None:
        raise TargetRefused(f"--db {target}: not a SQLite ledger (an empty file)")
    tables, checkpoint = found
    if not tables and _is_postgres(target):
        raise LedgerNotFound(
            f"no ledger at {where} (no tables in that schema: a mistyped --schema?); "
            "build it first (tape projections rebuild)"
        )
    if "schema_version" not in tables:
        raise TargetRefused(f"--db {where} is not a Tape ledger (tables: {tables})")
    if checkpoint is None:
        raise LedgerNotFound(f"the ledger {where} was never built (no checkpoint): build it first")


@dataclass(frozen=True)
class LedgerRebuild:
    records_applied: int
    checkpoint_seq: int
    checksums: dict[str, str]


def rebuild_ledger(
    journal_path: Path | str,
    target: Path | str,
    *,
    schema: str = DEFAULT_SCHEMA,
    batch_records_max: int = 10_000,
    progress: Callable[[int], None] | None = None,
    stop_seq: int | None = None,
) -> LedgerRebuild:
    """Drop every ledger table at ``target``, recreate the schema and replay the journal from
    seq 0 (up to ``stop_seq`` when given), all in one transaction: a rebuild that fails (a
    damaged journal, a record the projection refuses) or is stopped keeps nothing of itself,
    and the ledger that was there stays as it was. Readers see the old ledger until the commit
    (SQLite's WAL; PostgreSQL readers wait on the dropped tables' locks until then)."""
    # A SQLite file this rebuild creates goes again when it fails or is stopped: "nothing of it
    # kept" (the old one stayed as an empty database, which `audit` then called "not a Tape
    # ledger (tables: [])").
    created = None if _is_postgres(target) or Path(target).exists() else Path(target)
    try:
        # check_schema=False: a ledger at another schema version is dropped, not refused.
        with (
            open_journal(journal_path) as journal,
            open_ledger(target, schema=schema, check_schema=False) as ledger,
        ):
            with ledger.transaction():
                ledger.reset()
                applied = ledger.run(journal, batch_records_max, progress, stop_seq=stop_seq)
            return LedgerRebuild(applied, ledger.checkpoint_seq, ledger.table_checksums())
    except BaseException:
        if created is not None:
            for path in (created, Path(f"{created}-wal"), Path(f"{created}-shm")):
                path.unlink(missing_ok=True)
        raise
