"""The order state machine as a transition table, and the pure ``evolve`` fold over it."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import msgspec

from domain.events import (
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
)

__all__ = [
    "ORDER_TRANSITIONS",
    "TERMINAL_STATUSES",
    "IllegalTransition",
    "Order",
    "OrderEvent",
    "OrderStatus",
    "evolve",
    "new_order",
    "replay_order",
    "trigger_of",
]


class OrderStatus(enum.Enum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


OrderEvent = OrderAccepted | OrderRejected | OrderFilled | OrderCancelled | OrderExpired | OrderReplaced

# Triggers are derived from events: a fill is "fill" when it leaves nothing open, else "partial".
# A replace amends a working order's quantity and limit and keeps its status; an order can be
# cancelled before the venue acknowledged it (an asynchronous venue's ack may still be on its way).
ORDER_TRANSITIONS: Mapping[tuple[OrderStatus, str], OrderStatus] = {
    (OrderStatus.SUBMITTED, "accept"): OrderStatus.ACCEPTED,
    (OrderStatus.SUBMITTED, "reject"): OrderStatus.REJECTED,
    (OrderStatus.SUBMITTED, "cancel"): OrderStatus.CANCELLED,
    (OrderStatus.ACCEPTED, "replace"): OrderStatus.ACCEPTED,
    (OrderStatus.PARTIALLY_FILLED, "replace"): OrderStatus.PARTIALLY_FILLED,
    (OrderStatus.ACCEPTED, "partial"): OrderStatus.PARTIALLY_FILLED,
    (OrderStatus.ACCEPTED, "fill"): OrderStatus.FILLED,
    (OrderStatus.ACCEPTED, "cancel"): OrderStatus.CANCELLED,
    (OrderStatus.ACCEPTED, "expire"): OrderStatus.EXPIRED,
    (OrderStatus.PARTIALLY_FILLED, "partial"): OrderStatus.PARTIALLY_FILLED,
    (OrderStatus.PARTIALLY_FILLED, "fill"): OrderStatus.FILLED,
    (OrderStatus.PARTIALLY_FILLED, "cancel"): OrderStatus.CANCELLED,
    (OrderStatus.PARTIALLY_FILLED, "expire"): OrderStatus.EXPIRED,
}

TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class IllegalTransition(Exception):
    """An event that the order's current status does not allow."""

    def __init__(self, order_id: str, status: OrderStatus, trigger: str) -> None:
        super().__init__(f"order {order_id}: illegal transition {status.value} --{trigger}-->")
        self.order_id = order_id
        self.status = status
        self.trigger = trigger


class Order(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    order_id: str
    strategy_id: str
    instrument_id: int
    side: int
    order_type: str
    qty_raw: int
    limit_px_raw: int
    filled_qty_raw: int = 0
    filled_notional_minor: int = 0  # so a per-order fee minimum is charged once across fills
    status: OrderStatus = OrderStatus.SUBMITTED
    submitted_ts_ns: int = 0  # when it was sent: an asynchronous venue's answer latency is measured from it

    @property
    def leaves_qty_raw(self) -> int:
        return self.qty_raw - self.filled_qty_raw

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_STATUSES


def new_order(event: OrderSubmitted) -> Order:
    if event.side not in (1, -1):
        raise ValueError(f"order {event.order_id}: side must be +1 or -1, got {event.side}")
    if event.qty_raw <= 0:
        raise ValueError(f"order {event.order_id}: quantity must be positive, got {event.qty_raw}")
    return Order(
        order_id=event.order_id,
        strategy_id=event.strategy_id,
        instrument_id=event.instrument_id,
        side=event.side,
        order_type=event.order_type,
        qty_raw=event.qty_raw,
        limit_px_raw=event.limit_px_raw,
        submitted_ts_ns=event.ts_ns,
    )


def trigger_of(event: OrderEvent) -> str:
    match event:
        case OrderAccepted():
            return "accept"
        case OrderRejected():
            return "reject"
        case OrderFilled():
            return "partial" if event.leaves_qty_raw > 0 else "fill"
        case OrderCancelled():
            return "cancel"
        case OrderExpired():
            return "expire"
        case OrderReplaced():
            return "replace"


def evolve(order: Order, event: OrderEvent) -> Order:
    """Apply one venue event to an order; illegal pairs raise ``IllegalTransition``."""
    trigger = trigger_of(event)
    target = ORDER_TRANSITIONS.get((order.status, trigger))
    if target is None:
        raise IllegalTransition(order.order_id, order.status, trigger)
    if isinstance(event, OrderReplaced):
        return _replaced(order, event, target)
    if not isinstance(event, OrderFilled):
        return msgspec.structs.replace(order, status=target)
    filled = order.filled_qty_raw + event.fill_qty_raw
    if event.fill_qty_raw <= 0:
        raise ValueError(f"order {order.order_id}: fill quantity must be positive")
    if filled > order.qty_raw:
        raise ValueError(f"order {order.order_id}: overfill {filled} > {order.qty_raw}")
    if order.qty_raw - filled != event.leaves_qty_raw:
        raise ValueError(f"order {order.order_id}: leaves {event.leaves_qty_raw} != {order.qty_raw - filled}")
    return msgspec.structs.replace(
        order,
        status=target,
        filled_qty_raw=filled,
        filled_notional_minor=order.filled_notional_minor + event.notional_minor,
    )


def _replaced(order: Order, event: OrderReplaced, target: OrderStatus) -> Order:
    """A replace sets the new total quantity; it must stay above what is already filled (a
    replace at or below the fill would close the order: that is a cancel), and a market order
    stays a market order (limit 0)."""
    if event.prev_qty_raw != order.qty_raw:
        raise ValueError(
            f"order {order.order_id}: replace of quantity {event.prev_qty_raw}, but it is {order.qty_raw}"
        )
    if event.qty_raw <= order.filled_qty_raw:
        raise ValueError(
            f"order {order.order_id}: replace to {event.qty_raw} at or below filled {order.filled_qty_raw}"
        )
    if (order.order_type == "market") != (event.limit_px_raw == 0) or event.limit_px_raw < 0:
        raise ValueError(
            f"order {order.order_id}: replace limit {event.limit_px_raw} does not fit "
            f"a {order.order_type} order"
        )
    return msgspec.structs.replace(
        order, status=target, qty_raw=event.qty_raw, limit_px_raw=event.limit_px_raw
    )


def replay_order(submitted: OrderSubmitted, events: Iterable[OrderEvent]) -> Order:
    order = new_order(submitted)
    for event in events:
        order = evolve(order, event)
    return order
