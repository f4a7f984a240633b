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
from domain.ledger import realized_account
from kernel.journal import Journal
from sim.performance import ReturnStats, TradeStats, return_stats, trade_stats

__all__ = ["RunReport", "closing_trade_pnl", "report_from_journal"]

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
    returns: ReturnStats  # daily NAV returns (sim.performance, empyrical's definitions)
    trades: TradeStats  # fills that closed positions
    exposure: float  # share of session days that ended with a position
    turnover: float  # traded notional / average NAV, annualised
    fees: float
    periods_per_year: int
    finished: bool  # the journal holds run.finished (a run cut short does not)
    fee_lines: dict[str, float] = field(default_factory=dict)  # commission, stamp_duty, ...

    @property
    def total_return(self) -> float:
        return self.returns.total_return

    @property
    def sharpe(self) -> float:
        return self.returns.sharpe

    @property
    def max_drawdown(self) -> float:
        """The maximum drawdown as a positive fraction."""
        return -self.returns.max_drawdown

    def rows(self) -> list[tuple[str, str]]:
        ccy = self.currency
        r, t = self.returns, self.trades
        return [
            ("run", self.run_id if self.finished else f"{self.run_id} (not finished)"),
            ("session days", f"{self.days:,}"),
            ("orders / rejected", f"{self.orders:,} / {self.rejected:,}"),
            ("fills", f"{self.fills:,}"),
            ("initial NAV", f"{self.initial_nav:,.2f} {ccy}"),
            ("final NAV", f"{self.final_nav:,.2f} {ccy}"),
            ("total return", _pct(r.total_return, sign=True)),
            ("annual return", _pct(r.annual_return, sign=True)),
            ("annualised volatility", _pct(r.annual_volatility)),
            ("Sharpe (rf = 0)", _num(r.sharpe)),
            ("Sortino", _num(r.sortino)),
            ("max drawdown", _pct(-r.max_drawdown)),
            ("longest drawdown", f"{r.max_drawdown_periods:,} days"),
            ("Calmar", _num(r.calmar)),
            ("exposure (days held)", _pct(self.exposure)),
            ("turnover (annualised)", f"{self.turnover:.2f}x"),
            ("closing trades", f"{t.trades:,}"),
            ("hit rate", _pct(t.hit_rate)),
            ("profit factor", _num(t.profit_factor)),
            ("expectancy / trade", f"{_num(t.expectancy)} {ccy}"),
            ("SQN", _num(t.sqn)),
            ("fees and taxes", f"{self.fees:,.2f} {ccy}"),
            *(
                (f"  {name.replace('_', ' ')}", f"{amount:,.2f} {ccy}")
                for name, amount in sorted(self.fee_lines.items())
            ),
        ]

    def to_json(self) -> dict[str, object]:
        """Every figure, unformatted (NaN and infinity as null)."""
        data: dict[str, object] = {
            key: getattr(self, key)
            for key in ("run_id", "currency", "days", "orders", "rejected", "fills", "initial_nav",
                        "final_nav", "exposure", "turnover", "fees", "periods_per_year", "finished")
        }  # fmt: skip
        data["returns"] = {k: _finite(v) for k, v in dataclasses.asdict(self.returns).items()}
        data["trades"] = {k: _finite(v) for k, v in dataclasses.asdict(self.trades).items()}
        data["fee_lines"] = dict(sorted(self.fee_lines.items()))
        return data


def _finite(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _pct(value: float, *, sign: bool = False) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:+.2%}" if sign else f"{value:.2%}"


def _num(value: float) -> str:
    return "-" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:,.2f}"


class _Fold:
    """One pass over the journal: NAVs, counts, fees, closing trades and days held."""

    def __init__(self) -> None:
        self.navs: list[int] = []
        self.counts: dict[str, int] = {}
        self.traded_minor = 0
        self.fees_minor = 0
        self.fee_lines: dict[str, int] = {}
        self.run: RunStarted | None = None
        self.calendar_days = 252
        self.trade_pnls: list[int] = []
        self.positions: dict[int, int] = {}
        self.days_held = 0

    def apply(self, event: object) -> None:
        if isinstance(event, DayClosed):
            self.navs.append(event.nav_minor)
            self.days_held += any(self.positions.values())
        elif isinstance(event, OrderFilled):
            self.traded_minor += event.notional_minor
            qty = self.positions.get(event.instrument_id, 0) + event.side * event.fill_qty_raw
            self.positions[event.instrument_id] = qty
        elif isinstance(event, LedgerPosted):
            fees = _add_fee_lines(event, self.fee_lines)
            self.fees_minor += fees
            pnl = closing_trade_pnl(event)
            if pnl is not None:
                self.trade_pnls.append(pnl)
        elif isinstance(event, RunStarted):
            self.run = event
        elif isinstance(event, DatasetReferenced):
            self.calendar_days = 365 if event.calendar == "24x7" else 252


def report_from_journal(journal: Journal) -> RunReport:
    fold = _Fold()
    for record in journal.records(0):
        fold.counts[record.kind] = fold.counts.get(record.kind, 0) + 1
        if record.kind in _DECODED:
            fold.apply(record.event())
    if fold.run is None:
        raise ValueError("journal has no run.started record")
    config = json.loads(fold.run.config_json)
    currency = config.get("currency", "USD")
    scale = 10 ** minor_digits(currency)
    initial = _initial_cash(config)
    counts = fold.counts
    periods = fold.calendar_days
    nav = np.array(fold.navs, dtype=np.float64) / scale
    series = np.concatenate([[initial], nav]) if initial > 0 else nav
    returns = np.diff(series) / series[:-1] if series.size > 1 else np.zeros(0)
    years = max(len(fold.navs) / periods, 1e-9)
    average_nav = float(series.mean()) if series.size else 0.0
    return RunReport(
        run_id=fold.run.run_id,
        currency=currency,
        days=len(fold.navs),
        orders=counts.get("order.submitted.v1", 0),
        rejected=counts.get("order.rejected.v1", 0),
        fills=counts.get("order.filled.v1", 0),
        initial_nav=initial,
        final_nav=float(series[-1]) if series.size else initial,
        returns=return_stats(returns, periods),
        trades=trade_stats([pnl / scale for pnl in fold.trade_pnls]),
        exposure=fold.days_held / len(fold.navs) if fold.navs else 0.0,
        turnover=(fold.traded_minor / scale) / average_nav / years if average_nav else 0.0,
        fees=fold.fees_minor / scale,
        periods_per_year=periods,
        finished=counts.get("run.finished.v1", 0) > 0,
        fee_lines={name: amount / scale for name, amount in fold.fee_lines.items()},
    )


def closing_trade_pnl(event: LedgerPosted) -> int | None:
    """A fill's transaction that books realised PnL is a closing trade: its PnL (minor units)
    is the realised PnL less the fill's own fees. None for any other transaction."""
    if not event.memo.startswith("fill "):
        return None
    realised = sum(p.amount_minor for p in event.postings if p.account == realized_account(p.currency))
    if not realised:
        return None
    fees = sum(p.amount_minor for p in event.postings if p.account.startswith("expenses:"))
    return -realised - fees


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
