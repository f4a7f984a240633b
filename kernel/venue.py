"""The venue ports the kernel drives.

``VenuePort``: accept or reject orders, amend them, report fills at a step. A synchronous venue
(the simulator) answers ``submit`` and ``replace`` at once. An asynchronous venue (paper, live,
or a recorded session) also implements ``AsyncVenuePort``: ``submit`` returns ``None`` and every
answer arrives later as a numbered ``VenueMessage`` that the kernel takes at ``poll``
(``kernel.venue_inbox``)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from domain.events import (
    OrderAccepted,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderReplaceRejected,
    VenueMessage,
)
from domain.orders import Order

__all__ = ["NO_ACTIVITY", "AsyncVenuePort", "CancelRequestPort", "VenuePort"]

NO_ACTIVITY = 1 << 62
"""``next_activity`` when no open order can ever fill."""


class VenuePort(Protocol):
    def submit(self, step: int, order: Order) -> OrderAccepted | OrderRejected | None:
        """Acknowledge an order submitted at ``step`` (its event time is that step's); ``None``
        when the answer comes later as a venue message (an asynchronous venue)."""
        ...

    def replace(
        self, step: int, order: Order, qty_raw: int, limit_px_raw: int
    ) -> OrderReplaced | OrderReplaceRejected:
        """Amend a working order to a new total quantity ``qty_raw`` and limit ``limit_px_raw``."""
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


@runtime_checkable
class AsyncVenuePort(Protocol):
    """A venue whose answers arrive as messages. ``pending_max`` bounds how many messages the
    kernel holds past a sequence gap."""

    pending_max: int

    def poll(self, step: int) -> list[VenueMessage]:
        """The messages received at ``step``, in arrival order (duplicates and reordering as
        they came)."""
        ...

    def next_poll_step(self, step: int) -> int:
        """The first step after ``step`` at which messages arrive (``NO_ACTIVITY``: none)."""
        ...


@runtime_checkable
class CancelRequestPort(Protocol):
    """An asynchronous venue that is asked to cancel (live): the desk journals
    ``OrderCancelRequested`` and the order stays working until the venue answers ``cancelled``
    (or ``cancel_rejected``), so a fill that crossed the cancel is still booked."""

    def request_cancel(self, order: Order, reason: str) -> None:
        """Send a cancel for ``order`` (after the journal commit that holds the request)."""
        ...
