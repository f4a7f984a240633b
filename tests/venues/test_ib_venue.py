"""The IB adapter through the real ib_async client against a loopback fake TWS (tests/venues/
_fake_tws.py, the TWS socket protocol at server version 176): contract qualification, an IB
session's executions and commissions booked to the cent, duplicates dropped, a resend after a
restart found by orderRef, connectivity codes, rejects and pacing, cancels, a reconnect, and the
kernel messages the live bridge makes of it all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
import pytest_asyncio

pytest.importorskip("ib_async", reason="ib_async is in the dev/live extras")

import ib_async

from domain.events import OrderSubmitted, VenueMessage, VenueMessageReceived
from domain.instruments import Instrument
from domain.orders import Order, new_order
from kernel.outbox import OutboxVenue, VenueRequest
from tests.venues._fake_tws import FakeContract, FakeTws
from venues.ccxt_venue import OrderRequest, StreamNote, VenueError, VenueFill, VenueOrder
from venues.ib_venue import IbVenue, contract_for, map_ib_error
from venues.live_bridge import Book, LiveBridge, ReconcilePolicy

pytestmark = pytest.mark.asyncio

E8 = 10**8

AAPL = Instrument(
    instrument_id=1,
    symbol="AAPL",
    venue="XNAS",
    asset_class="equity",
    currency="USD",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=1,
)
ES = Instrument(
    instrument_id=2,
    symbol="ESZ5",
    venue="XCME",
    asset_class="future",
    currency="USD",
    price_digits=2,
    tick_raw=25,
    qty_digits=0,
    lot_raw=1,
    multiplier=50,
)
AAPL_C190 = Instrument(
    instrument_id=3,
    symbol="AAPL 250117C00190000",
    venue="OPRA",
    asset_class="option",
    currency="USD",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=1,
    multiplier=100,
    underlying="AAPL",
    strike_raw=19000,
    expiry_day=20250117,
    right="call",
)
INSTRUMENTS = [AAPL, ES, AAPL_C190]


def tws_contracts() -> list[FakeContract]:
    return [
        FakeContract(265598, "AAPL", "STK", "SMART", "USD", "AAPL", primary_exchange="NASDAQ"),
        FakeContract(
            495512563,
            "ES",
            "FUT",
            "CME",
            "USD",
            "ESZ5",
            last_trade="20251219",
            multiplier="50",
            min_tick="0.25",
        ),
        FakeContract(
            733614567,
            "AAPL",
            "OPT",
            "SMART",
            "USD",
            "AAPL  250117C00190000",
            last_trade="20250117",
            strike="190",
            right="C",
            multiplier="100",
        ),
    ]


def new_venue(tws: FakeTws, instruments: list[Instrument] = INSTRUMENTS, **options: object) -> IbVenue:
    settings: dict[str, object] = {"port": tws.port, "client_id": 7, "backoff_s": 0.01, "ack_timeout_s": 1.0}
    settings.update(options)
    return IbVenue(ib_async.IB(), instruments, **settings)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def tws() -> AsyncIterator[FakeTws]:
    server = FakeTws(contracts=tws_contracts())
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def venue(tws: FakeTws) -> AsyncIterator[IbVenue]:
    ib_venue = new_venue(tws)
    await ib_venue.connect()
    yield ib_venue
    await ib_venue.close()


def market(cid: str, side: int, qty: int, instrument_id: int = 1) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid, instrument_id=instrument_id, side=side, order_type="market", qty_raw=qty
    )


def limit(cid: str, side: int, qty: int, px_raw: int, **extra: object) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        instrument_id=1,
        side=side,
        order_type="limit",
        qty_raw=qty,
        limit_px_raw=px_raw,
        **extra,
    )  # type: ignore[arg-type]


async def collect(
    venue: IbVenue, done: Callable[[list[object]], bool], timeout_s: float = 5.0
) -> list[VenueOrder | VenueFill | StreamNote]:
    """Updates from the adapter's queue until ``done`` holds for what came (or the timeout)."""
    seen: list[VenueOrder | VenueFill | StreamNote] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not done(seen):
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"timed out; updates so far: {seen}")
        try:
            seen.append(await asyncio.wait_for(venue.updates.get(), left))
        except TimeoutError:
            continue
    return seen


