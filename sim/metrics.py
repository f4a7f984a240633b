"""Performance statistics derived from a journal's events (never from kernel internals)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

import numpy as np

from domain.events import (
    DatasetReferenced,
    DayClosed,
    LedgerPosted,
    OrderFilled,
    RunStarted,
)
from domain.fixed import minor_digits
from kernel.journal import Journal

__all__ = ["RunReport", "report_from_journal"]

_DECODED = {
    "day.closed.v1",
    "order.filled.v1",
    "ledger.posted.v1",
    "run.started.v1",
    "dataset.referenced.v1",
}


@dataclass(frozen=True)
class RunReport:
    run_id: str
    currency: str
    days: int
    orders: int
    rejected: int
    fills: int
    initial_nav: float
    final_nav: float
    total_return: float
    annual_volatility: float
    sharpe: float
    max_drawdown: float
    turnover: float  # traded notional / average NAV, annualised
    fees: float
    periods_per_year: int
    fee_lines: dict[str, float] = field(default_factory=dict)  # commission, stamp_duty, ...

    def rows(self) -> list[tuple[str, str]]:
        ccy = self.currency
        return [
            ("run", self.run_id),
            ("session days", f"{self.days:,}"),
            ("orders / rejected", f"{self.orders:,} / {self.rejected:,}"),
            ("trades (fills)", f"{self.fills:,}"),
            ("initial NAV", f"{self.initial_nav:,.2f} {ccy}"),
            ("final NAV", f"{self.final_nav:,.2f} {ccy}"),
            ("total return", f"{self.total_return:+.2%}"),
            ("annualised volatility", f"{self.annual_volatility:.2%}"),
            ("Sharpe (rf = 0)", f"{self.sharpe:.2f}"),
            ("max drawdown", f"{self.max_drawdown:.2%}"),
            ("turnover (annualised)", f"{self.turnover:.2f}x"),
            ("fees and taxes", f"{self.fees:,.2f} {ccy}"),
            *(
                (f"  {name.replace('_', ' ')}", f"{amount:,.2f} {ccy}")
                for name, amount in sorted(self.fee_lines.items())
            ),
        ]


def report_from_journal(journal: Journal) -> RunReport:
    navs: list[int] = []
    counts: dict[str, int] = {}
    traded_minor = fees_minor = 0
    fee_lines: dict[str, int] = {}
    run: RunStarted | None = None
    calendar_days = 252
    for record in journal.records(0):
        counts[record.kind] = counts.get(record.kind, 0) + 1
        if record.kind not in _DECODED:
            continue
        event = record.event()
        if isinstance(event, DayClosed):
            navs.append(event.nav_minor)
        elif isinstance(event, OrderFilled):
            traded_minor += event.notional_minor
        elif isinstance(event, LedgerPosted):
            fees_minor += _add_fee_lines(event, fee_lines)
        elif isinstance(event, RunStarted):
            run = event
        elif isinstance(event, DatasetReferenced):
            calendar_days = 365 if event.calendar == "24x7" else 252
    orders = counts.get("order.submitted.v1", 0)
    rejected = counts.get("order.rejected.v1", 0)
    fills = counts.get("order.filled.v1", 0)
    if run is None:
        raise ValueError("journal has no run.started record")
    config = json.loads(run.config_json)
    currency = config.get("currency", "USD")
    scale = 10 ** minor_digits(currency)
    initial = _initial_cash(config)
    summary = _summarise(
        run.run_id,
        currency,
        navs,
        initial,
        scale,
        calendar_days,
        (orders, rejected, fills, traded_minor, fees_minor),
    )
    lines = {name: amount / scale for name, amount in fee_lines.items()}
    return dataclasses.replace(summary, fee_lines=lines)


def _add_fee_lines(event: LedgerPosted, fee_lines: dict[str, int]) -> int:
    """Add a transaction's expense postings (commission, stamp duty, ...) by kind and return
    their total; perpetual funding (paid or received) is its own line, not a fee."""
    total = 0
    for posting in event.postings:
        section, kind = posting.account.split(":")[:2]
        if kind == "funding" and section in ("expenses", "income"):
            fee_lines["funding (net paid)"] = fee_lines.get("funding (net paid)", 0) + posting.amount_minor
        elif section == "expenses":
            fee_lines[kind] = fee_lines.get(kind, 0) + posting.amount_minor
            total += posting.amount_minor
    return total


def _initial_cash(config: dict[str, object]) -> float:
    return float(str(config.get("initial_cash", "0")))


def _summarise(
    run_id: str,
    currency: str,
    navs_minor: list[int],
    initial: float,
    scale: int,
    periods: int,
    counts: tuple[int, int, int, int, int],
) -> RunReport:
    orders, rejected, fills, traded_minor, fees_minor = counts
    nav = np.array(navs_minor, dtype=np.float64) / scale
    series = np.concatenate([[initial], nav]) if initial > 0 else nav
    returns = np.diff(series) / series[:-1] if series.size > 1 else np.zeros(0)
    vol = float(returns.std(ddof=1)) * math.sqrt(periods) if returns.size > 1 else 0.0
    mean = float(returns.mean()) * periods if returns.size else 0.0
    peak = np.maximum.accumulate(series) if series.size else series
    drawdown = float(np.max(1.0 - series / peak)) if series.size else 0.0
    years = max(len(navs_minor) / periods, 1e-9)
    average_nav = float(series.mean()) if series.size else 0.0
    final = float(series[-1]) if series.size else initial
    return RunReport(
        run_id=run_id,
        currency=currency,
        days=len(navs_minor),
        orders=orders,
        rejected=rejected,
        fills=fills,
        initial_nav=initial,
        final_nav=final,
        total_return=final / initial - 1.0 if initial else 0.0,
        annual_volatility=vol,
        sharpe=mean / vol if vol > 0 else 0.0,
        max_drawdown=drawdown,
        turnover=(traded_minor / scale) / average_nav / years if average_nav else 0.0,
        fees=fees_minor / scale,
        periods_per_year=periods,
    )
