"""Instruments: the static facts needed to turn weights into lots and fills into money."""

from __future__ import annotations

import msgspec

from domain.fixed import Rounding, div_round, minor_digits

__all__ = ["Instrument", "notional_minor", "qty_for_value"]


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


def notional_minor(instrument: Instrument, qty_raw: int, px_raw: int, rounding: Rounding) -> int:
    """``qty * price * multiplier`` in the currency's minor unit, rounded as named."""
    scale_digits = instrument.price_digits + instrument.qty_digits
    numerator = qty_raw * px_raw * instrument.multiplier * 10 ** minor_digits(instrument.currency)
    return div_round(numerator, 10**scale_digits, rounding)


def qty_for_value(instrument: Instrument, value_minor: int, px_raw: int) -> int:
    """The largest whole-lot quantity (toward zero) whose notional at ``px_raw`` fits ``value_minor``."""
    assert px_raw > 0, "price must be positive to size an order"
    numerator = value_minor * 10 ** (instrument.price_digits + instrument.qty_digits)
    denominator = px_raw * instrument.multiplier * 10 ** minor_digits(instrument.currency)
    qty_raw = div_round(numerator, denominator, Rounding.DOWN)
    return div_round(qty_raw, instrument.lot_raw, Rounding.DOWN) * instrument.lot_raw