def fills(updates: list[object]) -> list[VenueFill]:
    return [u for u in updates if isinstance(u, VenueFill)]


def notes(updates: list[object], kind: str) -> list[StreamNote]:
    return [u for u in updates if isinstance(u, StreamNote) and u.kind == kind]


def sent(tws: FakeTws, message_id: int) -> list[list[str]]:
    return [f for f in tws.received if f[0] == str(message_id)]


# --- contracts -------------------------------------------------------------------------------------


async def test_stock_future_and_option_are_qualified_to_their_con_ids(venue: IbVenue, tws: FakeTws) -> None:
    assert {iid: c.conId for iid, c in venue.contracts.items()} == {1: 265598, 2: 495512563, 3: 733614567}
    assert venue.contracts[1].exchange == "SMART" and venue.contracts[1].primaryExchange == "NASDAQ"
    assert venue.contracts[2].localSymbol == "ESZ5" and venue.contracts[2].multiplier == "50"
    option = venue.contracts[3]
    assert (option.strike, option.right, option.lastTradeDateOrContractMonth) == (190.0, "C", "20250117")
    # what was asked: the future by local symbol on CME, the option by its terms, routed SMART
    asked = {f[5]: f for f in sent(tws, 9)}
    assert asked["FUT"][13] == "ESZ5" and asked["FUT"][10] == "CME"
    assert asked["OPT"][4] == "AAPL" and asked["OPT"][7:9] == ["190.0", "C"] and asked["OPT"][6] == "20250117"


async def test_unknown_contract_and_wrong_multiplier_refuse_to_start(tws: FakeTws) -> None:
    ghost = Instrument(
        instrument_id=9, symbol="NOPE", venue="XNYS", asset_class="equity", currency="USD",
        price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1,
    )  # fmt: skip
    bad = new_venue(tws, [AAPL, ghost])
    with pytest.raises(VenueError) as error:
        await bad.connect()
    assert error.value.rule == "UNKNOWN_INSTRUMENT" and "NOPE" in error.value.detail
    await bad.close()
    wrong = new_venue(tws, [Instrument(**{**_fields(ES), "multiplier": 5})])
    with pytest.raises(VenueError, match="ESZ5: IB 200"):  # asked with its multiplier: no match
        await wrong.connect()
    await wrong.close()
    lots = new_venue(tws, [Instrument(**{**_fields(AAPL), "multiplier": 100})])
    with pytest.raises(VenueError, match="AAPL: IB multiplier , the instrument's 100"):
        await lots.connect()
    await lots.close()
    with pytest.raises(VenueError, match="asset class"):
        contract_for(Instrument(**{**_fields(AAPL), "asset_class": "crypto_perp"}))


def _fields(inst: Instrument) -> dict[str, object]:
    return {name: getattr(inst, name) for name in inst.__struct_fields__}


# --- fills and commissions ---------------------------------------------------------------------


async def test_executions_and_commissions_are_booked_exactly_once_both_are_in(
    venue: IbVenue, tws: FakeTws
) -> None:
    tws.hold_commissions = True
    tws.market_fills["c-1"] = [(60, "187.23", "0.3456789"), (40, "187.24", "1.00")]
    state = await venue.place(market("c-1", 1, 100))
    assert state.client_order_id == "c-1" and state.venue_order_id.startswith("7/")
    got = await collect(
        venue, lambda seen: any(isinstance(u, VenueOrder) and u.status == "filled" for u in seen)
    )
    await asyncio.sleep(0.1)
    assert fills(got) == [] and venue.updates.empty()  # executions in, commissions not: nothing booked
    assert venue.stats["fill.waiting_commission"] == 2
    tws.release_commissions()
    got = await collect(venue, lambda seen: len(fills(seen)) == 2)
    booked = fills(got)
    assert [(f.qty_raw, f.px_raw, f.fee_e8, f.fee_asset, f.side) for f in booked] == [
        (60, 18723, 34_567_890, "USD", 1),
        (40, 18724, 100_000_000, "USD", 1),
    ]
    assert {f.client_order_id for f in booked} == {"c-1"} and len({f.trade_id for f in booked}) == 2
    assert {f.ts_ms for f in booked} == {1_735_831_800_000}  # the execution's 20250102 15:30:00 UTC


