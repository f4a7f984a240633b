"""Random interleavings of venue acks, partial fills, cancels, rejects, replaces, duplicates and
reordered deliveries, through the router's sequence guard: no illegal state, no child overfilled,
parent filled = sum of child fills, and no venue sequence applied twice."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from domain.events import OrderReplaced
from domain.execution import (
    ChildOrder,
    ParentOrder,
    Pending,
    RouterState,
    VenueMessage,
    add_parent,
    apply_venue_message,
    child_filled_raw,
    parent_filled_raw,
    parent_unallocated_raw,
    request_cancel,
    request_replace,
    submit_child,
)
from domain.orders import ORDER_TRANSITIONS, TERMINAL_STATUSES, OrderStatus

KINDS = ["ack", "reject", "fill", "fill", "fill", "cancelled", "expired", "cancel_rejected", "replaced"]


def _venue_choice(child: ChildOrder, choice: int, qty: int) -> tuple[str, int]:
    """A message a venue could send for the child as the venue sees it (late fills after a
    terminal state included: the classic cancel/fill race, which the router must refuse)."""
    order = child.order
    if order.status is OrderStatus.SUBMITTED:
        return ("reject", 0) if choice % 5 == 0 else ("ack", 0)
    if not order.is_open:
        return "fill", qty
    if child.pending is Pending.CANCEL and choice % 3 == 0:
        return ("cancel_rejected", 0) if choice % 2 else ("cancelled", 0)
    if child.pending is Pending.REPLACE and choice % 3 == 0:
        return ("replaced", order.filled_qty_raw + 1 + qty) if choice % 2 else ("replace_rejected", 0)
    if choice % 7 == 0:
        return ("expired", 0) if choice % 2 else ("cancelled", 0)
    return "fill", 1 + qty % order.leaves_qty_raw


class RouterMachine(RuleBasedStateMachine):
    """``self.venue`` is the venue's own view: every message in venue order, exactly once. The
    router under test (``self.state``) gets them reordered and duplicated through its guard."""

    children = Bundle("children")

    def __init__(self) -> None:
        super().__init__()
        self.state = RouterState()
        self.venue = RouterState()
        self.parents = 0
        self.venue_seq = 0
        self.sent: list[VenueMessage] = []
        self.undelivered: list[VenueMessage] = []
        self.applied: list[int] = []
        self.refused = 0
        self.replaced = 0

    @rule(qty=st.integers(1, 2_000))
    def new_parent(self, qty: int) -> None:
        parent = ParentOrder(
            parent_id=f"P{self.parents}", strategy_id="s", instrument_id=1, side=1, qty_raw=qty,
            decision_px_raw=100, algo="twap",
        )  # fmt: skip
        self.parents += 1
        self.state = add_parent(self.state, parent)
        self.venue = add_parent(self.venue, parent)

    @rule(target=children, pick=st.integers(0, 10**6), share=st.integers(1, 100))
    def submit(self, pick: int, share: int) -> str:
        open_parents = [p for p in sorted(self.state.parents) if parent_unallocated_raw(self.state, p) > 0]
        if not open_parents:
            return "none"
        parent_id = open_parents[pick % len(open_parents)]
        qty = max(1, parent_unallocated_raw(self.state, parent_id) * share // 100)
        self.state, event = submit_child(self.state, parent_id, qty, ts_ns=0)
        self.venue, _ = submit_child(self.venue, parent_id, qty, ts_ns=0)
        return event.order_id

    @rule(child=children, choice=st.integers(0, 10**6), qty=st.integers(0, 800))
    def venue_acts(self, child: str, choice: int, qty: int) -> None:
        if child not in self.venue.children:
            return
        kind, amount = _venue_choice(self.venue.children[child], choice, qty)
        self._emit(VenueMessage(venue_seq=self.venue_seq + 1, ts_ns=self.venue_seq, order_id=child, kind=kind,
                                qty_raw=amount, px_raw=100))  # fmt: skip

    @rule(
        moves=st.lists(
            st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 800)), max_size=12
        )
    )
    def venue_burst(self, moves: list[tuple[int, int, int]]) -> None:
        """Several legal venue moves across the children in one step (keeps runs busy)."""
        for pick, choice, qty in moves:
            if self.venue.children:
                child = sorted(self.venue.children)[pick % len(self.venue.children)]
                self.venue_acts(child, choice, qty)

    @rule(picks=st.lists(st.integers(0, 10**6), max_size=12))
    def deliver_many(self, picks: list[int]) -> None:
        for pick in picks:
            self.deliver_any(pick)

    @rule(child=children, kind=st.sampled_from(KINDS), qty=st.integers(1, 800))
    def venue_noise(self, child: str, kind: str, qty: int) -> None:
        """Anything at all, legal or not."""
        self._emit(VenueMessage(venue_seq=self.venue_seq + 1, ts_ns=self.venue_seq, order_id=child, kind=kind,
                                qty_raw=qty, px_raw=100))  # fmt: skip

    def _emit(self, message: VenueMessage) -> None:
        self.venue_seq += 1
        self.venue, _, _ = apply_venue_message(self.venue, message)
        self.sent.append(message)
        self.undelivered.append(message)

    @rule(child=children, cancel=st.booleans())
    def request(self, child: str, cancel: bool) -> None:
        """Requests go to both views only while nothing is in flight, so both see the same child."""
        if child in self.state.children and not self.undelivered:
            action = request_cancel if cancel else request_replace
            self.state, refusal = action(self.state, child)
            self.venue, refusal_venue = action(self.venue, child)
            assert refusal == refusal_venue

    @rule(pick=st.integers(0, 10**6))
    def deliver_any(self, pick: int) -> None:
        """Deliver one pending message, not necessarily the oldest (reordering)."""
        if self.undelivered:
            self._deliver(self.undelivered.pop(pick % len(self.undelivered)))

    @rule(pick=st.integers(0, 10**6))
    def deliver_duplicate(self, pick: int) -> None:
        delivered = [m for m in self.sent if m not in self.undelivered]
        if delivered:
            self._deliver(delivered[pick % len(delivered)])

    def _deliver(self, message: VenueMessage) -> None:
        self.state, events, reports = apply_venue_message(self.state, message)
        applied = [r.venue_seq for r in reports if r.outcome == "applied"]
        self.applied.extend(applied)
        self.refused += sum(r.outcome in ("illegal", "overfill", "unknown_order") for r in reports)
        assert len(events) <= len(applied)
        for event in events:  # an applied replace is journaled as OrderReplaced, above the fill
            if isinstance(event, OrderReplaced):
                self.replaced += 1
                assert event.qty_raw > self.state.children[event.order_id].order.filled_qty_raw or (
                    not self.state.children[event.order_id].order.is_open
                )

    @invariant()
    def no_sequence_applied_twice(self) -> None:
        assert len(self.applied) == len(set(self.applied))

    @invariant()
    def guard_applies_in_sequence(self) -> None:
        assert self.applied == sorted(self.applied)

    @invariant()
    def once_all_delivered_the_router_matches_the_venue(self) -> None:
        if not self.undelivered:
            assert self.state.children == self.venue.children

    @invariant()
    def children_in_legal_states_and_never_overfilled(self) -> None:
        reachable = {OrderStatus.SUBMITTED} | set(ORDER_TRANSITIONS.values())
        for child in self.state.children.values():
            order = child.order
            assert order.status in reachable
            assert 0 <= order.filled_qty_raw <= order.qty_raw
            if order.status is OrderStatus.FILLED:
                assert order.filled_qty_raw == order.qty_raw
            if order.status in TERMINAL_STATUSES:
                assert child.pending is Pending.NONE

    @invariant()
    def parent_is_the_sum_of_its_children(self) -> None:
        for parent_id, parent in self.state.parents.items():
            filled = parent_filled_raw(self.state, parent_id)
            assert filled == sum(child_filled_raw(self.state, parent_id))
            assert filled <= parent.qty_raw
            assert parent_unallocated_raw(self.state, parent_id) >= 0


RouterMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=80, deadline=None)
TestRouterMachine = RouterMachine.TestCase


def _drive(order: list[int], duplicates: list[int]) -> RouterState:
    state = add_parent(
        RouterState(),
        ParentOrder(
            parent_id="P",
            strategy_id="s",
            instrument_id=1,
            side=1,
            qty_raw=1_000,
            decision_px_raw=1,
            algo="pov",
        ),
    )
    state, _ = submit_child(state, "P", 1_000, ts_ns=0)
    script = [("ack", 0), ("fill", 100), ("fill", 300), ("fill", 50), ("cancelled", 0)]
    messages = [
        VenueMessage(venue_seq=i + 1, ts_ns=i, order_id="P-C0", kind=k, qty_raw=q, px_raw=1)
        for i, (k, q) in enumerate(script)
    ]
    for index in order + duplicates:
        state, _, _ = apply_venue_message(state, messages[index % len(messages)])
    return state


@settings(max_examples=200, deadline=None)
@given(st.permutations(range(5)), st.lists(st.integers(0, 4), max_size=6))
def test_any_delivery_order_with_duplicates_ends_like_in_order(
    order: list[int], duplicates: list[int]
) -> None:
    in_order = _drive([0, 1, 2, 3, 4], [])
    shuffled = _drive(list(order), duplicates)
    assert shuffled.children == in_order.children
    child = shuffled.children["P-C0"].order
    assert (child.status, child.filled_qty_raw) == (OrderStatus.CANCELLED, 450)
