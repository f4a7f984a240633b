"""The simulated venue's commission models: per-share with a minimum and a cap (IBKR Pro Fixed as
the example), charged once per order across partial fills; maker/taker per fill; and the venue's
minimum order value. Expected amounts are worked out here by hand."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from domain.events import OrderAccepted, OrderFilled, OrderRejected
from domain.instruments import Instrument
from domain.market import Panel
from domain.orders import Order, OrderStatus, evolve
from sim.fill_models import FillModel
from sim.venue import SimVenue

STOCK = Instrument(
    instrument_id=1,
    symbol="XYZ",
    venue="T",
    asset_class="equity",
    currency="USD",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=1,
)
IBKR_FIXED = FillModel(
    commission_e8=0, commission_per_share_e8=500_000, commission_min_minor=100, commission_max_e8=1_000_000
)


def _panel(instrument: Instrument, bars: list[tuple[int, int, int, int, int]]) -> Panel:
    rows = np.array(bars, dtype=np.int64)
    steps = len(bars)
    fields = {
        n: rows[:, i].reshape(steps, 1).copy()
        for i, n in enumerate(["open", "high", "low", "close", "volume"])
    }
    return Panel(
        ts_ns=np.arange(1, steps + 1, dtype=np.int64) * 60_000_000_000,
        day=np.ones(steps, dtype=np.int64),
        instruments=(instrument,),
        valid=np.ones((steps, 1), dtype=np.bool_),
        last_close=fields["close"].copy(),
        **fields,
    )


def _order(qty: int, order_type: str = "market", limit: int = 0, iid: int = 1) -> Order:
    return Order(
        order_id="o1",
        strategy_id="s",
        instrument_id=iid,
        side=1,
        order_type=order_type,
        qty_raw=qty,
        limit_px_raw=limit,
        status=OrderStatus.ACCEPTED,
    )


def _fill_all(venue: SimVenue, order: Order, steps: range) -> list[OrderFilled]:
    fills = []
    for step in steps:
        for fill in venue.match(step, [order]):
            fills.append(fill)
            order = evolve(order, fill)
    return fills


def test_ibkr_fixed_per_share_minimum_once_per_order_across_partial_fills() -> None:
    # 10% participation: 300 shares fill as 100 + 100 + 100 at 50.00.
    bars = [(50_00, 50_00, 50_00, 50_00, 1_000)] * 4
    model = msgspec.structs.replace(IBKR_FIXED, participation_e8=10_000_000)
    fills = _fill_all(SimVenue(_panel(STOCK, bars), model), _order(300), range(1, 4))
    assert [f.fill_qty_raw for f in fills] == [100, 100, 100]
    # order total: 300 x $0.005 = $1.50 (above the $1.00 minimum, under the 1% cap of $150);
    # first fill: 100 x 0.005 = $0.50 -> the minimum $1.00; then +$0.00 until the total passes it.
    assert [f.commission_minor for f in fills] == [100, 0, 50]
    assert sum(f.commission_minor for f in fills) == 150


def test_ibkr_fixed_cap_wins_over_the_minimum_on_a_cheap_stock() -> None:
    bars = [(5, 5, 5, 5, 10_000_000)] * 2  # $0.05 a share
    (fill,) = _fill_all(SimVenue(_panel(STOCK, bars), IBKR_FIXED), _order(1_000), range(1, 2))
    # 1,000 x $0.005 = $5.00, but 1% of the $50.00 notional caps it at $0.50
    assert fill.notional_minor == 5_000 and fill.commission_minor == 50


def test_maker_taker_by_how_the_order_filled() -> None:
    coin = msgspec.structs.replace(
        STOCK, asset_class="crypto_spot", currency="USDT", price_digits=2, qty_digits=4
    )
    bars = [(100_00, 101_00, 99_00, 100_00, 10**9), (100_00, 100_50, 98_00, 99_00, 10**9)]
    model = FillModel(commission_e8=0, maker_e8=20_000, taker_e8=50_000)  # 0.02% / 0.05%
    venue = SimVenue(_panel(coin, bars), model)
    (taker,) = venue.match(1, [_order(2_0000)])  # 2 coins at the open, 100.00
    assert taker.notional_minor == 200_000_000 and taker.commission_minor == 100_000  # 0.05% of 200.00 USDT
    (rested,) = venue.match(1, [_order(2_0000, "limit", 99_00)])  # traded through: fills at 99.00
    assert rested.fill_px_raw == 99_00 and rested.commission_minor == 39_600  # 0.02% of 198.00
    (crossed,) = venue.match(1, [_order(2_0000, "limit", 101_00)])  # better than the limit on arrival
    assert crossed.fill_px_raw == 100_00 and crossed.commission_minor == 100_000  # taker


def test_maker_taker_cannot_be_combined_with_an_order_minimum() -> None:
    with pytest.raises(ValueError, match="maker_e8/taker_e8 replace"):
        FillModel(maker_e8=1, commission_min_minor=100)


def test_orders_below_the_venue_minimum_notional_are_rejected_with_the_numbers() -> None:
    coin = msgspec.structs.replace(
        STOCK, currency="USDT", qty_digits=4, min_notional_minor=5_000_000
    )  # 5.00 USDT
    bars = [(100_00, 100_00, 100_00, 100_00, 10**9)] * 2
    venue = SimVenue(_panel(coin, bars), FillModel())
    small = venue.submit(0, _order(400))  # 0.04 x 100.00 = 4.00 USDT
    assert isinstance(small, OrderRejected)
    assert small.reason == "MIN_NOTIONAL: notional_minor=4000000, min_notional_minor=5000000"
    assert isinstance(venue.submit(0, _order(500)), OrderAccepted)  # exactly 5.00
    assert isinstance(venue.submit(0, _order(400, "limit", 130_00)), OrderAccepted)  # 5.20 at its limit