async def test_a_session_through_the_bridge_books_to_the_cent_and_reconciles(
    venue: IbVenue, tws: FakeTws
) -> None:
    tws.market_fills["tabc-5"] = [(60, "187.23", "0.3456789"), (40, "187.24", "1.00")]
    tws.market_fills["tabc-6"] = [(2, "6012.25", "4.50")]
    tws.reject["tabc-7"] = (201, "Order rejected - reason:Available Funds are insufficient")
    outbox = OutboxVenue()
    ticks = iter(range(1_000, 10_000))
    bridge = LiveBridge(venue, outbox, INSTRUMENTS, tag="tabc", clock=lambda: next(ticks))
    buy = Order(
        order_id="r-1-5",
        strategy_id="s",
        instrument_id=1,
        side=1,
        order_type="market",
        qty_raw=100,
        limit_px_raw=0,
    )
    es = Order(
        order_id="r-1-6",
        strategy_id="s",
        instrument_id=2,
        side=-1,
        order_type="market",
        qty_raw=2,
        limit_px_raw=0,
    )
    big = Order(
        order_id="r-1-7", strategy_id="s", instrument_id=1, side=1, order_type="limit",
        qty_raw=10_000, limit_px_raw=18000,
    )  # fmt: skip
    await bridge.send([VenueRequest("place", buy), VenueRequest("place", es), VenueRequest("place", big)])
    for _ in range(200):
        bridge.take_updates()
        if bridge.counts.fills == 3:
            break
        await asyncio.sleep(0.01)
    messages = outbox.peek()
    sent = [m for m in messages if m.kind == "sent"]  # each send, stamped as it left
    assert [m.order_id for m in sent] == ["r-1-5", "r-1-6", "r-1-7"]
    messages = [m for m in messages if m.kind != "sent"]
    assert [(m.order_id, m.kind, m.qty_raw, m.px_raw, m.commission_minor) for m in messages] == [
        ("r-1-5", "ack", 0, 0, 0),
        ("r-1-5", "fill", 60, 18723, 35),  # 0.3456789 USD to the cent, half-even
        ("r-1-5", "fill", 40, 18724, 100),
        ("r-1-6", "ack", 0, 0, 0),
        ("r-1-6", "fill", 2, 601225, 450),
        ("r-1-7", "reject", 0, 0, 0),
    ]
    assert messages[-1].reason.startswith("INSUFFICIENT_BALANCE: ")
    assert messages[-1].reason.endswith("IB 201 Order rejected - reason:Available Funds are insufficient")
    assert [m.venue_seq for m in outbox.peek()] == list(range(1, 10))  # the sends numbered too
    assert all(m.reason.startswith("trade:") for m in messages if m.kind == "fill")
    # the venue's cash moved by the exact commission; the book by the cent: the bridge's drift
    # accounts for it, so reconciliation finds no difference
    found = await bridge.reconcile(
        Book(open_orders={}, positions={}, cash_minor=10_000_000, currency="USD"),
        "start",
        ReconcilePolicy(),
        venue.name,
    )
    assert found.differences == [] and found.action == "none", found
    assert Decimal(tws.cash["USD"]) == Decimal("100000") - Decimal("18723.40") - Decimal(
        "1.3456789"
    ) + Decimal("601225") - Decimal("4.50")


