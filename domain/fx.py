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
GAP_RUNS_NAMED_MAX = 5  # runs of days named per currency pair when rates are missing or stale


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
                f"day{'' if age == 1 else 's'} old (fx.stale_days_max = {self.stale_days_max})"
            )
        return self._rates[currency][index]

    def require(self, currencies: Iterable[str], days: Iterable[int]) -> None:
        """Raise ``FxError`` when any (day, currency) has no usable rate, naming every gap: the
        first in full, then per currency pair the count of days and the first
        ``GAP_RUNS_NAMED_MAX`` runs of consecutive days without one (so a file with several gaps
        is fixed in one go, not one run at a time)."""
        wanted = sorted(set(currencies) - {self.base})
        gaps: dict[str, list[tuple[int, int]]] = {}  # currency -> (index in days, day)
        first = ""
        for index, day in enumerate(sorted(set(days))):
            for currency in wanted:
                try:
                    self.rate_e8(currency, day)
                except FxError as error:
                    first = first or str(error)
                    gaps.setdefault(currency, []).append((index, day))
        count = sum(len(listed) for listed in gaps.values())
        if count == 1:
            raise FxError(first)
        if count:
            pairs = "; ".join(self._describe_gaps(currency, gaps[currency]) for currency in sorted(gaps))
            raise FxError(
                f"{first}; {count} rates missing or stale in all "
                f"(fx.stale_days_max = {self.stale_days_max}): {pairs}"
            )

    def _latest(self, currency: str, day: int) -> str:
        """The latest rate of ``currency`` on or before ``day``, in a few words."""
        days = self._days.get(currency, [])
        index = bisect_right(days, day) - 1
        return f"latest on {days[index]}" if index >= 0 else f"the first is on {days[0]}"

    def _describe_gaps(self, currency: str, gaps: list[tuple[int, int]]) -> str:
        """``CNY/USD on 7 days: 20140710 to 20140716 (5 days, latest on 20140704), ...``: the
        runs of consecutive required days without a usable rate."""
        pair = f"{currency}/{self.base}"
        days = "day" if len(gaps) == 1 else "days"
        if currency not in self._days:
            return (
                f"{pair}: none in the data set, needed on {len(gaps)} {days} ({gaps[0][1]} to {gaps[-1][1]})"
            )
        runs: list[tuple[int, list[int]]] = []  # (index of its first day, its days)
        for index, day in gaps:
            if runs and index == runs[-1][0] + len(runs[-1][1]):
                runs[-1][1].append(day)
            else:
                runs.append((index, [day]))
        named = []
        for _, listed in runs[:GAP_RUNS_NAMED_MAX]:
            latest = self._latest(currency, listed[0])
            if len(listed) == 1:
                named.append(f"{listed[0]} ({latest})")
            else:
                named.append(f"{listed[0]} to {listed[-1]} ({len(listed)} days, {latest})")
        more = len(runs) - GAP_RUNS_NAMED_MAX
        tail = f" and {more} more run{'s' if more > 1 else ''}" if more > 0 else ""
        return f"{pair} on {len(gaps)} {days}: {', '.join(named)}{tail}"


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
