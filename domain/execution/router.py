"""Parent/child order bookkeeping, a venue sequence guard, and router-level pending states.

Venue messages carry the venue session's sequence number. ``SequenceGuard`` applies them strictly
in sequence: an older or already-buffered sequence is a duplicate (reported, never applied), a
later one is held until the gap fills (bounded by ``pending_max``). Each applied message becomes a
``domain.orders`` event folded through ``domain.orders.evolve`` (``ORDER_TRANSITIONS``); an illegal
pair or an overfill is reported and leaves the child unchanged.

Why a router-level table: ``domain.orders`` has no pending-cancel / pending-replace states and is
shared with the kernel's market orders. Those states exist only between our request and the
venue's answer, so they are kept here as an overlay (``PENDING_TRANSITIONS``) on the child, next
to its ``domain.orders.Order``. A "replaced" answer becomes ``OrderReplaced`` (the order's new
total quantity, through ``evolve``), allowed only while a replace is pending.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import msgspec

from domain.events import (
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
    VenueMessage,
)
from domain.execution.schedule import ParentOrder
from domain.orders import IllegalTransition, Order, OrderEvent, OrderStatus, evolve, new_order

__all__ = [
    "PENDING_TRANSITIONS",
    "ChildOrder",
    "GuardReport",
    "Pending",
    "RouterState",
    "SequenceGuard",
    "VenueMessage",
    "add_parent",
    "apply_venue_message",
    "child_filled_raw",
    "guard_accept",
    "parent_filled_raw",
    "parent_unallocated_raw",
    "request_cancel",
    "request_replace",
    "replaced_event",
    "submit_child",
]

VENUE_KINDS = (
    "ack",
    "reject",
    "fill",
    "cancelled",
    "expired",
    "cancel_rejected",
    "replaced",
    "replace_rejected",
)


class Pending(enum.Enum):
    NONE = "none"
    CANCEL = "pending_cancel"
    REPLACE = "pending_replace"


PENDING_TRANSITIONS: Mapping[tuple[Pending, str], Pending] = {
    (Pending.NONE, "request_cancel"): Pending.CANCEL,
    (Pending.NONE, "request_replace"): Pending.REPLACE,
    (Pending.CANCEL, "cancel_rejected"): Pending.NONE,
    (Pending.REPLACE, "replaced"): Pending.NONE,
    (Pending.REPLACE, "replace_rejected"): Pending.NONE,
}
"""Terminal venue events (fill to zero, cancelled, expired, rejected) clear any pending state."""


class GuardReport(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one received message. ``outcome``: applied, duplicate, buffered,
    overflow, illegal, overfill, unknown_order."""

    venue_seq: int
    order_id: str
    kind: str
    outcome: str
    detail: str = ""


class SequenceGuard(msgspec.Struct, frozen=True, kw_only=True):
    next_seq: int = 1
    held: dict[int, VenueMessage] = {}
    pending_max: int = 1024


def guard_accept(
    guard: SequenceGuard, msg: VenueMessage
) -> tuple[SequenceGuard, list[VenueMessage], GuardReport | None]:
    """(guard, messages now ready in sequence order, report for a refused/held message)."""
    if msg.venue_seq < guard.next_seq or msg.venue_seq in guard.held:
        held = guard.held.get(msg.venue_seq)
        detail = "different payload under a seen sequence" if held is not None and held != msg else ""
        return guard, [], _report(msg, "duplicate", detail)
    if msg.venue_seq > guard.next_seq:
        if len(guard.held) >= guard.pending_max:
            return guard, [], _report(msg, "overflow", f"gap at {guard.next_seq}: resync needed")
        held_map = dict(guard.held)
        held_map[msg.venue_seq] = msg
        return (
            msgspec.structs.replace(guard, held=held_map),
            [],
            _report(msg, "buffered", f"waiting for {guard.next_seq}"),
        )
    ready = [msg]
    held_map = dict(guard.held)
    seq = msg.venue_seq + 1
    while seq in held_map:
        ready.append(held_map.pop(seq))
        seq += 1
    return msgspec.structs.replace(guard, next_seq=seq, held=held_map), ready, None


