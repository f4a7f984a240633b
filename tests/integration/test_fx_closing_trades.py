"""Closing trades and returns of a book of several currencies, in the report and the tearsheet.

CONSTRUCTED two-currency book (``tests.factories.two_currency_run``: USD base, 5,000,000 CNY
beside 1,000,000 USD, the CNY rate moving every day): a CNY name bought on the first day and
sold whole on the third. Before the fix the report dropped the realised PnL of every trade in
another currency than the base (its postings, converted into the base, kept the account
``income:realized:CNY`` that the check compared with ``income:realized:USD``): a winning CNY
round trip counted as a loss of its fees (hit rate 0%). The tearsheet drew that trade's PnL in
CNY as if in USD, and started its curve at the base's cash alone, so the first day showed the
``[fx] initial_cash`` as a return (+41.6% in a USD book with 2,000,000 CNY and 100,000 USDT).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.events import CurrenciesMarked, LedgerPosted
from domain.fixed import minor_digits
from domain.market import Panel
from kernel.store import open_journal
from kernel.strategy import MarketView
from sim.metrics import report_from_journal
from sim.tearsheet import daily_series
from tests.factories import two_currency_run


class CnyRoundTrip:
    """40% of the book in the CNY name on the first day, nothing on the third."""

    strategy_id = "both"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([0, 2], dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([np.nan, 0.4 if view.step == 0 else 0.0])


def _to_base(amount_minor: int, currency: str, rate_e8: int) -> int:
    """Worked in Decimal, apart from ``domain.fx``: half-even to the cent of USD."""
    value = Decimal(amount_minor) / 10 ** minor_digits(currency) * Decimal(rate_e8) / 10**8
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _closing_trade_in_usd(events: list[Any]) -> int:
    """The sell's realised PnL less its fees, each posting at the rate of its day's close."""
    sells = [e for e in events if isinstance(e, LedgerPosted) and "income:realized:CNY" in {
        p.account for p in e.postings}]  # fmt: skip
    assert len(sells) == 1
    marks = next(e for e in events if isinstance(e, CurrenciesMarked) and e.ts_ns >= sells[0].ts_ns)
    rate = next(m.rate_e8 for m in marks.currencies if m.currency == "CNY")
    pnl = 0
    for posting in sells[0].postings:
        if posting.account == "income:realized:CNY" or posting.account.startswith("expenses:"):
            pnl -= _to_base(posting.amount_minor, "CNY", rate)
    return pnl


def test_a_closing_trade_in_another_currency_counts_its_realised_pnl(tmp_path: Path) -> None:
    journal_path = two_currency_run(tmp_path, CnyRoundTrip())
    with open_journal(journal_path) as journal:
        events = [event for _, event in journal.events()]
        report = report_from_journal(journal)
        series = daily_series(journal)
    expected = _closing_trade_in_usd(events)
    assert expected > 0  # bought at 9.90, sold at 10.40 CNY: a win after its fees
    assert report.trades.trades == 1
    assert report.trades.hit_rate == 1.0
    assert round(report.trades.expectancy * 100) == expected
    assert [round(pnl * 100) for pnl in series.trade_pnls] == [expected]


def test_the_tearsheet_starts_from_the_reports_initial_nav(tmp_path: Path) -> None:
    journal_path = two_currency_run(tmp_path)
    with open_journal(journal_path) as journal:
        report = report_from_journal(journal)
        series = daily_series(journal)
    assert report.initial_nav > 1_000_000  # the USD cash and the CNY cash at the first rates
    assert series.initial == report.initial_nav
