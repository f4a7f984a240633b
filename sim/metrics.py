"""Performance statistics derived from a journal's events (never from kernel internals).

A book of several currencies (``kernel.currencies``) is reported in its base currency: NAV from
``DayClosed``; fees, closing trades' PnL and traded notional in another currency are converted
at the rates of the ``CurrenciesMarked`` that closes their day (half-even, ``domain.fx``); the
initial NAV converts the configured cash per currency at the first day's rates. The last day's
marks give the per-currency detail (``currency_rows``), and the fees are also kept per currency
they were paid in, each with its base equivalent at those same daily rates (``fee_rows``): the
equivalents sum exactly to the fees in the base.

The NAV change of such a book is split by source (``pnl_rows``): per currency other than the
base, its FX PnL, each day what it held at the previous close (its ``nav_minor``: cash and
positions' values in it) revalued from the previous close's rate to this close's,
``to_base_minor(held, rate_now) - nav_base_minor_before`` (half-even, as the marks convert;
the first day's is 0: the initial NAV is valued at the first day's rates), and the rest,
trading PnL (prices, fills, fees, funding, conversions and the rounding of each day's
revaluation), which takes the residual, so FX PnL + trading PnL = final - initial NAV in minor
units exactly. Folded once a day from the ``CurrenciesMarked``: a run of one currency, a
sweep's, journals none and folds nothing more."""

from __future__ import annotations

import dataclasses
import json
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec
import numpy as np

from domain.events import (
    CurrenciesMarked,
    CurrencyMark,
    DatasetReferenced,
    DayClosed,
    Event,
    FutureSettled,
    LedgerPosted,
    OrderFilled,
    PostingRecord,
    RiskVerdict,
    RunStarted,
)
from domain.fixed import Rounding, div_round, from_decimal_text, minor_digits
from domain.fx import to_base_minor
from domain.ledger import realized_account
from kernel.journal import Journal
from sim.performance import ReturnStats, TradeStats, return_stats, trade_stats

__all__ = [
    "ClosingFills",
    "NoRunStarted",
    "RISK_ACTIONS",
    "RunFold",
    "RunReport",
    "closing_trade_pnl",
    "closing_trade_pnl_in_base",
    "initial_nav",
    "report_and_navs",
    "report_from_journal",
]


_currency_of = operator.attrgetter("currency")
_ACCOUNT_PARTS: dict[str, tuple[str, str]] = {}  # account -> its first two parts (fee lines)
_KEPT_MAX = 4096
# Every currency's realised-PnL account starts so: a transaction converted into the base
# (``_in_base``) keeps its accounts' names (``income:realized:CNY``) with the base's currency.
_REALIZED_PREFIX = realized_account("")


def _account_parts(account: str) -> tuple[str, str]:
    """(section, kind) of an account name, e.g. ("expenses", "commission"), kept per name."""
    section, kind = account.split(":")[:2]
    if len(_ACCOUNT_PARTS) >= _KEPT_MAX:
        _ACCOUNT_PARTS.clear()
    _ACCOUNT_PARTS[account] = (section, kind)
    return section, kind


class NoRunStarted(ValueError):
    """The journal holds no ``run.started.v1``: empty (a run stopped before its first commit) or
    not a run's journal. There are no figures to report."""


