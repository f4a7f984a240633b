"""Only legal order transitions occur: random venue event streams (replaces included) either fold
through the transition table or are refused, and filled quantity never exceeds the order quantity
(a replace never goes at or below what is filled)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain.events import (
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
)
from domain.orders import (
    ORDER_TRANSITIONS,
    IllegalTransition,
    Order,
    OrderStatus,
    evolve,
    new_order,
    trigger_of,
)

QTY = 1_000
steps = st.lists(
    st.one_of(
        st.just("accept"),
        st.just("reject"),
        st.just("cancel"),
        st.just("expire"),
        st.integers(1, 600).map(lambda qty: ("fill", qty)),
        st.integers(1, 1_500).map(lambda qty: ("replace", qty)),
    ),
    max_size=12,
)


def _event(
    step: object, order: Order
) -> OrderAccepted | OrderRejected | OrderCancelled | OrderExpired | OrderFilled | OrderReplaced:
    oid = order.order_id
    if step == "accept":
        return OrderAccepted(ts_ns=1, order_id=oid)
    if step == "reject":
        return OrderRejected(ts_ns=1, order_id=oid, reason="x")
    if step == "cancel":
        return OrderCancelled(ts_ns=1, order_id=oid, reason="x")
    if step == "expire":
        return OrderExpired(ts_ns=1, order_id=oid)
    assert isinstance(step, tuple)
    qty = step[1]
    if step[0] == "replace":
        return OrderReplaced(ts_ns=1, order_id=oid, qty_raw=qty, prev_qty_raw=order.qty_raw, limit_px_raw=0)
    return OrderFilled(
        ts_ns=1,
        order_id=oid,
        instrument_id=1,
        side=1,
        fill_qty_raw=qty,
        fill_px_raw=1,
        leaves_qty_raw=order.leaves_qty_raw - qty,
        notional_minor=qty,
        commission_minor=0,
        currency="USD",
    )


@given(steps)
def test_random_event_streams_only_take_legal_transitions(stream: list[object]) -> None:
    order = new_order(
        OrderSubmitted(
            ts_ns=0,
            order_id="o",
            strategy_id="s",
            instrument_id=1,
            side=1,
            order_type="market",
            qty_raw=QTY,
            limit_px_raw=0,
            decision_px_raw=1,
        )
    )
    for step in stream:
        event = _event(step, order)
        legal = (order.status, trigger_of(event)) in ORDER_TRANSITIONS
        overfill = (isinstance(event, OrderFilled) and event.fill_qty_raw > order.leaves_qty_raw) or (
            isinstance(event, OrderReplaced) and event.qty_raw <= order.filled_qty_raw
        )
        try:
            after = evolve(order, event)
        except IllegalTransition:
            assert not legal
            continue
        except ValueError:
            assert overfill
            continue
        assert legal
        assert not overfill
        assert after.status is ORDER_TRANSITIONS[(order.status, trigger_of(event))]
        assert 0 <= after.filled_qty_raw <= after.qty_raw
        if after.status is OrderStatus.FILLED:
            assert after.filled_qty_raw == after.qty_raw
        if isinstance(event, OrderReplaced):
            assert (after.status, after.qty_raw) == (order.status, event.qty_raw)
            assert after.filled_qty_raw == order.filled_qty_raw < after.qty_raw
        order = after
