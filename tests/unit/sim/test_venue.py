"""The simulated venue: market orders at the next open with slippage, limits on trade-through."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from domain.events import OrderAccepted, OrderRejected
from domain.instruments import Instrument
from domain.market import Panel
from domain.orders import Order, OrderStatus
from sim.fill_models import FillModel
from sim.venue import SimVenue


def _panel() -> Panel:
    inst = Instrument(
        instrument_id=7,
        symbol="X",
        venue="T",
        asset_class="equity",
        currency="USD",
        price_digits=2,
        tick_raw=5,
        qty_digits=0,
        lot_raw=100,
    )
    rows = np.array(
        [  # open, high, low, close, volume
            [1000, 1010, 990, 1005, 10_000],
            [1003, 1020, 1001, 1010, 1_000],
            [1012, 1013, 950, 960, 50_000],
        ],
        dtype=np.int64,
    )
    valid = np.array([[True], [True], [True]])
    fields = {
        name: rows[:, i].reshape(3, 1).copy()
        for i, name in enumerate(["open", "high", "low", "close", "volume"])
    }
    return Panel(
        ts_ns=np.array([1, 2, 3], dtype=np.int64),
        day=np.array([1, 1, 2], dtype=np.int64),
        instruments=(inst,),
        valid=valid,
        last_close=fields["close"].copy(),
        **fields,
    )


def _order(side: int, qty: int, order_type: str = "market", limit: int = 0) -> Order:
    return Order(
        order_id=f"o{side}{qty}{limit}",
        strategy_id="s",
        instrument_id=7,
        side=side,
        order_type=order_type,
        qty_raw=qty,
        limit_px_raw=limit,
        status=OrderStatus.ACCEPTED,
    )


def test_market_orders_fill_at_open_with_slippage_rounded_against_the_trader() -> None:
    venue = SimVenue(
        _panel(), FillModel(slippage_e8=1_000_000, commission_e8=100_000, commission_min_minor=500)
    )
    buy, sell = venue.match(1, [_order(1, 200), _order(-1, 100)])
    assert buy.fill_px_raw == 1015  # 10.03 * 1.01 = 10.1303 -> up to the 0.05 tick
    assert sell.fill_px_raw == 990  # 10.03 * 0.99 = 9.9297 -> down to the tick
    assert buy.notional_minor == 203_000
    assert buy.commission_minor == 500  # 0.1% = 203.00 cents is below the 5.00 minimum
    assert sell.leaves_qty_raw == 0


def test_limit_orders_fill_only_when_the_bar_trades_through() -> None:
    venue = SimVenue(_panel(), FillModel())
    orders = [_order(1, 100, "limit", 1000), _order(1, 100, "limit", 955), _order(-1, 100, "limit", 1015)]
    fills = venue.match(1, orders)
    assert [f.fill_px_raw for f in fills] == [1015]  # only the sell: high 10.20 >= 10.15
    assert venue.next_activity(0, orders[:2]) == 2  # low 9.50 reaches both buy limits at step 2
    fills = venue.match(2, orders[:2])
    assert [f.fill_px_raw for f in fills] == [1000, 955]  # at the limit, not the better low


def test_participation_cap_gives_partial_fills_in_lots() -> None:
    venue = SimVenue(_panel(), FillModel(participation_e8=10_000_000))  # 10% of bar volume
    (fill,) = venue.match(1, [_order(1, 500)])
    assert fill.fill_qty_raw == 100  # 10% of 1,000 = 100 = one lot
    assert fill.leaves_qty_raw == 400


@pytest.mark.parametrize(
    ("order", "code"),
    [
        (_order(1, 150), "LOT_SIZE"),
        (_order(1, 100, "limit", 1001), "TICK_SIZE"),
        (_order(1, 100, "stop"), "UNSUPPORTED_ORDER_TYPE"),
    ],
)
def test_rejections_carry_a_rule_code_and_the_numbers(order: Order, code: str) -> None:
    ack = SimVenue(_panel(), FillModel()).submit(0, order)
    assert isinstance(ack, OrderRejected)
    assert ack.reason.startswith(code)


def test_valid_order_is_accepted() -> None:
    assert isinstance(SimVenue(_panel(), FillModel()).submit(0, _order(1, 100)), OrderAccepted)


@pytest.mark.parametrize("participation_e8", [0, 3_000_000])
@pytest.mark.parametrize("slippage_e8", [0, 1_000_000, 7_777_777])
def test_small_batches_match_in_python_as_the_numba_kernel(
    monkeypatch: pytest.MonkeyPatch, participation_e8: int, slippage_e8: int
) -> None:
    """The plain-Python path for a few orders gives the kernel's fills, order by order."""
    import sim.venue as venue_module

    panel = _panel()
    rng = np.random.default_rng(11)
    model = FillModel(slippage_e8=slippage_e8, participation_e8=participation_e8, commission_e8=100_000)
    filled = 0
    for trial in range(300):
        orders = []
        for k in range(int(rng.integers(1, 5))):
            order_type = "market" if rng.random() < 0.5 else "limit"
            limit = int(rng.integers(180, 210)) * 5 if order_type == "limit" else 0
            side = 1 if rng.random() < 0.5 else -1
            order = _order(side, int(rng.integers(1, 40)) * 100, order_type, limit)
            orders.append(msgspec.structs.replace(order, order_id=f"t{trial}-{k}"))
        step = int(rng.integers(0, 3))
        small = SimVenue(panel, model).match(step, orders)
        monkeypatch.setattr(venue_module, "SMALL_BATCH", 0)
        arrays = SimVenue(panel, model).match(step, orders)
        monkeypatch.undo()
        assert small == arrays
        filled += len(small)
    assert filled > 300


