"""The paper broker: ``tape paper``'s simulated venue at the edge (``[venue] kind = "paper"``).

The kernel trades it as it trades a live venue (``kernel.outbox.OutboxVenue``): its orders are
taken after the journal commit that holds them, and every answer comes back as a numbered
``VenueMessage`` that the kernel journals as an input. What the broker decides depends only on
what the session journals too: the time each order was sent (a ``sent`` message), the quotes
(``QuoteReceived``) and bars (``BarsReceived``) in the order they were handed in, the run's
seed and the order ids. A replay reads the journaled answers and never asks the broker.

Latency. An order (or a cancel) sent at ``S`` reaches the simulated venue at ``S + latency``
(``LatencyModel``: a fixed part plus a jitter drawn from the run's seed and the order id, so the
draw does not depend on how many orders came before). The broker learns of it at the first input
stamped after that time (strictly: on the venue's clock every input of a step carries the same
stamp, and all of them must be in before the book at that time is known); its answers carry that
input's stamp, so the kernel's measured round trip (``sent`` to ``ack``) exceeds the latency.

Fills. An order meets the book as it stood when it reached the venue: the latest quote of its
instrument stamped at or before ``S + latency``. A market order fills there, buys at the ask and
sells at the bid; a limit order that crosses it fills there too (taker). Where no quote stood, it
meets the first quote after. A limit that does not cross rests and fills at its limit once a later
quote crosses it (maker). With no quote for the instrument at all, the bar model: the first bar
that opens at or after ``S + latency`` fills a market order at its open (plus ``slippage_e8``;
with no latency, the bar after the decision's, as the bar simulator fills) and a limit on
trade-through (at the open when it opens through the limit, else at the limit). Each fill is the
whole order: the quotes' sizes are journaled but no depth is modelled.

Costs: ``taker_e8`` / ``maker_e8`` per fill when set, else ``commission_e8`` of each fill's
notional, rounded half-up to the minor unit (the per-share, minimum and cap schedules of the
bar simulator are refused by ``tape paper`` for this venue).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from domain.events import BarsReceived, QuoteReceived, VenueMessage
from domain.fixed import Rounding, apply_rate
from domain.instruments import Instrument, notional_minor
from domain.orders import Order, OrderStatus

__all__ = ["BrokerCosts", "LatencyModel", "PaperBroker"]

_MS = 1_000_000


@dataclass(frozen=True)
class LatencyModel:
    """``fixed_ms`` plus a jitter in ``[0, jitter_ms]`` (whole nanoseconds) drawn from ``seed``
    and the request's key: the same key always draws the same delay."""

    fixed_ms: int = 0
    jitter_ms: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fixed_ms < 0 or self.jitter_ms < 0:
            raise ValueError(
                f"latency must be >= 0, got fixed {self.fixed_ms} ms, jitter {self.jitter_ms} ms"
            )

    def delay_ns(self, key: str) -> int:
        if not self.jitter_ms:
            return self.fixed_ms * _MS
        digest = hashlib.blake2b(f"{self.seed}|{key}".encode(), digest_size=8).digest()
        return self.fixed_ms * _MS + int.from_bytes(digest, "big") % (self.jitter_ms * _MS + 1)


@dataclass(frozen=True)
class BrokerCosts:
    """Rates in 1e-8: ``commission_e8`` of a fill's notional, or ``taker_e8`` / ``maker_e8``
    when either is set; ``slippage_e8`` moves a bar-model market fill against the order."""

    commission_e8: int = 0
    taker_e8: int = 0
    maker_e8: int = 0
    slippage_e8: int = 0

    def rate(self, maker: bool) -> int:
        if self.taker_e8 or self.maker_e8:
            return self.maker_e8 if maker else self.taker_e8
        return self.commission_e8


@dataclass
class _Request:
    due_ns: int
    number: int  # the order of sending (ties of due times keep it)
    kind: str  # place | cancel
    order: Order


@dataclass
class _Resting:
    order: Order
    due_ns: int  # when it reached the venue: send + latency
    arrived_ns: int  # the stamp of the input that brought it in
    seen: QuoteReceived | None = None  # the last quote it met (after the first: a maker's fill)


@dataclass
class BrokerCounts:
    sent: int = 0
    cancels: int = 0
    acks: int = 0
    rejects: int = 0
    quote_fills: int = 0
    bar_fills: int = 0
    cancelled: int = 0
    cancel_rejected: int = 0
    quotes: int = 0
    latency_ns: list[int] = field(default_factory=list)  # sent -> answer, per order


