"""Rich tables of a run's execution quality (``tape report``)."""

from __future__ import annotations

from cli.progress import console
from cli.research_tables import Column, print_fitted
from domain.execution.posttrade_fold import ExecutionTotals
from sim.execution_report import ExecutionReport, bps, money, percent

__all__ = ["print_execution_quality"]

# The terminal tables fit the terminal (``cli.research_tables.print_fitted``): numbers never wrap
# or cut, headers wrap between words, the currency is in the title, and at a width too narrow for
# every column the least needed go first (named under the table). Opportunity cost, arrival
# shortfall and the order prices are in --json / --orders.
_TOTAL_COLUMNS = (
    Column("orders", 6),
    Column("fill ratio", 5),
    Column("shortfall vs decision", 8),
    Column("slippage vs decision (bp)", 7),
    Column("slippage vs arrival (bp)", 4),
)
_WORST_COLUMNS = (
    Column("order", 9),
    Column("side", 6),
    Column("fill ratio", 5),
    Column("shortfall", 8),
    Column("slippage (bp)", 7),
)
_ELSEWHERE = "tape report --json has every figure"


def _print_totals(title: str, label: str, totals: dict[str, ExecutionTotals]) -> None:
    currencies = sorted({value.currency for value in totals.values()})
    rows = [
        (
            key,
            f"{value.parents:,}",
            percent(value.fill_ratio_e8),
            money(value.shortfall_decision_minor, value.currency),
            bps(value.slippage_decision_e8),
            bps(value.slippage_arrival_e8),
        )
        for key, value in totals.items()
    ]
    columns = (Column(label, 9), *_TOTAL_COLUMNS)
    print_fitted(f"{title} ({', '.join(currencies)})", columns, rows, left=1, elsewhere=_ELSEWHERE)


def print_execution_quality(report: ExecutionReport, *, worst: int, days: int) -> None:
    """Totals per strategy and per day (the latest ``days``), and the ``worst`` orders."""
    if not report.rows:
        console.print("execution quality: no orders in this journal")
        return
    strategies = dict(report.by_strategy)
    if len(strategies) > 1:
        strategies["all"] = report.total
    _print_totals("execution quality by strategy", "strategy", strategies)
    if days:
        latest = list(report.by_day)[-days:]
        shown = {str(day) if day else "not closed yet": report.by_day[day] for day in latest}
        # short enough to stay on one line over the table at 80 columns (--days N shows more)
        title = f"execution quality by day: latest {len(shown)} of {len(report.by_day):,}"
        _print_totals(title, "day", shown)
    if worst:
        worst_rows = report.worst(worst)
        currencies = sorted({row.currency for row in worst_rows})
        # The order id names its strategy and day ({strategy}-{YYYYMMDD}-{counter}).
        rows = [
            (
                row.parent_id,
                "buy" if row.side > 0 else "sell",
                percent(row.fill_ratio_e8),
                money(row.shortfall_decision_minor, row.currency),
                bps(row.slippage_decision_e8),
            )
            for row in worst_rows
        ]
        title = f"worst {len(rows)} orders by shortfall and slippage vs decision ({', '.join(currencies)})"
        print_fitted(title, _WORST_COLUMNS, rows, left=1, elsewhere=_ELSEWHERE)