async def test_a_commission_report_before_its_execution_is_asked_for_again(
    venue: IbVenue, tws: FakeTws
) -> None:
    """TWS sends the report first: ib_async drops it (no execution to attach it to) and fires no
    event, so the fill would wait until the next reconciliation with its order shown filled.
    The adapter asks the day's executions again (each answered with its report) and books it."""
    tws.commission_first = True
    tws.market_fills["c-cf"] = [(10, "187.00", "1.2345")]
    await venue.place(market("c-cf", 1, 10))
    got = await collect(venue, lambda seen: len(fills(seen)) == 1)
    assert [(f.client_order_id, f.qty_raw, f.fee_e8) for f in fills(got)] == [("c-cf", 10, 123_450_000)]
    assert venue.stats["commission.asked"] == 1 and not venue.stats["fill.commission_missing"]
    assert len(sent(tws, 7)) == 2  # reqExecutions: the startup sync's, then the adapter's one


async def test_a_commission_report_not_made_yet_is_asked_for_with_a_backoff_then_counted(
    tws: FakeTws,
) -> None:
    tws.hold_commissions = True
    tws.market_fills["c-h"] = [(10, "187.00", "1.00")]
    venue = new_venue(tws, retries=1, ack_timeout_s=0.05)
    await venue.connect()
    try:
        await venue.place(market("c-h", 1, 10))
        await asyncio.sleep(0.4)  # asked after 0.05 s and 0.1 s; TWS has no report yet
        assert venue.stats["commission.asked"] == 2 and venue.stats["fill.commission_missing"] == 1
        queued = [venue.updates.get_nowait() for _ in range(venue.updates.qsize())]
        assert fills(queued) == []
        tws.release_commissions()  # the report comes live after all: booked then
        got = await collect(venue, lambda seen: len(fills(seen)) == 1)
        assert [f.fee_e8 for f in fills(got)] == [100_000_000]
    finally:
        await venue.close()


async def test_duplicate_executions_are_not_booked_twice(venue: IbVenue, tws: FakeTws) -> None:
    tws.duplicate_execs = True
    tws.market_fills["c-d"] = [(10, "187.00", "1.00")]
    await venue.place(market("c-d", 1, 10))
    await collect(venue, lambda seen: len(fills(seen)) == 1)
    # the same execution again, as after a reconnect when ib_async has forgotten it
    assert await venue.fetch_fills(1) and venue.updates.empty()
    await tws.drop()
    got = await collect(venue, lambda seen: bool(notes(seen, "reconciled")))
    assert fills(got) == [] and venue.stats["dedup.fill_duplicate"] >= 1
    assert len(tws.executions) == 1


# --- idempotent resend ---------------------------------------------------------------------------


async def test_a_resend_after_a_restart_is_found_by_order_ref(tws: FakeTws) -> None:
    first = new_venue(tws)
    await first.connect()
    await first.place(limit("c-r", 1, 50, 18000, time_in_force="GTC"))
    tws.market_fills["c-f"] = [(5, "187.10", "1.00")]
    await first.place(market("c-f", 1, 5))
    await first.close()  # the process dies; IB keeps the resting order and the execution
    assert len(sent(tws, 3)) == 2
    second = new_venue(tws)
    await second.connect()
    resting = await second.place(limit("c-r", 1, 50, 18000, time_in_force="GTC"), resend=True)
    done = await second.place(market("c-f", 1, 5), resend=True)
    assert len(sent(tws, 3)) == 2  # nothing sent twice
    assert (resting.status, resting.client_order_id, resting.filled_qty_raw) == ("new", "c-r", 0)
    assert (done.status, done.filled_qty_raw) == ("filled", 5)
    assert second.stats["place.found_on_resend"] == 2
    assert await second.lookup(1, "never-sent") is None
    await second.close()


