"""Fixed-point arithmetic: values are integers whose scale is named, and every
conversion names its rounding.

A *raw* value is an integer count of ``10**-precision`` units: a price of 10.23 at
precision 2 is ``1023``; 100 shares at quantity precision 0 is ``100``. Money is an
integer count of the currency's minor unit (cents for USD).
"""

from __future__ import annotations

import enum
from decimal import Decimal

import msgspec

__all__ = [
    "RATE_SCALE",
    "CurrencyMismatch",
    "Money",
    "Price",
    "Qty",
    "Rounding",
    "apply_rate",
    "div_half_even",
    "div_round",
    "floor_to_lot",
    "from_decimal_text",
    "minor_digits",
    "rescale",
    "round_to_tick",
    "to_decimal",
]

RATE_SCALE = 10**8
"""Rates (fees, weights) are integers in units of 1e-8: 0.1% is ``100_000``."""

# ISO 4217 minor units; for crypto quote currencies the accounting unit we settle in (ETH
# and BTC amounts at 1e-8, stablecoins at 1e-6), not the chain's base unit.
_MINOR_DIGITS = {"USD": 2, "CNY": 2, "HKD": 2, "EUR": 2, "JPY": 0, "USDT": 6, "USDC": 6, "BTC": 8, "ETH": 8}


class Rounding(enum.Enum):
    """How an inexact integer division is resolved. Always named at the call site."""

    FLOOR = "floor"  # toward -inf
    CEILING = "ceiling"  # toward +inf
    DOWN = "down"  # toward zero
    HALF_EVEN = "half_even"  # banker's rounding
    HALF_UP = "half_up"  # half away from zero (commercial rounding)


class CurrencyMismatch(ValueError):
    """Two money amounts in different currencies were combined."""


def minor_digits(currency: str) -> int:
    """Digits of the currency's minor unit; unknown currencies are an error, never a guess."""
    try:
        return _MINOR_DIGITS[currency]
    except KeyError:
        raise ValueError(f"unknown currency {currency!r}: add its minor unit to domain.fixed") from None


def div_round(numerator: int, denominator: int, rounding: Rounding) -> int:
    """Exact ``numerator / denominator`` rounded as named. ``denominator`` must be positive."""
    assert denominator > 0, "denominator must be positive"
    quotient, remainder = divmod(numerator, denominator)  # floor division, remainder >= 0
    if remainder == 0:
        return quotient
    if rounding is Rounding.FLOOR:
        return quotient
    if rounding is Rounding.CEILING:
        return quotient + 1
    if rounding is Rounding.DOWN:
        return quotient if numerator >= 0 else quotient + 1
    twice = 2 * remainder
    if twice > denominator:
        return quotient + 1
    if twice < denominator:
        return quotient
    if rounding is Rounding.HALF_EVEN:
        return quotient + (quotient & 1)
    # HALF_UP: away from zero. The floor quotient is already away from zero when negative.
    return quotient + 1 if numerator >= 0 else quotient


def div_half_even(numerator: int, denominator: int) -> int:
    """``div_round(numerator, denominator, Rounding.HALF_EVEN)`` without the dispatch on the
    rounding: the valuation's inner loop (tens of thousands of calls a backtest)."""
    quotient, remainder = divmod(numerator, denominator)
    if not remainder:
        return quotient
    twice = 2 * remainder
    if twice > denominator:
        return quotient + 1
    if twice < denominator:
        return quotient
    return quotient + (quotient & 1)


def rescale(value: int, source_digits: int, target_digits: int, rounding: Rounding) -> int:
    """Move a raw value from ``10**-source_digits`` units to ``10**-target_digits`` units."""
    if target_digits >= source_digits:
        return value * int(10 ** (target_digits - source_digits))
    return div_round(value, 10 ** (source_digits - target_digits), rounding)


def from_decimal_text(text: str, digits: int, rounding: Rounding) -> int:
    """Parse a decimal string exactly (no float on the way) into a raw integer."""
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {text!r}")
    sign, digit_tuple, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digit_tuple)) or "0") * (-1 if sign else 1)
    return (
        rescale(mantissa, -exponent, digits, rounding)
        if exponent < 0
        else mantissa * 10 ** (exponent + digits)
    )


def to_decimal(raw: int, digits: int) -> Decimal:
    """The exact decimal value of a raw integer (for display and reports only)."""
    return Decimal(raw).scaleb(-digits)


def floor_to_lot(qty_raw: int, lot_raw: int) -> int:
    """Round a quantity toward zero to a whole number of lots."""
    assert lot_raw > 0
    return div_round(qty_raw, lot_raw, Rounding.DOWN) * lot_raw


def round_to_tick(px_raw: int, tick_raw: int, rounding: Rounding) -> int:
    """Round a raw price onto the tick grid."""
    assert tick_raw > 0
    return div_round(px_raw, tick_raw, rounding) * tick_raw


def apply_rate(amount: int, rate_e8: int, rounding: Rounding) -> int:
    """``amount * rate`` where the rate is in units of 1e-8 (see ``RATE_SCALE``)."""
    return div_round(amount * rate_e8, RATE_SCALE, rounding)


class Money(msgspec.Struct, frozen=True):
    """An amount in the currency's minor unit."""

    minor: int
    currency: str

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} vs {other.currency}")

    def to_decimal(self) -> Decimal:
        return to_decimal(self.minor, minor_digits(self.currency))

    def __str__(self) -> str:
        return f"{self.to_decimal():,} {self.currency}"


class Price(msgspec.Struct, frozen=True):
    """A price as an integer count of ``10**-digits``."""

    raw: int
    digits: int

    def to_decimal(self) -> Decimal:
        return to_decimal(self.raw, self.digits)


class Qty(msgspec.Struct, frozen=True):
    """A quantity as an integer count of ``10**-digits`` units."""

    raw: int
    digits: int

    def to_decimal(self) -> Decimal:
        return to_decimal(self.raw, self.digits)
