"""Per-strategy attribution of a multi-strategy book, folded from its journal.

A run with several strategies journals each sleeve at every day close (``SleevesMarked``: its
capital, cash, position value and NAV, split exactly from the book's). This fold reads those
marks and the orders, fills and fee postings, and gives each strategy its PnL, return, maximum
drawdown, orders, fills, traded notional, fees and turnover, in integer minor units where the
journal has them. Turnover is the report's (``sim.metrics``): traded notional (one-sided, the sum
of fills' notionals) over the average NAV (the capital and every day-close NAV), annualised by
the run's session days (252 a year, 365 for a 24x7 calendar); the ``book`` row's is the
report's figure. The strategies' capital, cash, value and NAV sum exactly to the book's
(``book_nav_minor``, from the last ``DayClosed``); ``check`` says so, or names the difference.

Orders the kernel sends itself (the kill switch flattening, a liquidation, an option's expiry)
belong to no strategy: their fills move every holder's sleeve (by position) and their fees are
listed on their own line, so the fee and traded-notional columns also add up to the book's. The
strategies' average NAVs sum to the book's, so the book's turnover is theirs weighted by average
NAV, plus the kernel's orders' notional over the book's average NAV.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.events import (
    DatasetReferenced,
    DayClosed,
    LedgerPosted,
    OrderFilled,
    OrderSubmitted,
    SleeveMark,
    SleevesMarked,
)
from kernel.journal import Journal
from kernel.setup import RESERVED_STRATEGY_IDS

__all__ = ["Attribution", "AttributionError", "StrategyLine", "strategy_attribution"]

_DECODED = {
    "order.submitted.v1",
    "order.filled.v1",
    "ledger.posted.v1",
    "day.closed.v1",
    "book.sleeves_marked.v1",
    "dataset.referenced.v1",
}


class AttributionError(ValueError):
    """The journal's sleeves do not add up to its book."""


@dataclass
class StrategyLine:
    strategy_id: str
    capital_minor: int = 0
    cash_minor: int = 0
    value_minor: int = 0
    nav_minor: int = 0
    max_drawdown: float = 0.0  # of the sleeve's daily NAV, from its capital
    orders: int = 0
    fills: int = 0
    traded_minor: int = 0  # filled notional
    fees_minor: int = 0  # commissions, taxes and exchange fees of its fills
    nav_sum_minor: int = 0  # the sum of its day-close NAVs
    marks: int = 0  # its day-close NAVs (one a session day)

    @property
    def pnl_minor(self) -> int:
        return self.nav_minor - self.capital_minor

    @property
    def total_return(self) -> float:
        return self.pnl_minor / self.capital_minor if self.capital_minor else 0.0

    @property
    def average_nav_minor(self) -> float:
        """The mean of the capital and every day-close NAV (the report's average NAV)."""
        return (self.capital_minor + self.nav_sum_minor) / (self.marks + 1) if self.capital_minor else 0.0


@dataclass
class Attribution:
    currency: str
    days: int
    strategies: list[StrategyLine]  # the sleeves, in the run's order
    kernel_orders: StrategyLine  # the kernel's own orders (no sleeve of their own)
    book_nav_minor: int
    book_cash_minor: int
    book_nav_sum_minor: int = 0  # the sum of the book's day-close NAVs
    periods_per_year: int = 252  # session days a year: 365 for a 24x7 calendar

    def check(self) -> None:
        """Raise ``AttributionError`` unless the sleeves sum exactly to the book."""
        nav = sum(line.nav_minor for line in self.strategies)
        cash = sum(line.cash_minor for line in self.strategies)
        if (nav, cash) != (self.book_nav_minor, self.book_cash_minor):
            raise AttributionError(
                f"the strategies' NAV {nav} and cash {cash} do not sum to the book's "
                f"{self.book_nav_minor} and {self.book_cash_minor}"
            )

    def turnover(self, line: StrategyLine) -> float:
        """Traded notional over the line's average NAV (``average_nav_minor``), annualised by
        session days (``periods_per_year``): ``tape report``'s definition, so the book's line
        (``book_line``) gives the report's turnover. 0 for a line without capital."""
        years = max(line.marks / self.periods_per_year, 1e-9)
        average = line.average_nav_minor
        return line.traded_minor / average / years if average else 0.0

    def book_line(self) -> StrategyLine:
        """The whole book as one line: the strategies' and the kernel's orders summed, the
        book's cash, NAV and day-close NAVs (its drawdown is the report's, not kept here)."""
        lines = [*self.strategies, self.kernel_orders]
        return StrategyLine(
            "book",
            capital_minor=sum(line.capital_minor for line in self.strategies),
            cash_minor=self.book_cash_minor,
            value_minor=self.book_nav_minor - self.book_cash_minor,
            nav_minor=self.book_nav_minor,
            orders=sum(line.orders for line in lines),
            fills=sum(line.fills for line in lines),
            traded_minor=sum(line.traded_minor for line in lines),
            fees_minor=sum(line.fees_minor for line in lines),
            nav_sum_minor=self.book_nav_sum_minor,
            marks=self.days,
        )