def _report(msg: VenueMessage, outcome: str, detail: str = "") -> GuardReport:
    return GuardReport(
        venue_seq=msg.venue_seq, order_id=msg.order_id, kind=msg.kind, outcome=outcome, detail=detail
    )


class ChildOrder(msgspec.Struct, frozen=True, kw_only=True):
    order: Order
    parent_id: str
    pending: Pending = Pending.NONE


class RouterState(msgspec.Struct, frozen=True, kw_only=True):
    parents: dict[str, ParentOrder] = {}
    children: dict[str, ChildOrder] = {}
    child_ids_by_parent: dict[str, list[str]] = {}
    guard: SequenceGuard = SequenceGuard()
    child_counter: int = 0


def child_filled_raw(state: RouterState, parent_id: str) -> list[int]:
    return [state.children[cid].order.filled_qty_raw for cid in state.child_ids_by_parent[parent_id]]


def parent_filled_raw(state: RouterState, parent_id: str) -> int:
    """A parent's fill is the sum of its children's fills (no separate counter to drift)."""
    return sum(child_filled_raw(state, parent_id))


def parent_unallocated_raw(state: RouterState, parent_id: str) -> int:
    """Parent quantity not yet committed to a child: open children count whole, closed ones by fill."""
    committed = 0
    for cid in state.child_ids_by_parent[parent_id]:
        order = state.children[cid].order
        committed += order.qty_raw if order.is_open else order.filled_qty_raw
    return state.parents[parent_id].qty_raw - committed


def add_parent(state: RouterState, parent: ParentOrder) -> RouterState:
    if parent.parent_id in state.parents:
        raise ValueError(f"parent {parent.parent_id} exists")
    if parent.qty_raw <= 0 or parent.side not in (1, -1):
        raise ValueError(f"parent {parent.parent_id}: need qty > 0 and side +-1")
    return msgspec.structs.replace(
        state,
        parents={**state.parents, parent.parent_id: parent},
        child_ids_by_parent={**state.child_ids_by_parent, parent.parent_id: []},
    )


def submit_child(
    state: RouterState, parent_id: str, qty_raw: int, ts_ns: int, limit_px_raw: int = 0
) -> tuple[RouterState, OrderSubmitted]:
    """A child of ``qty_raw`` (at most the parent's unallocated quantity); id ``{parent}-C{n}``."""
    parent = state.parents[parent_id]
    free = parent_unallocated_raw(state, parent_id)
    if not 0 < qty_raw <= free:
        raise ValueError(f"parent {parent_id}: child {qty_raw} outside (0, {free}]")
    child_id = f"{parent_id}-C{state.child_counter}"
    event = OrderSubmitted(
        ts_ns=ts_ns,
        order_id=child_id,
        strategy_id=parent.strategy_id,
        instrument_id=parent.instrument_id,
        side=parent.side,
        order_type="limit" if limit_px_raw else "market",
        qty_raw=qty_raw,
        limit_px_raw=limit_px_raw,
        decision_px_raw=parent.decision_px_raw,
    )
    child = ChildOrder(order=new_order(event), parent_id=parent_id)
    ids = {**state.child_ids_by_parent, parent_id: [*state.child_ids_by_parent[parent_id], child_id]}
    return msgspec.structs.replace(
        state,
        children={**state.children, child_id: child},
        child_ids_by_parent=ids,
        child_counter=state.child_counter + 1,
    ), event


def _request(state: RouterState, child_id: str, trigger: str) -> tuple[RouterState, str | None]:
    child = state.children.get(child_id)
    if child is None:
        return state, f"unknown child {child_id}"
    if child.order.status not in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
        return state, f"{child_id} is {child.order.status.value}: cannot {trigger}"
    target = PENDING_TRANSITIONS.get((child.pending, trigger))
    if target is None:
        return state, f"{child_id} is {child.pending.value}: cannot {trigger}"
    updated = msgspec.structs.replace(child, pending=target)
    return msgspec.structs.replace(state, children={**state.children, child_id: updated}), None


def request_cancel(state: RouterState, child_id: str) -> tuple[RouterState, str | None]:
    """Mark a cancel in flight; returns a refusal reason instead when not allowed."""
    return _request(state, child_id, "request_cancel")


