"""The SQLite ledger: a checkpointed projection of the journal into plain SQL tables.

``SqliteLedger.apply`` writes a batch of journal records and the new checkpoint in one
SQLite transaction, so every record is applied exactly once: a crash rolls the whole batch
back, a restart resumes at ``checkpoint + 1``, and records at or below the checkpoint are
skipped. Records must arrive in journal order without gaps.

Invariants are re-checked on this side of the boundary (STYLE example 15): each order
event is folded through ``domain.orders.evolve`` (an illegal transition raises
``IllegalOrderTransition`` naming the seq) and each ``LedgerPosted`` is re-checked with
``domain.ledger.assert_balanced`` (an unbalanced one raises ``UnbalancedPosting``).

The schema is versioned DDL in ``projections/sql/NNN_*.sql``. There are no in-place
migrations: a database at another schema version is refused and ``rebuild`` recreates it
from seq 0.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import msgspec

from domain.events import (
    CorporateActionApplied,
    CurrenciesMarked,
    DatasetReferenced,
    DayClosed,
    Event,
    FeeTakenInKind,
    InstrumentsDefined,
    LedgerPosted,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
    PositionAdopted,
    RightsIssueApplied,
    RiskVerdict,
    RunFinished,
    RunStarted,
    SleevesMarked,
    decode_event,
)
from domain.ledger import UnbalancedTransaction, assert_balanced, position_change
from domain.orders import (
    IllegalTransition,
    Order,
    OrderEvent,
    OrderStatus,
    evolve,
    new_order,
    trigger_of,
)
from kernel.journal import Journal, Record
from projections.base import TargetRefused
from projections.execution_quality import execution_fold, row_tuple, upsert_sql

__all__ = [
    "LEDGER_SCHEMA_VERSION",
    "PROJECTION_NAME",
    "IllegalOrderTransition",
    "ProjectionError",
    "RebuildReport",
    "SchemaMismatch",
    "SqliteLedger",
    "UnbalancedPosting",
    "connect_sqlite",
    "ddl_scripts",
    "peek_sqlite_ledger",
    "rebuild",
]

PROJECTION_NAME = "ledger"
"""The row of the ``checkpoint`` table this projection owns."""

BATCH_RECORDS_MAX = 10_000
"""Default number of journal records per SQLite transaction in ``run``."""

# Derived kinds this projection has no table for: skipped without decoding.
_SKIPPED_KINDS = frozenset({"strategy.targets_decided.v1", "state.snapshotted.v1"})
_SQL_PARAMETERS_MAX = 500  # bound parameters per statement (SQLite allows at least 999)
_CHECKSUM_ROWS_PER_FETCH = 10_000
_DDL_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")

LedgerRow = tuple[object, ...]
_TRIGGERS: dict[type, str] = {
    OrderAccepted: "accept",
    OrderRejected: "reject",
    OrderCancelled: "cancel",
    OrderExpired: "expire",
}  # as ``domain.orders.trigger_of``, by type (fills depend on leaves_qty_raw)


class ProjectionError(Exception):
    """A journal record the ledger projection cannot apply; ``seq`` names it."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"ledger projection failed at seq {seq}: {reason}")
        self.seq = seq
        self.reason = reason


class IllegalOrderTransition(ProjectionError):
    """An order event that ``domain.orders.evolve`` refuses (e.g. a fill after a cancel)."""


class UnbalancedPosting(ProjectionError, UnbalancedTransaction):
    """A ``LedgerPosted`` whose postings do not sum to zero in some currency."""


class SchemaMismatch(Exception):
    """The database is not a ledger at this code's schema version; rebuild it."""


def ddl_scripts() -> list[tuple[int, str, str]]:
    """The versioned DDL files as ``(version, name, sql)``, in version order."""
    scripts: list[tuple[int, str, str]] = []
    for entry in resources.files("projections").joinpath("sql").iterdir():
        match = _DDL_NAME.match(entry.name)
        if match is not None:
            scripts.append((int(match.group(1)), entry.name[:-4], entry.read_text("utf-8")))
    scripts.sort()
    versions = [version for version, _, _ in scripts]
    assert versions == list(range(1, len(versions) + 1)), f"DDL versions must be 1..n: {versions}"
    return scripts


