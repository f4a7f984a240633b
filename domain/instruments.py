"""Instruments: the static facts needed to turn weights into lots and fills into money."""

from __future__ import annotations

import datetime as dt

import msgspec

from domain.fixed import Rounding, div_half_even, div_round, minor_digits

__all__ = ["OPTION_ASSET_CLASS", "OPTION_RIGHTS", "Instrument", "notional_minor", "qty_for_value"]

OPTION_ASSET_CLASS = "option"
OPTION_RIGHTS = ("call", "put")


class Instrument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Tick, lot, currency and precision of one tradable instrument.

    Prices are raw integers at ``price_digits``; quantities raw integers at ``qty_digits``.
    ``tick_raw`` and ``lot_raw`` are in those raw units; ``multiplier`` is contract size.
    """

    instrument_id: int
    symbol: str
    venue: str
    asset_class: str
    currency: str
    price_digits: int
    tick_raw: int
    qty_digits: int
    lot_raw: int
    multiplier: int = 1
    # China A-shares (venue XSHG/XSHE): board (main, star, chinext, bse, fund), listing day
    # and the ST periods as inclusive (first_day, last_day) YYYYMMDD pairs.
    board: str = ""
    listing_day: int = 0
    st_periods: list[tuple[int, int]] = []
    # Risk grouping (pre-trade sector / country limits); "" = not in any group.
    sector: str = ""
    country: str = ""
    # Smallest order notional the venue accepts, in the currency's minor unit (0 = none).
    min_notional_minor: int = 0
    # Options (asset_class "option"): the underlying's symbol, the strike as a raw price at
    # ``price_digits``, the expiry session day (YYYYMMDD) and the right ("call" / "put").
    underlying: str = ""
    strike_raw: int = 0
    expiry_day: int = 0
    right: str = ""

    def is_st(self, day: int) -> bool:
        """Whether the instrument carries the ST flag on session ``day``."""
        return any(first <= day <= last for first, last in self.st_periods)

    def __post_init__(self) -> None:
        if self.tick_raw <= 0:
            raise ValueError(f"{self.symbol}: tick_raw must be positive, got {self.tick_raw}")
        if self.lot_raw <= 0:
            raise ValueError(f"{self.symbol}: lot_raw must be positive, got {self.lot_raw}")
        if self.multiplier <= 0:
            raise ValueError(f"{self.symbol}: multiplier must be positive, got {self.multiplier}")
        minor_digits(self.currency)  # unknown currency is an error here, not later
        if self.min_notional_minor < 0:
            raise ValueError(f"{self.symbol}: min_notional_minor must be >= 0, got {self.min_notional_minor}")
        if self.asset_class == OPTION_ASSET_CLASS:
            self._check_option()
        elif self.underlying or self.strike_raw or self.expiry_day or self.right:
            raise ValueError(
                f"{self.symbol}: underlying/strike_raw/expiry_day/right are option fields, "
                f"but asset_class is {self.asset_class!r} (use {OPTION_ASSET_CLASS!r})"
            )

    @property
    def is_option(self) -> bool:
        return self.asset_class == OPTION_ASSET_CLASS

    def _check_option(self) -> None:
        if not self.underlying:
            raise ValueError(f"{self.symbol}: an option needs its underlying symbol")
        if self.strike_raw <= 0:
            raise ValueError(f"{self.symbol}: option strike_raw must be positive, got {self.strike_raw}")
        if self.right not in OPTION_RIGHTS:
            raise ValueError(
                f"{self.symbol}: option right must be one of {OPTION_RIGHTS}, got {self.right!r}"
            )
        day = self.expiry_day
        try:
            if not 10000101 <= day <= 99991231:
                raise ValueError
            dt.date(day // 10000, day // 100 % 100, day % 100)
        except ValueError:
            raise ValueError(f"{self.symbol}: option expiry_day must be a YYYYMMDD date, got {day}") from None


def notional_minor(instrument: Instrument, qty_raw: int, px_raw: int, rounding: Rounding) -> int:
    """``qty * price * multiplier`` in the currency's minor unit, rounded as named."""
    numerator = qty_raw * px_raw * instrument.multiplier * 10 ** minor_digits(instrument.currency)
    divisor = 10 ** (instrument.price_digits + instrument.qty_digits)
    if rounding is Rounding.HALF_EVEN:  # valuations and weights: most calls of a backtest
        return div_half_even(numerator, divisor)
    return div_round(numerator, divisor, rounding)


def notional_factors(instrument: Instrument) -> tuple[int, int]:
    """(factor, divisor) with ``notional_minor(instrument, q, p, r) == div_round(q * p * factor,
    divisor, r)``: the per-instrument part of the notional, computed once for a loop over
    positions."""
    factor = instrument.multiplier * 10 ** minor_digits(instrument.currency)
    return factor, 10 ** (instrument.price_digits + instrument.qty_digits)


def qty_for_value(instrument: Instrument, value_minor: int, px_raw: int) -> int:
    """The largest whole-lot quantity (toward zero) whose notional at ``px_raw`` fits ``value_minor``."""
    assert px_raw > 0, "price must be positive to size an order"
    numerator = value_minor * 10 ** (instrument.price_digits + instrument.qty_digits)
    denominator = px_raw * instrument.multiplier * 10 ** minor_digits(instrument.currency)
    qty_raw = div_round(numerator, denominator, Rounding.DOWN)
    return div_round(qty_raw, instrument.lot_raw, Rounding.DOWN) * instrument.lot_raw
