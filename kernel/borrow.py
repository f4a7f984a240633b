"""Short borrow cost: a short position's daily fee, accrued at each session's close.

``fee = value x annual rate x days / 360`` (``domain.markets.borrow_fee_minor``), where
``value`` is the short's market value at the close times the collateral mark
(``collateral_e8``; brokers such as IBKR mark the stock loan at about 102% of the price) and
``days`` the calendar days from this session to the next one (a Friday close carries the
weekend), as brokers charge settlement to settlement. Rates are annual, 1e-8, per symbol with a
default; a rate of 0 charges nothing. Posted as ``expenses:borrow_fee:{CCY}`` against cash.
"""

from __future__ import annotations

import msgspec

from domain.events import PostingRecord
from domain.fixed import RATE_SCALE, Rounding, apply_rate
from domain.instruments import Instrument, notional_minor
from domain.ledger import Position, cash_account
from domain.markets import borrow_fee_minor, day_to_date

__all__ = ["BorrowConfig", "borrow_postings"]

_NO_BORROW_CLASSES = frozenset({"crypto_perp", "perpetual", "crypto_future", "future", "option"})


class BorrowConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[borrow]`` in the backtest TOML: annual rates (1e-8) for shorts."""

    default_rate_e8: int = 0
    rates_e8: dict[str, int] = {}  # by instrument symbol; overrides the default
    collateral_e8: int = RATE_SCALE  # stock-loan value as a fraction of the close (1.02x: 102_000_000)

    def __post_init__(self) -> None:
        for name, rate in [("default_rate_e8", self.default_rate_e8), *self.rates_e8.items()]:
            if not 0 <= rate <= 10 * RATE_SCALE:
                raise ValueError(f"borrow.{name}: annual rate {rate}e-8 is outside [0, 10x]")
        if not RATE_SCALE // 2 <= self.collateral_e8 <= 2 * RATE_SCALE:
            raise ValueError(f"borrow.collateral_e8: {self.collateral_e8} is outside [0.5x, 2x]")

    def rate_e8(self, instrument: Instrument) -> int:
        if instrument.asset_class in _NO_BORROW_CLASSES:
            return 0
        return self.rates_e8.get(instrument.symbol, self.default_rate_e8)


def borrow_postings(
    config: BorrowConfig,
    instrument: Instrument,
    position: Position,
    close_px_raw: int,
    day: int,
    next_day: int,
) -> tuple[list[PostingRecord], str]:
    """Postings (and a memo with the numbers) of one short's fee from ``day`` to ``next_day``."""
    rate = config.rate_e8(instrument)
    if position.qty_raw >= 0 or rate == 0 or close_px_raw <= 0:
        return [], ""
    days = (day_to_date(next_day) - day_to_date(day)).days if next_day > day else 1
    market = notional_minor(instrument, -position.qty_raw, close_px_raw, Rounding.HALF_EVEN)
    value = apply_rate(market, config.collateral_e8, Rounding.CEILING)
    fee = borrow_fee_minor(value, rate, days, Rounding.HALF_UP)
    if fee == 0:
        return [], ""
    ccy = instrument.currency
    memo = (
        f"borrow {instrument.symbol} rate_e8={rate} days={days} value_minor={value} "
        f"close_px_raw={close_px_raw} qty_raw={position.qty_raw}"
    )
    return [
        PostingRecord(f"expenses:borrow_fee:{ccy}", ccy, fee),
        PostingRecord(cash_account(ccy), ccy, -fee),
    ], memo
