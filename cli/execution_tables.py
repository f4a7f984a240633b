"""Rich tables of a run's execution quality (``tape report``)."""

from __future__ import annotations

from rich import box
from rich.table import Table

from cli.progress import console
from domain.execution.posttrade_fold import ExecutionTotals
from sim.execution_report import ExecutionReport, bps, money, percent

__all__ = ["print_execution_quality"]

# The terminal tables fit 80 columns (numbers never wrap or cut; the currency is in the title);
# opportunity cost, arrival shortfall and the order prices are in --json / --orders.
_TOTAL_HEADERS = (
    "orders",
    "fill ratio",
    "shortfall vs decision",
    "slippage vs decision (bp)",
    "slippage vs arrival (bp)",
)


def _table(title: str, headers: tuple[str, ...], rows: list[tuple[str, ...]], text: int) -> Table:
    """The first ``text`` columns fold; the numbers keep their full width on one line."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for index, header in enumerate(headers):
        if index < text:
            width = min(max((len(row[index]) for row in rows), default=1), 24)
            table.add_column(header, overflow="fold", min_width=width)
        else:
            width = max((len(row[index]) for row in rows), default=1)
            table.add_column(header, justify="right", min_width=width)
    for row in rows:
        table.add_row(*row)
    return table


def _totals_table(title: str, label: str, totals: dict[str, ExecutionTotals]) -> Table:
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
    return _table(f"{title} ({', '.join(currencies)})", (label, *_TOTAL_HEADERS), rows, text=1)


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
        worst_rows = report.worst(worst)
        currencies = sorted({row.currency for row in worst_rows})
        # The order id names its strategy and day ({strategy}-{YYYYMMDD}-{counter}).
        headers = ("order", "side", "fill ratio", "shortfall", "slippage (bp)")
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
        console.print(_table(title, headers, rows, text=1))