_DECODED_TYPES = frozenset(
    {
        DayClosed,
        OrderFilled,
        LedgerPosted,
        RunStarted,
        DatasetReferenced,
        CurrenciesMarked,
        RiskVerdict,
        FutureSettled,
    }
)
RISK_ACTIONS = ("clip", "scale", "reject")  # what a risk verdict may do besides pass
"""The events the figures are folded from; every other record is only counted."""
_DECODED = frozenset(cls.__struct_config__.tag for cls in _DECODED_TYPES)


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
    # A book of several currencies: the last close per currency (empty for one currency).
    currency_marks: tuple[CurrencyMark, ...] = ()
    # A book of several currencies: the fees and taxes paid in each currency (funding apart, as
    # in ``fees``), (in that currency, in the base at each day's close rates); empty for one.
    fees_by_currency: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Risk verdicts that acted (clip, scale, reject; a pass is not counted): rule -> action -> n.
    risk_actions: dict[str, dict[str, int]] = field(default_factory=dict)
    # A book of several currencies: the FX PnL of each currency but the base, in the base (its
    # holding at each previous close revalued at the close's rate); empty for one currency.
    fx_pnl: dict[str, float] = field(default_factory=dict)
    # The NAV change (final less initial NAV) less the FX PnL: trading, fees, funding and the
    # rounding residual. Exact in minor units with ``fx_pnl``; 0.0 for one currency.
    trading_pnl: float = 0.0

    def risk_rows(self) -> list[tuple[str, str]]:
        """Decisions the risk rules changed: clips / scales / rejects in all and per rule (a
        strategy clipped to the default 10% a name every day is told so here)."""

        def counts(by_action: Mapping[str, int]) -> str:
            return " / ".join(f"{by_action.get(action, 0):,}" for action in RISK_ACTIONS)

        total: dict[str, int] = {}
        for by_action in self.risk_actions.values():
            for action, n in by_action.items():
                total[action] = total.get(action, 0) + n
        rules = sorted(self.risk_actions.items())
        per_rule = [(f"  {rule.replace('_', ' ')}", counts(by)) for rule, by in rules]
        return [("risk clip/scale/reject", counts(total)), *per_rule]

    def fee_rows(self) -> list[tuple[str, str]]:
        """Per currency the fees were paid in: the amount in it and, for another currency than
        the base, its base equivalent (summing to ``fees``). Empty for one currency, or no fees."""
        if not self.currency_marks or not self.fees_by_currency:
            return []
        rows = [("fees by currency", f"base {self.currency}")]
        for currency, (paid, base) in sorted(self.fees_by_currency.items()):
            text = _money(paid, currency)
            if currency != self.currency:
                text += f" = {_money(base, self.currency)}"
            rows.append((f"  {currency} fees", text))
        return rows

    def pnl_rows(self) -> list[tuple[str, str]]:
        """The NAV change split into each other currency's FX PnL and the trading PnL (the
        rest), in the base; empty for one currency."""
        if not self.currency_marks:
            return []
        ccy = self.currency
        return [
            ("PnL by source", f"base {ccy}"),
            ("  NAV change", _money(self.nav_change, ccy)),
            *((f"  FX PnL {other}", _money(pnl, ccy)) for other, pnl in sorted(self.fx_pnl.items())),
            ("  trading PnL (the rest)", _money(self.trading_pnl, ccy)),
        ]

    def currency_rows(self) -> list[tuple[str, str]]:
        """Per currency at the last close: cash and NAV in it, the rate, and NAV in the base."""
        if not self.currency_marks:
            return []
        rows = [("currencies (last close)", f"base {self.currency}")]
        for mark in self.currency_marks:
            cash = mark.cash_minor / 10 ** minor_digits(mark.currency)
            nav = mark.nav_minor / 10 ** minor_digits(mark.currency)
            base = mark.nav_base_minor / 10 ** minor_digits(self.currency)
            digits = _digits(mark.currency)
            rows.append(
                (f"  {mark.currency} cash / NAV", f"{cash:,.{digits}f} / {_money(nav, mark.currency)}")
            )
            rows.append((f"  {mark.currency} NAV at {mark.rate_e8 / 1e8:.8g}", _money(base, self.currency)))
        return rows

    @property
    def nav_change(self) -> float:
        """Final less initial NAV as ``fx_pnl`` and ``trading_pnl`` split it (their sum, to the
        base's minor unit)."""
        return round(self.trading_pnl + sum(self.fx_pnl.values()), _digits(self.currency))

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
            ("initial NAV", _money(self.initial_nav, ccy)),
            ("final NAV", _money(self.final_nav, ccy)),
            ("total return", _pct(r.total_return, sign=True)),
            ("annual return", _pct(r.annual_return, sign=True)),
            ("annualised volatility", _pct(r.annual_volatility)),
            ("Sharpe (rf = 0)", _num(r.sharpe)),
            ("Sortino", _num(r.sortino)),
            ("max drawdown", _pct(r.max_drawdown)),  # negative, as every research table's
            ("longest drawdown", f"{r.max_drawdown_periods:,} days"),
            ("Calmar", _num(r.calmar)),
            ("exposure (days held)", _pct(self.exposure)),
            ("turnover (annualised)", f"{self.turnover:.2f}x"),
            ("closing trades", f"{t.trades:,}"),
            ("hit rate", _pct(t.hit_rate)),
            ("profit factor", _num(t.profit_factor)),
            ("expectancy / trade", _money(t.expectancy, ccy)),
            ("SQN", _num(t.sqn)),
            ("fees and taxes", _money(self.fees, ccy)),
            *(
                (f"  {name.replace('_', ' ')}", _money(amount, ccy))
                for name, amount in sorted(self.fee_lines.items())
            ),
            *self.fee_rows(),
            *self.risk_rows(),
            *self.pnl_rows(),
            *self.currency_rows(),
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
        data["risk_actions"] = {r: dict(sorted(n.items())) for r, n in sorted(self.risk_actions.items())}
        if self.currency_marks:  # several currencies: each at the last close, as printed
            data["currencies"] = {
                mark.currency: {
                    "cash": mark.cash_minor / 10 ** minor_digits(mark.currency),
                    "nav": mark.nav_minor / 10 ** minor_digits(mark.currency),
                    "rate_e8": mark.rate_e8,
                    "nav_base": mark.nav_base_minor / 10 ** minor_digits(self.currency),
                }
                for mark in self.currency_marks
            }
            data["fees_by_currency"] = {
                currency: {"paid": paid, "base": base}
                for currency, (paid, base) in sorted(self.fees_by_currency.items())
            }
            data["pnl_by_source"] = {  # in the base: nav_change = sum of fx + trading
                "nav_change": self.nav_change,
                "fx": dict(sorted(self.fx_pnl.items())),
                "trading": self.trading_pnl,
            }
        return data


