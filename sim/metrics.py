"""Performance statistics derived from a journal's events (never from kernel internals)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from domain.events import DatasetReferenced, DayClosed, OrderFilled, OrderRejected, OrderSubmitted, RunStarted
from domain.fixed import minor_digits
from kernel.journal import Journal

__all__ = ["RunReport", "report_from_journal"]

_KINDS = {
    "day.closed.v1",
    "order.filled.v1",
    "order.submitted.v1",
    "order.rejected.v1",
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
            ("fees", f"{self.fees:,.2f} {ccy}"),
        ]


def report_from_journal(journal: Journal) -> RunReport:
    navs: list[int] = []
    fills = orders = rejected = 0
    traded_minor = fees_minor = 0
    run: RunStarted | None = None
    calendar_days = 252
    for record in journal.records(0):
        if record.kind not in _KINDS:
            continue
        event = record.event()
        if isinstance(event, DayClosed):
            navs.append(event.nav_minor)
        elif isinstance(event, OrderFilled):
            fills += 1
            traded_minor += event.notional_minor
            fees_minor += event.commission_minor
        elif isinstance(event, OrderSubmitted):
            orders += 1
        elif isinstance(event, OrderRejected):
            rejected += 1
        elif isinstance(event, RunStarted):
            run = event
        elif isinstance(event, DatasetReferenced):
            calendar_days = 365 if event.calendar == "24x7" else 252
    if run is None:
        raise ValueError("journal has no run.started record")
    config = json.loads(run.config_json)
    currency = config.get("currency", "USD")
    scale = 10 ** minor_digits(currency)
    initial = _initial_cash(config)
    return _summarise(
        run.run_id,
        currency,
        navs,
        initial,
        scale,
        calendar_days,
        (orders, rejected, fills, traded_minor, fees_minor),
    )


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