def request_replace(state: RouterState, child_id: str) -> tuple[RouterState, str | None]:
    return _request(state, child_id, "request_replace")


def _order_event(msg: VenueMessage, order: Order) -> OrderEvent | None:
    oid, ts = msg.order_id, msg.ts_ns
    match msg.kind:
        case "ack":
            return OrderAccepted(ts_ns=ts, order_id=oid)
        case "reject":
            return OrderRejected(ts_ns=ts, order_id=oid, reason=msg.reason)
        case "cancelled":
            return OrderCancelled(ts_ns=ts, order_id=oid, reason=msg.reason)
        case "expired":
            return OrderExpired(ts_ns=ts, order_id=oid, reason=msg.reason)
        case "replaced":
            return replaced_event(msg, order)
        case "fill":
            return OrderFilled(
                ts_ns=ts,
                order_id=oid,
                instrument_id=order.instrument_id,
                side=order.side,
                fill_qty_raw=msg.qty_raw,
                fill_px_raw=msg.px_raw,
                leaves_qty_raw=order.leaves_qty_raw - msg.qty_raw,
                notional_minor=0,
                commission_minor=0,
                currency="",
            )
    return None


def replaced_event(msg: VenueMessage, order: Order) -> OrderReplaced:
    """A "replaced" message as ``OrderReplaced``: ``qty_raw`` the new total; ``px_raw`` the new
    limit of a limit order (0: unchanged); a market order stays at limit 0."""
    limit = msg.px_raw if order.order_type == "limit" and msg.px_raw else order.limit_px_raw
    return OrderReplaced(
        ts_ns=msg.ts_ns,
        order_id=msg.order_id,
        qty_raw=msg.qty_raw,
        prev_qty_raw=order.qty_raw,
        limit_px_raw=limit,
        reason=msg.reason,
    )


def _apply_one(state: RouterState, msg: VenueMessage) -> tuple[RouterState, OrderEvent | None, GuardReport]:
    child = state.children.get(msg.order_id)
    if child is None or msg.kind not in VENUE_KINDS:
        return (
            state,
            None,
            _report(msg, "unknown_order", "no such child" if child is None else "unknown kind"),
        )
    event = _order_event(msg, child.order)
    if msg.kind == "replaced" and child.order.is_open:
        growth = msg.qty_raw - child.order.qty_raw
        free = parent_unallocated_raw(state, child.parent_id)
        if growth > free:
            why = f"replace to {msg.qty_raw} needs {growth} more than the parent's unallocated {free}"
            return state, None, _report(msg, "overfill", why)
    pending = child.pending
    if msg.kind in ("cancel_rejected", "replaced", "replace_rejected"):  # answers to our requests
        target = PENDING_TRANSITIONS.get((child.pending, msg.kind))
        if target is None or not child.order.is_open:
            why = f"{msg.kind} while {child.pending.value}/{child.order.status.value}"
            return state, None, _report(msg, "illegal", why)
        pending = target
    if event is None:
        updated = msgspec.structs.replace(child, pending=pending)
    else:
        try:
            order = evolve(child.order, event)
        except IllegalTransition as error:
            return state, None, _report(msg, "illegal", str(error))
        except ValueError as error:
            return state, None, _report(msg, "overfill", str(error))
        pending = Pending.NONE if not order.is_open else pending
        updated = msgspec.structs.replace(child, order=order, pending=pending)
    return (
        msgspec.structs.replace(state, children={**state.children, msg.order_id: updated}),
        event,
        _report(msg, "applied"),
    )


def apply_venue_message(
    state: RouterState, msg: VenueMessage
) -> tuple[RouterState, list[OrderEvent], list[GuardReport]]:
    """Guard, then apply every message now in sequence. Returns the order events to journal and a
    report per message touched (applied or refused)."""
    guard, ready, report = guard_accept(state.guard, msg)
    state = msgspec.structs.replace(state, guard=guard)
    events: list[OrderEvent] = []
    reports = [report] if report is not None else []
    for message in ready:
        state, event, outcome = _apply_one(state, message)
        reports.append(outcome)
        if event is not None and outcome.outcome == "applied":
            events.append(event)
    return state, events, reports
