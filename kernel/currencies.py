"""A book of several currencies: cash per currency, rates into the base, explicit conversions.

The run's ``currency`` is its base: NAV, risk weights, the kill switch and the reports are in
it. Each instrument settles in its own currency (fills, fees, funding, dividends post to
``assets:cash:{CCY}`` of that currency); nothing converts cash implicitly. Cash in another
currency comes from the configured initial cash per currency (``FxSetup.initial_cash``) or from
an explicit conversion at the day's rates (``FxSetup.conversions``, journaled as
``FxConverted`` + its ``LedgerPosted``). A book may hold negative cash in a currency (a margin
account borrows it); it is valued at the day's rate like any balance.

Valuation (``CurrencyBook.marks``): per currency, ``nav = cash + positions' values`` exactly in
that currency's minor units; each currency's NAV is converted into the base once, half-even
(``domain.fx.to_base_minor``), and the book's NAV is the sum of those conversions. A run whose
instruments and cash are all in the base journals exactly what it did before this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from domain.events import CurrencyMark
from domain.fixed import Rounding
from domain.fx import FxError, FxTable, cross_minor, from_base_minor, to_base_minor
from domain.instruments import Instrument
from domain.ledger import cash_account
from domain.market import Panel

__all__ = [
    "DEFAULT_STALE_DAYS_MAX",
    "CurrencyBook",
    "FxConversion",
    "FxSetup",
    "conversion_amounts",
]

DEFAULT_STALE_DAYS_MAX = 5  # a weekend plus a holiday on each side of it


@dataclass(frozen=True)
class FxConversion:
    """Convert ``amount_minor`` of ``source`` cash into ``target`` at the first step at or
    after ``ts_ns``, at that session day's rates."""

    ts_ns: int
    source: str
    target: str
    amount_minor: int
    note: str = ""


@dataclass(frozen=True)
class FxSetup:
    """The multi-currency settings of a run (``[fx]``)."""

    stale_days_max: int = DEFAULT_STALE_DAYS_MAX
    initial_cash: tuple[tuple[str, int], ...] = ()  # (currency, minor units), beside the base's
    conversions: tuple[FxConversion, ...] = ()


class CurrencyBook:
    """The currencies of one run, their rates into the base by step, and the book's marks."""

    def __init__(
        self, base: str, panel: Panel, instruments: dict[int, Instrument], setup: FxSetup, start_step: int
    ) -> None:
        self.base = base
        self._panel = panel
        used = {inst.currency for inst in instruments.values()}
        used |= {currency for currency, _ in setup.initial_cash}
        for conversion in setup.conversions:
            used |= {conversion.source, conversion.target}
        self.currencies = sorted(used | {base})
        self.several = self.currencies != [base]
        self._table = FxTable(base, panel.fx_rates, setup.stale_days_max)
        self._rates: dict[tuple[str, int], int] = {}
        if self.several and panel.steps:
            days = np.unique(panel.day[start_step:]).tolist()
            self._table.require(self.currencies, days)
        self._currency_of = {iid: inst.currency for iid, inst in instruments.items()}

    def rate_e8(self, currency: str, step: int) -> int:
        """``currency`` into the base on the session day of ``step`` (``FxError`` if none)."""
        day = int(self._panel.day[step])
        key = (currency, day)
        rate = self._rates.get(key)
        if rate is None:
            rate = self._table.rate_e8(currency, day)
            self._rates[key] = rate
        return rate

    def marks(self, step: int, balances: dict[str, int], values: dict[int, int]) -> list[CurrencyMark]:
        """Each currency's cash, position values and NAV, in its own and in the base currency."""
        by_currency = dict.fromkeys(self.currencies, 0)
        for iid, value in values.items():
            by_currency[self._currency_of[iid]] += value
        marks = []
        for currency in self.currencies:
            cash = balances.get(cash_account(currency), 0)
            nav = cash + by_currency[currency]
            rate = self.rate_e8(currency, step)
            nav_base = to_base_minor(nav, currency, self.base, rate)
            marks.append(CurrencyMark(currency, rate, cash, by_currency[currency], nav, nav_base))
        return marks

    def cash_base_minor(self, step: int, marks: Sequence[CurrencyMark]) -> int:
        """The marks' cash, each currency converted once (half-even), summed in the base."""
        return sum(to_base_minor(m.cash_minor, m.currency, self.base, m.rate_e8) for m in marks)

    def to_base(
        self, amount_minor: int, currency: str, step: int, rounding: Rounding = Rounding.HALF_EVEN
    ) -> int:
        return to_base_minor(amount_minor, currency, self.base, self.rate_e8(currency, step), rounding)

    def nav_by_instrument(self, step: int, nav_base_minor: int) -> dict[int, int]:
        """The book's NAV expressed in each instrument's currency (half-even): what a weight of
        one is worth in the currency the instrument's orders are sized in."""
        in_currency = {
            currency: from_base_minor(nav_base_minor, currency, self.base, self.rate_e8(currency, step))
            for currency in self.currencies
        }
        return {iid: in_currency[currency] for iid, currency in self._currency_of.items()}

    def refusals(self, *, sleeves: bool, greeks: bool, streaming: bool) -> list[str]:
        """Features of a one-currency book not built for several currencies yet, by name."""
        if not self.several:
            return []
        named = {
            "several strategies (sleeves)": sleeves,
            "greek limits": greeks,
            "rows arriving one at a time": streaming,
        }
        return [name for name, used in named.items() if used]


def conversion_amounts(book: CurrencyBook, conversion: FxConversion, step: int) -> tuple[int, int, int]:
    """(target minor, source rate, target rate) of a conversion at ``step``."""
    source_rate = book.rate_e8(conversion.source, step)
    target_rate = book.rate_e8(conversion.target, step)
    target_minor = cross_minor(
        conversion.amount_minor, conversion.source, source_rate, conversion.target, target_rate
    )
    if target_minor <= 0:
        raise FxError(
            f"fx conversion of {conversion.amount_minor} {conversion.source} minor units into "
            f"{conversion.target} rounds to nothing"
        )
    return target_minor, source_rate, target_rate
