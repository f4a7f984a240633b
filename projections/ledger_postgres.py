"""The PostgreSQL ledger: the same tables as ``SqliteLedger``, in one schema of a database.

The events are folded into rows by the same code as the SQLite ledger (``LedgerBatch``), so the
two databases cannot disagree about what a record means. What differs is the writing:

* the DDL is ``projections/sql/NNN_*.sql`` with SQLite's 64-bit ``INTEGER`` spelled
  ``BIGINT`` (the only dialect difference the schema has);
* insert-only tables (transitions, fills, postings, nav, risk events, runs) and the orders
  first submitted in a batch are written with ``COPY ... FROM STDIN``; orders of earlier
  batches that a batch moved are updated by primary key (``executemany``, pipelined);
* rows **and** the checkpoint are written in one transaction, as in SQLite.

``table_checksums`` hashes exactly what ``SqliteLedger.table_checksums`` hashes (columns in
table order, rows in primary-key order with text compared bytewise: ``COLLATE "C"``), so the
same journal gives the same checksums on both databases.

A connection that fails (server restarted, network gone) raises ``TargetUnavailable``; the
batch was rolled back by the server, so the runner reconnects and resumes at the checkpoint.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from kernel.journal import Journal, Record
from projections.base import DEFAULT_SCHEMA, TargetRefused, TargetUnavailable, check_identifier
from projections.execution_quality import upsert_sql
from projections.ledger_sqlite import (
    BATCH_RECORDS_MAX,
    LEDGER_SCHEMA_VERSION,
    PROJECTION_NAME,
    LedgerBatch,
    LedgerRow,
    ProjectionError,
    SchemaMismatch,
    ddl_scripts,
    refuse_another_run,
)

__all__ = [
    "DEFAULT_SCHEMA",
    "PostgresLedger",
    "check_identifier",
    "drop_schema",
    "grant_readonly",
    "is_postgres_target",
    "peek_postgres_ledger",
    "postgres_ddl",
]

_CHECKSUM_ROWS_PER_FETCH = 10_000
_TEXT_TYPES = frozenset({"text", "character varying", "character"})


def is_postgres_target(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL database (a ``postgres[ql]://`` URL)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def postgres_ddl() -> str:
    """The versioned DDL in PostgreSQL's dialect: SQLite ``INTEGER`` (64-bit) is ``BIGINT``."""
    script = "\n".join(text for _, _, text in ddl_scripts())
    return re.sub(r"\bINTEGER\b", "BIGINT", script)