LEDGER_SCHEMA_VERSION = len(ddl_scripts())


# --- one batch of records -------------------------------------------------------------------


@dataclass
class _OrderRow:
    order: Order
    decision_px_raw: int
    submitted_seq: int
    updated_seq: int
    parent_id: str = ""


def _order_row(row: _OrderRow) -> LedgerRow:
    order = row.order
    return (
        order.order_id,
        order.strategy_id,
        order.instrument_id,
        order.side,
        order.order_type,
        order.qty_raw,
        order.limit_px_raw,
        row.decision_px_raw,
        order.filled_qty_raw,
        order.status.value,
        row.submitted_seq,
        row.updated_seq,
        row.parent_id,
    )


_ORDER_COLUMNS = (
    "strategy_id, instrument_id, side, order_type, qty_raw, limit_px_raw, decision_px_raw, "
    "filled_qty_raw, status, submitted_seq, updated_seq, parent_id"
)
# Kinds the execution-quality fold reads (after the ledger's own handler has checked them).
_EXECUTION_KINDS = (
    DayClosed,
    InstrumentsDefined,
    OrderSubmitted,
    OrderFilled,
    OrderRejected,
    OrderCancelled,
    OrderExpired,
    OrderReplaced,
)


@dataclass
class _Rows:
    """Rows collected from one batch, written with one ``executemany`` per statement."""

    runs: list[LedgerRow] = field(default_factory=list)
    run_datasets: list[LedgerRow] = field(default_factory=list)
    run_finishes: list[LedgerRow] = field(default_factory=list)
    instruments: list[LedgerRow] = field(default_factory=list)
    transitions: list[LedgerRow] = field(default_factory=list)
    fills: list[LedgerRow] = field(default_factory=list)
    position_deltas: dict[int, int] = field(default_factory=dict)
    postings: list[LedgerRow] = field(default_factory=list)
    nav: list[LedgerRow] = field(default_factory=list)
    risk_events: list[LedgerRow] = field(default_factory=list)
    sleeves: list[LedgerRow] = field(default_factory=list)
    currency_marks: list[LedgerRow] = field(default_factory=list)


class _Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class _Executes(Protocol):
    """What ``LedgerBatch`` needs of a database: ``?``-placeholder reads in the open transaction
    (and, optionally, ``existing_order_ids(ids) -> ids`` where one query can take them all)."""

    def execute(self, sql: str, parameters: Sequence[object] = ..., /) -> _Cursor: ...