class PaperBroker:
    """The simulated venue (module docstring). ``interval_ns``: the bars' length (a bar stamped
    ``ts_ns`` opened at ``ts_ns - interval_ns``)."""

    def __init__(
        self,
        instruments: dict[int, Instrument],
        latency: LatencyModel,
        costs: BrokerCosts,
        *,
        interval_ns: int,
        next_seq: int = 1,
    ) -> None:
        self.instruments = instruments
        self.latency = latency
        self.costs = costs
        self.interval_ns = interval_ns
        self.counts = BrokerCounts()
        self._seq = next_seq
        self._numbered = 0
        self._flight: list[_Request] = []
        self._resting: dict[str, _Resting] = {}
        self._done: set[str] = set()  # orders filled, rejected or cancelled
        self._sent_ns: dict[str, int] = {}
        self._quotes: dict[int, QuoteReceived] = {}

    @property
    def next_seq(self) -> int:
        return self._seq

    # --- out: the kernel's requests ---------------------------------------------------------

    def send(self, kind: str, order: Order, sent_ns: int) -> list[VenueMessage]:
        """A request leaves the edge at ``sent_ns``; a new order's ``sent`` note comes back."""
        self._numbered += 1
        key = order.order_id if kind == "place" else f"{order.order_id}:cancel"
        due = sent_ns + self.latency.delay_ns(key)
        self._flight.append(_Request(due, self._numbered, kind, order))
        self._flight.sort(key=lambda request: (request.due_ns, request.number))
        if kind != "place":
            self.counts.cancels += 1
            return []
        self.counts.sent += 1
        self._sent_ns[order.order_id] = sent_ns
        return [self._message(sent_ns, order.order_id, "sent")]

    def restarted(self, open_orders: list[Order], now_ns: int) -> list[VenueMessage]:
        """A resumed session's broker starts empty: the orders the kernel still holds open were
        in flight (rejected, ``NOT_SENT``) or resting (cancelled) at the broker that died; the
        next decision sizes them again."""
        out = []
        for order in sorted(open_orders, key=lambda order: order.order_id):
            if order.status is OrderStatus.SUBMITTED:
                reason = "NOT_SENT: the paper broker restarted; orders in flight are lost"
                out.append(self._message(now_ns, order.order_id, "reject", reason=reason))
                self.counts.rejects += 1
            else:
                reason = "paper broker restarted: resting orders are not restored"
                out.append(self._message(now_ns, order.order_id, "cancelled", reason=reason))
                self.counts.cancelled += 1
        return out

    # --- in: what the market says ----------------------------------------------------------

    def on_quote(self, quote: QuoteReceived) -> list[VenueMessage]:
        """A quote arrived (stamped ``quote.ts_ns``): requests due before then reach the venue
        (and meet the book as it stood, without this quote), then resting orders of the
        instrument fill where it crosses them."""
        self.counts.quotes += 1
        out = self._arrivals(quote.ts_ns)
        self._quotes[quote.instrument_id] = quote
        for resting in list(self._resting.values()):
            if resting.order.instrument_id == quote.instrument_id and resting.seen is not quote:
                out.extend(self._fill_on_quote(quote.ts_ns, resting, quote))
        return out

    def on_bars(self, bars: BarsReceived) -> list[VenueMessage]:
        """A step's bars arrived (stamped ``received_ns``): requests due by then reach the
        venue; orders of instruments with no quote fill on the first bar that opened at or
        after they reached it (send + latency: with none, the bar after the decision's, as the
        bar simulator fills)."""
        stamp = bars.received_ns or bars.ts_ns
        out = self._arrivals(stamp)
        opened = bars.ts_ns - self.interval_ns
        index = {iid: i for i, iid in enumerate(bars.instrument_ids)}
        for resting in list(self._resting.values()):
            order = resting.order
            i = index.get(order.instrument_id)
            if i is None or order.instrument_id in self._quotes or opened < resting.due_ns:
                continue
            bar = (bars.open_raw[i], bars.high_raw[i], bars.low_raw[i])
            out.extend(self._fill_on_bar(stamp, resting, bar))
        return out

    # --- the venue ------------------------------------------------------------------------

    def _arrivals(self, now_ns: int) -> list[VenueMessage]:
        """Requests due before ``now_ns`` (an input's stamp): every input stamped at or before
        their due time has been seen, so the book they meet is the one standing then."""
        out: list[VenueMessage] = []
        while self._flight and self._flight[0].due_ns < now_ns:
            request = self._flight.pop(0)
            if request.kind == "place":
                out.extend(self._arrive(now_ns, request.order, request.due_ns))
            else:
                out.extend(self._cancel(now_ns, request.order))
        return out

    def _arrive(self, now_ns: int, order: Order, due_ns: int) -> list[VenueMessage]:
        oid = order.order_id
        self.counts.latency_ns.append(now_ns - self._sent_ns.pop(oid, now_ns))
        reason = self._reject_reason(order)
        if reason:
            self.counts.rejects += 1
            self._done.add(oid)
            return [self._message(now_ns, oid, "reject", reason=reason)]
        self.counts.acks += 1
        resting = _Resting(order, due_ns, now_ns)
        self._resting[oid] = resting
        out = [self._message(now_ns, oid, "ack")]
        quote = self._quotes.get(order.instrument_id)
        if quote is not None:  # the book as it stood when the order reached the venue
            out.extend(self._fill_on_quote(now_ns, resting, quote))
        return out

    def _reject_reason(self, order: Order) -> str:
        inst = self.instruments.get(order.instrument_id)
        if inst is None:
            return f"UNKNOWN_INSTRUMENT: instrument_id={order.instrument_id}"
        if inst.asset_class == "index":  # a reference series, as the simulated venue refuses it
            return f"NOT_TRADABLE: {inst.symbol} is an index"
        if order.order_type not in ("market", "limit"):
            return f"ORDER_TYPE: the paper broker fills market and limit orders, not {order.order_type!r}"
        if inst.min_notional_minor <= 0:
            return ""
        quote = self._quotes.get(order.instrument_id)
        px = order.limit_px_raw
        if not px and quote is not None:
            px = quote.ask_px_raw if order.side > 0 else quote.bid_px_raw
        if px <= 0:
            return ""  # no price known yet: the bar that fills it decides
        value = notional_minor(inst, order.qty_raw, px, Rounding.HALF_EVEN)
        if value >= inst.min_notional_minor:
            return ""
        return f"MIN_NOTIONAL: notional_minor={value}, min_notional_minor={inst.min_notional_minor}"

    def _cancel(self, now_ns: int, order: Order) -> list[VenueMessage]:
        oid = order.order_id
        if self._resting.pop(oid, None) is not None:
            self.counts.cancelled += 1
            self._done.add(oid)
            return [self._message(now_ns, oid, "cancelled", reason="paper broker: cancelled")]
        self.counts.cancel_rejected += 1
        why = "already done" if oid in self._done else "not at the venue (yet)"
        return [self._message(now_ns, oid, "cancel_rejected", reason=f"UNKNOWN_ORDER: {why}")]

    def _fill_on_quote(self, now_ns: int, resting: _Resting, quote: QuoteReceived) -> list[VenueMessage]:
        """The first quote an order meets at the venue fills it at the touch when it crosses
        (a market order always does); a later quote that crosses a resting limit fills it at its
        limit."""
        order = resting.order
        arriving, resting.seen = resting.seen is None, quote
        touch = quote.ask_px_raw if order.side > 0 else quote.bid_px_raw
        if touch <= 0:
            return []
        if order.order_type == "market":
            return self._fill(now_ns, order, touch, maker=False, source="quote")
        crosses = touch <= order.limit_px_raw if order.side > 0 else touch >= order.limit_px_raw
        if not crosses:
            return []
        if arriving:
            return self._fill(now_ns, order, touch, maker=False, source="quote")
        return self._fill(now_ns, order, order.limit_px_raw, maker=True, source="quote")

    def _fill_on_bar(self, now_ns: int, resting: _Resting, bar: tuple[int, int, int]) -> list[VenueMessage]:
        order = resting.order
        open_px, high, low = bar
        if order.order_type == "market":
            slip = apply_rate(open_px, self.costs.slippage_e8, Rounding.HALF_UP)
            return self._fill(now_ns, order, open_px + order.side * slip, maker=False, source="bar")
        limit = order.limit_px_raw
        if (order.side > 0 and open_px <= limit) or (order.side < 0 and open_px >= limit):
            return self._fill(now_ns, order, open_px, maker=False, source="bar")
        if (order.side > 0 and low <= limit) or (order.side < 0 and high >= limit):
            return self._fill(now_ns, order, limit, maker=True, source="bar")
        return []

    def _fill(
        self, now_ns: int, order: Order, px_raw: int, *, maker: bool, source: str
    ) -> list[VenueMessage]:
        inst = self.instruments[order.instrument_id]
        qty = order.leaves_qty_raw
        notional = notional_minor(inst, qty, px_raw, Rounding.HALF_EVEN)
        commission = apply_rate(notional, self.costs.rate(maker), Rounding.HALF_UP)
        del self._resting[order.order_id]
        self._done.add(order.order_id)
        if source == "quote":
            self.counts.quote_fills += 1
        else:
            self.counts.bar_fills += 1
        reason = f"paper {source} {'maker' if maker else 'taker'}"
        return [
            self._message(
                now_ns, order.order_id, "fill", qty_raw=qty, px_raw=px_raw, reason=reason,
                commission_minor=commission,
            )
        ]  # fmt: skip

    def _message(
        self,
        ts_ns: int,
        order_id: str,
        kind: str,
        *,
        qty_raw: int = 0,
        px_raw: int = 0,
        reason: str = "",
        commission_minor: int = 0,
    ) -> VenueMessage:
        message = VenueMessage(
            venue_seq=self._seq, ts_ns=ts_ns, order_id=order_id, kind=kind, qty_raw=qty_raw,
            px_raw=px_raw, reason=reason, commission_minor=commission_minor,
        )  # fmt: skip
        self._seq += 1
        return message
