"""The XTP adapter at its callback boundary: recorded XTP callback dicts (tests/venues/data/
xtp_callbacks.json, constructed from XTP's documented field names) played from another thread
into ``XtpVenue`` as ``vnpy_xtp``'s ``TdApi`` would call them; the A-share rules refusing an
order before it reaches ``insertOrder``; and ``LiveBridge`` + ``OutboxVenue`` driving it."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain.events import OrderSubmitted
from domain.instruments import Instrument
from domain.orders import new_order
from kernel.outbox import OutboxVenue, VenueRequest
from tests.factories import SPDB
from venues.ccxt_venue import OrderRequest, StreamNote, VenueError, VenueFill, VenueOrder
from venues.live_bridge import Book, LiveBridge, ReconcilePolicy
from venues.xtp_venue import XtpVenue, client_number, map_xtp_error, xtp_market, xtp_ms

FIXTURE = json.loads((Path(__file__).parent / "data" / "xtp_callbacks.json").read_text(encoding="utf-8"))
TAG, DAY, SESSION = FIXTURE["tag"], FIXTURE["day"], FIXTURE["session_id"]
PAB = Instrument(
    instrument_id=2, symbol="000001", venue="XSHE", asset_class="equity", currency="CNY",
    price_digits=2, tick_raw=1, qty_digits=0, lot_raw=100, board="main", listing_day=19910403,
)  # fmt: skip
SMIC = Instrument(
    instrument_id=3, symbol="688981", venue="XSHG", asset_class="equity", currency="CNY",
    price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1, board="star", listing_day=20200716,
)  # fmt: skip
INSTRUMENTS = [SPDB, PAB, SMIC]
E8 = 10**8


def _fill_in(value: Any, ocid: int) -> Any:
    if value == "{ocid}":
        return ocid
    if isinstance(value, dict):
        return {k: _fill_in(v, ocid) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_in(v, ocid) for v in value]
    return value


class RecordedTd:
    """Stands where ``vnpy_xtp.api.TdApi`` stands: records what the adapter asks and plays the
    recorded callbacks of the scenario named in ``play`` from another thread, as XTP does."""

    def __init__(self) -> None:
        self.venue: XtpVenue | None = None
        self.play = ""
        self.inserted: list[dict[str, Any]] = []
        self.cancelled: list[int] = []
        self.orders: dict[int, dict[str, Any]] = {}  # the latest state of each order played
        self.trades: list[dict[str, Any]] = []
        self.foreign = FIXTURE["queries"]["queryOrdersEx.foreign"]
        self.cancel_events: dict[int, list[dict[str, Any]]] = {}

    def _deliver(self, events: list[dict[str, Any]]) -> None:
        def run() -> None:
            assert self.venue is not None
            for event in events:
                if event["callback"] == "onOrderEvent":
                    self.orders[event["data"]["order_xtp_id"]] = event["data"]
                    self.venue.onOrderEvent(event["data"], event["error"], SESSION)
                elif event["callback"] == "onTradeEvent":
                    self.trades.append(event["data"])
                    self.venue.onTradeEvent(event["data"], SESSION)
                else:
                    self.venue.onCancelOrderError(event["data"], event["error"], SESSION)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()

    def _answer(self, callback: str, rows: list[dict[str, Any]], reqid: int) -> None:
        assert self.venue is not None
        handler = getattr(self.venue, callback)
        none = {"error_id": 11000350, "error_msg": "查询无记录"}
        ok = {"error_id": 0, "error_msg": ""}

        def run() -> None:
            if not rows:
                handler({}, none, reqid, True, SESSION)
            for index, row in enumerate(rows):
                handler(row, ok, reqid, index == len(rows) - 1, SESSION)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()

    def insertOrder(self, req: dict[str, Any], session: int) -> int:
        self.inserted.append(req)
        scenario = FIXTURE["scenarios"][self.play]
        self._deliver(_fill_in(scenario["on_insert"], req["order_client_id"]))
        self.cancel_events[scenario["xtp_id"]] = _fill_in(
            scenario.get("on_cancel", []), req["order_client_id"]
        )
        return int(scenario["xtp_id"])

    def cancelOrder(self, xtp_id: int, session: int) -> int:
        self.cancelled.append(xtp_id)
        self._deliver(self.cancel_events[xtp_id])
        return xtp_id + 1000

    def getApiLastError(self) -> dict[str, Any]:
        return {"error_id": 0, "error_msg": ""}

    def queryOrdersEx(self, req: dict[str, Any], session: int, reqid: int) -> int:
        rows = [o for o in [*self.orders.values(), *self.foreign] if o["ticker"] == req["ticker"]]
        self._answer("onQueryOrderEx", rows, reqid)
        return 0

    def queryUnfinishedOrdersEx(self, session: int, reqid: int) -> int:
        rows = [o for o in [*self.orders.values(), *self.foreign] if o["order_status"] in (2, 4)]
        self._answer("onQueryOrderEx", rows, reqid)
        return 0

    def queryTrades(self, req: dict[str, Any], session: int, reqid: int) -> int:
        self._answer("onQueryTrade", [t for t in self.trades if t["ticker"] == req["ticker"]], reqid)
        return 0

    def queryPosition(self, ticker: str, session: int, reqid: int) -> int:
        self._answer("onQueryPosition", FIXTURE["queries"]["queryPosition"], reqid)
        return 0

    def queryAsset(self, session: int, reqid: int) -> int:
        self._answer("onQueryAsset", FIXTURE["queries"]["queryAsset"], reqid)
        return 0


def make_venue(**kwargs: Any) -> tuple[XtpVenue, RecordedTd]:
    api = RecordedTd()
    venue = XtpVenue(api, SESSION, INSTRUMENTS, tag=TAG, day=DAY, answer_timeout_s=2.0, **kwargs)
    api.venue = venue
    venue.set_reference(SPDB.instrument_id, 1000)  # previous close 10.00: limits 9.00 .. 11.00
    venue.set_reference(PAB.instrument_id, 1120)
    venue.set_reference(SMIC.instrument_id, 9000)
    return venue, api


def request(n: int, inst: Instrument, side: int, qty: int, px: int = 0) -> OrderRequest:
    return OrderRequest(
        client_order_id=f"{TAG}-{n:06d}", instrument_id=inst.instrument_id, side=side,
        order_type="limit" if px else "market", qty_raw=qty, limit_px_raw=px,
    )  # fmt: skip


def drain(venue: XtpVenue) -> list[object]:
    out = []
    while not venue.updates.empty():
        out.append(venue.updates.get_nowait())
    return out


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# --- mapping -------------------------------------------------------------------------------


def test_times_markets_ids_and_errors() -> None:
    assert xtp_ms(20241108093001020) == 1731029401020  # 09:30:01.020 Beijing = 01:30:01.020 UTC
    assert xtp_ms(0) == 0
    assert xtp_market(SPDB) == (2, "600000") and xtp_market(PAB) == (1, "000001")
    bse = Instrument(
        instrument_id=9, symbol="830799", venue="BJSE", asset_class="equity", currency="CNY",
        price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1, board="bse",
    )  # fmt: skip
    with pytest.raises(VenueError, match="no XTP market"):
        xtp_market(bse)
    number = client_number(TAG, f"{TAG}-000042")
    assert number & 0xFFFFFF == 42 and 0 < number < 2**32
    with pytest.raises(VenueError):
        client_number(TAG, "other-000042")
    with pytest.raises(VenueError, match="does not fit"):
        client_number(TAG, f"{TAG}-{2**24}")
    cases = {
        "资金不足": "INSUFFICIENT_BALANCE",
        "可卖数量不足": "CN_T_PLUS_1",
        "委托价格超出涨跌停范围": "CN_PRICE_LIMIT",
        "委托数量不是100的整数倍": "CN_LOT",
        "订单已全部成交，不能撤单": "ORDER_FINAL",  # noqa: RUF001
        "证券停牌": "CN_SUSPENDED",
        "something new": "VENUE_REJECT",
    }
    for message, rule in cases.items():
        mapped = map_xtp_error({"error_id": 11000001, "error_msg": message})
        assert (mapped.rule, mapped.venue_code) == (rule, 11000001), message
    assert map_xtp_error({"error_id": 1, "error_msg": "流控"}).retriable


@pytest.mark.asyncio
async def test_client_ids_read_back_only_for_this_run() -> None:
    venue, _ = make_venue()
    mine = client_number(TAG, f"{TAG}-000007")
    assert venue.client_id_of(mine) == f"{TAG}-000007"
    assert venue.client_id_of(7) == ""  # another client's order_client_id (the foreign order)


# --- the second gate -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_orders_breaking_the_a_share_rules_never_reach_the_gateway() -> None:
    venue, api = make_venue()
    await venue.fetch_balances()  # 000001: 800 held, 600 sellable (200 bought today)
    refused = [
        (request(1, SPDB, 1, 150, 1000), "CN_LOT"),  # odd-lot buy
        (request(2, SMIC, 1, 150, 9000), "CN_LOT"),  # STAR: at least 200
        (request(3, PAB, -1, 700, 1120), "CN_T_PLUS_1"),  # 200 of the 800 were bought today
        (request(4, SPDB, 1, 100, 1101), "CN_PRICE_LIMIT"),  # limit up is 11.00
        (request(5, SPDB, 1, 100, 899), "CN_PRICE_LIMIT"),  # limit down is 9.00
    ]
    for order, rule in refused:
        with pytest.raises(VenueError) as error:
            await venue.place(order)
        assert error.value.rule == rule, error.value.reason
    no_reference = XtpVenue(api, SESSION, INSTRUMENTS, tag=TAG, day=DAY)
    with pytest.raises(VenueError, match="no reference price"):
        await no_reference.place(request(6, SPDB, 1, 100, 1000))
    assert api.inserted == []  # none of them left
    assert venue.stats["gate.refused.CN_LOT"] == 2 and venue.stats["gate.refused.CN_T_PLUS_1"] == 1
    assert venue.refusal(request(7, SMIC, 1, 201, 9000)) is None  # STAR 200 + 1
    assert venue.refusal(request(8, PAB, -1, 600, 1120)) is None


# --- callbacks -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_partial_fills_with_a_duplicated_trade_are_booked_once() -> None:
    venue, api = make_venue()
    api.play = "partial_then_filled"
    placed = await venue.place(request(1, SPDB, 1, 1000, 1000))
    await settle()
    sent = api.inserted[0]
    assert sent == {
        "order_client_id": client_number(TAG, f"{TAG}-000001"), "ticker": "600000", "market": 2,
        "price": 10.0, "quantity": 1000, "price_type": 1, "side": 1, "position_effect": 0,
        "business_type": 0,
    }  # fmt: skip
    assert (placed.status, placed.client_order_id, placed.venue_order_id) == (
        "new",
        f"{TAG}-000001",
        "36934149543313409",
    )
    updates = drain(venue)
    states = [u for u in updates if isinstance(u, VenueOrder)]
    fills = [u for u in updates if isinstance(u, VenueFill)]
    assert [(s.status, s.filled_qty_raw) for s in states] == [
        ("new", 0),
        ("partially_filled", 300),
        ("filled", 1000),
    ]
    assert [(f.trade_id, f.qty_raw, f.px_raw) for f in fills] == [
        ("2:3011:B", 300, 1000),
        ("2:3012:B", 700, 999),
    ]
    assert sum(f.qty_raw for f in fills) == states[-1].filled_qty_raw  # no double count
    assert fills[0].ts_ms == 1731029401020 and fills[0].fee_asset == "CNY"
    assert venue.stats["dedup.fill_duplicate.push"] == 1
    assert venue.books[SPDB.instrument_id].bought_today == 1000  # T+1: not sellable today
    assert venue.refusal(request(9, SPDB, -1, 100, 1000)) is not None


@pytest.mark.asyncio
async def test_sell_partly_filled_then_cancelled_gives_the_rest_back() -> None:
    venue, api = make_venue()
    await venue.fetch_balances()
    assert venue.books[PAB.instrument_id].reserved == 0
    api.play = "sell_partial_then_cancelled"
    await venue.place(request(2, PAB, -1, 500, 1120))
    await settle()
    assert venue.books[PAB.instrument_id].reserved == 300  # 500 reserved, 200 sold
    cancelled = await venue.cancel(PAB.instrument_id, f"{TAG}-000002")
    assert (cancelled.status, cancelled.filled_qty_raw, cancelled.qty_raw) == ("canceled", 200, 500)
    book = venue.books[PAB.instrument_id]
    assert (book.holding, book.reserved, book.bought_today) == (600, 0, 200)
    assert api.cancelled == [36934149543313410]


@pytest.mark.asyncio
async def test_a_rejected_order_raises_its_rule_code() -> None:
    venue, api = make_venue()
    api.play = "rejected_funds"
    with pytest.raises(VenueError) as error:
        await venue.place(request(3, SPDB, 1, 100000, 1000))
    assert (error.value.rule, error.value.venue_code) == ("INSUFFICIENT_BALANCE", 11010120)
    assert [u.status for u in drain(venue) if isinstance(u, VenueOrder)] == ["rejected"]


@pytest.mark.asyncio
async def test_a_cancel_refused_after_the_fill_returns_the_filled_order() -> None:
    venue, api = make_venue()
    api.play = "filled_then_cancel_refused"
    await venue.place(request(4, SPDB, 1, 200))  # a market order: best five, rest cancelled
    await settle()
    assert api.inserted[0]["price_type"] == 4 and api.inserted[0]["price"] == 0.0
    # the adapter already knows it is filled: nothing is sent
    done = await venue.cancel(SPDB.instrument_id, f"{TAG}-000004")
    assert done.status == "filled" and api.cancelled == []
    # a cancel that races the fill: XTP refuses it, the order's final state answers
    venue2, api2 = make_venue()
    api2.play = "filled_then_cancel_refused"
    venue2._xtp_by_client[f"{TAG}-000004"] = "36934149543313412"
    venue2._orders["36934149543313412"] = VenueOrder(
        client_order_id=f"{TAG}-000004", venue_order_id="36934149543313412", instrument_id=1, side=1,
        order_type="market", status="new", qty_raw=200, filled_qty_raw=0, limit_px_raw=0,
        update_ms=0, source="push",
    )  # fmt: skip
    api2.cancel_events[36934149543313412] = _fill_in(
        FIXTURE["scenarios"]["filled_then_cancel_refused"]["on_insert"][1:]
        + FIXTURE["scenarios"]["filled_then_cancel_refused"]["on_cancel"],
        client_number(TAG, f"{TAG}-000004"),
    )
    raced = await venue2.cancel(SPDB.instrument_id, f"{TAG}-000004")
    await settle()
    assert (raced.status, raced.filled_qty_raw) == ("filled", 200)
    assert venue2.stats["cancel.refused"] == 1  # the refusal came after the fill: nothing else to do


@pytest.mark.asyncio
async def test_self_trade_exec_ids_and_bad_messages() -> None:
    venue, api = make_venue()
    api.play = "self_trade_same_exec_id"
    await venue.place(request(5, SPDB, 1, 100, 1000))
    await settle()
    trade = dict(FIXTURE["scenarios"]["self_trade_same_exec_id"]["on_insert"][1]["data"])
    # the other side of the same execution: another order (not this run's) sold to this one
    trade["side"], trade["order_client_id"], trade["order_xtp_id"] = 2, 0, 36934149543319998
    venue.onTradeEvent(trade, SESSION)
    bad = dict(trade, order_status=7)
    venue.onOrderEvent(dict(api.orders[36934149543313413], order_status=7), {}, SESSION)
    venue.onTradeEvent(dict(bad, exec_id=""), SESSION)
    await settle()
    updates = drain(venue)
    fills = [u.trade_id for u in updates if isinstance(u, VenueFill)]
    assert fills == ["2:3030:B", "2:3030:S"]
    notes = [u for u in updates if isinstance(u, StreamNote)]
    assert [n.kind for n in notes] == ["bad_message", "bad_message"]
    assert "order_status 7" in notes[0].detail and "empty exec_id" in notes[1].detail


@pytest.mark.asyncio
async def test_resend_after_restart_finds_the_order_instead_of_placing_it_twice() -> None:
    venue, api = make_venue()
    api.play = "partial_then_filled"
    await venue.place(request(1, SPDB, 1, 1000, 1000))
    await settle()
    restarted, api2 = make_venue()
    api2.orders, api2.trades = api.orders, api.trades
    found = await restarted.place(request(1, SPDB, 1, 1000, 1000), resend=True)
    assert (found.status, found.filled_qty_raw) == ("filled", 1000)
    assert api2.inserted == [] and restarted.stats["place.found_on_resend"] == 1
    assert await restarted.lookup(SPDB.instrument_id, f"{TAG}-000077") is None
    fills = await restarted.fetch_fills(SPDB.instrument_id)
    assert [f.trade_id for f in fills] == ["2:3011:B", "2:3011:B", "2:3012:B"]  # repeats dropped later


@pytest.mark.asyncio
async def test_disconnect_relogs_in_and_reconciles() -> None:
    relogins: list[int] = []

    async def relogin() -> int:
        relogins.append(1)
        if len(relogins) == 1:
            raise VenueError("VENUE_UNAVAILABLE", "login failed", retriable=True)
        return SESSION + 1

    async def no_sleep(seconds: float) -> None:
        return None

    venue, api = make_venue(relogin=relogin, sleep=no_sleep)
    api.play = "partial_then_filled"
    await venue.place(request(1, SPDB, 1, 1000, 1000))
    drain(venue)
    api.trades.append(dict(api.trades[-1], exec_id="3013", quantity=100))  # reported only by the query
    venue.start_streams()
    venue.onDisconnected(SESSION, 10)
    for _ in range(50):
        await asyncio.sleep(0)
        if venue.stats["reconciled"]:
            break
    updates = drain(venue)
    notes = [(u.kind, u.detail) for u in updates if isinstance(u, StreamNote)]
    assert notes[0] == ("disconnected", "reason 10")
    assert ("reconciled", "") in notes and venue.session_id == SESSION + 1 and len(relogins) == 2
    # the trade missed while away comes in once; those already seen are dropped
    assert [u.trade_id for u in updates if isinstance(u, VenueFill)] == ["2:3013:B"]
    await venue.stop_streams()


@pytest.mark.asyncio
async def test_balances_from_asset_and_positions() -> None:
    venue, _ = make_venue()
    balances = {b.asset: (b.free_e8, b.locked_e8) for b in await venue.fetch_balances()}
    assert balances == {"CNY": (99000025 * 10**6, 1004000 * 10**6), "000001": (600 * E8, 200 * E8)}


# --- LiveBridge + OutboxVenue --------------------------------------------------------------


@pytest.mark.asyncio
async def test_live_bridge_and_outbox_on_recorded_callbacks() -> None:
    venue, api = make_venue()
    outbox = OutboxVenue()
    bridge = LiveBridge(venue, outbox, INSTRUMENTS, tag=TAG, clock=lambda: 7)  # type: ignore[arg-type]

    def submitted(n: int, inst: Instrument, side: int, qty: int, px: int) -> OrderSubmitted:
        return OrderSubmitted(
            ts_ns=1, order_id=f"s-{DAY}-{n:06d}", strategy_id="s", instrument_id=inst.instrument_id,
            side=side, order_type="limit" if px else "market", qty_raw=qty, limit_px_raw=px,
            decision_px_raw=px or 1000,
        )  # fmt: skip

    buy, odd, sell = (
        submitted(1, SPDB, 1, 1000, 1000),
        submitted(3, SPDB, 1, 150, 1000),
        submitted(2, PAB, -1, 500, 1120),
    )
    bridge.remember([buy, odd, sell])
    await venue.fetch_balances()
    api.play = "partial_then_filled"
    await bridge.send([VenueRequest("place", new_order(buy)), VenueRequest("place", new_order(odd))])
    await settle()
    bridge.take_updates()
    api.play = "sell_partial_then_cancelled"
    await bridge.send([VenueRequest("place", new_order(sell))])
    await settle()
    bridge.take_updates()
    await bridge.send([VenueRequest("cancel", new_order(sell))])
    await settle()
    bridge.take_updates()
    polled = outbox.poll(0)
    assert [m.order_id[-1] for m in polled if m.kind == "sent"] == ["1", "3", "2"]  # each send
    messages = [(m.order_id[-1], m.kind, m.qty_raw, m.px_raw) for m in polled if m.kind != "sent"]
    assert messages == [
        ("1", "ack", 0, 0),
        ("1", "fill", 300, 1000),
        ("1", "fill", 700, 999),
        ("3", "reject", 0, 0),  # the odd lot never left
        ("2", "ack", 0, 0),
        ("2", "fill", 200, 1120),
        ("2", "cancelled", 0, 0),
    ]
    assert len(api.inserted) == 2 and bridge.counts.fills == 3
    reconciled = await bridge.reconcile(
        Book(open_orders={}, positions={SPDB.instrument_id: 1000, PAB.instrument_id: 600},
             cash_minor=99000025, currency="CNY"),
        "start", ReconcilePolicy(on_difference="warn"), "xtp",
    )  # fmt: skip
    assert reconciled.fills_recovered == 0  # every trade was already booked
    # the recorded position and asset answers are those of the start of the day: reconciliation
    # says what differs (the foreign open order, both positions, cash held for open buys)
    assert reconciled.differences == [
        "order 36934149543319999 (600000, client id ): open at the venue, not this session's",
        "000001: venue 800, book 600 (difference 200)",
        "600000: venue 0, book 1000 (difference -1000)",
        "CNY: venue 1000040.25, book 990000.25 (difference 10040)",
    ]


def test_a_callback_after_the_session_ended_raises_nothing_into_xtp() -> None:
    loop = asyncio.new_event_loop()
    venue = XtpVenue(RecordedTd(), SESSION, INSTRUMENTS, tag=TAG, day=DAY, loop=loop)
    loop.close()
    venue.onDisconnected(SESSION, 1)  # XTP's thread, after the loop is gone
    assert venue.stats["callback_after_close"] == 1


@pytest.mark.asyncio
async def test_the_gate_knows_a_star_listings_no_limit_sessions() -> None:
    """The second gate takes its limits from the same function as the simulated venue: a
    STAR name listed 2024-11-05 is in its 4th session on 2024-11-08 (no limit: a buy at
    +50% over the reference goes); one listed 2024-11-01 is in its 6th (±20%: refused)."""
    api = RecordedTd()
    fresh = msgspec.structs.replace(SMIC, instrument_id=4, symbol="688999", listing_day=20241105)
    sixth = msgspec.structs.replace(SMIC, instrument_id=5, symbol="688998", listing_day=20241101)
    venue = XtpVenue(api, SESSION, [fresh, sixth], tag=TAG, day=20241108)
    venue.set_reference(fresh.instrument_id, 2000)
    venue.set_reference(sixth.instrument_id, 2000)
    assert venue.refusal(request(1, fresh, 1, 200, 3000)) is None
    reason = venue.refusal(request(2, sixth, 1, 200, 3000))
    assert reason == "CN_PRICE_LIMIT: limit_up=24.00, order_px=30.00"


@pytest.mark.asyncio
async def test_the_gate_counts_a_listing_past_2026_on_the_data_sets_holidays() -> None:
    """XSHG is known through 2026 only; with the run's supplied 2027 closures (a synthetic
    Wednesday, 2027-01-13) a STAR name listed 2027-01-11 is in its 4th session on 2027-01-15,
    with no limit. Before, the gate counted without them and raised CalendarNotCovered."""
    from domain.markets import HolidayYears

    fresh = msgspec.structs.replace(SMIC, instrument_id=4, symbol="688999", listing_day=20270111)
    holidays = HolidayYears("XSHG", (2027,), (20270101, 20270113))
    venue = XtpVenue(RecordedTd(), SESSION, [fresh], tag=TAG, day=20270115, holidays=holidays)
    venue.set_reference(fresh.instrument_id, 2000)
    assert venue.refusal(request(1, fresh, 1, 200, 3000)) is None
