"""The live bridge's translation (``venues.live_bridge``), on any order of what a venue reports.

An order's life at the venue (partial fills, then filled, cancelled or expired) reaches the
adapter as order states and trades in any interleaving, with trades repeated (a websocket and
a REST catch-up report the same trade) and the final state sometimes before its trades. Whatever
the order, the messages the kernel gets:

* are numbered 1, 2, 3, ... in the order they were made;
* take the order through legal transitions only (``domain.orders.evolve`` never refuses one);
* book each trade exactly once, so the order's filled quantity equals the venue's;
* close the order (cancelled / expired) only after every trade of it, and never twice.
"""

from __future__ import annotations

import types

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import (
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    VenueMessage,
)
from domain.instruments import Instrument
from domain.orders import Order, evolve, new_order
from kernel.outbox import OutboxVenue
from venues.ccxt_venue import CcxtVenue, VenueFill, VenueOrder
from venues.live_bridge import LiveBridge

BTC = Instrument(
    instrument_id=1, symbol="BTC/USDT", venue="binance", asset_class="crypto", currency="USDT",
    price_digits=2, tick_raw=1, qty_digits=5, lot_raw=1,
)  # fmt: skip
ORDER_ID = "s-20240101-000001"


@st.composite
def venue_reports(draw: st.DrawFn) -> tuple[int, list[VenueOrder | VenueFill], int, str]:
    """(order quantity, the reports in arrival order, executed quantity, final status)."""
    qty = draw(st.integers(2, 1_000))
    fills: list[int] = []
    left = qty
    while left and draw(st.booleans()):
        part = draw(st.integers(1, left))
        fills.append(part)
        left -= part
    final = "filled" if left == 0 else draw(st.sampled_from(["canceled", "expired", "new"]))
    executed = qty - left

    def state(status: str, filled: int, update: int) -> VenueOrder:
        return VenueOrder(
            client_order_id="", venue_order_id="77", instrument_id=1, side=1, order_type="limit",
            status=status, qty_raw=qty, filled_qty_raw=filled, limit_px_raw=10_000,
            update_ms=update, source="ws",
        )  # fmt: skip

    states = [state("new", 0, 0)]
    done = 0
    for index, part in enumerate(fills, start=1):
        done += part
        states.append(state("partially_filled" if done < qty else "filled", done, index))
    if final in ("canceled", "expired"):
        states.append(state(final, executed, len(fills) + 1))
    trades = [_trade(index, part) for index, part in enumerate(fills)]
    repeated = draw(st.lists(st.sampled_from(trades), max_size=3)) if trades else []
    # order states keep their order (the adapter drops stale ones); trades go anywhere
    reports: list[VenueOrder | VenueFill] = list(states)
    for trade in trades + repeated:
        reports.insert(draw(st.integers(0, len(reports))), trade)
    return qty, reports, executed, final


def _trade(index: int, part: int) -> VenueFill:
    return VenueFill(
        trade_id=str(100 + index), venue_order_id="77", client_order_id="", instrument_id=1,
        side=1, qty_raw=part, px_raw=10_000, fee_e8=part * 10, fee_asset="USDT", maker=True,
        ts_ms=index, source="ws",
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(case=venue_reports())
def test_any_interleaving_gives_legal_messages_that_book_each_trade_once(
    case: tuple[int, list[VenueOrder | VenueFill], int, str],
) -> None:
    qty, reports, executed, final = case
    outbox = OutboxVenue()
    venue = CcxtVenue(types.SimpleNamespace(), [BTC])
    bridge = LiveBridge(venue, outbox, [BTC], tag="tabc", clock=lambda: 5)
    submitted = OrderSubmitted(
        ts_ns=1, order_id=ORDER_ID, strategy_id="s", instrument_id=1, side=1, order_type="limit",
        qty_raw=qty, limit_px_raw=10_000, decision_px_raw=10_000,
    )  # fmt: skip
    bridge.remember([submitted])
    client = bridge.client_id(ORDER_ID)
    for report in reports:
        bridge.translate(_with_client(report, client))
    messages = outbox.poll(0)
    assert [m.venue_seq for m in messages] == list(range(1, len(messages) + 1))
    order: Order = new_order(submitted)
    booked = 0
    for message in messages:
        assert order.is_open, f"a message after the order closed: {message}"
        order = evolve(order, _event(message, order))
        booked += message.qty_raw if message.kind == "fill" else 0
    assert booked == executed == order.filled_qty_raw
    kinds = [m.kind for m in messages]
    assert kinds[0] == "ack"
    if final in ("canceled", "expired"):
        assert kinds[-1] == ("cancelled" if final == "canceled" else "expired")
        assert kinds.count(kinds[-1]) == 1
    else:
        assert "cancelled" not in kinds and "expired" not in kinds
        assert order.is_open == (final == "new")


def _with_client(report: VenueOrder | VenueFill, client: str) -> VenueOrder | VenueFill:
    import msgspec

    return msgspec.structs.replace(report, client_order_id=client)


def _event(
    message: VenueMessage, order: Order
) -> OrderAccepted | OrderRejected | OrderFilled | OrderCancelled | OrderExpired:
    oid = message.order_id
    if message.kind == "ack":
        return OrderAccepted(ts_ns=0, order_id=oid)
    if message.kind == "reject":
        return OrderRejected(ts_ns=0, order_id=oid, reason=message.reason)
    if message.kind == "cancelled":
        return OrderCancelled(ts_ns=0, order_id=oid, reason=message.reason)
    if message.kind == "expired":
        return OrderExpired(ts_ns=0, order_id=oid, reason=message.reason)
    assert message.kind == "fill", message
    return OrderFilled(
        ts_ns=0, order_id=oid, instrument_id=1, side=1, fill_qty_raw=message.qty_raw,
        fill_px_raw=message.px_raw, leaves_qty_raw=order.leaves_qty_raw - message.qty_raw,
        notional_minor=0, commission_minor=message.commission_minor, currency="USDT",
    )  # fmt: skip
