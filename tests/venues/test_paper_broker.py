"""The paper broker (``venues.paper_broker``): its latency model and where it fills, on
hand-made inputs — and that it is a function of them alone (the same inputs, the same messages)."""

from __future__ import annotations

import msgspec
import pytest

from domain.events import BarsReceived, QuoteReceived, VenueMessage
from domain.fixed import minor_digits
from domain.instruments import Instrument
from domain.orders import Order, OrderStatus
from venues.paper_broker import BrokerCosts, LatencyModel, PaperBroker

MS = 1_000_000
MINUTE = 60_000 * MS
BTC = Instrument(
    instrument_id=1,
    symbol="BTC/USDT",
    venue="BINANCE",
    asset_class="crypto",
    currency="USDT",
    price_digits=2,
    qty_digits=5,
    tick_raw=1,
    lot_raw=1,
    min_notional_minor=5 * 10 ** minor_digits("USDT"),  # 5 USDT
)


def order(n: int, side: int = 1, kind: str = "market", limit: int = 0, qty: int = 100_000) -> Order:
    return Order(
        order_id=f"sma-20260101-{n:06d}",
        strategy_id="sma",
        instrument_id=1,
        side=side,
        order_type=kind,
        qty_raw=qty,
        limit_px_raw=limit,
    )


def quote(ts: int, bid: int, ask: int) -> QuoteReceived:
    return QuoteReceived(
        ts_ns=ts, instrument_id=1, bid_px_raw=bid, bid_qty_raw=1, ask_px_raw=ask, ask_qty_raw=1
    )


def bar(close_ts: int, o: int, h: int, low: int, c: int, received: int | None = None) -> BarsReceived:
    return BarsReceived(
        ts_ns=close_ts,
        received_ns=close_ts if received is None else received,
        instrument_ids=[1],
        open_raw=[o],
        high_raw=[h],
        low_raw=[low],
        close_raw=[c],
        volume_raw=[10**6],
    )


def broker(fixed: int = 0, jitter: int = 0, seed: int = 0, **costs: int) -> PaperBroker:
    return PaperBroker({1: BTC}, LatencyModel(fixed, jitter, seed), BrokerCosts(**costs), interval_ns=MINUTE)


def kinds(messages: list[VenueMessage]) -> list[tuple[str, int, int]]:
    return [(m.kind, m.ts_ns, m.px_raw) for m in messages]


def test_the_jitter_is_seeded_per_order_and_bounded() -> None:
    model = LatencyModel(fixed_ms=50, jitter_ms=20, seed=7)
    delays = [model.delay_ns(f"o-{n}") for n in range(500)]
    assert all(50 * MS <= d <= 70 * MS for d in delays)
    assert len(set(delays)) > 400  # drawn, not one value
    assert delays == [LatencyModel(50, 20, 7).delay_ns(f"o-{n}") for n in range(500)]  # seeded
    assert delays[3] == model.delay_ns("o-3")  # by key, not by how many came before
    assert delays != [LatencyModel(50, 20, 8).delay_ns(f"o-{n}") for n in range(500)]
    assert LatencyModel(50).delay_ns("x") == 50 * MS
    with pytest.raises(ValueError, match="latency must be >= 0"):
        LatencyModel(-1)


def test_an_order_reaches_the_venue_at_send_plus_latency_and_meets_the_book_standing_then() -> None:
    b = broker(fixed=250)
    assert kinds(b.on_quote(quote(0, 10_000, 10_010))) == []
    assert kinds(b.send("place", order(1), 1_000 * MS)) == [("sent", 1_000 * MS, 0)]
    assert b.on_quote(quote(1_200 * MS, 10_001, 10_011)) == []  # before 1,250 ms: still in flight
    assert b.on_quote(quote(1_250 * MS, 10_003, 10_013)) == []  # at it: more may carry this stamp
    out = b.on_quote(quote(1_251 * MS, 10_004, 10_014))  # the first input after it: learnt of
    # a buy at the ask of the book at 1,250 ms, answered with the stamp of the input that told
    assert kinds(out) == [("ack", 1_251 * MS, 0), ("fill", 1_251 * MS, 10_013)]
    assert [m.venue_seq for m in out] == [2, 3] and out[1].qty_raw == 100_000
    assert b.counts.latency_ns == [251 * MS]


