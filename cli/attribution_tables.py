"""The per-strategy table of a multi-strategy run (``tape report``), and its CSV / JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from cli.progress import write_output
from cli.research_tables import Column, print_fitted
from sim.attribution import Attribution, StrategyLine
from sim.execution_report import money

__all__ = ["attribution_rows", "attribution_text", "print_attribution", "write_attribution"]


def attribution_rows(attribution: Attribution) -> list[dict[str, object]]:
    """One row per strategy, then the kernel's own orders and the book; amounts in minor units."""
    rows: list[dict[str, object]] = []
    lines = [*attribution.strategies, attribution.kernel_orders]
    for line in lines:
        if line is attribution.kernel_orders and not line.orders:
            continue
        rows.append(_row(attribution, line))
    book = attribution.book_line()
    row = _row(attribution, book)
    row["max_drawdown"] = None  # the book's drawdown is the report's
    rows.append(row)
    return rows


def _row(attribution: Attribution, line: StrategyLine) -> dict[str, object]:
    return {
        "strategy": line.strategy_id,
        "currency": attribution.currency,
        "capital_minor": line.capital_minor,
        "cash_minor": line.cash_minor,
        "value_minor": line.value_minor,
        "nav_minor": line.nav_minor,
        "pnl_minor": line.pnl_minor,
        "return": round(line.total_return, 10),
        # Negative, as the report's summary and every research table give it; 0.0, not -0.0.
        "max_drawdown": -round(line.max_drawdown, 10) or 0.0,
        "orders": line.orders,
        "fills": line.fills,
        "traded_minor": line.traded_minor,
        "fees_minor": line.fees_minor,
        "turnover": round(attribution.turnover(line), 10),
    }


# Fitted to the terminal (print_fitted): a strategy id wider than its column breaks after "_" or
# "-"; the figures that do not fit are named under the table, none is cut.
_COLUMNS = (
    Column("strategy", 10, wraps=True, breaks="_-"),
    Column("NAV", 9),
    Column("PnL", 7),
    Column("return", 8),
    Column("max DD", 5),
    Column("fees", 4),
    Column("turnover", 3),
)


def print_attribution(attribution: Attribution) -> None:
    """Capital, cash, orders, fills and traded notional are in the CSV / JSON (--strategies)."""
    ccy = attribution.currency
    cells = []
    for row in attribution_rows(attribution):
        capital = row["capital_minor"]
        drawdown = row["max_drawdown"]
        cells.append((
            str(row["strategy"]),
            money(_int(row["nav_minor"]), ccy),
            money(_int(row["pnl_minor"]), ccy) if capital else "-",
            f"{row['return']:+.2%}" if capital else "-",
            f"{drawdown:.2%}" if isinstance(drawdown, float) else "-",
            money(_int(row["fees_minor"]), ccy),
            f"{row['turnover']:.2f}x" if capital else "-",
        ))  # fmt: skip
    title = f"strategies ({ccy}; sleeves sum exactly to the book; --strategies has all columns)"
    print_fitted(title, _COLUMNS, cells, elsewhere="--strategies CSV|JSON has every figure")


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def attribution_text(attribution: Attribution, *, as_json: bool) -> str:
    """The rows as JSON (a list of rows) or as CSV."""
    rows = attribution_rows(attribution)
    if as_json:
        return json.dumps(rows, indent=1) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_attribution(attribution: Attribution, path: str, *, option: str) -> None:
    """``path``: ``.json`` (a list of rows), ``-`` (CSV on stdout) or anything else (CSV);
    one that cannot be written is refused naming ``option`` (``cli.progress.write_output``)."""
    as_json = path != "-" and Path(path).suffix.lower() == ".json"
    write_output(path, attribution_text(attribution, as_json=as_json), option=option)
