"""The order desk: the one owner of an order's life and of the ledger postings it causes.

Submission (market rules, the PDT rule, the venue's answer), cancellation, amendment, a forced
close outside the venue (liquidation, option expiry), day-order expiry, fills (positions, fees,
dividend tax at the sale, the A-share sellable book) and every ledger transaction go through
the desk. The kernel's stages — the step loop, the router, liquidation, option expiry, corporate
actions, the asynchronous venue inbox, the kill switch — ask the desk; none of them touches
open orders, positions or balances another way.

Two kinds of listener hear what the desk journals, each attached once while the kernel is
assembled: an ``OrderWatcher`` (the execution router) sees every order event right after it is
journaled, and a ``DeskWatcher`` (the kill switch) hears venue answers and the book going flat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from domain.events import (
    Event,
    FeeTakenInKind,
    LedgerPosted,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderReplaceRejected,
    OrderSubmitted,
    PostingRecord,
)
from domain.instruments import Instrument
from domain.ledger import Position, apply_postings, fee_as_sale, fee_in_kind_postings
from domain.market import Panel
from domain.orders import Order, evolve, new_order
from kernel.futures import FuturesBook
from kernel.markets import MarketRules, is_cn_a_share
from kernel.pdt import PdtGuard
from kernel.state import KernelState
from kernel.venue import CancelRequestPort, VenuePort

__all__ = [
    "DeskWatcher",
    "EventSink",
    "LedgerWatcher",
    "OrderDesk",
    "OrderWatcher",
    "SaleTaxes",
    "leaves_probe",
]


class EventSink(Protocol):
    def append(self, event: Event) -> int: ...


class SaleTaxes(Protocol):
    """Postings a fill owes beyond fees (the A-share dividend tax at the sale), kept by the
    corporate actions' book."""

    def on_fill(self, state: KernelState, day: int, fill: OrderFilled) -> list[PostingRecord]: ...


class OrderWatcher(Protocol):
    """Sees every order event the desk journals, right after it is journaled."""

    def observe(self, event: Event) -> None: ...


class LedgerWatcher(Protocol):
    """Sees each fill before its transaction is posted, and each transaction with the
    instrument it is about (None: not about one instrument)."""

    def on_fill(self, fill: OrderFilled, order: Order) -> None: ...

    def on_posted(self, event: LedgerPosted, about: int | None) -> None: ...


class DeskWatcher(Protocol):
    """Hears what the kill switch watches: venue answers and the book going flat."""

    def on_venue_answer(
        self, step: int, ts_ns: int, instrument_id: int, accepted: bool, latency_ns: int
    ) -> None: ...

    def on_book_flat(self, ts_ns: int) -> None: ...


def leaves_probe(order: Order) -> Order:
    """The order's open quantity as an unfilled order (what the market rules reserve or check)."""
    return msgspec.structs.replace(
        order, qty_raw=order.leaves_qty_raw, filled_qty_raw=0, filled_notional_minor=0
    )


