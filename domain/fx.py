"""Foreign exchange: dated rates into a run's base currency and conversions to the minor unit.

A rate row says that on ``day`` one unit of ``currency`` is worth ``rate_e8 / 1e8`` units of
``base``. A run values every currency it holds in its base currency at the rate of the step's
session day, taken as of the latest row on or before that day and no more than
``stale_days_max`` calendar days old (weekends and holidays of the rate source, while a 24x7
market trades on); an older or missing rate is an error that names the currency and the day,
never a guess.

Every conversion of an amount is one exact integer division rounded half-even (``to_base_minor``,
``from_base_minor``, ``cross_minor``), so a value in the base currency is a pure function of the
amount, the two currencies' minor units and the journaled rate.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import date

import msgspec

from domain.fixed import RATE_SCALE, Rounding, div_round, minor_digits

__all__ = [
    "FxError",
    "FxRate",
    "FxTable",
    "cross_minor",
    "from_base_minor",
    "to_base_minor",
]

STALE_DAYS_MAX_LIMIT = 366  # a rate older than a year is never "the day's rate"


class FxError(ValueError):
    """A rate that is missing, stale or malformed (the message names currency and day)."""


class FxRate(msgspec.Struct, frozen=True, gc=False):
    """One unit of ``currency`` is worth ``rate_e8 / 1e8`` units of ``base`` on ``day``."""

    day: int  # YYYYMMDD
    currency: str
    base: str
    rate_e8: int


def _ordinal(day: int) -> int:
    try:
        return date(day // 10_000, day // 100 % 100, day % 100).toordinal()
    except ValueError:
        raise FxError(f"fx: {day} is not a YYYYMMDD date") from None


class FxTable:
    """The rates of one base currency, by currency and day (rows of other bases are ignored)."""

    def __init__(self, base: str, rows: Iterable[FxRate], stale_days_max: int) -> None:
        minor_digits(base)  # an unknown base is an error
        if not 0 <= stale_days_max <= STALE_DAYS_MAX_LIMIT:
            raise FxError(f"fx.stale_days_max must be in [0, {STALE_DAYS_MAX_LIMIT}], got {stale_days_max}")
        self.base = base
        self.stale_days_max = stale_days_max
        days: dict[str, list[int]] = {}
        rates: dict[str, list[int]] = {}
        for row in sorted(rows, key=lambda r: (r.currency, r.day)):
            if row.base != base:
                continue
            _check_row(row)
            known = days.setdefault(row.currency, [])
            if known and known[-1] == row.day:
                raise FxError(f"fx: two {row.currency}/{base} rates on {row.day}")
            known.append(row.day)
            rates.setdefault(row.currency, []).append(row.rate_e8)
        self._days = days
        self._ordinals = {ccy: [_ordinal(day) for day in listed] for ccy, listed in days.items()}
        self._rates = rates

    @property
    def currencies(self) -> list[str]:
        """Currencies with at least one rate into the base, sorted."""
        return sorted(self._days)

    def rate_e8(self, currency: str, day: int) -> int:
        """The rate of ``currency`` into the base on ``day`` (the base itself: exactly one)."""
        if currency == self.base:
            return RATE_SCALE
        days = self._days.get(currency)
        if not days:
            raise FxError(f"fx: no {currency}/{self.base} rate in the data set (needed on {day})")
        index = bisect_right(days, day) - 1
        if index < 0:
            raise FxError(
                f"fx: no {currency}/{self.base} rate on or before {day} (the first is on {days[0]})"
            )
        age = _ordinal(day) - self._ordinals[currency][index]
        if age > self.stale_days_max:
            raise FxError(
                f"fx: no {currency}/{self.base} rate on {day}: the latest, on {days[index]}, is {age} "
                f"days old (fx.stale_days_max = {self.stale_days_max})"
            )
        return self._rates[currency][index]

    def require(self, currencies: Iterable[str], days: Iterable[int]) -> None:
        """Raise ``FxError`` for the first (day, currency) that has no usable rate."""
        wanted = sorted(set(currencies) - {self.base})
        for day in sorted(set(days)):
            for currency in wanted:
                self.rate_e8(currency, day)


def _check_row(row: FxRate) -> None:
    try:
        minor_digits(row.currency)
    except ValueError as error:
        raise FxError(f"fx: {error}") from None
    if row.currency == row.base:
        raise FxError(f"fx: a rate of {row.currency} into itself on {row.day}")
    if row.rate_e8 <= 0:
        raise FxError(f"fx: {row.currency}/{row.base} rate on {row.day} is {row.rate_e8}e-8 (not positive)")
    _ordinal(row.day)


def to_base_minor(
    amount_minor: int, currency: str, base: str, rate_e8: int, rounding: Rounding = Rounding.HALF_EVEN
) -> int:
    """``amount_minor`` of ``currency`` in minor units of ``base`` at ``rate_e8`` (half-even,
    or as ``rounding`` names: a limit's check rounds an order's value up)."""
    if currency == base:
        assert rate_e8 == RATE_SCALE, "the base converts into itself at one"
        return amount_minor
    numerator = amount_minor * rate_e8 * 10 ** minor_digits(base)
    return div_round(numerator, RATE_SCALE * 10 ** minor_digits(currency), rounding)


def from_base_minor(amount_minor: int, currency: str, base: str, rate_e8: int) -> int:
    """``amount_minor`` of ``base`` in minor units of ``currency`` at ``rate_e8`` (half-even)."""
    if currency == base:
        return amount_minor
    assert rate_e8 > 0, "rates are positive"
    numerator = amount_minor * RATE_SCALE * 10 ** minor_digits(currency)
    return div_round(numerator, rate_e8 * 10 ** minor_digits(base), Rounding.HALF_EVEN)


def cross_minor(amount_minor: int, source: str, source_rate_e8: int, target: str, target_rate_e8: int) -> int:
    """``amount_minor`` of ``source`` in minor units of ``target``, both rates into one base:
    one division, half-even (no intermediate rounding through the base)."""
    assert source_rate_e8 > 0, "rates are positive"
    assert target_rate_e8 > 0, "rates are positive"
    numerator = amount_minor * source_rate_e8 * 10 ** minor_digits(target)
    return div_round(numerator, target_rate_e8 * 10 ** minor_digits(source), Rounding.HALF_EVEN)
