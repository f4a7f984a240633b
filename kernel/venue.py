"""The venue port the kernel drives: accept or reject orders, report fills at a step."""

from __future__ import annotations

from typing import Protocol

from domain.events import OrderAccepted, OrderExpired, OrderFilled, OrderRejected
from domain.orders import Order

__all__ = ["NO_ACTIVITY", "VenuePort"]

NO_ACTIVITY = 1 << 62
"""``next_activity`` when no open order can ever fill."""


class VenuePort(Protocol):
    def submit(self, step: int, order: Order) -> OrderAccepted | OrderRejected:
        """Acknowledge an order submitted at ``step`` (its event time is that step's)."""
        ...

    def match(self, step: int, orders: list[Order]) -> list[OrderFilled]:
        """Fills for the given open orders against the bar at ``step``, in order."""
        ...

    def next_activity(self, step: int, orders: list[Order]) -> int:
        """The first step after ``step`` at which any of ``orders`` may fill."""
        ...

    def end_of_day(self, step: int, orders: list[Order]) -> list[OrderExpired]:
        """Orders the venue ends at the close of the session whose last step is ``step``."""
        ...
