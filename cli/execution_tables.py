"""Rich tables of a run's execution quality (``tape report``)."""

from __future__ import annotations

from rich.table import Table

from cli.progress import console
from domain.execution.posttrade_fold import ExecutionTotals
from sim.execution_report import ExecutionReport, bps, money, percent

__all__ = ["print_execution_quality"]

_TOTAL_HEADERS = (
    "orders",
    "fill ratio",
    "shortfall vs decision",
    "shortfall vs arrival",
    "opportunity cost",
    "slippage vs decision (bp)",
    "slippage vs arrival (bp)",
)


def _totals_table(title: str, label: str, totals: dict[str, ExecutionTotals]) -> Table:
    table = Table(title=title)
    table.add_column(label)
    for header in _TOTAL_HEADERS:
        table.add_column(header, justify="right")
    for key, value in totals.items():
        ccy = value.currency
        table.add_row(
            key,
            f"{value.parents:,}",
            percent(value.fill_ratio_e8),
            f"{money(value.shortfall_decision_minor, ccy)} {ccy}",
            f"{money(value.shortfall_arrival_minor, ccy)} {ccy}",
            f"{money(value.opportunity_cost_decision_minor, ccy)} {ccy}",
            bps(value.slippage_decision_e8),
            bps(value.slippage_arrival_e8),
        )
    return table


def print_execution_quality(report: ExecutionReport, *, worst: int, days: int) -> None:
    """Totals per strategy and per day (the latest ``days``), and the ``worst`` orders."""
    if not report.rows:
        console.print("execution quality: no orders in this journal")
        return
    strategies = dict(report.by_strategy)
    if len(strategies) > 1:
        strategies["all"] = report.total
    console.print(_totals_table("execution quality by strategy", "strategy", strategies))
    if days:
        latest = list(report.by_day)[-days:]
        shown = {str(day) if day else "not closed yet": report.by_day[day] for day in latest}
        title = f"execution quality by day (latest {len(shown)} of {len(report.by_day):,}; --json has all)"
        console.print(_totals_table(title, "day", shown))
    if worst:
        table = Table(title=f"worst {min(worst, len(report.rows))} orders by shortfall vs decision")
        for header in ("order", "strategy", "day", "side", "status", "fill ratio", "decision px",
                       "arrival px", "shortfall vs decision", "slippage vs decision (bp)"):  # fmt: skip
            table.add_column(header, justify="left" if header in ("order", "strategy", "status") else "right")
        for row in report.worst(worst):
            table.add_row(
                row.parent_id,
                row.strategy_id,
                str(row.day or "-"),
                "buy" if row.side > 0 else "sell",
                row.status,
                percent(row.fill_ratio_e8),
                f"{row.decision_px_raw:,}",
                f"{row.arrival_px_raw:,}",
                f"{money(row.shortfall_decision_minor, row.currency)} {row.currency}",
                bps(row.slippage_decision_e8),
            )
        console.print(table)