class _Qmark:
    """Lets ``LedgerBatch`` (written with ``?`` placeholders) read through a psycopg connection."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def execute(self, query: str, parameters: Sequence[object] = ()) -> psycopg.Cursor[Any]:
        assert "%" not in query, "the fold's queries have no literal %"
        return self._connection.execute(query.replace("?", "%s"), tuple(parameters))

    def existing_order_ids(self, order_ids: list[str]) -> list[str]:
        """One query for a whole batch (``= ANY(array)``), not one per 500 placeholders."""
        if not order_ids:
            return []
        found = self._connection.execute("SELECT order_id FROM orders WHERE order_id = ANY(%s)", (order_ids,))
        return [order_id for (order_id,) in found]


RESET_LOCK_TIMEOUT = "10s"
"""How long a rebuild waits for another session's locks on the ledger's tables."""

# Connection failures that retrying cannot mend: no such database (3D000), role or bad
# authorization (28000), wrong password (28P01); and a host name that does not resolve.
_PERMANENT_SQLSTATES = frozenset({"3D000", "28000", "28P01"})
_PERMANENT_MESSAGES = ("could not translate host name", "Name or service not known", "does not exist")


@contextmanager
def _unavailable_on_connection_errors() -> Iterator[None]:
    try:
        yield
    except psycopg.errors.LockNotAvailable:  # a lock_timeout the caller set and explains
        raise
    except psycopg.errors.UndefinedTable as error:  # the schema was dropped under us
        raise TargetRefused(
            f"postgresql: the ledger's tables are gone ({str(error).strip()}); rebuild it with "
            "`tape projections rebuild`"
        ) from error
    except psycopg.OperationalError as error:
        text = f"postgresql: {error}".strip()
        if error.sqlstate in _PERMANENT_SQLSTATES or any(m in str(error) for m in _PERMANENT_MESSAGES):
            raise TargetRefused(text) from error
        raise TargetUnavailable(text) from error


def _connect(conninfo: str) -> psycopg.Connection[Any]:
    with _unavailable_on_connection_errors():
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)


def peek_postgres_ledger(conninfo: str, schema: str) -> tuple[list[str], int | None]:
    """The tables of ``schema`` and this projection's checkpoint (None: no row), read in a
    read-only transaction: no schema or table is created (``PostgresLedger.open`` would)."""
    connection = _connect(conninfo)
    try:
        with _unavailable_on_connection_errors(), connection.transaction():
            connection.execute("SET TRANSACTION READ ONLY")
            found = connection.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name COLLATE \"C\"",
                (schema,),
            )
            tables = [name for (name,) in found]
            row = None
            if "checkpoint" in tables:
                row = connection.execute(
                    sql.SQL("SELECT seq FROM {}.checkpoint WHERE name = %s").format(sql.Identifier(schema)),
                    (PROJECTION_NAME,),
                ).fetchone()
    finally:
        connection.close()
    return tables, None if row is None else int(row[0])


class PostgresLedger:
    """The ledger projection in schema ``schema`` of the database at ``conninfo``."""

    def __init__(self, connection: psycopg.Connection[Any], schema: str) -> None:
        """Use ``PostgresLedger.open``; this takes an autocommit connection it now owns."""
        assert connection.autocommit, "transactions are managed explicitly"
        self._connection = connection
        self.schema = check_identifier(schema)

    @classmethod
    def open(
        cls, conninfo: str, schema: str = DEFAULT_SCHEMA, *, check_schema: bool = True
    ) -> PostgresLedger:
        """Connect, creating the schema and its tables when absent; refuse other versions."""
        ledger = cls(_connect(conninfo), schema)
        try:
            with _unavailable_on_connection_errors():
                ledger._connection.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
                ledger._connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
                if check_schema:
                    ledger._ensure_schema()
        except BaseException:
            ledger.close()
            raise
        return ledger

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- schema -----------------------------------------------------------------------

    def _table_names(self) -> list[str]:
        found = self._connection.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name COLLATE \"C\"",
            (self.schema,),
        )
        return [name for (name,) in found]

    def _ensure_schema(self) -> None:
        tables = self._table_names()
        if not tables:
            with self._connection.transaction():
                self._connection.execute(postgres_ddl())
            return
        if "schema_version" not in tables:
            raise SchemaMismatch(f"schema {self.schema} is not a Tape ledger (tables: {tables})")
        (version,) = self._fetchone("SELECT MAX(version) FROM schema_version")
        if version != LEDGER_SCHEMA_VERSION:
            raise SchemaMismatch(
                f"schema {self.schema} has ledger schema v{version}; this code writes "
                f"v{LEDGER_SCHEMA_VERSION}: run `tape projections rebuild`"
            )

    def reset(self) -> None:
        """Drop every table of the schema and recreate them, in one transaction. The schema
        itself (and the grants on it) stays. A table another session holds (an open
        transaction, a dashboard's long query) is waited for ``RESET_LOCK_TIMEOUT`` at most,
        then refused naming the sessions that hold it."""
        try:
            with _unavailable_on_connection_errors(), self._connection.transaction():
                self._connection.execute(f"SET LOCAL lock_timeout = '{RESET_LOCK_TIMEOUT}'")
                for name in self._table_names():
                    self._connection.execute(sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(name)))
                self._connection.execute(postgres_ddl())
        except psycopg.errors.LockNotAvailable:
            raise TargetRefused(
                f"postgresql: the ledger's tables in schema {self.schema} are in use after waiting "
                f"{RESET_LOCK_TIMEOUT}: {self._lock_holders()}; end those sessions and rebuild again"
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction around several ``reset`` / ``apply`` / ``run`` calls (each then a
        savepoint inside it): all of them are kept, or on any error none."""
        with _unavailable_on_connection_errors(), self._connection.transaction():
            yield

    def _lock_holders(self) -> str:
        """Who holds locks on this schema's tables: pid, user, application, state, since."""
        rows = self._connection.execute(
            "SELECT DISTINCT a.pid, a.usename, a.application_name, a.state, a.xact_start "
            "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE n.nspname = %s AND a.pid <> pg_backend_pid() ORDER BY a.pid",
            (self.schema,),
        ).fetchall()
        if not rows:
            return "no session holds them now (try again)"
        return "; ".join(
            f"pid {pid} (user {user}, application {app or '-'}, {state}, transaction since {since})"
            for pid, user, app, state, since in rows
        )

    # --- applying records -------------------------------------------------------------

    def _fetchone(self, query: str, parameters: Sequence[object] = ()) -> tuple[Any, ...]:
        row = self._connection.execute(query, tuple(parameters)).fetchone()
        assert row is not None
        return tuple(row)

    @property
    def checkpoint_seq(self) -> int:
        """The last journal seq applied; -1 before the first."""
        with _unavailable_on_connection_errors():
            return self._read_checkpoint()

    def _read_checkpoint(self) -> int:
        found = self._connection.execute(
            "SELECT seq FROM checkpoint WHERE name = %s", (PROJECTION_NAME,)
        ).fetchone()
        return -1 if found is None else int(found[0])

    def apply(self, records: Iterable[Record]) -> int:
        """Apply records in journal order, and the checkpoint, in one transaction.

        Records at or below the checkpoint are skipped; a gap raises. Returns how many
        records were applied. On any error nothing of the batch is kept.
        """
        with _unavailable_on_connection_errors(), self._connection.transaction():
            return self._apply_in_transaction(records)

    def _apply_in_transaction(self, records: Iterable[Record]) -> int:
        checkpoint_seq = self._read_checkpoint()
        next_seq = checkpoint_seq + 1
        batch = LedgerBatch(_Qmark(self._connection))
        for record in records:
            if record.seq < next_seq:
                continue  # already applied: exactly once, decided by the checkpoint
            if record.seq != next_seq:
                raise ProjectionError(record.seq, f"gap in the records: expected seq {next_seq}")
            batch.add(record)
            next_seq += 1
        if next_seq == checkpoint_seq + 1:
            return 0
        try:
            _write_rows(self._connection, batch)
        except psycopg.errors.IntegrityError as error:
            raise ProjectionError(next_seq - 1, f"in seqs {checkpoint_seq + 1}..: {error}") from error
        self._connection.execute(
            "INSERT INTO checkpoint (name, seq) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
            (PROJECTION_NAME, next_seq - 1),
        )
        return next_seq - 1 - checkpoint_seq

    def run(
        self,
        journal: Journal,
        batch_records_max: int = BATCH_RECORDS_MAX,
        progress: Callable[[int], None] | None = None,
        *,
        stop_seq: int | None = None,
    ) -> int:
        """Catch up from the checkpoint to the journal's head (or ``stop_seq``, inclusive),
        one transaction per ``batch_records_max`` records. Returns how many were applied."""
        if batch_records_max <= 0:
            raise ValueError(f"batch_records_max must be positive, got {batch_records_max}")
        checkpoint_seq = self.checkpoint_seq
        if checkpoint_seq >= 0:
            refuse_another_run(self, journal, f"schema {self.schema}")
        records: Iterator[Record] = journal.records(checkpoint_seq + 1)
        if stop_seq is not None:
            records = (record for record in records if record.seq <= stop_seq)
        applied = 0
        while batch := list(islice(records, batch_records_max)):
            applied += self.apply(batch)
            if progress is not None:
                progress(batch[-1].seq + 1)
        return applied

    # --- reading ----------------------------------------------------------------------

    def query(self, query: str, parameters: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement, ``%s`` placeholders (reports, cockpit, tests)."""
        with _unavailable_on_connection_errors():
            return [tuple(row) for row in self._connection.execute(query, tuple(parameters)).fetchall()]

    def table_checksums(self) -> dict[str, str]:
        """Per table: row count and sha256, byte-identical to ``SqliteLedger.table_checksums``."""
        with _unavailable_on_connection_errors():
            return {name: self._table_checksum(name) for name in self._table_names()}

    def table_columns(self, table: str) -> tuple[list[str], list[str], set[str]]:
        """(columns in table order, primary-key columns in key order, text columns)."""
        found = self._connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.schema, table),
        ).fetchall()
        keys = self._connection.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)",
            (f'"{self.schema}"."{table}"',),
        ).fetchall()
        text_columns = {name for name, data_type in found if data_type in _TEXT_TYPES}
        return [name for name, _ in found], [name for (name,) in keys], text_columns

    def ordered_rows(self, table: str) -> Iterator[tuple[Any, ...]]:
        """The rows of ``table`` in primary-key order, text compared bytewise (as SQLite)."""
        columns, keys, text_columns = self.table_columns(table)
        order = [
            sql.SQL('{} COLLATE "C"').format(sql.Identifier(name))
            if name in text_columns
            else sql.Identifier(name)
            for name in (keys or columns)
        ]
        statement = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.Identifier(table),
            sql.SQL(", ").join(order),
        )
        with self._connection.transaction(), self._connection.cursor(name=f"rows_{table}") as cursor:
            cursor.itersize = _CHECKSUM_ROWS_PER_FETCH
            cursor.execute(statement)
            while rows := cursor.fetchmany(_CHECKSUM_ROWS_PER_FETCH):
                yield from rows

    def _table_checksum(self, table: str) -> str:
        columns, _, _ = self.table_columns(table)
        digest = hashlib.sha256(msgspec.json.encode(columns) + b"\n")
        encode = msgspec.json.encode
        count = 0
        chunk: list[bytes] = []
        for row in self.ordered_rows(table):
            chunk.append(encode(row) + b"\n")
            count += 1
            if len(chunk) >= _CHECKSUM_ROWS_PER_FETCH:
                digest.update(b"".join(chunk))
                chunk = []
        digest.update(b"".join(chunk))
        return f"rows={count} sha256={digest.hexdigest()}"


# --- writing one batch ----------------------------------------------------------------------


def _copy(connection: psycopg.Connection[Any], table: str, rows: list[LedgerRow]) -> None:
    if not rows:
        return
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN") as copy:
        write_row = copy.write_row
        for row in rows:
            write_row(row)


def _write_rows(connection: psycopg.Connection[Any], batch: LedgerBatch) -> None:
    """Write a batch's rows; statements run in an order where each sees what it needs."""
    rows = batch.rows
    batch.check_new_orders()
    execute_many = connection.cursor().executemany
    _copy(connection, "runs (seq, run_id, seed, engine_version, config_json)", rows.runs)
    execute_many(
        "UPDATE runs SET dataset_uri = %s, content_hash = %s "
        "WHERE seq = (SELECT MAX(seq) FROM runs WHERE seq < %s)",
        rows.run_datasets,
    )
    execute_many(
        "UPDATE runs SET finished_seq = %s, steps = %s, nav_minor = %s, currency = %s "
        "WHERE seq = (SELECT MAX(seq) FROM runs WHERE seq < %s)",
        rows.run_finishes,
    )
    execute_many(
        "INSERT INTO instruments VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (instrument_id) DO UPDATE SET symbol = excluded.symbol, "
        "venue = excluded.venue, asset_class = excluded.asset_class, "
        "currency = excluded.currency, price_digits = excluded.price_digits, "
        "tick_raw = excluded.tick_raw, qty_digits = excluded.qty_digits, "
        "lot_raw = excluded.lot_raw, multiplier = excluded.multiplier, "
        "defined_seq = excluded.defined_seq",
        rows.instruments,
    )
    # New orders go straight in with COPY (``check_new_orders`` refused ids already there);
    # orders of earlier batches that this one moved (few: those open across the batch
    # boundary) are updated by primary key, pipelined by ``executemany``.
    _copy(connection, "orders", batch.new_order_rows())
    execute_many(
        "UPDATE orders SET qty_raw = %s, limit_px_raw = %s, filled_qty_raw = %s, status = %s, "
        "updated_seq = %s WHERE order_id = %s",
        batch.updated_order_rows(),
    )
    _copy(connection, "order_transitions", rows.transitions)
    _copy(connection, "fills", rows.fills)
    deltas = sorted(rows.position_deltas.items())
    execute_many(
        "INSERT INTO positions (instrument_id, qty_raw) VALUES (%s, %s) "
        "ON CONFLICT (instrument_id) DO UPDATE SET qty_raw = positions.qty_raw + excluded.qty_raw",
        deltas,
    )
    if deltas:
        connection.execute(
            "DELETE FROM positions WHERE instrument_id = ANY(%s) AND qty_raw = 0",
            ([instrument_id for instrument_id, _ in deltas],),
        )
    _copy(connection, "postings", rows.postings)
    _copy(connection, "nav", rows.nav)
    _copy(connection, "sleeves", rows.sleeves)
    _copy(connection, "currency_marks", rows.currency_marks)
    _copy(connection, "risk_events", rows.risk_events)
    execute_many(upsert_sql("%s"), batch.execution_rows())


# --- a read-only role for dashboards --------------------------------------------------------


def grant_readonly(
    conninfo: str, role: str, schema: str = DEFAULT_SCHEMA, *, password: str | None = None
) -> None:
    """Create (or update) ``role``: it may log in and ``SELECT`` the ledger, nothing else.

    Idempotent. Default privileges cover tables a later ``rebuild`` recreates.
    """
    check_identifier(role)
    check_identifier(schema)
    with _connect(conninfo) as connection, connection.transaction():
        exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        statement = sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT").format(
            sql.Identifier(role)
        )
        if password is not None:
            statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
        connection.execute(statement)
        names = {"role": sql.Identifier(role), "schema": sql.Identifier(schema)}
        for template in (
            "CREATE SCHEMA IF NOT EXISTS {schema}",
            "GRANT USAGE ON SCHEMA {schema} TO {role}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role}",
        ):
            connection.execute(sql.SQL(template).format(**names))


def drop_schema(conninfo: str, schema: str) -> None:
    """Drop ``schema`` and everything in it (scratch schemas of ``audit``, tests)."""
    with _connect(conninfo) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(check_identifier(schema)))
        )