async def test_an_order_ended_while_the_session_was_down_is_found_in_completed_orders(tws: FakeTws) -> None:
    """Cancelled by TWS (a DAY order's end) and made inactive while no connection was up: in
    neither the open orders nor the executions; a restart (new client, same client id) finds
    both in IB's completed orders, asked only then (apiOnly), and a never-sent orderRef not; the
    bridge's reconciliation hands the kernel the cancel of the order it had acknowledged."""
    first = new_venue(tws)
    await first.connect()
    await first.place(limit("tabc-1", 1, 10, 17000))
    await first.place(limit("c-i", 1, 3, 17100))
    tws.market_fills["c-f"] = [(5, "187.10", "1.00")]
    await first.place(market("c-f", 1, 5))
    await first.close()  # the process dies
    by_ref = {order.order_ref: order for order in tws.orders.values()}
    tws.end_order(by_ref["tabc-1"].order_id)  # nobody connected hears of it
    tws.end_order(by_ref["c-i"].order_id, "Inactive", "Inactive")
    second = new_venue(tws)
    await second.connect()
    assert sent(tws, 99) == []  # not loaded on connect: asked when an order is missing
    ended = await second.lookup(1, "tabc-1")
    assert ended is not None
    assert (ended.status, ended.client_order_id, ended.qty_raw, ended.filled_qty_raw, ended.limit_px_raw) == (
        "canceled", "tabc-1", 10, 0, 17000
    )  # fmt: skip
    assert ended.venue_order_id == f"perm/{by_ref['tabc-1'].perm_id}"  # IB states no order id for it
    assert sent(tws, 99) == [["99", "1"]]  # API orders only
    done = await second.lookup(1, "c-f")  # its executions: filled, and the completed order agrees
    assert done is not None and (done.status, done.qty_raw, done.filled_qty_raw) == ("filled", 5, 5)
    inactive = await second.lookup(1, "c-i")
    assert inactive is not None and (inactive.status, inactive.qty_raw) == ("canceled", 3)
    assert await second.lookup(1, "never-sent") is None
    assert await second.lookup(2, "tabc-1") is None  # not that instrument's order
    assert second.stats["lookup.found_completed"] == 2
    # a resumed session's reconciliation: the book holds the order open, acknowledged before
    submitted = OrderSubmitted(
        order_id="s-1", strategy_id="s", instrument_id=1, side=1, order_type="limit", qty_raw=10,
        limit_px_raw=17000, decision_px_raw=17000, parent_id="", ts_ns=0,
    )  # fmt: skip
    ack = VenueMessage(venue_seq=1, ts_ns=0, order_id="s-1", kind="ack")
    bridge = LiveBridge(second, OutboxVenue(), INSTRUMENTS, tag="tabc", clock=lambda: 0)
    bridge.remember([submitted, VenueMessageReceived(ts_ns=0, step=0, message=ack)])
    book = Book(
        open_orders={"s-1": new_order(submitted)}, positions={1: 5}, cash_minor=9_906_350, currency="USD"
    )
    found = await bridge.reconcile(book, "resume", ReconcilePolicy(), second.name)
    assert found.differences == [] and found.action == "none", found
    assert [(m.order_id, m.kind, m.reason) for m in bridge.outbox.peek()] == [
        ("s-1", "cancelled", "venue: canceled")
    ]
    await second.close()


# --- errors --------------------------------------------------------------------------------------


async def test_connectivity_codes_become_stream_notes(venue: IbVenue, tws: FakeTws) -> None:
    tws.error_all(-1, 1100, "Connectivity between IB and Trader Workstation has been lost.")
    got = await collect(venue, lambda seen: bool(notes(seen, "disconnected")))
    assert notes(got, "disconnected")[0].detail.startswith("IB 1100")
    tws.error_all(-1, 1102, "Connectivity between IB and TWS has been restored - data maintained.")
    got = await collect(venue, lambda seen: bool(notes(seen, "restored")))
    assert not notes(got, "reconciled")  # data maintained: nothing to catch up
    tws.error_all(-1, 1101, "Connectivity between IB and TWS has been restored - data lost.")
    got = await collect(venue, lambda seen: bool(notes(seen, "reconciled")))
    assert notes(got, "restored")[0].detail.startswith("IB 1101")
    assert venue.stats["ib_error.1100"] == 1 and venue.stats["reconciled"] == 1