def test_a_price_beyond_int64_arithmetic_leaves_the_python_path() -> None:
    """A product the kernel would compute in (wrapping) int64 goes to the kernel itself."""
    panel = _panel()
    panel.open[1, 0] = 2**62
    venue = SimVenue(panel, FillModel(slippage_e8=1_000_000))
    assert venue._match_small(1, [_order(1, 100)]) is None


def _a_share_and_us_panel() -> Panel:
    """CONSTRUCTED: an A-share (XSHG) and a US name (XNAS) in one data set, steps at each
    market's close; 2014-10-01 is a China holiday on which only the US name trades."""
    cn = Instrument(instrument_id=1, symbol="600000", venue="XSHG", asset_class="equity", currency="CNY",
                    price_digits=2, tick_raw=1, qty_digits=0, lot_raw=100, board="main")  # fmt: skip
    us = Instrument(instrument_id=2, symbol="AAPL", venue="XNAS", asset_class="equity", currency="USD",
                    price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1)  # fmt: skip
    days = [20140930, 20140930, 20141001, 20141008, 20141008]
    valid = np.array([[True, False], [False, True], [False, True], [True, False], [False, True]])
    price = np.where(valid, np.array([[1000, 10_000]]), 0).astype(np.int64)
    fields = {name: price.copy() for name in ("open", "high", "low", "close")}
    return Panel(
        ts_ns=np.arange(1, 6, dtype=np.int64),
        day=np.array(days, dtype=np.int64),
        instruments=(cn, us),
        valid=valid,
        volume=np.where(valid, 10**6, 0).astype(np.int64),
        last_close=Panel.carry_forward(fields["close"], valid),
        **fields,
    )


def test_an_a_share_order_sent_after_its_close_works_in_the_next_a_share_session() -> None:
    """With other markets in the data set, the A-share session ends at the day's last A-share
    bar, not at the day's last step: an order sent at the A-share close (or at the US close
    after it) works in the next day with A-share bars — not expired at the US close, not
    refused as suspended on a China holiday on which only the US trades."""
    panel = _a_share_and_us_panel()
    venue = SimVenue(panel, FillModel())
    at_cn_close = msgspec.structs.replace(_order(1, 100), order_id="a", instrument_id=1)
    at_us_close = msgspec.structs.replace(_order(1, 100), order_id="b", instrument_id=1)
    assert isinstance(venue.submit(0, at_cn_close), OrderAccepted)
    assert isinstance(venue.submit(1, at_us_close), OrderAccepted)  # was CN_SUSPENDED: day=20141001
    orders = [at_cn_close, at_us_close]
    assert venue.end_of_day(1, orders) == []  # 2014-09-30 ends: both work on 2014-10-08
    assert venue.end_of_day(2, orders) == []  # the holiday ends
    fills = venue.match(3, orders)
    assert [(f.order_id, f.fill_px_raw) for f in fills] == [("a", 1000), ("b", 1000)]
    # An order sent before the day's A-share bar works that day and expires at its end.
    late = msgspec.structs.replace(_order(1, 100), order_id="c", instrument_id=1)
    venue = SimVenue(panel, FillModel())
    assert isinstance(venue.submit(2, late), OrderAccepted)
    assert [e.order_id for e in venue.end_of_day(4, [late])] == ["c"]


def test_an_a_share_limit_sent_after_its_close_is_judged_in_the_next_sessions_band() -> None:
    """CONSTRUCTED: the A-share closes at 9.20 on 2014-09-29 and 10.00 on 09-30 (band 10.12 that
    day); a US close follows each. A buy limit at 10.50 sent at the 09-30 A-share close works on
    10-08, whose band (from 10.00) reaches 11.00: accepted. It used to be judged against 09-30's
    band (the US step after it was taken as its session) and refused CN_PRICE_LIMIT."""
    base = _a_share_and_us_panel()
    first = np.array([[True, False]])
    fields = {
        name: np.vstack([np.where(first, 920, 0), getattr(base, name)]).astype(np.int64)
        for name in ("open", "high", "low", "close")
    }
    valid = np.vstack([first, base.valid])
    panel = Panel(
        ts_ns=np.arange(0, 6, dtype=np.int64),
        day=np.concatenate([[20140929], base.day]).astype(np.int64),
        instruments=base.instruments,
        valid=valid,
        volume=np.vstack([np.where(first, 10**6, 0), base.volume]).astype(np.int64),
        last_close=Panel.carry_forward(fields["close"], valid),
        **fields,
    )
    order = msgspec.structs.replace(_order(1, 100, "limit", 1050), order_id="l", instrument_id=1)
    assert isinstance(SimVenue(panel, FillModel()).submit(1, order), OrderAccepted)
    above = msgspec.structs.replace(order, order_id="m", limit_px_raw=1101)
    rejected = SimVenue(panel, FillModel()).submit(1, above)
    assert isinstance(rejected, OrderRejected)
    assert rejected.reason.startswith("CN_PRICE_LIMIT: limit_up=11.00")