def test_sells_fill_at_the_bid_and_the_commission_is_the_taker_rate() -> None:
    b = broker(fixed=0, taker_e8=100_000, maker_e8=20_000)
    b.on_quote(quote(0, 20_000, 20_020))
    b.send("place", order(1, side=-1), 5)
    out = b.on_quote(quote(10, 10_000, 10_010))  # after it arrived: not its price
    fill = out[-1]
    assert (fill.kind, fill.px_raw) == ("fill", 20_000)
    # 1 BTC x 200.00 = 200 USDT; 0.1% of it = 0.2 USDT
    assert fill.commission_minor == 2 * 10 ** minor_digits("USDT") // 10
    assert fill.reason == "paper quote taker"


def test_a_bar_that_brings_an_order_in_fills_it_at_the_standing_quote_not_the_bar() -> None:
    b = broker(fixed=10)
    b.on_quote(quote(0, 10_000, 10_010))
    b.send("place", order(1), 100)
    out = b.on_bars(bar(MINUTE, 9_000, 9_500, 8_900, 9_100, received=MINUTE + 5))
    assert kinds(out) == [("ack", MINUTE + 5, 0), ("fill", MINUTE + 5, 10_010)]


def test_with_no_quote_standing_an_order_meets_the_first_quote_after() -> None:
    b = broker(fixed=10)
    b.send("place", order(1), 100)
    out = b.on_quote(quote(200 * MS, 9_200, 9_210))
    assert kinds(out) == [("ack", 200 * MS, 0), ("fill", 200 * MS, 9_210)]
    assert b.on_bars(bar(MINUTE, 9_000, 9_500, 8_900, 9_100)) == []  # quoted: no bar model


def test_with_no_quote_the_first_bar_opening_after_arrival_fills_at_its_open() -> None:
    b = broker(fixed=10, slippage_e8=1_000_000)  # 1%
    b.send("place", order(1), 100)
    out = b.on_bars(bar(MINUTE, 10_000, 10_100, 9_900, 10_050))  # arrives with it: acked, not filled
    assert kinds(out) == [("ack", MINUTE, 0)]
    # the bar closing at 2 minutes opened at 1 minute, when the order arrived: it fills there
    (fill,) = b.on_bars(bar(2 * MINUTE, 10_050, 10_100, 10_000, 10_070))
    assert (fill.kind, fill.px_raw, fill.reason) == ("fill", 10_050 + 101, "paper bar taker")  # open + 1%
    sell = broker(fixed=10, slippage_e8=1_000_000)
    sell.send("place", order(2, side=-1), 100)
    sell.on_bars(bar(MINUTE, 10_000, 10_100, 9_900, 10_050))
    (fill,) = sell.on_bars(bar(2 * MINUTE, 10_050, 10_100, 10_000, 10_070))
    assert fill.px_raw == 10_050 - 101


def test_a_bar_that_opened_before_the_order_arrived_does_not_fill_it() -> None:
    b = broker(fixed=90_000)  # 90 s
    b.send("place", order(1), 0)
    assert kinds(b.on_bars(bar(2 * MINUTE, 10_000, 10_100, 9_900, 10_050))) == [("ack", 2 * MINUTE, 0)]
    assert b.on_bars(bar(2 * MINUTE, 10_000, 10_100, 9_900, 10_050)) == []  # opened at 1 min < 2 min
    (fill,) = b.on_bars(bar(3 * MINUTE, 10_060, 10_100, 9_900, 10_050))
    assert fill.px_raw == 10_060