def _finite(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _pct(value: float, *, sign: bool = False) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:+.2%}" if sign else f"{value:.2%}"


def _digits(currency: str) -> int:
    """Digits a money figure of ``currency`` prints with: its minor unit's (BTC 8, USDT 6, JPY 0),
    so 0.00075 BTC of fees is not shown as 0.00; 2 for a currency ``domain.fixed`` does not know."""
    try:
        return minor_digits(currency)
    except ValueError:
        return 2


def _money(value: float, currency: str) -> str:
    """A money figure with its currency's digits and code (``-`` for NaN, ``inf`` as ``_num``)."""
    if math.isnan(value) or math.isinf(value):
        return f"{_num(value)} {currency}"
    return f"{value:,.{_digits(currency)}f} {currency}"


def _num(value: float) -> str:
    return "-" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:,.2f}"


class _Fold:
    """One pass over the journal: NAVs, counts, fees, closing trades and days held."""

    def __init__(self) -> None:
        self.navs: list[int] = []
        self.days: list[int] = []  # each DayClosed's day, beside its NAV in ``navs``
        self.counts: dict[str, int] = {}
        self.traded_minor = 0
        self.fees_minor = 0
        self.fee_lines: dict[str, int] = {}
        self.fees_by_currency: dict[str, list[int]] = {}  # currency -> [paid in it, in the base]
        self.run: RunStarted | None = None
        self.calendar_days = 252
        self.trade_pnls: list[int] = []
        self.closing = ClosingFills()
        self.positions = self.closing.positions  # signed quantity per instrument
        self.days_held = 0
        self.base = ""  # the run's currency, from its first record
        self.first_marks: CurrenciesMarked | None = None
        self.last_marks: CurrenciesMarked | None = None
        # Events of the day so far in another currency than the base, converted at its close.
        self.pending: list[OrderFilled | tuple[LedgerPosted, bool, int]] = []
        self.risk_actions: dict[str, dict[str, int]] = {}
        self.fx_minor: dict[str, int] = {}  # currency -> its FX PnL so far, in the base

    def acted(self, verdict: RiskVerdict) -> None:
        """A risk verdict counted where it acted (clip, scale, reject), by rule."""
        if verdict.action != "pass":
            by_action = self.risk_actions.setdefault(verdict.rule, {})
            by_action[verdict.action] = by_action.get(verdict.action, 0) + 1

    def apply(self, event: object) -> None:
        if isinstance(event, RiskVerdict):
            self.acted(event)
        elif isinstance(event, DayClosed):
            self.navs.append(event.nav_minor)
            self.days.append(event.day)
            self.days_held += any(self.positions.values())
        elif isinstance(event, OrderFilled):
            self.closing.fill(event)
            if event.currency == self.base:
                self.traded_minor += event.notional_minor
            else:
                self.pending.append(event)
        elif isinstance(event, LedgerPosted):
            self._ledger(event)
        elif isinstance(event, FutureSettled):
            self.closing.settle(event)
        elif isinstance(event, CurrenciesMarked):
            self._close_currencies(event)
        elif isinstance(event, RunStarted):
            self.run = event
            self.base = str(json.loads(event.config_json).get("currency", "USD"))
        elif isinstance(event, DatasetReferenced):
            self.calendar_days = 365 if event.calendar == "24x7" else 252

    def _ledger(self, event: LedgerPosted) -> None:
        closes = self.closing.closes(event)
        settled = self.closing.settled_share(event)
        if all(map(self.base.__eq__, map(_currency_of, event.postings))):
            self._posted(event, closes, {}, settled)
        else:
            self.pending.append((event, closes, settled))

    def _posted(self, event: LedgerPosted, closes: bool, rates: dict[str, int], settled: int = 0) -> None:
        """Fees and a closing trade's PnL of a transaction, in the base (``rates``: the day's
        rates of its other currencies; ``settled``: the closed quantity's share of the variation
        margin its future was settled since it was opened, in the fill's currency)."""
        if rates:
            converted, settled = _in_base_settled(event, self.base, rates, settled)
            _add_fees_by_currency(event, converted, self.fees_by_currency)
            event = converted
            fees = _add_fee_lines(event, self.fee_lines)
        else:  # every posting in the base: its fees are paid in the base
            fees = _add_fee_lines(event, self.fee_lines)
            if fees:
                paid = self.fees_by_currency.setdefault(self.base, [0, 0])
                paid[0] += fees
                paid[1] += fees
        self.fees_minor += fees
        pnl = closing_trade_pnl(event, closes, settled)
        if pnl is not None:
            self.trade_pnls.append(pnl)

    def _close_currencies(self, event: CurrenciesMarked) -> None:
        """The day's events in other currencies, at the day's rates."""
        rates = {mark.currency: mark.rate_e8 for mark in event.currencies}
        for pending in self.pending:
            if isinstance(pending, OrderFilled):
                rate = rates[pending.currency]
                self.traded_minor += to_base_minor(pending.notional_minor, pending.currency, self.base, rate)
            else:
                posted, closes, settled = pending
                self._posted(posted, closes, rates, settled)
        self.pending.clear()
        if self.last_marks is not None:
            _add_fx_pnl(self.last_marks, event, self.fx_minor)
        self.first_marks = self.first_marks or event
        self.last_marks = event