async def test_an_order_reject_is_mapped_to_a_rule_code(venue: IbVenue, tws: FakeTws) -> None:
    tws.reject["c-x"] = (
        201,
        "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION "
        "YOUR EQUITY WITH LOAN VALUE [1000.00 USD] MUST EXCEED THE INITIAL MARGIN [9000.00 USD]",
    )
    with pytest.raises(VenueError) as error:
        await venue.place(market("c-x", 1, 100))
    assert error.value.rule == "INSUFFICIENT_BALANCE" and error.value.venue_code == 201
    tws.reject["c-y"] = (201, "Order rejected - reason:The contract is not available for trading")
    with pytest.raises(VenueError) as error:
        await venue.place(market("c-y", 1, 1))
    assert error.value.rule == "VENUE_REJECT"
    got = await collect(venue, lambda seen: len([u for u in seen if isinstance(u, VenueOrder)]) == 2)
    assert {u.status for u in got if isinstance(u, VenueOrder)} == {"rejected"}
    assert map_ib_error(110, "price").rule == "TICK_SIZE"
    assert map_ib_error(200, "No security definition").rule == "UNKNOWN_INSTRUMENT"
    assert map_ib_error(10148, "cannot be cancelled").rule == "NOT_CANCELLABLE"
    assert map_ib_error(100, "Max rate").retriable and map_ib_error(162, "pacing violation").retriable


async def test_an_order_dropped_for_pacing_is_sent_again_after_a_backoff(
    venue: IbVenue, tws: FakeTws
) -> None:
    tws.pace_once.add("c-p")
    state = await venue.place(limit("c-p", -1, 3, 19000))
    assert state.status == "new" and venue.stats["error.RATE_LIMIT"] == 1 and venue.stats["retry"] == 1
    assert len(sent(tws, 3)) == 2 and len(tws.orders) == 1
    tws.pace_requests = 2  # a request refused for pacing twice is asked again after a backoff
    assert await venue.fetch_fills(1) == []
    assert venue.stats["retry"] == 3 and len(sent(tws, 7)) == 1 + 3  # the startup sync's, then 3
    tws.pace_requests = 9
    with pytest.raises(VenueError) as error:
        await venue.fetch_fills(1)
    assert error.value.rule == "RATE_LIMIT" and error.value.venue_code == 100


async def test_stop_orders_carry_their_trigger_and_time_in_force(venue: IbVenue, tws: FakeTws) -> None:
    await venue.place(
        OrderRequest(
            client_order_id="c-s", instrument_id=2, side=-1, order_type="stop_limit", qty_raw=1,
            limit_px_raw=598000, stop_px_raw=598500, time_in_force="GTC",
        )
    )  # fmt: skip
    placed = sent(tws, 3)[0]
    assert placed[16:22] == ["SELL", "1.0", "STP LMT", "5980.0", "5985.0", "GTC"] and placed[26] == "c-s"
    with pytest.raises(VenueError, match="BAD_REQUEST"):
        await venue.place(
            OrderRequest(client_order_id="c-t", instrument_id=1, side=1, order_type="stop", qty_raw=1)
        )
    with pytest.raises(VenueError, match="BAD_REQUEST"):
        await venue.place(limit("c-u", 1, 1, 100, time_in_force="SOMEDAY"))


async def test_cancel_confirmed_refused_and_unknown(venue: IbVenue, tws: FakeTws) -> None:
    await venue.place(limit("c-c", 1, 10, 17000))
    cancelled = await venue.cancel(1, "c-c")
    assert cancelled.status == "canceled"
    await venue.place(limit("c-n", 1, 10, 17000))
    tws.refuse_cancel = True
    with pytest.raises(VenueError) as error:
        await venue.cancel(1, "c-n")
    assert error.value.rule == "NOT_CANCELLABLE" and error.value.venue_code == 10148
    # ib_async marked it Cancelled on the error; the adapter does not pass that on
    assert [o.status for o in await venue.fetch_open_orders(1) if o.client_order_id == "c-n"] == ["new"]
    with pytest.raises(VenueError) as error:
        await venue.cancel(1, "never-sent")
    assert error.value.rule == "ORDER_NOT_FOUND"


