"""Router: children under parents, sequence guard (duplicates, gaps, reordering), pending states."""

import pytest

from domain.execution import (
    ParentOrder,
    Pending,
    RouterState,
    VenueMessage,
    add_parent,
    apply_venue_message,
    parent_filled_raw,
    parent_unallocated_raw,
    request_cancel,
    request_replace,
    submit_child,
)
from domain.orders import OrderStatus

PARENT = ParentOrder(
    parent_id="P1", strategy_id="s", instrument_id=1, side=1, qty_raw=1_000, decision_px_raw=100, algo="twap"
)


def msg(seq: int, oid: str, kind: str, qty: int = 0) -> VenueMessage:
    return VenueMessage(venue_seq=seq, ts_ns=seq, order_id=oid, kind=kind, qty_raw=qty, px_raw=100)


def setup() -> RouterState:
    state = add_parent(RouterState(), PARENT)
    state, event = submit_child(state, "P1", 600, ts_ns=0)
    assert event.order_id == "P1-C0"
    return state


def test_in_order_ack_and_fills_roll_up_to_the_parent() -> None:
    state = setup()
    for m in (msg(1, "P1-C0", "ack"), msg(2, "P1-C0", "fill", 200), msg(3, "P1-C0", "fill", 400)):
        state, events, reports = apply_venue_message(state, m)
        assert [r.outcome for r in reports] == ["applied"]
        assert len(events) == 1
    assert state.children["P1-C0"].order.status is OrderStatus.FILLED
    assert parent_filled_raw(state, "P1") == 600
    assert parent_unallocated_raw(state, "P1") == 400


def test_duplicate_is_reported_and_not_applied_twice() -> None:
    state = setup()
    state, _, _ = apply_venue_message(state, msg(1, "P1-C0", "ack"))
    state, _, _ = apply_venue_message(state, msg(2, "P1-C0", "fill", 100))
    state, events, reports = apply_venue_message(state, msg(2, "P1-C0", "fill", 100))
    assert events == []
    assert [r.outcome for r in reports] == ["duplicate"]
    assert state.children["P1-C0"].order.filled_qty_raw == 100


def test_out_of_order_is_held_until_the_gap_fills() -> None:
    state = setup()
    state, events, reports = apply_venue_message(state, msg(2, "P1-C0", "fill", 100))
    assert (events, [r.outcome for r in reports]) == ([], ["buffered"])
    state, events, reports = apply_venue_message(state, msg(2, "P1-C0", "fill", 100))
    assert [r.outcome for r in reports] == ["duplicate"]  # a held sequence counts as seen
    state, events, reports = apply_venue_message(state, msg(1, "P1-C0", "ack"))
    assert [r.outcome for r in reports] == ["applied", "applied"]
    assert state.children["P1-C0"].order.filled_qty_raw == 100


def test_illegal_and_overfill_are_reported_and_leave_the_child() -> None:
    state = setup()
    state, _, reports = apply_venue_message(state, msg(1, "P1-C0", "fill", 100))  # before ack
    assert reports[0].outcome == "illegal"
    state, _, _ = apply_venue_message(state, msg(2, "P1-C0", "ack"))
    state, _, reports = apply_venue_message(state, msg(3, "P1-C0", "fill", 700))
    assert reports[0].outcome == "overfill"
    state, _, reports = apply_venue_message(state, msg(4, "nope", "ack"))
    assert reports[0].outcome == "unknown_order"
    assert state.children["P1-C0"].order.filled_qty_raw == 0
    assert state.children["P1-C0"].order.status is OrderStatus.ACCEPTED


def test_cancel_pending_then_cancelled_frees_parent_quantity() -> None:
    state = setup()
    state, refusal = request_cancel(state, "P1-C0")
    assert refusal is not None  # not yet accepted
    state, _, _ = apply_venue_message(state, msg(1, "P1-C0", "ack"))
    state, _, _ = apply_venue_message(state, msg(2, "P1-C0", "fill", 100))
    state, refusal = request_cancel(state, "P1-C0")
    assert refusal is None
    assert state.children["P1-C0"].pending is Pending.CANCEL
    _, refusal = request_replace(state, "P1-C0")
    assert refusal is not None and "pending_cancel" in refusal
    state, _, _ = apply_venue_message(state, msg(3, "P1-C0", "cancelled"))
    child = state.children["P1-C0"]
    assert (child.order.status, child.pending) == (OrderStatus.CANCELLED, Pending.NONE)
    assert parent_unallocated_raw(state, "P1") == 900


def test_replace_changes_quantity_only_when_pending() -> None:
    state = setup()
    state, _, _ = apply_venue_message(state, msg(1, "P1-C0", "ack"))
    state, _, reports = apply_venue_message(state, msg(2, "P1-C0", "replaced", 300))
    assert reports[0].outcome == "illegal"
    state, _ = request_replace(state, "P1-C0")
    state, _, reports = apply_venue_message(state, msg(3, "P1-C0", "replaced", 300))
    assert reports[0].outcome == "applied"
    assert state.children["P1-C0"].order.qty_raw == 300
    assert parent_unallocated_raw(state, "P1") == 700


def test_child_cannot_exceed_unallocated_parent() -> None:
    state = setup()
    with pytest.raises(ValueError, match=r"outside \(0, 400\]"):
        submit_child(state, "P1", 500, ts_ns=1)