def strategy_attribution(journal: Journal) -> Attribution | None:
    """The run's per-strategy attribution, or None for a run without sleeves (one strategy)."""
    fold = _Fold()
    for record in journal.records(0):
        if record.kind in _DECODED:
            fold.apply(record.event())
    return fold.result()


class _Fold:
    def __init__(self) -> None:
        self.owner: dict[str, str] = {}  # order id -> strategy id
        self.lines: dict[str, StrategyLine] = {}
        self.kernel = StrategyLine("(kernel orders)")
        self.peaks: dict[str, int] = {}
        self.fee_owner: dict[str, str] = {}  # a fill's posting memo -> strategy id
        self.last: SleevesMarked | None = None
        self.closed: DayClosed | None = None
        self.days = 0
        self.nav_sum = 0
        self.periods = 252

    def apply(self, event: object) -> None:
        if isinstance(event, OrderSubmitted):
            self.owner[event.order_id] = event.strategy_id
            _line(self.lines, self.kernel, event.strategy_id).orders += 1
        elif isinstance(event, OrderFilled):
            sid = self.owner.get(event.order_id, "")
            line = _line(self.lines, self.kernel, sid)
            line.fills += 1
            line.traded_minor += event.notional_minor
            self.fee_owner[f"fill {event.order_id}"] = sid
        elif isinstance(event, LedgerPosted):
            sid = self.fee_owner.pop(event.memo, None)
            if sid is not None:
                fees = sum(p.amount_minor for p in event.postings if p.account.startswith("expenses:"))
                _line(self.lines, self.kernel, sid).fees_minor += fees
        elif isinstance(event, DayClosed):
            self.closed = event
            self.days += 1
            self.nav_sum += event.nav_minor
        elif isinstance(event, DatasetReferenced):
            self.periods = 365 if event.calendar == "24x7" else 252
        elif isinstance(event, SleevesMarked):
            self.last = event
            for mark in event.sleeves:
                line = self.lines.setdefault(mark.strategy_id, StrategyLine(mark.strategy_id))
                _mark(line, mark, self.peaks)

    def result(self) -> Attribution | None:
        if self.last is None or self.closed is None:
            return None
        return Attribution(
            currency=self.last.currency,
            days=self.days,
            strategies=[self.lines[mark.strategy_id] for mark in self.last.sleeves],
            kernel_orders=self.kernel,
            book_nav_minor=self.closed.nav_minor,
            book_cash_minor=self.closed.cash_minor,
            book_nav_sum_minor=self.nav_sum,
            periods_per_year=self.periods,
        )


def _line(lines: dict[str, StrategyLine], kernel: StrategyLine, sid: str) -> StrategyLine:
    """The strategy's line; the kernel's own orders share one line."""
    if sid in RESERVED_STRATEGY_IDS:
        return kernel
    return lines.setdefault(sid, StrategyLine(sid))


def _mark(line: StrategyLine, mark: SleeveMark, peaks: dict[str, int]) -> None:
    line.capital_minor = mark.capital_minor
    line.cash_minor = mark.cash_minor
    line.value_minor = mark.value_minor
    line.nav_minor = mark.nav_minor
    line.nav_sum_minor += mark.nav_minor
    line.marks += 1
    peak = max(peaks.get(mark.strategy_id, mark.capital_minor), mark.nav_minor)
    peaks[mark.strategy_id] = peak
    if peak > 0:
        line.max_drawdown = max(line.max_drawdown, 1.0 - mark.nav_minor / peak)