def _add_fx_pnl(before: CurrenciesMarked, now: CurrenciesMarked, fx_minor: dict[str, int]) -> None:
    """Each currency's FX PnL of the day, in the base: what it held at the previous close
    (``nav_minor``) at this close's rate, less its value then (``nav_base_minor``, the same
    holding at that close's rate, half-even): exact in minor units, the rounding of today's
    conversion included; the base itself has none."""
    rates = {mark.currency: mark.rate_e8 for mark in now.currencies}
    for mark in before.currencies:
        rate = rates.get(mark.currency)
        if mark.currency == before.base or rate is None or rate == mark.rate_e8:
            continue  # a currency no longer marked: its change is all trading PnL
        moved = to_base_minor(mark.nav_minor, mark.currency, before.base, rate) - mark.nav_base_minor
        fx_minor[mark.currency] = fx_minor.get(mark.currency, 0) + moved


def _in_base_settled(
    event: LedgerPosted, base: str, rates: dict[str, int], settled_minor: int
) -> tuple[LedgerPosted, int]:
    """The transaction and its settled variation share, both in the base (half-even each)."""
    if settled_minor:
        currency = event.postings[0].currency
        settled_minor = to_base_minor(settled_minor, currency, base, rates[currency])
    return _in_base(event, base, rates), settled_minor


