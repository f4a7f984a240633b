import pytest

from domain.events import (
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
)
from domain.orders import (
    ORDER_TRANSITIONS,
    TERMINAL_STATUSES,
    IllegalTransition,
    OrderStatus,
    new_order,
    replay_order,
)


def test_terminal_states_have_no_exits() -> None:
    for source, _trigger in ORDER_TRANSITIONS:
        assert source not in TERMINAL_STATUSES


def test_every_state_is_reachable_from_submitted() -> None:
    reached = {OrderStatus.SUBMITTED}
    frontier = [OrderStatus.SUBMITTED]
    while frontier:
        state = frontier.pop()
        for (source, _), target in ORDER_TRANSITIONS.items():
            if source == state and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(OrderStatus)


def _submitted(qty: int = 100) -> OrderSubmitted:
    return OrderSubmitted(
        ts_ns=1,
        order_id="s-1",
        strategy_id="s",
        instrument_id=1,
        side=1,
        order_type="market",
        qty_raw=qty,
        limit_px_raw=0,
        decision_px_raw=100,
    )


def _fill(qty: int, leaves: int) -> OrderFilled:
    return OrderFilled(
        ts_ns=2,
        order_id="s-1",
        instrument_id=1,
        side=1,
        fill_qty_raw=qty,
        fill_px_raw=100,
        leaves_qty_raw=leaves,
        notional_minor=qty * 100,
        commission_minor=0,
        currency="USD",
    )


def test_partial_then_full_fill() -> None:
    order = replay_order(_submitted(), [OrderAccepted(ts_ns=1, order_id="s-1"), _fill(40, 60), _fill(60, 0)])
    assert order.status is OrderStatus.FILLED
    assert order.filled_qty_raw == 100


def test_fill_after_cancel_is_illegal() -> None:
    events = [
        OrderAccepted(ts_ns=1, order_id="s-1"),
        OrderCancelled(ts_ns=2, order_id="s-1", reason="x"),
        _fill(1, 99),
    ]
    with pytest.raises(IllegalTransition, match="cancelled --partial-->"):
        replay_order(_submitted(), events)


def test_fill_before_accept_and_overfill_are_caught() -> None:
    with pytest.raises(IllegalTransition):
        replay_order(_submitted(), [_fill(100, 0)])
    with pytest.raises(ValueError, match="leaves"):
        replay_order(_submitted(), [OrderAccepted(ts_ns=1, order_id="s-1"), _fill(100, 5)])
    with pytest.raises(ValueError, match="overfill"):
        replay_order(_submitted(), [OrderAccepted(ts_ns=1, order_id="s-1"), _fill(150, -50)])
    rejected = replay_order(_submitted(), [OrderRejected(ts_ns=1, order_id="s-1", reason="LOT_SIZE")])
    assert rejected.status is OrderStatus.REJECTED


def test_new_order_validates_input() -> None:
    with pytest.raises(ValueError, match="quantity"):
        new_order(_submitted(qty=0))


def _replaced(qty: int, px: int = 0, prev: int = 100) -> OrderReplaced:
    return OrderReplaced(
        ts_ns=3, order_id="s-1", qty_raw=qty, prev_qty_raw=prev, limit_px_raw=px, reason="amend"
    )


def test_replace_keeps_the_status_and_sets_the_new_total() -> None:
    accepted = OrderAccepted(ts_ns=1, order_id="s-1")
    order = replay_order(_submitted(), [accepted, _replaced(250)])
    assert (order.status, order.qty_raw, order.leaves_qty_raw) == (OrderStatus.ACCEPTED, 250, 250)
    order = replay_order(_submitted(), [accepted, _fill(40, 60), _replaced(50)])
    assert (order.status, order.qty_raw, order.leaves_qty_raw) == (OrderStatus.PARTIALLY_FILLED, 50, 10)
    order = replay_order(_submitted(), [accepted, _fill(40, 60), _replaced(300), _fill(260, 0)])
    assert (order.status, order.filled_qty_raw) == (OrderStatus.FILLED, 300)


def test_replace_at_or_below_the_fill_and_in_closed_states_is_illegal() -> None:
    accepted = OrderAccepted(ts_ns=1, order_id="s-1")
    with pytest.raises(ValueError, match="replace to 40 at or below filled 40"):
        replay_order(_submitted(), [accepted, _fill(40, 60), _replaced(40)])
    with pytest.raises(ValueError, match="at or below filled 40"):
        replay_order(_submitted(), [accepted, _fill(40, 60), _replaced(10)])
    with pytest.raises(IllegalTransition, match="submitted --replace-->"):
        replay_order(_submitted(), [_replaced(200)])
    with pytest.raises(IllegalTransition, match="filled --replace-->"):
        replay_order(_submitted(), [accepted, _fill(100, 0), _replaced(200)])
    with pytest.raises(IllegalTransition, match="cancelled --replace-->"):
        replay_order(
            _submitted(), [accepted, OrderCancelled(ts_ns=2, order_id="s-1", reason="x"), _replaced(200)]
        )
    with pytest.raises(ValueError, match="does not fit a market order"):
        replay_order(_submitted(), [accepted, _replaced(200, px=100)])
    with pytest.raises(ValueError, match="replace of quantity 250, but it is 100"):  # a stale amend
        replay_order(_submitted(), [accepted, _replaced(300, prev=250)])


def test_an_unacknowledged_order_can_be_cancelled() -> None:
    order = replay_order(_submitted(), [OrderCancelled(ts_ns=2, order_id="s-1", reason="superseded")])
    assert order.status is OrderStatus.CANCELLED
