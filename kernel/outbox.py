"""The kernel's side of a live venue: what it asks goes to an outbox, what the venue says
comes in as numbered ``VenueMessage``s.

``OutboxVenue`` is an asynchronous venue (``kernel.venue.AsyncVenuePort``) that is asked to
cancel (``CancelRequestPort``). It does no I/O and reads no clock: the edge (``tape live``)

* takes the requests (``take_requests``: a new order, or a cancel) *after* the journal commit
  that holds the ``OrderSubmitted`` / ``OrderCancelRequested`` they come from, and sends them
  with the Tape order id as the venue's client order id (so a resend after a crash finds the
  order instead of doubling it);
* stamps each venue answer with its arrival time, numbers it in arrival order and hands it in
  (``deliver``); the kernel's venue inbox takes them at its next step, journals them as inputs
  and applies them (``kernel.venue_inbox``).

A replay builds the same venue with ``sending=False``: the journaled messages stand in for the
venue and nothing is kept for sending.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.events import OrderExpired, OrderFilled, OrderReplaceRejected, VenueMessage
from domain.orders import Order
from kernel.venue import NO_ACTIVITY

__all__ = ["OutboxVenue", "VenueRequest"]


@dataclass(frozen=True)
class VenueRequest:
    """One request for the venue: ``place`` (a new order) or ``cancel``."""

    kind: str
    order: Order
    reason: str = ""


class OutboxVenue:
    """A live venue as the kernel sees it (module docstring)."""

    def __init__(self, *, pending_max: int = 4096, sending: bool = True) -> None:
        if pending_max < 0:
            raise ValueError(f"pending_max must not be negative, got {pending_max}")
        self.pending_max = pending_max
        self.sending = sending
        self._requests: list[VenueRequest] = []
        self._inbound: list[VenueMessage] = []

    # --- the edge's side ------------------------------------------------------------------

    def take_requests(self) -> list[VenueRequest]:
        """The requests made since the last call, in the order the kernel made them."""
        requests, self._requests = self._requests, []
        return requests

    def deliver(self, messages: list[VenueMessage]) -> None:
        """Venue messages received (stamped and numbered by the edge), for the next step."""
        self._inbound.extend(messages)

    def peek(self) -> list[VenueMessage]:
        """The messages handed in that the kernel has not taken yet (a copy)."""
        return list(self._inbound)

    @property
    def waiting(self) -> int:
        """Messages handed in that the kernel has not taken yet."""
        return len(self._inbound)

    # --- AsyncVenuePort / CancelRequestPort ---------------------------------------------

    def poll(self, step: int) -> list[VenueMessage]:
        messages, self._inbound = self._inbound, []
        return messages

    def next_poll_step(self, step: int) -> int:
        """Every step looks: the venue may have spoken since the last bar."""
        return step + 1

    def request_cancel(self, order: Order, reason: str) -> None:
        if self.sending:
            self._requests.append(VenueRequest("cancel", order, reason))

    # --- VenuePort ------------------------------------------------------------------------

    def submit(self, step: int, order: Order) -> None:
        """The answer comes later as a venue message."""
        if self.sending:
            self._requests.append(VenueRequest("place", order))

    def replace(self, step: int, order: Order, qty_raw: int, limit_px_raw: int) -> OrderReplaceRejected:
        return OrderReplaceRejected(
            ts_ns=order.submitted_ts_ns,
            order_id=order.order_id,
            qty_raw=qty_raw,
            limit_px_raw=limit_px_raw,
            reason="REPLACE_UNSUPPORTED: live orders are cancelled and sent again, not amended",
        )

    def match(self, step: int, orders: list[Order]) -> list[OrderFilled]:
        """Fills come as venue messages, never from bars."""
        return []

    def next_activity(self, step: int, orders: list[Order]) -> int:
        return step + 1 if orders else NO_ACTIVITY

    def end_of_day(self, step: int, orders: list[Order]) -> list[OrderExpired]:
        """The venue ends its own orders (its ``expired`` message says so)."""
        return []