def test_limits_cross_on_arrival_as_takers_and_rest_as_makers() -> None:
    b = broker(fixed=0, taker_e8=100_000, maker_e8=0)
    b.on_quote(quote(0, 10_000, 10_010))
    b.send("place", order(1, kind="limit", limit=10_020), 1)  # crosses the ask: at the ask
    b.send("place", order(2, kind="limit", limit=9_990), 1)  # below it: rests
    out = b.on_quote(quote(2, 10_000, 10_010))
    assert kinds(out) == [("ack", 2, 0), ("fill", 2, 10_010), ("ack", 2, 0)]
    assert out[1].commission_minor > 0
    assert b.on_quote(quote(3, 9_980, 9_995)) == []  # the ask still above 99.90
    (fill,) = b.on_quote(quote(4, 9_970, 9_985))
    assert (fill.order_id, fill.px_raw, fill.commission_minor, fill.reason) == (
        order(2).order_id,
        9_990,
        0,
        "paper quote maker",
    )


def test_cancels_travel_with_latency_too() -> None:
    b = broker(fixed=100)
    resting = order(1, kind="limit", limit=5_000)
    b.on_quote(quote(0, 10_000, 10_010))
    b.send("place", resting, 0)
    assert kinds(b.on_quote(quote(150 * MS, 10_000, 10_010))) == [("ack", 150 * MS, 0)]  # resting
    assert b.send("cancel", resting, 150 * MS) == []
    assert b.on_quote(quote(250 * MS, 10_000, 10_010)) == []  # due at 250 ms: not yet
    (cancelled,) = b.on_quote(quote(260 * MS, 10_000, 10_010))
    assert cancelled.kind == "cancelled"
    b.send("cancel", resting, 300 * MS)  # again: the venue no longer has it
    (refused,) = b.on_quote(quote(500 * MS, 10_000, 10_010))
    assert refused.kind == "cancel_rejected" and "already done" in refused.reason


def test_below_the_minimum_notional_is_rejected_on_arrival() -> None:
    b = broker()
    b.on_quote(quote(0, 10_000, 10_010))
    b.send("place", order(1, qty=2_000), 1)  # 0.02 BTC x 100.10 = 2.00 USDT < 5
    out = b.on_quote(quote(2, 10_000, 10_010))
    assert [m.kind for m in out] == ["reject"] and out[0].reason.startswith("MIN_NOTIONAL")


def test_the_same_inputs_give_the_same_messages() -> None:
    def session(seed: int) -> list[VenueMessage]:
        b = broker(fixed=40, jitter=80, seed=seed)
        out: list[VenueMessage] = []
        for n in range(40):
            t = n * 30 * MS
            out += b.on_quote(quote(t, 10_000 + n, 10_010 + n))
            if n % 3 == 0:
                out += b.send("place", order(n, side=1 if n % 2 else -1), t + 1)
        return out

    first = session(3)
    assert first == session(3)
    assert first != session(4)  # the seed moves the arrivals
    assert {m.kind for m in first} == {"sent", "ack", "fill"}


def test_a_restarted_broker_rejects_what_was_in_flight_and_cancels_what_rested() -> None:
    b = PaperBroker({1: BTC}, LatencyModel(), BrokerCosts(), interval_ns=MINUTE, next_seq=7)
    flying = order(2)
    resting = msgspec.structs.replace(order(1, kind="limit", limit=9_000), status=OrderStatus.ACCEPTED)
    out = b.restarted([flying, resting], 99)
    assert [(m.venue_seq, m.order_id, m.kind, m.ts_ns) for m in out] == [
        (7, resting.order_id, "cancelled", 99),
        (8, flying.order_id, "reject", 99),
    ]
    assert out[1].reason.startswith("NOT_SENT") and b.next_seq == 9


def test_an_order_on_an_index_is_rejected_on_arrival_as_the_backtest_venue_rejects_it() -> None:
    index = msgspec.structs.replace(BTC, instrument_id=2, symbol="000001.SH", asset_class="index")
    b = PaperBroker({1: BTC, 2: index}, LatencyModel(), BrokerCosts(), interval_ns=MINUTE)
    b.on_quote(msgspec.structs.replace(quote(0, 10_000, 10_010), instrument_id=2))
    b.send("place", msgspec.structs.replace(order(1), instrument_id=2), 1)
    out = b.on_quote(msgspec.structs.replace(quote(2, 10_000, 10_010), instrument_id=2))
    assert [m.kind for m in out] == ["reject"] and out[0].reason == "NOT_TRADABLE: 000001.SH is an index"