def closing_trade_pnl_in_base(
    event: LedgerPosted, closes: bool, settled_minor: int, base: str, rates: dict[str, int]
) -> int | None:
    """``closing_trade_pnl`` of a transaction in another currency than ``base``, in minor units
    of the base: each posting converted at ``rates`` (the day's ``CurrenciesMarked``), as
    ``tape report`` converts it."""
    converted, settled = _in_base_settled(event, base, rates, settled_minor)
    return closing_trade_pnl(converted, closes, settled)


def _in_base(event: LedgerPosted, base: str, rates: dict[str, int]) -> LedgerPosted:
    """The transaction's postings each converted into the base (half-even), for the totals."""
    postings = [
        PostingRecord(p.account, base, to_base_minor(p.amount_minor, p.currency, base, rates[p.currency]))
        for p in event.postings
    ]
    return msgspec.structs.replace(event, postings=postings)


def report_from_journal(journal: Journal) -> RunReport:
    return _report(_fold_journal(journal))


def report_and_navs(journal: Journal) -> tuple[RunReport, list[tuple[int, int]]]:
    """The report and the daily NAVs, (day, minor units) at each close, from one pass over the
    journal (a sweep needs both)."""
    fold = _fold_journal(journal)
    return _report(fold), list(zip(fold.days, fold.navs, strict=True))


class RunFold:
    """The figures of ``report_and_navs`` folded from a run's events as they are appended
    (``Journal(on_append=fold.add)``), with no pass over the finished journal: each event is
    the object the record was encoded from, so the figures are the same."""

    def __init__(self) -> None:
        self._fold = _Fold()
        self._by_type: dict[type, int] = {}  # counted by event class, named at the report

    def add(self, event: Event) -> None:
        cls = type(event)
        by_type = self._by_type
        by_type[cls] = by_type.get(cls, 0) + 1
        if cls in _DECODED_TYPES:
            if cls is RiskVerdict and event.action == "pass":  # type: ignore[attr-defined]
                return  # the most frequent record: only the verdicts that acted are folded
            self._fold.apply(event)

    def report_and_navs(self) -> tuple[RunReport, list[tuple[int, int]]]:
        fold = self._fold
        counts = fold.counts
        for cls, count in self._by_type.items():
            kind = cls.__struct_config__.tag
            counts[kind] = counts.get(kind, 0) + count
        self._by_type.clear()
        return _report(fold), list(zip(fold.days, fold.navs, strict=True))


def _fold_journal(journal: Journal) -> _Fold:
    fold = _Fold()
    for record in journal.records(0):
        fold.counts[record.kind] = fold.counts.get(record.kind, 0) + 1
        if record.kind in _DECODED:
            fold.apply(record.event())
    return fold


