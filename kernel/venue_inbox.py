"""Messages of an asynchronous venue, into the kernel through the venue sequence guard.

A venue that answers later (``kernel.venue.AsyncVenuePort``: paper, live, a recorded session)
delivers numbered ``VenueMessage``s, possibly duplicated, late or out of order. At each step the
kernel visits for it, the inbox:

1. journals every message as received (``VenueMessageReceived``, an INPUT event: replay reads
   these back from the journal and never asks the venue);
2. passes it through ``domain.execution.guard_accept``: a sequence already seen is a
   ``duplicate``, one past a gap is held (``overflow`` when ``pending_max`` are already held),
   the next expected one is applied together with the held ones it releases;
3. applies each message in sequence as the usual order event (``OrderAccepted``,
   ``OrderRejected``, ``OrderFilled`` with its ledger postings, ``OrderCancelled``,
   ``OrderExpired``, ``OrderReplaced``) through ``domain.orders.evolve`` — or, when the order's
   state does not allow it, journals ``VenueMessageRefused`` (``illegal``, ``overfill``,
   ``unknown_order``) and changes nothing. A ``cancel_rejected`` answers a cancel the desk
   requested (``OrderCancelRequested``, a venue asked to cancel): it ends the request. A
   ``sent`` (the edge's note of when it sent the order) restamps the order's
   ``submitted_ts_ns``, so the answer's latency is the round trip from the send. A ``fee``
   (the venue took its fee for the order's next fill out of the asset bought: ``qty_raw`` of
   it at ``px_raw``, the fill's price) is ``FeeTakenInKind``: the position shrinks by the
   quantity, booked as commission at its value; the order does not change. Only a crypto
   spot holding pays fees in kind.

Refused and held messages are never applied twice: the guard's next sequence number and held
messages are kernel state (``KernelSnapshot.venue_guard``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import msgspec

from domain.events import (
    FeeTakenInKind,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    VenueMessage,
    VenueMessageReceived,
    VenueMessageRefused,
)
from domain.execution import SequenceGuard, guard_accept, replaced_event
from domain.fixed import Rounding
from domain.instruments import notional_minor
from domain.market import Panel
from domain.orders import IllegalTransition, Order, OrderEvent, evolve
from domain.riskrules import RuleVerdict
from kernel.desk import OrderDesk
from kernel.pipeline import OrderIntent
from kernel.venue import NO_ACTIVITY, AsyncVenuePort, VenuePort

__all__ = ["FEE_IN_KIND_CLASSES", "VenueInbox", "defer_working"]

FEE_IN_KIND_CLASSES = frozenset({"crypto_spot"})
"""Holdings a venue may take its fee out of (a crypto spot asset bought; no T+1 book, no
day-trade count, no futures settlement to keep in step)."""


class _Refused(Exception):
    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


class VenueInbox:
    """One kernel's asynchronous venue session. Build it with ``attach``."""

    def __init__(
        self,
        desk: OrderDesk,
        panel: Panel,
        venue: AsyncVenuePort,
        replayed: Sequence[VenueMessageReceived] | None,
    ) -> None:
        self._desk = desk
        self._panel = panel
        self._venue = venue
        self._replayed: dict[int, list[VenueMessage]] | None = None
        self._replayed_steps: list[int] = []
        if replayed is not None:
            grouped: dict[int, list[VenueMessage]] = {}
            for received in replayed:
                grouped.setdefault(received.step, []).append(received.message)
            self._replayed = grouped
            self._replayed_steps = sorted(grouped)
        state = desk.state
        if state.venue_guard is None:
            state.venue_guard = SequenceGuard(pending_max=venue.pending_max)
        else:  # restored from a snapshot, which does not hold the venue's bound
            state.venue_guard = msgspec.structs.replace(state.venue_guard, pending_max=venue.pending_max)

    @classmethod
    def attach(
        cls,
        desk: OrderDesk,
        panel: Panel,
        venue: VenuePort,
        replayed: Sequence[VenueMessageReceived] | None,
        *,
        router: bool,
    ) -> VenueInbox | None:
        """The inbox of an asynchronous venue, None for a synchronous one. ``replayed``: the
        journaled messages a replay delivers instead of asking the venue."""
        if not isinstance(venue, AsyncVenuePort):
            if replayed:
                raise ValueError(
                    f"the journal holds {len(replayed)} received venue messages, but this venue is "
                    "synchronous; replay it with the asynchronous venue it was run with"
                )
            return None
        if venue.pending_max < 0:
            raise ValueError(f"venue pending_max must not be negative, got {venue.pending_max}")
        if router:
            raise ValueError(
                "the execution router works with a synchronous venue only; use [execution] "
                'algo = "market" with an asynchronous venue'
            )
        return cls(desk, panel, venue, replayed)

    def go_live(self) -> None:
        """After a resumed session re-derived its journal from the journaled messages: from
        now on the venue's own messages come in (and are journaled)."""
        self._replayed = None
        self._replayed_steps = []

    # --- when -------------------------------------------------------------------------------

    def next_step(self, step: int) -> int:
        """The first step after ``step`` at which messages arrive."""
        if self._replayed is None:
            return self._venue.next_poll_step(step)
        index = bisect_right(self._replayed_steps, step)
        return self._replayed_steps[index] if index < len(self._replayed_steps) else NO_ACTIVITY

    # --- delivery ---------------------------------------------------------------------------

    def deliver(self, step: int) -> None:
        ts_ns = int(self._panel.ts_ns[step])
        if self._replayed is None:
            messages = self._venue.poll(step)
            for message in messages:
                if not isinstance(message, VenueMessage):
                    raise TypeError(f"venue delivered {type(message).__name__}, not a VenueMessage")
        else:
            messages = self._replayed.get(step, [])
        for message in messages:
            if self._replayed is None:
                self._desk.journal(VenueMessageReceived(ts_ns=ts_ns, step=step, message=message))
            self._receive(step, ts_ns, message)

    def _receive(self, step: int, ts_ns: int, message: VenueMessage) -> None:
        state = self._desk.state
        assert state.venue_guard is not None
        guard, ready, report = guard_accept(state.venue_guard, message)
        state.venue_guard = guard
        if report is not None and report.outcome != "buffered":
            self._refuse(ts_ns, message, report.outcome, report.detail)
        for msg in ready:
            try:
                self._apply(step, ts_ns, msg)
            except _Refused as refused:
                self._refuse(ts_ns, msg, refused.outcome, refused.detail)

    def _refuse(self, ts_ns: int, message: VenueMessage, outcome: str, detail: str) -> None:
        self._desk.journal(
            VenueMessageRefused(
                ts_ns=ts_ns,
                venue_seq=message.venue_seq,
                order_id=message.order_id,
                message_kind=message.kind,
                outcome=outcome,
                detail=detail,
            )
        )

    def _apply(self, step: int, ts_ns: int, msg: VenueMessage) -> None:
        """One message in sequence: as an order event through the transition table, or refused."""
        desk = self._desk
        order = desk.state.open_orders.get(msg.order_id)
        if order is None:
            raise _Refused("unknown_order", f"no open order {msg.order_id} (never sent, or already closed)")
        if msg.kind == "sent":
            # The edge's note of when the order left for the venue: its answer's latency (the
            # kill switch's, on the ack or reject) is measured from there, not from the step.
            desk.state.open_orders[msg.order_id] = msgspec.structs.replace(order, submitted_ts_ns=msg.ts_ns)
            return
        if msg.kind == "fee":
            desk.apply_fee_in_kind(self._fee(ts_ns, msg, order))
            return
        if msg.kind == "cancel_rejected" and msg.order_id in desk.state.cancel_requested:
            # The venue would not cancel (the order filled meanwhile, or is closing): the request
            # ends; the order stays as the venue's other messages leave it.
            desk.state.cancel_requested.discard(msg.order_id)
            return
        event = self._event(ts_ns, msg, order)
        try:
            after = evolve(order, event)
        except IllegalTransition as error:
            raise _Refused("illegal", str(error)) from None
        except ValueError as error:
            raise _Refused("overfill", str(error)) from None
        if isinstance(event, OrderFilled):
            desk.apply_fill(event, int(self._panel.day[step]))
        else:
            # The kill switch sees an ack or a reject once applied (a trip then cancels it too).
            latency = msg.ts_ns - order.submitted_ts_ns if msg.kind in ("ack", "reject") else None
            desk.apply_venue_event(step, order, event, after, latency)
        if not after.is_open:
            desk.state.cancel_requested.discard(msg.order_id)

    def _event(self, ts_ns: int, msg: VenueMessage, order: Order) -> OrderEvent:
        oid = msg.order_id
        match msg.kind:
            case "ack":
                return OrderAccepted(ts_ns=ts_ns, order_id=oid)
            case "reject":
                return OrderRejected(ts_ns=ts_ns, order_id=oid, reason=msg.reason)
            case "cancelled":
                return OrderCancelled(ts_ns=ts_ns, order_id=oid, reason=msg.reason)
            case "expired":
                return OrderExpired(ts_ns=ts_ns, order_id=oid, reason=msg.reason)
            case "replaced":
                return msgspec.structs.replace(replaced_event(msg, order), ts_ns=ts_ns)
            case "fill":
                return self._fill(ts_ns, msg, order)
            case "cancel_rejected" | "replace_rejected":
                raise _Refused("illegal", f"{msg.kind}: no request of this kernel is in flight")
        raise _Refused("illegal", f"unknown venue message kind {msg.kind!r}")

    def _fee(self, ts_ns: int, msg: VenueMessage, order: Order) -> FeeTakenInKind:
        instrument = self._desk.instruments[order.instrument_id]
        if instrument.asset_class not in FEE_IN_KIND_CLASSES:
            raise _Refused("illegal", f"a fee in kind on {instrument.symbol} ({instrument.asset_class})")
        if msg.qty_raw <= 0 or msg.px_raw <= 0:
            raise _Refused("illegal", f"a fee in kind needs qty > 0, px > 0: {msg.qty_raw} @ {msg.px_raw}")
        return FeeTakenInKind(
            ts_ns=ts_ns,
            order_id=order.order_id,
            instrument_id=order.instrument_id,
            qty_raw=msg.qty_raw,
            px_raw=msg.px_raw,
            value_minor=notional_minor(instrument, msg.qty_raw, msg.px_raw, Rounding.HALF_EVEN),
            currency=instrument.currency,
        )

    def _fill(self, ts_ns: int, msg: VenueMessage, order: Order) -> OrderFilled:
        if msg.qty_raw <= 0 or msg.px_raw <= 0 or msg.commission_minor < 0:
            detail = (
                f"fill needs qty > 0, px > 0, commission >= 0: "
                f"{msg.qty_raw} @ {msg.px_raw}, commission {msg.commission_minor}"
            )
            raise _Refused("illegal", detail)
        instrument = self._desk.instruments[order.instrument_id]
        return OrderFilled(
            ts_ns=ts_ns,
            order_id=order.order_id,
            instrument_id=order.instrument_id,
            side=order.side,
            fill_qty_raw=msg.qty_raw,
            fill_px_raw=msg.px_raw,
            leaves_qty_raw=order.leaves_qty_raw - msg.qty_raw,
            notional_minor=notional_minor(instrument, msg.qty_raw, msg.px_raw, Rounding.HALF_EVEN),
            commission_minor=msg.commission_minor,
            currency=instrument.currency,
        )


def defer_working(
    intents: list[OrderIntent], open_orders: dict[str, Order]
) -> tuple[list[OrderIntent], list[RuleVerdict]]:
    """A venue asked to cancel answers later: a decision's order for a name that still has a
    working order (its cancel in flight, or an answer not in yet) waits for the next decision,
    so a fill that crosses the cancel cannot double the position. The withheld names are one
    ``working_order`` verdict (``deferred``)."""
    working = {order.instrument_id for order in open_orders.values()}
    held = sorted({intent.instrument_id for intent in intents if intent.instrument_id in working})
    if not held:
        return intents, []
    kept = [intent for intent in intents if intent.instrument_id not in working]
    verdict = RuleVerdict(
        rule="working_order",
        action="deferred",
        unit="orders",
        limit=0,
        observed=len(intents),
        observed_after=len(kept),
        instrument_ids=held,
        detail="an order of these names is still working at the venue (a cancel is in flight)",
    )
    return kept, [verdict]