class LedgerBatch:
    """Folds decoded events into rows; orders touched by the batch are cached here."""

    def __init__(self, db: _Executes) -> None:
        self._db = db
        self._orders: dict[str, _OrderRow] = {}
        self._nav_days: set[int] = set()
        self._submitted_seqs: dict[str, int] = {}  # orders first submitted in this batch
        self.rows = _Rows()
        self.execution = execution_fold(db, self._parent_of_order)
        self._handlers: dict[type, Callable[[int, Any], None]] = {
            RunStarted: self._on_run_started,
            DatasetReferenced: self._on_dataset_referenced,
            RunFinished: self._on_run_finished,
            InstrumentsDefined: self._on_instruments_defined,
            OrderSubmitted: self._on_order_submitted,
            OrderAccepted: self._on_order_event,
            OrderRejected: self._on_order_event,
            OrderFilled: self._on_order_event,
            OrderCancelled: self._on_order_event,
            OrderExpired: self._on_order_event,
            OrderReplaced: self._on_order_event,
            LedgerPosted: self._on_ledger_posted,
            DayClosed: self._on_day_closed,
            RiskVerdict: self._on_risk_verdict,
            SleevesMarked: self._on_sleeves_marked,
            CurrenciesMarked: self._on_currencies_marked,
            CorporateActionApplied: self._on_corporate_action,
            RightsIssueApplied: self._on_rights_issue,
            FeeTakenInKind: self._on_position_change,
            PositionAdopted: self._on_position_change,
        }

    def add(self, record: Record) -> None:
        if record.kind in _SKIPPED_KINDS:
            return
        try:
            event = decode_event(record.payload)  # what ``Record.event`` does, one call less
        except msgspec.MsgspecError as error:
            raise ProjectionError(record.seq, f"undecodable {record.kind}: {error}") from error
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(record.seq, event)
        if isinstance(event, _EXECUTION_KINDS):
            try:
                self.execution.apply(record.seq, event)
            except ValueError as error:
                raise ProjectionError(record.seq, f"execution quality: {error}") from error

    def _parent_of_order(self, order_id: str) -> str | None:
        row = self._orders.get(order_id)
        return None if row is None else row.parent_id or order_id

    def execution_rows(self) -> list[LedgerRow]:
        """``execution_quality`` rows of the parents this batch touched (upserted)."""
        return [row_tuple(row) for row in self.execution.changed_rows()]

    # --- runs and set-up --------------------------------------------------------------

    def _on_run_started(self, seq: int, event: RunStarted) -> None:
        self.rows.runs.append((seq, event.run_id, event.seed, event.engine_version, event.config_json))

    def _on_dataset_referenced(self, seq: int, event: DatasetReferenced) -> None:
        self.rows.run_datasets.append((event.uri, event.content_hash, seq))

    def _on_run_finished(self, seq: int, event: RunFinished) -> None:
        self.rows.run_finishes.append((seq, event.steps, event.nav_minor, event.currency, seq))

    def _on_instruments_defined(self, seq: int, event: InstrumentsDefined) -> None:
        self.rows.instruments.extend(
            (
                inst.instrument_id,
                inst.symbol,
                inst.venue,
                inst.asset_class,
                inst.currency,
                inst.price_digits,
                inst.tick_raw,
                inst.qty_digits,
                inst.lot_raw,
                inst.multiplier,
                seq,
            )
            for inst in event.instruments
        )

    # --- orders -----------------------------------------------------------------------

    def _on_order_submitted(self, seq: int, event: OrderSubmitted) -> None:
        # Orders already in the table are checked all at once by ``check_new_orders``.
        if event.order_id in self._orders:
            raise ProjectionError(seq, f"order {event.order_id} submitted twice")
        self._submitted_seqs[event.order_id] = seq
        try:
            order = new_order(event)
        except ValueError as error:
            raise ProjectionError(seq, str(error)) from error
        self._orders[event.order_id] = _OrderRow(order, event.decision_px_raw, seq, seq, event.parent_id)
        self.rows.transitions.append(
            (seq, event.order_id, None, order.status.value, "submit", event.ts_ns, "")
        )

    def _on_order_event(self, seq: int, event: OrderEvent) -> None:
        row = self._order(seq, event.order_id)
        source = row.order
        try:
            target = evolve(source, event)
        except IllegalTransition as error:
            raise IllegalOrderTransition(seq, str(error)) from error
        except ValueError as error:
            raise ProjectionError(seq, str(error)) from error
        row.order = target
        row.updated_seq = seq
        kind = type(event)
        if kind is OrderFilled:
            trigger = "partial" if event.leaves_qty_raw > 0 else "fill"  # type: ignore[union-attr]
        else:
            trigger = _TRIGGERS.get(kind) or trigger_of(event)
        reasoned = kind is OrderRejected or kind is OrderCancelled or kind is OrderReplaced
        reason = event.reason if reasoned else ""  # type: ignore[union-attr]
        self.rows.transitions.append(
            (seq, event.order_id, source.status.value, target.status.value, trigger, event.ts_ns, reason)
        )
        if kind is OrderFilled:
            self._add_fill(seq, source, event)  # type: ignore[arg-type]

    def _add_fill(self, seq: int, order: Order, fill: OrderFilled) -> None:
        if (fill.instrument_id, fill.side) != (order.instrument_id, order.side):
            raise ProjectionError(
                seq,
                f"fill of {fill.order_id} is instrument {fill.instrument_id} side {fill.side}; "
                f"the order is instrument {order.instrument_id} side {order.side}",
            )
        self.rows.fills.append(
            (
                seq,
                fill.order_id,
                fill.instrument_id,
                fill.side,
                fill.fill_qty_raw,
                fill.fill_px_raw,
                fill.notional_minor,
                fill.commission_minor,
                fill.currency,
                fill.ts_ns,
            )
        )
        self._add_position_change(fill)

    def _on_corporate_action(self, seq: int, event: CorporateActionApplied) -> None:
        """A split / bonus shares change the held quantity without a fill."""
        self._add_position_change(event)

    def _on_rights_issue(self, seq: int, event: RightsIssueApplied) -> None:
        """Subscribed rights shares join the holding without a fill."""
        self._add_position_change(event)

    def _on_position_change(self, seq: int, event: FeeTakenInKind | PositionAdopted) -> None:
        """A fee the venue took out of the holding, a position taken on from the venue: the
        position changes without a fill."""
        self._add_position_change(event)

    def _add_position_change(self, event: Event) -> None:
        change = position_change(event)
        if change is not None:
            deltas = self.rows.position_deltas
            deltas[change[0]] = deltas.get(change[0], 0) + change[1]

    def _order(self, seq: int, order_id: str) -> _OrderRow:
        row = self._orders.get(order_id)
        if row is None:
            row = self._load_order(order_id)
            if row is None:
                raise ProjectionError(seq, f"event for unknown order {order_id}")
            self._orders[order_id] = row
        return row

    def _load_order(self, order_id: str) -> _OrderRow | None:
        found = self._db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?",  # constant columns, bound value
            (order_id,),
        ).fetchone()
        if found is None:
            return None
        (
            strategy_id,
            instrument_id,
            side,
            order_type,
            qty_raw,
            limit_px_raw,
            decision_px_raw,
            filled_qty_raw,
            status,
            submitted_seq,
            updated_seq,
            parent_id,
        ) = found
        order = Order(
            order_id=order_id,
            strategy_id=strategy_id,
            instrument_id=instrument_id,
            side=side,
            order_type=order_type,
            qty_raw=qty_raw,
            limit_px_raw=limit_px_raw,
            filled_qty_raw=filled_qty_raw,
            status=OrderStatus(status),
        )
        return _OrderRow(order, decision_px_raw, submitted_seq, updated_seq, parent_id)

    def _existing_order_ids(self, order_ids: list[str]) -> list[str]:
        """Which of ``order_ids`` are in the table (one query per chunk of parameters)."""
        existing = self._db.existing_order_ids if hasattr(self._db, "existing_order_ids") else None
        if existing is not None:
            return list(existing(order_ids))
        found: list[str] = []
        for start in range(0, len(order_ids), _SQL_PARAMETERS_MAX):
            chunk = order_ids[start : start + _SQL_PARAMETERS_MAX]
            marks = ", ".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT order_id FROM orders WHERE order_id IN ({marks})",  # placeholders only
                chunk,
            ).fetchall()
            found += [order_id for (order_id,) in rows]
        return found

    def check_new_orders(self) -> None:
        """Refuse a submission whose order id is already in the table."""
        found = self._existing_order_ids(list(self._submitted_seqs))
        if found:
            seq, order_id = min((self._submitted_seqs[order_id], order_id) for order_id in found)
            raise ProjectionError(seq, f"order {order_id} submitted twice")

    def new_order_rows(self) -> list[LedgerRow]:
        """Orders first submitted in this batch (``check_new_orders``: none is in the table)."""
        submitted = self._submitted_seqs
        return [_order_row(row) for order_id, row in self._orders.items() if order_id in submitted]

    def updated_order_rows(self) -> list[LedgerRow]:
        """``(qty_raw, limit_px_raw, filled_qty_raw, status, updated_seq, order_id)`` of orders
        from earlier batches (a replace changes the quantity and limit)."""
        submitted = self._submitted_seqs
        return [
            (
                row.order.qty_raw,
                row.order.limit_px_raw,
                row.order.filled_qty_raw,
                row.order.status.value,
                row.updated_seq,
                order_id,
            )
            for order_id, row in self._orders.items()
            if order_id not in submitted
        ]

    # --- ledger, days, risk -----------------------------------------------------------

    def _on_ledger_posted(self, seq: int, event: LedgerPosted) -> None:
        postings = event.postings
        if not postings:
            raise ProjectionError(seq, f"txn {event.txn_id} has no postings")
        txn_id, ts_ns, memo = event.txn_id, event.ts_ns, event.memo
        rows = [
            (seq, line, txn_id, posting.account, posting.currency, posting.amount_minor, ts_ns, memo)
            for line, posting in enumerate(postings)
        ]
        # The common case (one currency, sum zero) is decided here; anything else goes through
        # the domain's check, which raises with its own message.
        currency = rows[0][4]
        if sum([row[5] for row in rows]) != 0 or any(row[4] != currency for row in rows):
            try:
                assert_balanced(postings)
            except UnbalancedTransaction as error:
                raise UnbalancedPosting(seq, f"txn {txn_id}: {error}") from error
        self.rows.postings.extend(rows)

    def _on_day_closed(self, seq: int, event: DayClosed) -> None:
        known = self._db.execute("SELECT 1 FROM nav WHERE day = ?", (event.day,)).fetchone()
        if event.day in self._nav_days or known is not None:
            raise ProjectionError(seq, f"day {event.day} closed twice")
        self._nav_days.add(event.day)
        self.rows.nav.append(
            (
                event.day,
                event.ts_ns,
                event.nav_minor,
                event.cash_minor,
                event.gross_exposure_minor,
                event.currency,
            )
        )

    def _on_sleeves_marked(self, seq: int, event: SleevesMarked) -> None:
        day, currency = event.day, event.currency
        self.rows.sleeves.extend(
            (day, s.strategy_id, seq, currency, s.capital_minor, s.cash_minor, s.value_minor, s.nav_minor)
            for s in event.sleeves
        )

    def _on_currencies_marked(self, seq: int, event: CurrenciesMarked) -> None:
        self.rows.currency_marks.extend(
            (event.day, m.currency, seq, event.base, m.rate_e8, m.cash_minor, m.value_minor, m.nav_minor,
             m.nav_base_minor)
            for m in event.currencies
        )  # fmt: skip

    def _on_risk_verdict(self, seq: int, event: RiskVerdict) -> None:
        self.rows.risk_events.append(
            (
                seq,
                event.strategy_id,
                event.step,
                event.rule,
                event.action,
                event.limit,
                event.observed,
                msgspec.json.encode(event.instrument_ids).decode("ascii"),
                event.detail,
                event.ts_ns,
                event.unit,
                event.observed_after,
                msgspec.json.encode(event.group_ids).decode("ascii"),
            )
        )