def _report(fold: _Fold) -> RunReport:
    if fold.run is None:
        if not fold.counts:
            raise NoRunStarted("the journal is empty (a run stopped before its first commit): no figures")
        raise NoRunStarted("no run.started.v1 record: not the journal of a run")
    config = json.loads(fold.run.config_json)
    currency = config.get("currency", "USD")
    scale = 10 ** minor_digits(currency)
    initial = initial_nav(config, fold.first_marks)
    fx_pnl, trading_pnl = _pnl_by_source(config, fold)
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
        risk_actions=fold.risk_actions,
        currency_marks=tuple(fold.last_marks.currencies) if fold.last_marks is not None else (),
        fees_by_currency=(
            {
                ccy: (paid / 10 ** minor_digits(ccy), base / scale)
                for ccy, (paid, base) in fold.fees_by_currency.items()
            }
            if fold.last_marks is not None
            else {}
        ),
        fx_pnl=fx_pnl,
        trading_pnl=trading_pnl,
    )


def _pnl_by_source(config: dict[str, object], fold: _Fold) -> tuple[dict[str, float], float]:
    """Each other currency's FX PnL and the trading PnL (the NAV change less them, the
    residual's place), in base units; ({}, 0.0) for one currency or no close yet."""
    if fold.first_marks is None or not fold.navs:
        return {}, 0.0
    base = str(config.get("currency", "USD"))
    scale = 10 ** minor_digits(base)
    initial_minor = from_decimal_text(
        str(config.get("initial_cash", "0")), minor_digits(base), Rounding.HALF_EVEN
    )
    initial_minor += _initial_other_cash_minor(config, base, fold.first_marks)
    others = {mark.currency for mark in (fold.last_marks or fold.first_marks).currencies} - {base}
    fx_pnl = {ccy: fold.fx_minor.get(ccy, 0) for ccy in sorted(others | set(fold.fx_minor))}
    trading_minor = fold.navs[-1] - initial_minor - sum(fx_pnl.values())
    return {ccy: minor / scale for ccy, minor in fx_pnl.items()}, trading_minor / scale


def closing_trade_pnl(event: LedgerPosted, closes: bool = False, settled_minor: int = 0) -> int | None:
    """A fill's transaction that books realised PnL is a closing trade: its PnL (minor units)
    is the realised PnL less the fill's own fees. None for any other transaction. A fill the
    caller knows ``closes`` a position (``ClosingFills``) is a closing trade even when it
    closed exactly at cost: the ledger makes no posting of a zero realised PnL.

    A daily-settled future books its realised PnL against the last settlement (the daily
    variation margin has paid the rest): ``settled_minor`` (``ClosingFills.settled_share``) is
    the closed quantity's share of the variation paid since the position was opened, so the
    trade's PnL is the exit against the entry, as for any other instrument."""
    if not event.memo.startswith("fill "):
        return None
    realised = fees = 0
    for posting in event.postings:
        account = posting.account
        if account.startswith("expenses:"):
            fees += posting.amount_minor
        elif account.startswith(_REALIZED_PREFIX):  # of any currency: see _in_base
            realised += posting.amount_minor
    if not realised and not closes:
        return None
    return -realised - fees + settled_minor


class ClosingFills:
    """Which fills close (part of) a position, from the fills in journal order: a fill's
    ledger transaction (memo ``fill ORDER``) follows it, and ``closes(posting)`` says whether
    that transaction's fill moved its position toward zero.

    Daily-settled futures (``FutureSettled``, passed to ``settle``): the variation margin paid
    on a position since it was opened is kept per instrument; a closing fill takes its
    quantity's share of it (pro rata of the position before the fill, half-even; all of it when
    the position is closed or turned), which ``settled_share(posting)`` hands to
    ``closing_trade_pnl``."""

    def __init__(self) -> None:
        self.positions: dict[int, int] = {}
        self._closing: set[str] = set()
        self._variation: dict[int, int] = {}  # instrument -> variation settled on its position
        self._shares: dict[str, int] = {}  # fill memo -> its closed quantity's share

    def settle(self, event: FutureSettled) -> None:
        if event.variation_minor:
            iid = event.instrument_id
            self._variation[iid] = self._variation.get(iid, 0) + event.variation_minor

    def fill(self, event: OrderFilled) -> None:
        iid = event.instrument_id
        held = self.positions.get(iid, 0)
        memo = f"fill {event.order_id}"
        after = held + event.side * event.fill_qty_raw
        if held * event.side < 0:
            self._closing.add(memo)
            variation = self._variation.pop(iid, 0)
            if variation:
                if after * held > 0:  # partly closed: the rest stays with the position
                    share = div_round(variation * event.fill_qty_raw, abs(held), Rounding.HALF_EVEN)
                    self._variation[iid] = variation - share
                else:
                    share = variation
                self._shares[memo] = share
        else:  # an opening fill (or one whose closing moved no money: no transaction came)
            self._closing.discard(memo)
        self.positions[iid] = after

    def closes(self, event: LedgerPosted) -> bool:
        if event.memo in self._closing:
            self._closing.discard(event.memo)
            return True
        return False

    def settled_share(self, event: LedgerPosted) -> int:
        """The variation margin share of the fill this transaction books (0 for any other)."""
        return self._shares.pop(event.memo, 0) if self._shares else 0