class OrderDesk:
    """Orders, fills and postings of one kernel (module docstring)."""

    def __init__(
        self,
        *,
        state: KernelState,
        sink: EventSink,
        panel: Panel,
        day_end: npt.NDArray[np.bool_],
        instruments: dict[int, Instrument],
        rules: MarketRules,
        venue: VenuePort,
        futures: FuturesBook,
        corporate: SaleTaxes,
        pdt: PdtGuard | None = None,
        equity: Callable[[int], int] | None = None,
        a_share_steps: npt.NDArray[np.int64] | None = None,
    ) -> None:
        self.state = state
        self.instruments = instruments
        self.rules = rules
        self._sink = sink
        self._panel = panel
        self._day_end = day_end
        self._venue = venue
        self._futures = futures
        self._corporate = corporate
        self._pdt = pdt
        self._equity = equity
        # Several markets with A-shares (kernel.markets.next_a_share_steps): per step, the next
        # step with an A-share bar; the A-share instruments whose orders it dates.
        self._a_share_steps = a_share_steps
        self._a_shares = frozenset(iid for iid, inst in instruments.items() if is_cn_a_share(inst))
        if pdt is not None and equity is None:
            raise ValueError("the PDT rule needs the account's equity")
        self._order_watcher: OrderWatcher | None = None
        self._watcher: DeskWatcher | None = None
        self._ledger_watcher: LedgerWatcher | None = None

    # --- assembly ----------------------------------------------------------------------------

    def watch_orders(self, watcher: OrderWatcher) -> None:
        if self._order_watcher is not None:
            raise ValueError("the desk already has an order watcher")
        self._order_watcher = watcher

    def watch_ledger(self, watcher: LedgerWatcher) -> None:
        if self._ledger_watcher is not None:
            raise ValueError("the desk already has a ledger watcher")
        self._ledger_watcher = watcher

    def watch(self, watcher: DeskWatcher) -> None:
        if self._watcher is not None:
            raise ValueError("the desk already has a watcher")
        self._watcher = watcher

    # --- journal -----------------------------------------------------------------------------

    def journal(self, event: Event) -> int:
        """Journal an event (an order event is shown to the order watcher right after)."""
        seq = self._sink.append(event)
        if self._order_watcher is not None:
            self._order_watcher.observe(event)
        return seq

    def post(self, ts_ns: int, memo: str, postings: list[PostingRecord], about: int | None = None) -> None:
        """One balanced ledger transaction, journaled and applied to the balances; ``about``:
        the instrument it concerns (funding, borrow, settlement), for the ledger watcher."""
        state = self.state
        state.txn_counter += 1
        event = LedgerPosted(ts_ns=ts_ns, txn_id=f"T{state.txn_counter:09d}", memo=memo, postings=postings)
        self.journal(event)
        apply_postings(state.balances, postings)
        for posting in postings:  # the snapshot keeps each balance in its own currency
            if posting.currency != state.currency:
                state.account_currency[posting.account] = posting.currency
        if self._ledger_watcher is not None:
            self._ledger_watcher.on_posted(event, about)

    # --- sessions ----------------------------------------------------------------------------

    def session_of_order(self, step: int, instrument_id: int | None = None) -> int:
        """The session an order submitted at ``step`` trades in: an order sent after a
        session's last bar (a decision on the daily close) works in the next session. An
        A-share order (``instrument_id``) in a data set that also holds other markets works in
        the day of the next step with an A-share bar, as the simulated venue dates it
        (``kernel.markets.next_a_share_steps``): its T+1 check and reservation are for that day."""
        if self._a_share_steps is not None and instrument_id in self._a_shares:
            later = int(self._a_share_steps[step])
            if later >= 0:
                return int(self._panel.day[later])
        if self._day_end[step] and step + 1 < self._panel.steps:
            return int(self._panel.day[step + 1])
        return int(self._panel.day[step])

    # --- orders ------------------------------------------------------------------------------

    def next_order_id(self, strategy_id: str, day: int) -> str:
        state = self.state
        state.order_counter += 1
        return f"{strategy_id}-{day}-{state.order_counter:06d}"

    def submit(
        self,
        step: int,
        ts_ns: int,
        sid: str,
        iid: int,
        side: int,
        qty: int,
        px: int,
        parent_id: str = "",
        limit_px: int = 0,
    ) -> None:
        """Journal an order, check it against the market rules and the PDT rule, send it."""
        state = self.state
        submitted = OrderSubmitted(
            ts_ns=ts_ns,
            order_id=self.next_order_id(sid, int(self._panel.day[step])),
            strategy_id=sid,
            instrument_id=iid,
            side=side,
            order_type="limit" if limit_px else "market",
            qty_raw=qty,
            limit_px_raw=limit_px,
            decision_px_raw=px,
            parent_id=parent_id,
        )
        self.journal(submitted)
        order = new_order(submitted)
        live_day = self.session_of_order(step, iid)
        reason = self.rules.check(state.sellable, live_day, order)
        if not reason and self._pdt is not None:
            assert self._equity is not None
            held = state.positions.get(iid, Position()).qty_raw
            equity = self._equity
            reason = self._pdt.check(state.day_trades, live_day, order, held, lambda: equity(step))
        ack: OrderAccepted | OrderRejected | None
        if reason:
            ack = OrderRejected(ts_ns=ts_ns, order_id=order.order_id, reason=reason)
        else:
            ack = self._venue.submit(step, order)
        if ack is None:  # an asynchronous venue: the answer comes as a venue message
            state.open_orders[order.order_id] = order
            self.rules.on_accepted(state.sellable, live_day, order)
            return
        self.journal(ack)
        order = evolve(order, ack)
        if order.is_open:
            state.open_orders[order.order_id] = order
            self.rules.on_accepted(state.sellable, live_day, order)
        if self._watcher is not None:
            self._watcher.on_venue_answer(step, ts_ns, iid, isinstance(ack, OrderAccepted), 0)

    def cancel(self, order_id: str, ts_ns: int, day: int, reason: str) -> None:
        """Cancel one open order; its unfilled quantity is released in session ``day``. A venue
        that is asked to cancel (``CancelRequestPort``, live) gets a request instead: the order
        stays working until the venue's answer (``kernel.venue_inbox``); asked once."""
        order = self.state.open_orders[order_id]
        if isinstance(self._venue, CancelRequestPort):
            if order_id in self.state.cancel_requested:
                return
            self.journal(OrderCancelRequested(ts_ns=ts_ns, order_id=order_id, reason=reason))
            self.state.cancel_requested.add(order_id)
            self._venue.request_cancel(order, reason)
            return
        event = OrderCancelled(ts_ns=ts_ns, order_id=order_id, reason=reason)
        self.journal(event)
        evolve(order, event)
        self.rules.on_closed(self.state.sellable, day, order)
        del self.state.open_orders[order_id]

    def cancel_at(self, step: int, order_id: str, reason: str) -> None:
        """Cancel one open order at ``step`` (the router's child timeout)."""
        iid = self.state.open_orders[order_id].instrument_id
        self.cancel(order_id, int(self._panel.ts_ns[step]), self.session_of_order(step, iid), reason)

    def cancel_where(self, step: int, ts_ns: int, reason: str, keep: Callable[[Order], bool]) -> None:
        """Cancel every open order, in submission order, except those ``keep`` keeps."""
        if not self.state.open_orders:
            return
        for order_id, order in list(self.state.open_orders.items()):
            if not keep(order):
                self.cancel(order_id, ts_ns, self.session_of_order(step, order.instrument_id), reason)

    def replace(self, step: int, order_id: str, qty_raw: int, reason: str) -> bool:
        """Amend one open order to a new total quantity (the router's child timeout with
        ``on_timeout = "replace"``). The market rules see the new open quantity as if it were
        sent now (T+1 sellable, lots); the venue answers ``OrderReplaced`` or
        ``OrderReplaceRejected``. True when the order was amended."""
        state = self.state
        order = state.open_orders[order_id]
        ts_ns = int(self._panel.ts_ns[step])
        day = self.session_of_order(step, order.instrument_id)
        self.rules.on_closed(state.sellable, day, order)  # release the open quantity, then re-check
        amended = msgspec.structs.replace(order, qty_raw=qty_raw)
        refusal = self.rules.check(state.sellable, day, leaves_probe(amended))
        answer: OrderReplaced | OrderReplaceRejected
        if refusal:
            answer = OrderReplaceRejected(
                ts_ns=ts_ns,
                order_id=order_id,
                qty_raw=qty_raw,
                limit_px_raw=order.limit_px_raw,
                reason=refusal,
            )
        else:
            answer = self._venue.replace(step, order, qty_raw, order.limit_px_raw)
        if isinstance(answer, OrderReplaced):
            answer = msgspec.structs.replace(answer, reason=reason)
            order = evolve(order, answer)
            state.open_orders[order_id] = order
        self.journal(answer)
        self.rules.on_accepted(state.sellable, day, leaves_probe(order))
        return isinstance(answer, OrderReplaced)

    def expire_day_orders(self, step: int) -> None:
        """Day orders the venue ends at the close (A-shares): journaled with the reason."""
        day = int(self._panel.day[step])
        state = self.state
        for event in self._venue.end_of_day(step, list(state.open_orders.values())):
            order = state.open_orders[event.order_id]
            self.journal(event)
            evolve(order, event)
            self.rules.on_closed(state.sellable, day, order)
            del state.open_orders[event.order_id]

    def apply_venue_event(
        self,
        step: int,
        order: Order,
        event: OrderAccepted | OrderRejected | OrderCancelled | Event,
        after: Order,
        latency_ns: int | None,
    ) -> None:
        """An asynchronous venue's answer (not a fill) already checked against the order's
        transition table: journal it, then keep the open order and the sellable book in step.
        ``latency_ns`` (an ack or a reject) is shown to the watcher."""
        state = self.state
        self.journal(event)
        day = self.session_of_order(step, order.instrument_id)
        books = state.sellable
        if after.is_open:
            state.open_orders[order.order_id] = after
            if after.qty_raw != order.qty_raw:  # a replace: reserve the new open quantity
                self.rules.on_closed(books, day, order)
                self.rules.on_accepted(books, day, leaves_probe(after))
        else:
            self.rules.on_closed(books, day, order)
            del state.open_orders[order.order_id]
        if latency_ns is not None and self._watcher is not None:
            accepted = isinstance(event, OrderAccepted)
            self._watcher.on_venue_answer(step, event.ts_ns, order.instrument_id, accepted, latency_ns)

    def close_at(
        self,
        ts_ns: int,
        day: int,
        strategy_id: str,
        instrument_id: int,
        qty_raw: int,
        px_raw: int,
        notional_minor: int,
    ) -> None:
        """Close a position outside the venue (a liquidation, an option's expiry): a journaled
        market order, accepted and filled at ``px_raw`` at once, so positions, fills and the
        ledger stay one story. ``qty_raw`` is the signed position closed."""
        side = -1 if qty_raw > 0 else 1
        submitted = OrderSubmitted(
            ts_ns=ts_ns,
            order_id=self.next_order_id(strategy_id, day),
            strategy_id=strategy_id,
            instrument_id=instrument_id,
            side=side,
            order_type="market",
            qty_raw=abs(qty_raw),
            limit_px_raw=0,
            decision_px_raw=px_raw,
        )
        accepted = OrderAccepted(ts_ns=ts_ns, order_id=submitted.order_id)
        self.journal(submitted)
        self.journal(accepted)
        self.state.open_orders[submitted.order_id] = evolve(new_order(submitted), accepted)
        fill = OrderFilled(
            ts_ns=ts_ns,
            order_id=submitted.order_id,
            instrument_id=instrument_id,
            side=side,
            fill_qty_raw=abs(qty_raw),
            fill_px_raw=px_raw,
            leaves_qty_raw=0,
            notional_minor=notional_minor,
            commission_minor=0,
            currency=self.instruments[instrument_id].currency,
        )
        self.apply_fill(fill, day)

    # --- fills -------------------------------------------------------------------------------

    def match(self, step: int) -> None:
        """The synchronous venue's fills for the open orders against the bar at ``step``."""
        state = self.state
        fills = self._venue.match(step, list(state.open_orders.values()))
        if fills:
            day = int(self._panel.day[step])
            for fill in fills:
                self.apply_fill(fill, day)

    def hold(self, instrument_id: int, position: Position) -> None:
        """The book's position in one instrument from now on (a flat one is not kept)."""
        if position.qty_raw:
            self.state.positions[instrument_id] = position
        else:
            self.state.positions.pop(instrument_id, None)

    def apply_fee_in_kind(self, fee: FeeTakenInKind) -> None:
        """A fee the venue took out of the holding (before the trade's fill): the position
        shrinks by the quantity, booked as commission at its value; no cash moves. A strategy's
        own book moves as for a sale of that quantity."""
        state = self.state
        position = state.positions.get(fee.instrument_id, Position())
        postings, position = fee_in_kind_postings(position, fee)
        if self._ledger_watcher is not None:
            self._ledger_watcher.on_fill(fee_as_sale(fee), state.open_orders[fee.order_id])
        self.journal(fee)
        if postings:
            self.post(fee.ts_ns, f"fee in kind {fee.order_id}", postings, about=fee.instrument_id)
        self.hold(fee.instrument_id, position)

    def apply_fill(self, fill: OrderFilled, day: int) -> None:
        """A fill: the order, the position, fees and taxes as postings of one transaction, the
        A-share sellable book, the US day-trade count."""
        state = self.state
        order = evolve(state.open_orders[fill.order_id], fill)
        position = state.positions.get(fill.instrument_id, Position())
        if self._pdt is not None:
            state.day_trades = self._pdt.on_fill(state.day_trades, day, fill, position.qty_raw)
        postings, position = self._futures.fill_postings(position, fill)  # futures: no notional
        postings.extend(self.rules.fee_postings(day, fill))
        postings.extend(self._corporate.on_fill(state, day, fill))  # A-share dividend tax at the sale
        self.rules.on_fill(state.sellable, day, fill)
        if self._ledger_watcher is not None:
            self._ledger_watcher.on_fill(fill, state.open_orders[fill.order_id])
        self.journal(fill)
        if postings:  # a future's opening fill without commission moves no money
            self.post(fill.ts_ns, f"fill {fill.order_id}", postings)
        self.hold(fill.instrument_id, position)
        if order.is_open:
            state.open_orders[fill.order_id] = order
        else:
            del state.open_orders[fill.order_id]
        if not state.positions and self._watcher is not None:
            self._watcher.on_book_flat(fill.ts_ns)
