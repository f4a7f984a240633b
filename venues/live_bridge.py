"""Between a live venue (``venues.ccxt_venue.CcxtVenue``, ``venues.ib_venue.IbVenue``: any
``LiveVenue``) and the kernel's ``OutboxVenue``.

Out: the kernel's requests (a new order, a cancel), which the session hands over only after the
journal commit that holds them. Each order goes out with a client order id derived from the
Tape order id (``client_id``), so a send repeated after a crash finds the order at the venue
instead of placing it twice (``CcxtVenue.place(..., resend=True)``).

In: the adapter's de-duplicated order states and fills become ``VenueMessage``s in the kernel's
terms, numbered in the order they arrive here and stamped with the edge's clock:

* each order's send is a ``sent`` message stamped when it left, so the kernel's kill switch and
  the ops metrics measure the answer's latency from the send, not from the step that decided it;
* the first state of an order the venue holds is its ``ack``; a venue refusal is a ``reject``
  with the venue's rule code;
* each trade is one ``fill`` (its trade id in ``reason``: a trade is booked once, across
  restarts too); a fee in the instrument's currency is the fill's commission. A fee the venue
  took in the base asset (Binance spot without BNB: a buy's fee in the asset bought) is a
  ``fee`` message just before the fill: the quantity, rounded up to the instrument's quantity
  unit, leaves the book's position (``domain.events.FeeTakenInKind``), so the book never holds
  more than the venue and a sale of the whole position goes through; the part of a unit the
  rounding kept from the venue is remembered so reconciliation can tell it from a real
  difference;
* ``cancelled`` / ``expired`` wait until the fills the venue reports for the order are all in,
  so a fill that crossed a cancel is booked before the order closes; a cancel the venue cannot
  do is ``cancel_rejected``.

Reconciliation (``reconcile``) compares the venue with the book on start, on resume and after
each reconnect: the book's open orders at the venue (an order journaled before a crash that
never reached it is rejected, or sent, as configured), open orders at the venue this session
did not send, fills it missed, and every asset's balance against the book. What it finds is a
``VenueReconciled`` input the session journals.

The venue keeps trading while it is asked (the account, its fills and its fundings are separate
requests), so the balances are compared on a read that holds still: the account (balances, and
a perpetual account's positions) is read before and after the fills and the fundings paid, and
the comparison uses them only when the two account reads agree (else it reads again, up to
``ACCOUNT_READS`` times). Meanwhile the stream follower translates nothing (``follow`` waits),
so the book's side is the kernel's state plus exactly the messages handed in during the read.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, cast

from domain.events import (
    AdoptionReceived,
    Event,
    OrderSubmitted,
    VenueMessage,
    VenueMessageReceived,
    VenueReconciled,
)
from domain.fixed import Rounding, minor_digits, rescale
from domain.instruments import Instrument, notional_minor
from domain.orders import Order
from kernel.adoption import ADOPTABLE_CLASSES
from kernel.markets import is_cn_a_share
from kernel.outbox import OutboxVenue, VenueRequest
from kernel.venue_inbox import FEE_IN_KIND_CLASSES
from venues.ccxt_venue import (
    BALANCE_DIGITS,
    OrderRequest,
    StreamNote,
    VenueBalance,
    VenueError,
    VenueFill,
    VenueFundingPaid,
    VenueOrder,
    VenuePosition,
)

PERPETUAL_CLASSES = frozenset({"crypto_perp"})

ACCOUNT_READS = 5  # reconciliation: account reads around the fills and fundings before it gives up

__all__ = [
    "ACCOUNT_READS",
    "Book",
    "LiveBridge",
    "LiveVenue",
    "PerpetualVenue",
    "ReconcilePolicy",
    "client_tag",
]


class LiveVenue(Protocol):
    """What the bridge asks of an adapter (``CcxtVenue``, ``IbVenue``)."""

    updates: asyncio.Queue[VenueOrder | VenueFill | StreamNote]

    async def place(self, request: OrderRequest, *, resend: bool = False) -> VenueOrder: ...
    async def cancel(self, instrument_id: int, client_order_id: str) -> VenueOrder: ...
    async def lookup(self, instrument_id: int, client_order_id: str) -> VenueOrder | None: ...
    async def fetch_open_orders(self, instrument_id: int) -> list[VenueOrder]: ...
    async def fetch_fills(self, instrument_id: int) -> list[VenueFill]: ...
    async def fetch_balances(self) -> list[VenueBalance]: ...


class PerpetualVenue(LiveVenue, Protocol):
    """A venue whose account holds perpetuals (``CcxtVenue`` on ``binanceusdm``)."""

    async def fetch_positions(self) -> list[VenuePosition]: ...
    async def fetch_funding_paid(self, instrument_id: int) -> list[VenueFundingPaid]: ...


def client_tag(config_json: str) -> str:
    """The run's prefix for client order ids: from its journaled configuration, so a resumed
    session sends the ids it sent before."""
    return "t" + hashlib.sha256(config_json.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class ReconcilePolicy:
    on_difference: str = "halt"  # halt | flatten | adopt | warn
    unknown_orders: str = "leave"  # leave | cancel
    unsent: str = "reject"  # reject | send


@dataclass(frozen=True)
class Book:
    """What the book holds, as the venue should: the open orders, the position of each
    instrument and the cash (``cash_minor`` in ``currency``)."""

    open_orders: Mapping[str, Order]
    positions: Mapping[int, int]
    cash_minor: int
    currency: str
    cancel_requested: frozenset[str] = frozenset()  # cancels journaled, maybe never sent
    adopting: tuple[AdoptionReceived, ...] = ()  # adoptions the kernel took but has not booked yet
    # perpetuals: the funding the book booked, by (instrument id, funding time ms), minor units
    funding_minor: Mapping[tuple[int, int], int] = field(default_factory=dict)


@dataclass
class _Known:
    """What the kernel has been told about one of its orders (restored from the journal)."""

    acked: bool = False
    closed: bool = False
    filled_qty_raw: int = 0
    venue_order_id: str = ""
    held: VenueOrder | None = None  # a final state waiting for its fills
    side: int = 0
    instrument_id: int = -1
    fee_in_kind_raw: int = 0  # a ``fee`` message's quantity, until the fill it belongs to


@dataclass(frozen=True)
class _Account:
    """One read of the venue's account: each asset's total (free + locked, 1e-8) and, for a
    perpetual account, its open positions."""

    held: dict[str, int]
    positions: dict[int, VenuePosition]

    def same(self, other: _Account) -> bool:
        """Nothing booked in between: the same balances and signed positions (the mark, and the
        unrealized profit with it, may move)."""
        return self.held == other.held and {i: p.qty_raw for i, p in self.positions.items()} == {
            i: p.qty_raw for i, p in other.positions.items()
        }


@dataclass
class BridgeCounts:
    sent: int = 0
    cancels_sent: int = 0
    messages: int = 0
    foreign: int = 0  # order states and fills of orders this session did not send
    fills: int = 0  # fill messages handed to the kernel
    notes: Counter[str] = field(default_factory=Counter)


class LiveBridge:
    """One live session's traffic between the adapter and the kernel (module docstring)."""

    def __init__(
        self,
        venue: LiveVenue,
        outbox: OutboxVenue,
        instruments: Iterable[Instrument],
        *,
        tag: str,
        clock: Callable[[], int],
    ) -> None:
        self.venue = venue
        self.outbox = outbox
        self.instruments = {inst.instrument_id: inst for inst in instruments}
        self.tag = tag
        self.clock = clock
        self.counts = BridgeCounts()
        self.reconnected = asyncio.Event()
        self.connection: list[tuple[int, StreamNote]] = []  # (arrival, note) not journaled yet
        self._next_seq = 1
        self._known: dict[str, _Known] = {}
        self._by_client: dict[str, str] = {}
        self._by_venue_id: dict[str, str] = {}
        self._trades: set[str] = set()
        # Per asset (1e-8): what the venue's balance moved minus what the book's did, over the
        # fills handed in: fees taken in the base asset, the book's rounding of notionals and
        # commissions to the currency's minor unit. Reconciliation expects the venue at the
        # book plus this.
        self._drift: Counter[str] = Counter()
        # Perpetuals: fills the venue made at or after the next funding time wait here until
        # that funding is booked (``hold_fills_from``), so the book pays funding on the
        # position the venue held at the funding time.
        self._fills_from_ms: int | None = None
        self._held_fills: list[VenueFill] = []
        self._adopting: AdoptionReceived | None = None  # made by the last reconciliation, not taken
        # Held by a reconciliation: the stream follower translates nothing meanwhile.
        self._reconciling = asyncio.Lock()

    # --- identities -------------------------------------------------------------------------

    def client_id(self, order_id: str) -> str:
        """``{tag}-{n}``: n is the kernel's order counter, the last part of the order id."""
        return f"{self.tag}-{order_id.rsplit('-', 1)[-1]}"

    def _learn(self, order_id: str, side: int = 0, instrument_id: int = -1) -> _Known:
        known = self._known.get(order_id)
        if known is None:
            known = self._known[order_id] = _Known()
            self._by_client[self.client_id(order_id)] = order_id
        if side:
            known.side, known.instrument_id = side, instrument_id
        return known

    def remember(self, events: Iterable[Event]) -> None:
        """What a resumed session's journal says was sent and received: the orders, what the
        kernel was told of each, the trades booked, the next message number."""
        for event in events:
            if isinstance(event, OrderSubmitted):
                self._learn(event.order_id, event.side, event.instrument_id)
            elif isinstance(event, VenueMessageReceived):
                message = event.message
                self._next_seq = max(self._next_seq, message.venue_seq + 1)
                known = self._learn(message.order_id)
                if message.kind == "ack":
                    known.acked = True
                elif message.kind == "fee":
                    known.fee_in_kind_raw = message.qty_raw
                elif message.kind == "fill":
                    known.acked = True
                    known.filled_qty_raw += message.qty_raw
                    trade, _, fee = message.reason.partition(" fee=")
                    self._trades.add(trade)
                    fee_e8, _, asset = fee.partition(":")
                    if known.side and fee_e8.isdigit():
                        self._count_drift(known, message, int(fee_e8), asset, known.fee_in_kind_raw)
                    known.fee_in_kind_raw = 0
                elif message.kind in ("reject", "cancelled", "expired"):
                    known.closed = True
            elif isinstance(event, AdoptionReceived):
                self.adopted(event)

    # --- out --------------------------------------------------------------------------------

    async def send(self, requests: list[VenueRequest]) -> None:
        """Send what the kernel asked, in order (after the journal commit that holds it)."""
        for request in requests:
            if request.kind == "place":
                await self._place(request.order, resend=False)
            else:
                await self._cancel(request.order)

    async def _place(self, order: Order, *, resend: bool) -> None:
        self._learn(order.order_id, order.side, order.instrument_id)
        # when it leaves: the kernel measures the answer's latency (send -> ack) from this
        self._emit(order.order_id, "sent", ts_ns=self.clock())
        try:
            placed = await self.venue.place(
                OrderRequest(
                    client_order_id=self.client_id(order.order_id),
                    instrument_id=order.instrument_id,
                    side=order.side,
                    order_type=order.order_type,
                    qty_raw=order.qty_raw,
                    limit_px_raw=order.limit_px_raw if order.order_type == "limit" else 0,
                ),
                resend=resend,
            )
        except VenueError as error:
            self._emit(order.order_id, "reject", reason=error.reason)
            self._known[order.order_id].closed = True
            return
        self.counts.sent += 1
        self._by_venue_id[placed.venue_order_id] = order.order_id
        self.take_updates()  # the placed state is in the adapter's queue: ack it now

    async def _cancel(self, order: Order) -> None:
        try:
            await self.venue.cancel(order.instrument_id, self.client_id(order.order_id))
        except VenueError as error:
            known = self._known.get(order.order_id)
            if error.rule == "ORDER_NOT_FOUND" and known is not None and not known.acked:
                # the venue never had it (lost before it arrived): it will never fill
                self._emit(order.order_id, "reject", reason="ORDER_NOT_FOUND: the venue never received it")
                known.closed = True
            else:
                self._emit(order.order_id, "cancel_rejected", reason=error.reason)
            return
        self.counts.cancels_sent += 1
        self.take_updates()

    # --- in ---------------------------------------------------------------------------------

    def take_updates(self) -> int:
        """Translate what the adapter has queued; returns how many updates were read."""
        queue = self.venue.updates
        taken = 0
        while not queue.empty():
            self.translate(queue.get_nowait())
            taken += 1
        return taken

    async def follow(self) -> None:
        """Translate the adapter's updates as they come (a task for the session's life); while a
        reconciliation reads the venue, an update waits for it to finish (the reconciliation
        takes the queue's others itself)."""
        while True:
            update = await self.venue.updates.get()
            async with self._reconciling:
                self.translate(update)
                self.take_updates()

    def translate(self, update: VenueOrder | VenueFill | StreamNote) -> None:
        if isinstance(update, StreamNote):
            self.counts.notes[update.kind] += 1
            self.connection.append((self.clock(), update))
            if update.kind == "reconciled":
                self.reconnected.set()
            return
        if isinstance(update, VenueOrder):
            self._order_state(update)
        else:
            self._fill(update)

    def _ours(self, client_order_id: str, venue_order_id: str) -> str | None:
        order_id = self._by_client.get(client_order_id) or self._by_venue_id.get(venue_order_id)
        if order_id is None:
            self.counts.foreign += 1
        return order_id

    def _order_state(self, state: VenueOrder) -> None:
        order_id = self._ours(state.client_order_id, state.venue_order_id)
        if order_id is None:
            return
        self._by_venue_id[state.venue_order_id] = order_id
        known = self._known[order_id]
        known.venue_order_id = state.venue_order_id
        if known.closed:
            return
        if state.status == "rejected":
            self._emit(order_id, "reject", reason="REJECTED: the venue rejected the order")
            known.closed = True
            return
        if not known.acked:
            self._emit(order_id, "ack")
            known.acked = True
        if state.status in ("canceled", "expired"):
            known.held = state
            self._release(order_id, known)

    def _release(self, order_id: str, known: _Known) -> None:
        """A final state goes in once the fills it reports are all in."""
        held = known.held
        if held is None or known.filled_qty_raw < held.filled_qty_raw:
            return
        kind = "cancelled" if held.status == "canceled" else "expired"
        self._emit(order_id, kind, reason=f"venue: {held.status}")
        known.closed = True
        known.held = None

    def hold_fills_from(self, funding_ms: int | None) -> None:
        """Hand in fills made before ``funding_ms`` only (the next funding time; None: all);
        the held fills before the new time go in now, in the order they came."""
        self._fills_from_ms = funding_ms or None
        held, self._held_fills = self._held_fills, []
        for fill in held:
            self._fill(fill)

    def _fill(self, fill: VenueFill) -> None:
        trade = f"trade:{fill.instrument_id}:{fill.trade_id}"
        if trade in self._trades:
            return
        if self._fills_from_ms is not None and fill.ts_ms >= self._fills_from_ms:
            if all(
                (held.instrument_id, held.trade_id) != (fill.instrument_id, fill.trade_id)
                for held in self._held_fills
            ):
                self._held_fills.append(fill)
                self.counts.notes["fill_held_for_funding"] += 1
            return
        order_id = self._ours(fill.client_order_id, fill.venue_order_id)
        if order_id is None:
            return
        self._trades.add(trade)
        known = self._known[order_id]
        if known.closed:
            self.counts.notes["fill_after_close"] += 1
            return
        if not known.acked:  # a fill says the venue had the order
            self._emit(order_id, "ack")
            known.acked = True
        inst = self.instruments[fill.instrument_id]
        reason = f"{trade} fee={fill.fee_e8}:{fill.fee_asset}"
        in_kind = self._fee_in_kind(inst, fill)
        if in_kind:  # before the fill: the kernel books it while the order is open
            self._emit(order_id, "fee", qty_raw=in_kind, px_raw=fill.px_raw, reason=reason)
        message = self._emit(
            order_id,
            "fill",
            qty_raw=fill.qty_raw,
            px_raw=fill.px_raw,
            reason=reason,
            commission_minor=0 if in_kind else self._commission(inst, fill),
        )
        if not known.side:
            known.side, known.instrument_id = fill.side, fill.instrument_id
        self._count_drift(known, message, fill.fee_e8, fill.fee_asset, in_kind)
        self.counts.fills += 1
        known.filled_qty_raw += fill.qty_raw
        self._release(order_id, known)

    def _fee_in_kind(self, inst: Instrument, fill: VenueFill) -> int:
        """A fee the venue took in the base asset of a spot instrument: its quantity in the
        instrument's raw units, rounded up (0 for any other fee)."""
        if fill.fee_e8 <= 0 or fill.fee_asset != _base(inst) or inst.asset_class not in FEE_IN_KIND_CLASSES:
            return 0
        return rescale(fill.fee_e8, BALANCE_DIGITS, inst.qty_digits, Rounding.CEILING)

    def _commission(self, inst: Instrument, fill: VenueFill) -> int:
        """The fee in the instrument's currency (minor units, half-even): a fee in the quote
        asset as it is, one in the base asset at the fill price; another asset's (e.g. BNB) is
        not booked and is counted (``fee_in_{asset}``)."""
        if fill.fee_e8 == 0:
            return 0
        digits = minor_digits(inst.currency)
        if fill.fee_asset == inst.currency:
            return rescale(fill.fee_e8, BALANCE_DIGITS, digits, Rounding.HALF_EVEN)
        if fill.fee_asset == _base(inst):
            value = fill.fee_e8 * fill.px_raw  # at 1e-8 x 10^-price_digits
            return rescale(value, BALANCE_DIGITS + inst.price_digits, digits, Rounding.HALF_EVEN)
        self.counts.notes[f"fee_in_{fill.fee_asset}"] += 1
        return 0

    def _count_drift(
        self, known: _Known, fill: VenueMessage, fee_e8: int, fee_asset: str, in_kind_raw: int = 0
    ) -> None:
        inst = self.instruments.get(known.instrument_id)
        if inst is None:
            return
        base, quote = _base(inst), inst.currency
        digits = minor_digits(quote)
        scale = inst.qty_digits + inst.price_digits
        product = fill.qty_raw * fill.px_raw * inst.multiplier
        exact_e8 = rescale(product, scale, BALANCE_DIGITS, Rounding.HALF_EVEN)
        notional = notional_minor(inst, fill.qty_raw, fill.px_raw, Rounding.HALF_EVEN)
        booked_e8 = rescale(notional, digits, BALANCE_DIGITS, Rounding.HALF_EVEN)
        commission_e8 = rescale(fill.commission_minor, digits, BALANCE_DIGITS, Rounding.HALF_EVEN)
        self._drift[quote] += known.side * (booked_e8 - exact_e8) + commission_e8
        if fee_asset == quote:
            self._drift[quote] -= fee_e8
        elif fee_asset == base:  # the venue took fee_e8; the book, its fee in kind (or nothing)
            self._drift[base] += (
                rescale(in_kind_raw, inst.qty_digits, BALANCE_DIGITS, Rounding.HALF_EVEN) - fee_e8
            )

    def _emit(
        self,
        order_id: str,
        kind: str,
        *,
        qty_raw: int = 0,
        px_raw: int = 0,
        reason: str = "",
        commission_minor: int = 0,
        ts_ns: int | None = None,
    ) -> VenueMessage:
        message = VenueMessage(
            venue_seq=self._next_seq,
            ts_ns=self.clock() if ts_ns is None else ts_ns,
            order_id=order_id,
            kind=kind,
            qty_raw=qty_raw,
            px_raw=px_raw,
            reason=reason,
            commission_minor=commission_minor,
        )
        self._next_seq += 1
        self.counts.messages += 1
        self.outbox.deliver([message])
        return message

    # --- reconciliation ---------------------------------------------------------------------

    async def reconcile(
        self, book: Book, when: str, policy: ReconcilePolicy, venue_name: str
    ) -> VenueReconciled:
        """Compare the venue with ``book`` and act on what differs (module docstring). The
        messages it recovers are handed to the kernel like any others; balances are compared
        with the book as it will be once they are applied."""
        async with self._reconciling:
            return await self._reconcile(book, when, policy, venue_name)

    async def _reconcile(
        self, book: Book, when: str, policy: ReconcilePolicy, venue_name: str
    ) -> VenueReconciled:
        lines: list[str] = []
        actions: list[str] = []
        fills_before = self.counts.fills
        resolved = await self._book_orders(book, policy, lines, actions)
        resolved += await self._venue_orders(policy, lines, actions)
        self.take_updates()
        balance_lines, differences = await self._balances(book)
        lines.extend(balance_lines)
        if policy.on_difference == "adopt" and when != "stop" and differences:
            adoption, settled = self._adoption(book, differences, venue_name, when)
            if adoption is not None:
                self._adopting = adoption
                actions.append("adopted")
                resolved += settled
        if len(lines) > resolved and policy.on_difference != "warn":  # what no action settled
            actions.append("flattened" if policy.on_difference == "flatten" else "halted")
        return VenueReconciled(
            ts_ns=self.clock(),
            venue=venue_name,
            when=when,
            orders_checked=len(book.open_orders),
            fills_recovered=self.counts.fills - fills_before,
            differences=lines,
            action=", ".join(actions) or "none",
        )

    def _adoption(
        self, book: Book, differences: list[tuple[str, int, int]], venue_name: str, when: str
    ) -> tuple[AdoptionReceived | None, int]:
        """What the book would take on to hold what the venue holds (``on_difference = "adopt"``):
        each differing asset that is the book's cash or the base of a spot instrument an adoption
        sets (``kernel.adoption.ADOPTABLE_CLASSES``), in the book's units (toward zero), the rest
        below a unit as residue. Returns the adoption (None when nothing can be adopted) and how
        many of the differences it settles. A perpetuals account adopts nothing."""
        if any(inst.asset_class in PERPETUAL_CLASSES for inst in self.instruments.values()):
            return None, 0
        bases = {
            _base(inst): inst
            for inst in self.instruments.values()
            if inst.asset_class in ADOPTABLE_CLASSES and not is_cn_a_share(inst)
        }
        positions: list[tuple[int, int]] = []
        cash: list[tuple[str, int]] = []
        residue: list[tuple[str, int]] = []
        for asset, have, want in differences:
            delta = have - want
            if asset == book.currency:
                digits = minor_digits(asset)
                units = rescale(delta, BALANCE_DIGITS, digits, Rounding.DOWN)
                if units:
                    cash.append((asset, units))
            elif asset in bases:
                digits = bases[asset].qty_digits
                units = rescale(delta, BALANCE_DIGITS, digits, Rounding.DOWN)
                if units:
                    positions.append((bases[asset].instrument_id, units))
            else:
                continue
            left = delta - rescale(units, digits, BALANCE_DIGITS, Rounding.HALF_EVEN)
            if left:
                residue.append((asset, left))
        if not (positions or cash or residue):
            return None, 0
        adoption = AdoptionReceived(
            ts_ns=self.clock(), venue=venue_name, when=when, positions=positions, cash=cash, residue=residue
        )
        return adoption, len(
            {asset for asset, _ in cash + residue} | {_base(self.instruments[iid]) for iid, _ in positions}
        )

    def take_adoption(self) -> AdoptionReceived | None:
        """The adoption the last reconciliation made (``on_difference = "adopt"``), once: the
        session hands it to the kernel, then calls ``adopted`` if the kernel took it."""
        adoption, self._adopting = self._adopting, None
        return adoption

    def adopted(self, adoption: AdoptionReceived) -> None:
        """The kernel took ``adoption``: its residue (below the book's units) stays at the venue,
        so later reconciliations expect it."""
        for asset, left in adoption.residue:
            self._drift[asset] += left

    async def _book_orders(
        self, book: Book, policy: ReconcilePolicy, lines: list[str], actions: list[str]
    ) -> int:
        """The book's open orders at the venue: their state now, or sent / rejected when the
        venue never got them (settled: the count is returned)."""
        resolved = 0
        for order_id, order in sorted(book.open_orders.items()):
            found = await self.venue.lookup(order.instrument_id, self.client_id(order_id))
            known = self._learn(order_id, order.side, order.instrument_id)
            if found is not None:
                self.translate(found)
                if order_id in book.cancel_requested and found.is_open:
                    await self._cancel(order)  # journaled before a crash; sending again is harmless
                    actions.append(f"cancel sent again for {order_id}")
                continue
            if known.closed:  # its end is handed in already, waiting for a kernel step
                continue
            if known.acked:
                lines.append(f"order {order_id}: acknowledged before, but the venue no longer has it")
                continue
            lines.append(f"order {order_id}: journaled, never reached the venue")
            resolved += 1
            if policy.unsent == "send":
                await self._place(order, resend=True)
                actions.append(f"sent {order_id}")
            else:
                self._emit(order_id, "reject", reason="NOT_SENT: lost before it reached the venue (restart)")
                known.closed = True
                actions.append(f"rejected {order_id}")
        return resolved

    async def _venue_orders(self, policy: ReconcilePolicy, lines: list[str], actions: list[str]) -> int:
        """Open orders at the venue this session did not send (settled when cancelled: the
        count is returned). The fills it missed are read with the account (``_read_account``)."""
        resolved = 0
        for iid in sorted(self.instruments):
            for state in await self.venue.fetch_open_orders(iid):
                if state.client_order_id in self._by_client or state.venue_order_id in self._by_venue_id:
                    continue
                symbol = self.instruments[iid].symbol
                lines.append(
                    f"order {state.venue_order_id} ({symbol}, client id {state.client_order_id}): "
                    "open at the venue, not this session's"
                )
                if policy.unknown_orders == "cancel":
                    await self.venue.cancel(iid, state.client_order_id)
                    actions.append(f"cancelled {state.venue_order_id}")
                    resolved += 1
        return resolved

    async def _read_account(
        self, perps: list[int]
    ) -> tuple[_Account, dict[int, list[VenueFundingPaid]], int]:
        """The account, with the fills (handed in: booked once) and the fundings paid read while
        it held still: an account read, the fills and fundings, another account read; the two
        reads agree, or it goes again. Returns the last read, the fundings paid by instrument
        and how many tries it took (0: it never held still in ``ACCOUNT_READS``)."""
        perpetual = cast(PerpetualVenue, self.venue) if perps and _states_perpetuals(self.venue) else None
        before = await self._account(perpetual)
        for attempt in range(1, ACCOUNT_READS + 1):
            for iid in sorted(self.instruments):
                for fill in await self.venue.fetch_fills(iid):
                    self.translate(fill)
            paid = {iid: await perpetual.fetch_funding_paid(iid) for iid in perps} if perpetual else {}
            self.take_updates()
            after = await self._account(perpetual)
            if after.same(before):
                return after, paid, attempt
            before = after
        return after, paid, 0

    async def _account(self, perpetual: PerpetualVenue | None) -> _Account:
        held = {row.asset: row.free_e8 + row.locked_e8 for row in await self.venue.fetch_balances()}
        positions = {}
        if perpetual is not None:
            positions = {row.instrument_id: row for row in await perpetual.fetch_positions()}
        return _Account(held, positions)

    def _add_handed_in(self, currency: str, positions: Counter[int], expected: Counter[str]) -> None:
        """Into the book's positions and cash (1e-8): the fills and fees in kind handed to the
        kernel but not applied yet, and the fills held for a funding (the venue holds them)."""
        digits = minor_digits(currency)
        for message in self.outbox.peek():
            known = self._known.get(message.order_id)
            if (
                message.kind not in ("fill", "fee")
                or known is None
                or known.instrument_id not in self.instruments
            ):
                continue
            inst = self.instruments[known.instrument_id]
            if message.kind == "fee":  # taken out of the position; no cash moves
                positions[inst.instrument_id] -= message.qty_raw
                continue
            notional = notional_minor(inst, message.qty_raw, message.px_raw, Rounding.HALF_EVEN)
            positions[inst.instrument_id] += known.side * message.qty_raw
            paid = known.side * notional + message.commission_minor
            expected[currency] -= rescale(paid, digits, BALANCE_DIGITS, Rounding.HALF_EVEN)
        for fill in self._held_fills:  # made after the next funding time: the venue holds them
            inst = self.instruments[fill.instrument_id]
            positions[fill.instrument_id] += fill.side * fill.qty_raw
            value = fill.qty_raw * fill.px_raw * inst.multiplier
            scale = inst.qty_digits + inst.price_digits
            paid_e8 = fill.side * rescale(value, scale, BALANCE_DIGITS, Rounding.HALF_EVEN)
            expected[currency] -= paid_e8 + (fill.fee_e8 if fill.fee_asset == currency else 0)

    async def _balances(self, book: Book) -> tuple[list[str], list[tuple[str, int, int]]]:
        """Each asset the run trades: the venue's total (free + locked) against the book's
        position or cash, with the fills handed in and the adoptions taken but not yet applied,
        plus the drift; read while the account held still (``_read_account``). Returns the lines
        that differ and, for the assets compared one to one (not a perpetuals account's margin),
        each difference as (asset, venue, book) in 1e-8."""
        perps = sorted(iid for iid, inst in self.instruments.items() if inst.asset_class in PERPETUAL_CLASSES)
        account, funding_paid, tries = await self._read_account(perps)
        lines = []
        if not tries:
            lines.append(
                f"the venue's account moved between each of {ACCOUNT_READS + 1} reads: what follows may be "
                "that motion, not a difference"
            )
        expected: Counter[str] = Counter()
        digits = minor_digits(book.currency)
        expected[book.currency] = rescale(book.cash_minor, digits, BALANCE_DIGITS, Rounding.HALF_EVEN)
        positions = Counter({iid: book.positions.get(iid, 0) for iid in self.instruments})
        self._add_handed_in(book.currency, positions, expected)
        for adoption in book.adopting:  # taken by the kernel, booked at its next step
            for instrument_id, qty_raw in adoption.positions:
                positions[instrument_id] += qty_raw
            for currency, amount_minor in adoption.cash:
                expected[currency] += rescale(
                    amount_minor, minor_digits(currency), BALANCE_DIGITS, Rounding.HALF_EVEN
                )
        for iid, inst in self.instruments.items():
            if iid not in perps:
                expected[_base(inst)] += rescale(
                    positions[iid], inst.qty_digits, BALANCE_DIGITS, Rounding.HALF_EVEN
                )
        held = dict(account.held)
        if perps:
            lines.extend(self._perpetuals(book, perps, positions, expected, held, account, funding_paid))
        differences = []
        for asset in sorted(expected):
            want = expected[asset] + self._drift[asset]
            have = held.get(asset, 0)
            if have != want:
                lines.append(f"{asset}: venue {_e8(have)}, book {_e8(want)} (difference {_e8(have - want)})")
                differences.append((asset, have, want))
        return lines, differences

    def _perpetuals(
        self,
        book: Book,
        perps: list[int],
        positions: Counter[int],
        expected: Counter[str],
        held: dict[str, int],
        account: _Account,
        paid_by_instrument: dict[int, list[VenueFundingPaid]],
    ) -> list[str]:
        """Perpetuals (a USD-M account): each signed position against the book's; the margin
        asset's wallet plus unrealized profit against the book's cash plus each position at the
        venue's mark (the book pays a perpetual's notional like spot); each funding the venue
        paid against the one the book booked for that time (their rounding — the venue's 1e-8,
        the book's minor unit — is accounted for; anything more is a difference)."""
        if not _states_perpetuals(self.venue):
            return [f"{type(self.venue).__name__} states no perpetual positions or funding: not compared"]
        lines: list[str] = []
        digits = minor_digits(book.currency)
        unit_e8 = 10 ** (BALANCE_DIGITS - digits)
        at_venue = account.positions
        for iid in perps:
            inst = self.instruments[iid]
            row = at_venue.get(iid)
            have = row.qty_raw if row is not None else 0
            if have != positions[iid]:
                scale = 10**inst.qty_digits
                lines.append(
                    f"{inst.symbol} position: venue {have / scale:g}, book {positions[iid] / scale:g} "
                    f"(difference {(have - positions[iid]) / scale:g})"
                )
            if row is not None:
                value = row.qty_raw * row.mark_raw * inst.multiplier
                expected[book.currency] += rescale(
                    value, inst.qty_digits + inst.price_digits, BALANCE_DIGITS, Rounding.HALF_EVEN
                )
                held[book.currency] = held.get(book.currency, 0) + row.unrealized_e8
            booked = {when: amount for (fid, when), amount in book.funding_minor.items() if fid == iid}
            for paid in paid_by_instrument.get(iid, []):
                amount = booked.pop(paid.funding_ms, None)
                book_e8 = 0 if amount is None else rescale(amount, digits, BALANCE_DIGITS, Rounding.HALF_EVEN)
                if amount is not None and abs(paid.amount_e8 - book_e8) < unit_e8:
                    expected[book.currency] += paid.amount_e8 - book_e8  # the book's rounding
                elif (
                    amount is None
                    and self._fills_from_ms is not None
                    and paid.funding_ms >= self._fills_from_ms
                ):
                    expected[book.currency] += paid.amount_e8  # settled, its step not run yet
                else:
                    lines.append(
                        f"{inst.symbol} funding at {paid.funding_ms}: venue {_e8(paid.amount_e8)}, "
                        f"book {_e8(book_e8) if amount is not None else 'none'}"
                    )
            for when, amount in sorted(booked.items()):
                if amount:
                    lines.append(f"{inst.symbol} funding at {when}: book {amount}, the venue paid none")
        return lines


def _states_perpetuals(venue: object) -> bool:
    return hasattr(venue, "fetch_positions") and hasattr(venue, "fetch_funding_paid")


def _base(inst: Instrument) -> str:
    return inst.symbol.split("/")[0]


def _e8(value: int) -> str:
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**BALANCE_DIGITS)
    return f"{sign}{whole}.{frac:08d}".rstrip("0").rstrip(".")
