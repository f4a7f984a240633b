"""Parameters of the simulated venue: slippage, commission, participation."""

from __future__ import annotations

import msgspec

__all__ = ["AT_LIMIT", "FillModel"]

AT_LIMIT = ("skip", "fill")


class FillModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rates are integers in units of 1e-8 (``100_000`` = 0.1% = 10 bps).

    Commission of an order (each fill pays the increase of the order's total, so a minimum is
    charged once per order): ``commission_e8 x notional + commission_per_share_e8 x quantity``
    (currency units x 1e-8 per share: $0.005 is ``500_000``), rounded half-up to the minor
    unit, at least ``commission_min_minor``, at most ``commission_max_e8 x notional`` when set
    (the cap wins over the minimum). IBKR Pro Fixed (US stocks) is ``commission_per_share_e8 =
    500_000``, ``commission_min_minor = 100``, ``commission_max_e8 = 1_000_000``.

    Maker/taker (crypto venues): with ``maker_e8`` or ``taker_e8`` set, each fill pays its own
    rate instead, no minimum: ``taker_e8`` for market orders and for limit orders that fill at a
    price better than their limit (they crossed on arrival), ``maker_e8`` for limit orders filled
    at their limit (they rested until the market traded through).

    ``at_limit`` (A-shares on bars): ``"skip"`` (the default) gives a buy no fill on a bar that
    opens at its limit-up price and a sell none on a bar that opens at limit-down — the queue at
    the limit makes such a fill unlikely, and a bar does not show whether it happened; ``"fill"``
    fills there unless the bar is locked at the limit all through (how runs behaved before the
    setting existed, and what a journal without it replays with).
    """

    slippage_e8: int = 0
    commission_e8: int = 100_000
    commission_min_minor: int = 0
    participation_e8: int = 0  # 0 = fill the whole order; else cap at this share of bar volume
    commission_per_share_e8: int = 0
    commission_max_e8: int = 0  # 0 = no cap
    maker_e8: int = 0
    taker_e8: int = 0
    at_limit: str = "skip"

    def __post_init__(self) -> None:
        if self.at_limit not in AT_LIMIT:
            raise ValueError(f"fill.at_limit must be one of {AT_LIMIT}, got {self.at_limit!r}")
        for name in (
            "slippage_e8",
            "commission_e8",
            "commission_min_minor",
            "participation_e8",
            "commission_per_share_e8",
            "commission_max_e8",
            "maker_e8",
            "taker_e8",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"fill.{name} must not be negative")
        if self.slippage_e8 >= 100_000_000:
            raise ValueError("fill.slippage_e8 must be below 100%")
        if self.maker_taker and (
            self.commission_min_minor or self.commission_per_share_e8 or self.commission_max_e8
        ):
            raise ValueError(
                "fill: maker_e8/taker_e8 replace the order commission; leave commission_min_minor, "
                "commission_per_share_e8 and commission_max_e8 at 0 with them"
            )

    @property
    def maker_taker(self) -> bool:
        return bool(self.maker_e8 or self.taker_e8)
