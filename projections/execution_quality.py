"""The ``execution_quality`` table of the ledger projections (schema ``002``).

Rows are folded by ``domain.execution.posttrade_fold.ExecutionFold`` -- the code ``tape
report`` runs over a whole journal -- batch by batch: a parent that an earlier batch wrote
is read back from this table (its running state is part of the row), an order's parent from
``orders.parent_id`` and an instrument from ``instruments``. So an incremental follow, a
rebuild and the report give the same rows. A day close dates the parents opened since the
previous one, wherever they are (``day = 0`` rows, found through their index).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from domain.execution.posttrade_fold import (
    ROW_COLUMNS,
    STATE_COLUMNS,
    ExecutionFold,
    ExecutionRow,
    ParentExecution,
)
from domain.instruments import Instrument

__all__ = ["ROW_COLUMNS", "execution_fold", "row_tuple", "upsert_sql"]

_INSTRUMENT_COLUMNS = (
    "instrument_id, symbol, venue, asset_class, currency, price_digits, tick_raw, qty_digits, "
    "lot_raw, multiplier"
)


class _Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class _Reads(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> _Cursor: ...


def execution_fold(db: _Reads, parent_of_order: Callable[[str], str | None]) -> ExecutionFold:
    """A fold whose parents and instruments fall back to what earlier batches wrote."""

    def load_parent(parent_id: str) -> ParentExecution | None:
        found = db.execute(
            f"SELECT {', '.join(STATE_COLUMNS)} FROM execution_quality WHERE parent_id = ?",  # constant
            (parent_id,),
        ).fetchone()
        return None if found is None else ParentExecution(**dict(zip(STATE_COLUMNS, found, strict=True)))

    def load_instrument(instrument_id: int) -> Instrument | None:
        found = db.execute(
            f"SELECT {_INSTRUMENT_COLUMNS} FROM instruments WHERE instrument_id = ?",  # constant columns
            (instrument_id,),
        ).fetchone()
        if found is None:
            return None
        names = [name.strip() for name in _INSTRUMENT_COLUMNS.split(",")]
        return Instrument(**dict(zip(names, found, strict=True)))

    def load_undated() -> list[ParentExecution]:
        found = db.execute(
            f"SELECT {', '.join(STATE_COLUMNS)} FROM execution_quality WHERE day = 0",  # constant
            (),
        ).fetchall()
        return [ParentExecution(**dict(zip(STATE_COLUMNS, row, strict=True))) for row in found]

    return ExecutionFold(
        load_parent=load_parent,
        load_instrument=load_instrument,
        load_parent_of=parent_of_order,
        load_undated=load_undated,
    )


def row_tuple(row: ExecutionRow) -> tuple[object, ...]:
    return tuple(getattr(row, name) for name in ROW_COLUMNS)


def upsert_sql(placeholder: str) -> str:
    """Insert a row or replace every column of the parent's row (SQLite and PostgreSQL)."""
    columns = ", ".join(ROW_COLUMNS)
    marks = ", ".join([placeholder] * len(ROW_COLUMNS))
    updates = ", ".join(f"{name} = excluded.{name}" for name in ROW_COLUMNS if name != "parent_id")
    return (
        f"INSERT INTO execution_quality ({columns}) VALUES ({marks}) "
        f"ON CONFLICT (parent_id) DO UPDATE SET {updates}"
    )