def _write_rows(db: sqlite3.Connection, batch: LedgerBatch) -> None:
    """Write a batch's rows; statements run in an order where each sees what it needs."""
    rows = batch.rows
    batch.check_new_orders()
    db.executemany(
        "INSERT INTO runs (seq, run_id, seed, engine_version, config_json) VALUES (?, ?, ?, ?, ?)",
        rows.runs,
    )
    # A dataset reference or finish belongs to the latest run started before it.
    db.executemany(
        "UPDATE runs SET dataset_uri = ?, content_hash = ? "
        "WHERE seq = (SELECT MAX(seq) FROM runs WHERE seq < ?)",
        rows.run_datasets,
    )
    db.executemany(
        "UPDATE runs SET finished_seq = ?, steps = ?, nav_minor = ?, currency = ? "
        "WHERE seq = (SELECT MAX(seq) FROM runs WHERE seq < ?)",
        rows.run_finishes,
    )
    db.executemany(
        "INSERT INTO instruments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (instrument_id) DO UPDATE SET symbol = excluded.symbol, "
        "venue = excluded.venue, asset_class = excluded.asset_class, "
        "currency = excluded.currency, price_digits = excluded.price_digits, "
        "tick_raw = excluded.tick_raw, qty_digits = excluded.qty_digits, "
        "lot_raw = excluded.lot_raw, multiplier = excluded.multiplier, "
        "defined_seq = excluded.defined_seq",
        rows.instruments,
    )
    # New orders are plain inserts (``check_new_orders`` refused ids already there); orders
    # of earlier batches that this one moved are updated in place.
    db.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch.new_order_rows()
    )
    db.executemany(
        "UPDATE orders SET qty_raw = ?, limit_px_raw = ?, filled_qty_raw = ?, status = ?, updated_seq = ? "
        "WHERE order_id = ?",
        batch.updated_order_rows(),
    )
    db.executemany("INSERT INTO order_transitions VALUES (?, ?, ?, ?, ?, ?, ?)", rows.transitions)
    db.executemany("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.fills)
    _write_positions(db, rows.position_deltas)
    db.executemany("INSERT INTO postings VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows.postings)
    db.executemany("INSERT INTO nav VALUES (?, ?, ?, ?, ?, ?)", rows.nav)
    db.executemany("INSERT INTO sleeves VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows.sleeves)
    db.executemany("INSERT INTO currency_marks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.currency_marks)
    db.executemany("INSERT INTO risk_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.risk_events)
    db.executemany(upsert_sql("?"), batch.execution_rows())


def _write_positions(db: sqlite3.Connection, deltas: dict[int, int]) -> None:
    """Add signed fill quantities (and corporate-action share changes) into ``positions``; a
    flat position has no row."""
    db.executemany(
        "INSERT INTO positions (instrument_id, qty_raw) VALUES (?, ?) "
        "ON CONFLICT (instrument_id) DO UPDATE SET qty_raw = qty_raw + excluded.qty_raw",
        sorted(deltas.items()),
    )
    db.executemany(
        "DELETE FROM positions WHERE instrument_id = ? AND qty_raw = 0",
        [(instrument_id,) for instrument_id in sorted(deltas)],
    )


# --- the projection -------------------------------------------------------------------------


def peek_sqlite_ledger(path: Path) -> tuple[list[str], int | None]:
    """The tables of the SQLite database at ``path`` and this projection's checkpoint (None: no
    row), read through a read-only connection: nothing is created and the journal mode stays.
    ``TargetRefused`` when SQLite cannot read it."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = sorted(name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        found = None
        if "checkpoint" in tables:
            found = db.execute("SELECT seq FROM checkpoint WHERE name = ?", (PROJECTION_NAME,)).fetchone()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as error:  # damaged text: not UTF-8
        raise TargetRefused(f"--db {path}: not a readable SQLite ledger ({error})") from None
    finally:
        db.close()
    return tables, None if found is None else int(found[0])


def connect_sqlite(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # a lost tail is re-applied from the journal
    return db


class _Queries(Protocol):
    def query(self, sql: str, parameters: Sequence[object] = ..., /) -> list[tuple[Any, ...]]: ...


def refuse_another_run(ledger: _Queries, journal: Journal, where: str) -> None:
    """``TargetRefused`` where the ledger holds another journal's run: each run it has (the
    ``runs`` rows, keyed by the seq of their ``run.started``) must be this journal's record at
    that seq, with the same run id, seed and configuration. Applying one journal's records on
    top of another's fails part-way with a confusing reason ("day ... closed twice"), so a
    ledger given the wrong journal is refused before anything is written (as ``tape alerts``
    refuses a state file of another journal). Both backends' ``run`` call it."""
    for seq, run_id, seed, config_json in ledger.query("SELECT seq, run_id, seed, config_json FROM runs"):
        event = journal.record(seq).event() if 0 <= seq < len(journal) else None
        if isinstance(event, RunStarted) and (event.run_id, event.seed, event.config_json) == (
            run_id,
            seed,
            config_json,
        ):
            continue
        raise TargetRefused(
            f"--db {where} is the ledger of another run (run {run_id!r} started at seq {seq}), not "
            "of this journal: nothing written; give each journal its own ledger, or rebuild this one"
        )


def _statements(script: str) -> Iterator[str]:
    """The statements of a DDL script, one by one (``sqlite3.complete_statement`` decides)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip():
        yield pending


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class SqliteLedger:
    """The ledger projection in one SQLite file (WAL mode, so readers never block it)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        """Use ``SqliteLedger.open``; this takes an autocommit connection it now owns."""
        assert db.isolation_level is None, "transactions are managed explicitly"
        self._db = db
        self.path = path

    @classmethod
    def open(cls, path: Path | str) -> SqliteLedger:
        """Open (creating when absent) the ledger at ``path``; refuse other schema versions."""
        ledger = cls(connect_sqlite(Path(path)), Path(path))
        try:
            ledger._ensure_schema()
        except BaseException:
            ledger.close()
            raise
        return ledger

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- schema -----------------------------------------------------------------------

    def _table_names(self) -> list[str]:
        found = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        return [name for (name,) in found]

    def _ensure_schema(self) -> None:
        tables = self._table_names()
        if not tables:
            self._run_script(self._create_script())
            return
        if "schema_version" not in tables:
            raise SchemaMismatch(f"{self.path} is not a Tape ledger (tables: {tables})")
        (version,) = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        if version != LEDGER_SCHEMA_VERSION:
            raise SchemaMismatch(
                f"{self.path} has ledger schema v{version}; this code writes "
                f"v{LEDGER_SCHEMA_VERSION}: run `tape rebuild`"
            )

    @staticmethod
    def _create_script() -> str:
        return "\n".join(sql for _, _, sql in ddl_scripts())

    def _run_script(self, script: str) -> None:
        """Run DDL as one transaction (a savepoint inside ``transaction``): all of it or none."""
        if self._db.in_transaction:  # executescript would COMMIT it first: one statement at a time
            self._db.execute("SAVEPOINT ddl")
            try:
                for statement in _statements(script):
                    self._db.execute(statement)
            except BaseException:
                self._db.execute("ROLLBACK TO ddl")
                self._db.execute("RELEASE ddl")
                raise
            self._db.execute("RELEASE ddl")
            return
        try:
            self._db.executescript(f"BEGIN IMMEDIATE;\n{script}\nCOMMIT;")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction around several ``reset`` / ``apply`` / ``run`` calls (each then a
        savepoint inside it): all of them are kept, or on any error none. Readers see the
        ledger as it was until it commits (WAL)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def reset(self) -> None:
        """Drop every table and recreate the schema, in one transaction."""
        drops = "".join(f"DROP TABLE {_quote(name)};\n" for name in self._table_names())
        self._run_script(drops + self._create_script())

    # --- applying records -------------------------------------------------------------

    @property
    def checkpoint_seq(self) -> int:
        """The last journal seq applied; -1 before the first."""
        return self._read_checkpoint()

    def _read_checkpoint(self) -> int:
        found = self._db.execute("SELECT seq FROM checkpoint WHERE name = ?", (PROJECTION_NAME,)).fetchone()
        return -1 if found is None else int(found[0])

    def apply(self, records: Iterable[Record]) -> int:
        """Apply records in journal order, and the checkpoint, in one transaction.

        Records at or below the checkpoint are skipped; a gap raises. Returns how many
        records were applied. On any error nothing of the batch is kept.
        """
        db = self._db
        begin, commit, rollback = (
            ("SAVEPOINT apply", "RELEASE apply", "ROLLBACK TO apply")
            if db.in_transaction
            else ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
        )
        db.execute(begin)
        try:
            applied = self._apply_in_transaction(records)
        except BaseException:
            db.execute(rollback)
            if begin.startswith("SAVEPOINT"):
                db.execute(commit)  # ROLLBACK TO keeps the savepoint open: close it
            raise
        db.execute(commit)
        return applied

    def _apply_in_transaction(self, records: Iterable[Record]) -> int:
        checkpoint_seq = self._read_checkpoint()
        next_seq = checkpoint_seq + 1
        batch = LedgerBatch(self._db)
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
            _write_rows(self._db, batch)
        except sqlite3.IntegrityError as error:
            raise ProjectionError(next_seq - 1, f"in seqs {checkpoint_seq + 1}..: {error}") from error
        self._db.execute(
            "INSERT INTO checkpoint (name, seq) VALUES (?, ?) "
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
        """Catch up from the checkpoint to the journal's committed head (or ``stop_seq``,
        inclusive), one transaction per ``batch_records_max`` records. Returns how many
        records were applied; ``progress`` is called with the last applied sequence number
        after each batch."""
        if batch_records_max <= 0:
            raise ValueError(f"batch_records_max must be positive, got {batch_records_max}")
        checkpoint_seq = self._read_checkpoint()
        if checkpoint_seq >= 0:
            refuse_another_run(self, journal, str(self.path))
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

    def query(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement (for reports, the cockpit and tests)."""
        return self._db.execute(sql, tuple(parameters)).fetchall()

    def table_checksums(self) -> dict[str, str]:
        """Per table: row count and sha256 over its rows in primary-key order.

        Each row is hashed as its canonical JSON array (column order, integers and text as
        stored, NULL as null) plus a newline, after a header line of the column names.
        """
        return {name: self._table_checksum(name) for name in self._table_names()}

    def table_columns(self, table: str) -> tuple[list[str], list[str], set[str]]:
        """(columns in table order, primary-key columns in key order, text columns)."""
        info = self._db.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
        columns = [column[1] for column in info]
        keys = [column[1] for column in sorted(info, key=lambda c: c[5]) if column[5] > 0]
        return columns, keys, {column[1] for column in info if column[2].upper() == "TEXT"}

    def ordered_rows(self, table: str) -> Iterator[tuple[Any, ...]]:
        """The rows of ``table`` in primary-key order (text compared bytewise)."""
        columns, keys, _ = self.table_columns(table)
        order_by = ", ".join(map(_quote, keys or columns))
        cursor = self._db.execute(
            # Identifiers come from sqlite_master / table_info and are quoted.
            f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(table)} ORDER BY {order_by}"
        )
        while rows := cursor.fetchmany(_CHECKSUM_ROWS_PER_FETCH):
            yield from rows

    def _table_checksum(self, table: str) -> str:
        columns, keys, _ = self.table_columns(table)
        order_by = ", ".join(map(_quote, keys or columns))
        digest = hashlib.sha256(msgspec.json.encode(columns) + b"\n")
        count = 0
        cursor = self._db.execute(
            # Identifiers come from sqlite_master / table_info and are quoted.
            f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(table)} ORDER BY {order_by}"
        )
        encode = msgspec.json.encode
        while rows := cursor.fetchmany(_CHECKSUM_ROWS_PER_FETCH):
            digest.update(b"".join([encode(row) + b"\n" for row in rows]))
            count += len(rows)
        return f"rows={count} sha256={digest.hexdigest()}"


# --- rebuild --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RebuildReport:
    records_applied: int
    checkpoint_seq: int
    checksums: dict[str, str]


def rebuild(
    journal_path: Path | str,
    db_path: Path | str,
    *,
    batch_records_max: int = BATCH_RECORDS_MAX,
    progress: Callable[[int], None] | None = None,
) -> RebuildReport:
    """``rebuild_ledger`` for a SQLite file (the ledger at ``db_path`` is replaced only when the
    whole rebuild succeeds)."""
    from projections.base import rebuild_ledger

    built = rebuild_ledger(
        journal_path, Path(db_path), batch_records_max=batch_records_max, progress=progress
    )
    return RebuildReport(built.records_applied, built.checkpoint_seq, built.checksums)