def _add_fee_lines(event: LedgerPosted, fee_lines: dict[str, int]) -> int:
    """Add a transaction's expense postings (commission, stamp duty, ...) by kind and return
    their total; perpetual funding (paid or received) is its own line, not a fee."""
    total = 0
    for posting in event.postings:
        parts = _ACCOUNT_PARTS.get(posting.account)
        if parts is None:
            parts = _account_parts(posting.account)
        section, kind = parts
        if kind == "funding" and section in ("expenses", "income"):
            fee_lines["funding (net paid)"] = fee_lines.get("funding (net paid)", 0) + posting.amount_minor
        elif section == "expenses":
            fee_lines[kind] = fee_lines.get(kind, 0) + posting.amount_minor
            total += posting.amount_minor
    return total


def _add_fees_by_currency(event: LedgerPosted, converted: LedgerPosted, paid: dict[str, list[int]]) -> None:
    """Add a transaction's fees (the expense postings ``_add_fee_lines`` totals) by the currency
    paid in: [the amount in it, the same postings in the base] (``converted``, posting for
    posting)."""
    for posting, in_base in zip(event.postings, converted.postings, strict=True):
        section, kind = _ACCOUNT_PARTS.get(posting.account) or _account_parts(posting.account)
        if section == "expenses" and kind != "funding":
            amounts = paid.setdefault(posting.currency, [0, 0])
            amounts[0] += posting.amount_minor
            amounts[1] += in_base.amount_minor


def initial_nav(config: dict[str, object], first_marks: CurrenciesMarked | None) -> float:
    """The run's initial NAV in its base currency (units): its ``initial_cash`` and, in a book
    of several currencies, its ``[fx] initial_cash`` at the first close's rates."""
    base = str(config.get("currency", "USD"))
    return _initial_cash(config) + _initial_other_cash(config, base, first_marks)


def _initial_other_cash(config: dict[str, object], base: str, marks: CurrenciesMarked | None) -> float:
    """The configured cash in other currencies ([fx] initial_cash) at the first day's rates."""
    if marks is None:
        return 0.0
    scale: int = 10 ** minor_digits(base)
    return _initial_other_cash_minor(config, base, marks) / scale


def _initial_other_cash_minor(config: dict[str, object], base: str, marks: CurrenciesMarked) -> int:
    """``_initial_other_cash`` in minor units of the base (half-even per currency)."""
    fx = config.get("fx")
    if not isinstance(fx, dict):
        return 0
    rates = {mark.currency: mark.rate_e8 for mark in marks.currencies}
    total = 0
    cash: dict[str, object] = dict(fx.get("initial_cash") or {})
    for currency, text in sorted(cash.items()):
        amount = from_decimal_text(str(text), minor_digits(currency), Rounding.HALF_EVEN)
        total += to_base_minor(amount, currency, base, rates[currency])
    return total


def _initial_cash(config: dict[str, object]) -> float:
    return float(str(config.get("initial_cash", "0")))