async def test_an_order_cancelled_without_a_fill_is_still_found(venue: IbVenue, tws: FakeTws) -> None:
    """IB lists neither open orders nor executions for it: the connection's own record says it
    was cancelled (a stop reconciliation would otherwise call it lost)."""
    await venue.place(limit("c-x", 1, 10, 17000))
    await venue.cancel(1, "c-x")
    assert all(order.order_ref != "c-x" or order.status == "Cancelled" for order in tws.orders.values())
    found = await venue.lookup(1, "c-x")
    assert found is not None and (found.status, found.filled_qty_raw) == ("canceled", 0)
    assert await venue.lookup(1, "never-sent") is None


# --- reconnect -----------------------------------------------------------------------------------


async def test_reconnect_catches_up_on_what_happened_while_away(venue: IbVenue, tws: FakeTws) -> None:
    await venue.place(limit("c-w", 1, 20, 18500))
    await collect(venue, lambda seen: venue.updates.empty())
    order_id = next(iter(tws.orders))
    await tws.drop()  # TWS restarts; the order fills while the adapter is away
    tws.fill(order_id, 20, "185.00", "1.25")
    got = await collect(venue, lambda seen: bool(notes(seen, "reconciled")))
    assert notes(got, "disconnected")[0].stream == "socket"
    assert [(f.client_order_id, f.qty_raw, f.px_raw, f.fee_e8) for f in fills(got)] == [
        ("c-w", 20, 18500, 125 * E8 // 100)
    ]
    assert [u.status for u in got if isinstance(u, VenueOrder)] == ["filled"]
    assert tws.connections == 2 and venue.stats["reconnect"] == 1
    balances = {b.asset: b.free_e8 for b in await venue.fetch_balances()}
    assert balances["AAPL"] == 20 * E8


async def test_an_order_part_filled_then_cancelled_while_away_is_not_taken_for_filled(tws: FakeTws) -> None:
    """Its executions alone cannot tell (after a restart the quantity asked is forgotten): the
    completed order says cancelled, 4 of 10 filled, under the order's own venue id."""
    first = new_venue(tws)
    await first.connect()
    tws.market_fills["c-p"] = [(4, "169.90", "0.35")]
    placed = await first.place(limit("c-p", 1, 10, 17000))
    await first.close()
    tws.end_order(next(iter(tws.orders)))  # the DAY order's end, the rest unfilled
    second = new_venue(tws)
    await second.connect()
    found = await second.lookup(1, "c-p")
    assert found is not None
    assert (found.status, found.qty_raw, found.filled_qty_raw) == ("canceled", 10, 4), found
    assert found.venue_order_id == placed.venue_order_id
    assert [
        (f.client_order_id, f.qty_raw) for f in fills(await collect(second, lambda s: bool(fills(s))))
    ] == [("c-p", 4)]  # the execution itself is booked as ever
    await second.close()


async def test_lookups_asked_together_each_get_their_answer(venue: IbVenue, tws: FakeTws) -> None:
    """ib_async files open and completed orders under one fixed key each: a second request
    started before the first's end would take over its future and the first never end (a
    reconnect's catch-up and a cancel's lookup ask together). The adapter asks one at a time."""
    await venue.place(limit("c-1", 1, 10, 17000))
    await venue.cancel(1, "c-1")
    await venue.place(limit("c-2", 1, 10, 17000))
    asked = [venue.lookup(1, ref) for ref in ("c-1", "gone-a", "gone-b")] + [venue.fetch_open_orders(1)]
    found = await asyncio.wait_for(asyncio.gather(*asked), 10)
    assert found[0] is not None and found[0].status == "canceled"
    assert found[1:3] == [None, None] and [o.client_order_id for o in found[3]] == ["c-2"]


async def test_reconnect_books_an_order_cancelled_while_away(venue: IbVenue, tws: FakeTws) -> None:
    """The order left the open list unfilled while the socket was down: the catch-up asks IB's
    completed orders (once) and passes its cancel on under the order's own venue id."""
    placed = await venue.place(limit("c-a", 1, 20, 18500))
    await venue.place(limit("c-b", 1, 7, 18400))  # still working after the reconnect
    await collect(venue, lambda seen: venue.updates.empty())
    by_ref = {order.order_ref: order for order in tws.orders.values()}
    await tws.drop()
    tws.end_order(by_ref["c-a"].order_id)  # a DAY order's end while the adapter is away
    got = await collect(venue, lambda seen: bool(notes(seen, "reconciled")))
    states = [(u.client_order_id, u.venue_order_id, u.status) for u in got if isinstance(u, VenueOrder)]
    assert states == [("c-a", placed.venue_order_id, "canceled")]
    assert len(sent(tws, 99)) == 1 and venue.stats["completed.asked"] == 1


async def test_a_fill_of_a_contract_not_traded_here_is_not_a_bad_message(tws: FakeTws) -> None:
    """Completed orders asked for make ib_async hold orders of earlier connections, so the
    executions asked again fire commission events for them, some in contracts this session
    does not trade: counted, not a bad message."""
    first = new_venue(tws)
    await first.connect()
    tws.market_fills["c-es"] = [(1, "6012.25", "2.25")]
    await first.place(market("c-es", -1, 1, instrument_id=2))
    await first.close()
    second = new_venue(tws, [AAPL])
    await second.connect()
    assert await second.lookup(1, "never-sent") is None  # asks the completed orders
    assert await second.fetch_fills(1) == []
    await asyncio.sleep(0.05)
    got = []
    while not second.updates.empty():
        got.append(second.updates.get_nowait())
    assert notes(got, "bad_message") == [] and second.stats["foreign_contract"] >= 1, got
    await second.close()


async def test_reconnect_backs_off_exponentially_with_seeded_jitter(tws: FakeTws) -> None:
    one, two = new_venue(tws, jitter_seed=3), new_venue(tws, jitter_seed=3)
    delays = [one.reconnect_delay(n) for n in range(14)]
    assert delays == [two.reconnect_delay(n) for n in range(14)]
    assert all(0.01 * 2**n <= d <= 0.0125 * 2**n for n, d in enumerate(delays[:8]))
    assert 30.0 <= delays[-1] <= 37.5  # capped (backoff_cap_s), plus at most 25 % jitter


async def test_a_client_id_in_use_is_named_not_taken_for_a_missing_gateway(tws: FakeTws) -> None:
    """TWS answers a client id another API session holds with 326 and closes the socket; the
    error says so (it read "no TWS / IB Gateway API ...: TimeoutError; is it running")."""
    tws.clients_in_use = {7}
    venue = new_venue(tws, connect_timeout_s=1.0)
    with pytest.raises(VenueError) as refused:
        await venue.connect()
    assert refused.value.rule == "VENUE_UNAVAILABLE" and refused.value.venue_code == 326
    assert "refused client id 7: IB 326 Unable to connect as the client id is already in use" in str(
        refused.value
    )
    assert "own [live] client_id" in str(refused.value) and "is it running" not in str(refused.value)
    tws.clients_in_use = set()
    await venue.connect()  # the id free again: the same venue connects
    await venue.close()


async def test_a_first_connect_that_fails_is_an_error_not_a_reconnect_loop() -> None:
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    venue = IbVenue(ib_async.IB(), [AAPL], port=port, connect_timeout_s=1.0)
    with pytest.raises(VenueError) as error:
        await venue.connect()
    assert error.value.rule == "VENUE_UNAVAILABLE" and error.value.retriable
    await asyncio.sleep(0.05)
    assert venue.stats["disconnect"] == 0 and venue.updates.empty()
