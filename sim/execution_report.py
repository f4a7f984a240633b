"""Execution quality of a run, from its journal: per parent order, per strategy, per day.

The rows come from ``domain.execution.posttrade_fold.ExecutionFold`` -- the fold the ledger
projections run into their ``execution_quality`` table -- so a report row and a projection
row of the same parent are equal field for field. Totals add the rows' money and weight the
ratios (``summarise_rows``), so every total equals the sum of its rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from domain.execution.posttrade_fold import (
    ROW_COLUMNS,
    ExecutionFold,
    ExecutionRow,
    ExecutionTotals,
    summarise_rows,
)
from domain.fixed import minor_digits
from kernel.journal import Journal

__all__ = [
    "ExecutionQualityError",
    "ExecutionReport",
    "execution_report",
    "execution_reports",
    "orders_csv",
    "write_orders_csv",
]

_FOLDED_KINDS = frozenset(
    {
        "day.closed.v1",
        "instruments.defined.v1",
        "order.submitted.v1",
        "order.filled.v1",
        "order.rejected.v1",
        "order.cancelled.v1",
        "order.expired.v1",
        "order.replaced.v1",
    }
)
_PROGRESS_EVERY = 10_000


class ExecutionQualityError(ValueError):
    """The journal's order events cannot be folded (e.g. a fill of an unknown order)."""


@dataclass(frozen=True)
class ExecutionReport:
    rows: list[ExecutionRow]  # by parent id, bytewise
    by_strategy: dict[str, ExecutionTotals]
    by_day: dict[int, ExecutionTotals]
    total: ExecutionTotals

    def worst(self, count: int) -> list[ExecutionRow]:
        """The ``count`` parents with the largest shortfall against the decision price."""
        ranked = sorted(self.rows, key=lambda row: (-row.shortfall_decision_minor, row.parent_id.encode()))
        return ranked[:count]

    def to_json(self) -> dict[str, object]:
        return {
            "total": msgspec.to_builtins(self.total),
            "by_strategy": {key: msgspec.to_builtins(value) for key, value in self.by_strategy.items()},
            "by_day": {str(key): msgspec.to_builtins(value) for key, value in self.by_day.items()},
            "orders": [msgspec.to_builtins(row) for row in self.rows],
        }


def _folded_events(journal: Journal, progress: Callable[[int], None] | None) -> Iterator[tuple[int, object]]:
    for record in journal.records(0):
        if progress is not None and record.seq % _PROGRESS_EVERY == 0:
            progress(record.seq)
        if record.kind in _FOLDED_KINDS:
            yield record.seq, record.event()


def execution_report(journal: Journal, progress: Callable[[int], None] | None = None) -> ExecutionReport:
    """Fold the journal's order events into per-parent rows and their totals."""
    try:
        return _report(journal, progress)
    except ValueError as error:  # a bad order event, or totals across currencies
        raise ExecutionQualityError(f"execution quality: {error}") from error


def execution_reports(
    journal: Journal, progress: Callable[[int], None] | None = None
) -> list[ExecutionReport]:
    """One report per currency the orders traded in, sorted by currency (a book of several
    currencies: money of one currency does not add to another's); one report for one currency."""
    try:
        rows = _rows(journal, progress)
        currencies = sorted({row.currency for row in rows})
        if len(currencies) <= 1:
            return [_summarised(rows)]
        return [_summarised([row for row in rows if row.currency == ccy]) for ccy in currencies]
    except ValueError as error:
        raise ExecutionQualityError(f"execution quality: {error}") from error


def _rows(journal: Journal, progress: Callable[[int], None] | None) -> list[ExecutionRow]:
    fold = ExecutionFold()
    for seq, event in _folded_events(journal, progress):
        fold.apply(seq, event)  # type: ignore[arg-type]
    return fold.rows()


def _report(journal: Journal, progress: Callable[[int], None] | None) -> ExecutionReport:
    return _summarised(_rows(journal, progress))


def _summarised(rows: list[ExecutionRow]) -> ExecutionReport:
    strategies: dict[str, list[ExecutionRow]] = {}
    days: dict[int, list[ExecutionRow]] = {}
    for row in rows:
        strategies.setdefault(row.strategy_id, []).append(row)
        days.setdefault(row.day, []).append(row)
    return ExecutionReport(
        rows=rows,
        by_strategy={key: summarise_rows(strategies[key]) for key in sorted(strategies)},
        by_day={key: summarise_rows(days[key]) for key in sorted(days)},
        total=summarise_rows(rows),
    )


def money(value_minor: int, currency: str) -> str:
    """Minor units as a decimal string of the currency (exact, no float)."""
    digits = minor_digits(currency) if currency else 0
    if digits == 0:
        return f"{value_minor:,}"
    sign = "-" if value_minor < 0 else ""
    whole, fraction = divmod(abs(value_minor), 10**digits)
    return f"{sign}{whole:,}.{fraction:0{digits}d}"


def bps(value_e8: int) -> str:
    """A 1e-8 ratio in basis points (10_000 e8 = 1 bp), two decimals."""
    return f"{value_e8 / 10_000:+.2f}"


def percent(value_e8: int) -> str:
    return f"{value_e8 / 1_000_000:.2f}%"


def orders_csv(*reports: ExecutionReport) -> str:
    """One line per parent, the ``execution_quality`` columns in table order, under one header:
    each report's rows in turn (several currencies' reports: each row names its currency)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(ROW_COLUMNS)
    for report in reports:
        for row in report.rows:
            writer.writerow([getattr(row, name) for name in ROW_COLUMNS])
    return buffer.getvalue()


def write_orders_csv(report: ExecutionReport, path: Path) -> None:
    """``orders_csv`` of one report, to ``path`` (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(orders_csv(report))
