"""Journal checks shared by the execution-router tests: parents, their children and fills."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from domain.events import (
    ChildDeferred,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
    ParentCreated,
    ParentDone,
)
from domain.orders import Order, evolve, new_order


@dataclass
class ParentView:
    created: ParentCreated
    children: list[OrderSubmitted] = field(default_factory=list)
    child_steps: list[int] = field(default_factory=list)  # step each child was sent at
    fills: dict[str, int] = field(default_factory=dict)  # child id -> filled qty
    qty: dict[str, int] = field(default_factory=dict)  # child id -> quantity (after replaces)
    replaced: list[OrderReplaced] = field(default_factory=list)
    deferred: list[ChildDeferred] = field(default_factory=list)
    done: ParentDone | None = None

    @property
    def filled(self) -> int:
        return sum(self.fills.values())


def parent_views(events: Iterable[object], ts_to_step: dict[int, int]) -> dict[str, ParentView]:
    """Fold a journal's events into one view per parent; checks every order transition is legal
    (``domain.orders.evolve`` raises on an illegal one) and that no child names an unknown parent."""
    views: dict[str, ParentView] = {}
    orders: dict[str, Order] = {}
    parent_of: dict[str, str] = {}
    for event in events:
        if isinstance(event, ParentCreated):
            assert event.parent_id not in views, f"parent {event.parent_id} created twice"
            views[event.parent_id] = ParentView(event)
        elif isinstance(event, OrderSubmitted):
            orders[event.order_id] = new_order(event)
            if event.parent_id:
                view = views[event.parent_id]
                assert view.done is None, f"child {event.order_id} after its parent ended"
                view.children.append(event)
                view.child_steps.append(ts_to_step[event.ts_ns])
                view.fills[event.order_id] = 0
                view.qty[event.order_id] = event.qty_raw
                parent_of[event.order_id] = event.parent_id
        elif isinstance(
            event, OrderAccepted | OrderRejected | OrderCancelled | OrderExpired | OrderFilled | OrderReplaced
        ):
            orders[event.order_id] = evolve(orders[event.order_id], event)
            if isinstance(event, OrderFilled) and event.order_id in parent_of:
                views[parent_of[event.order_id]].fills[event.order_id] += event.fill_qty_raw
            if isinstance(event, OrderReplaced) and event.order_id in parent_of:
                view = views[parent_of[event.order_id]]
                assert view.done is None, f"child {event.order_id} replaced after its parent ended"
                view.qty[event.order_id] = event.qty_raw
                view.replaced.append(event)
        elif isinstance(event, ChildDeferred):
            views[event.parent_id].deferred.append(event)
        elif isinstance(event, ParentDone):
            view = views[event.parent_id]
            assert view.done is None
            view.done = event
    return views


def check_parents(views: dict[str, ParentView]) -> None:
    """Parent filled = sum of its children's fills, never above its quantity; children never
    commit more than the parent; a done parent's reason matches its fill."""
    for parent_id, view in views.items():
        qty = view.created.qty_raw
        assert view.filled <= qty, (parent_id, view.filled, qty)
        assert all(view.fills[cid] <= view.qty[cid] for cid in view.fills), (parent_id, view.fills, view.qty)
        assert all(c.parent_id == parent_id for c in view.children)
        assert all(c.side == view.created.side for c in view.children)
        assert all(c.instrument_id == view.created.instrument_id for c in view.children)
        if view.created.slices:
            assert sum(q for _, q in view.created.slices) == qty
        if view.done is not None:
            assert view.done.filled_qty_raw == view.filled, (parent_id, view.done, view.filled)
            assert view.done.children == len(view.children)
            if view.done.reason == "filled":
                assert view.filled == qty
            else:
                assert view.done.reason in ("cancelled", "exhausted"), view.done.reason
                assert view.filled < qty, (parent_id, view.done)
