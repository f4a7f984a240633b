"""SimVenue.replace: amends a working order at once, or refuses with a rule code and the numbers;
a fill after the replace works against the new quantity."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from domain.events import OrderReplaced, OrderReplaceRejected
from domain.instruments import Instrument
from domain.market import Panel
from domain.orders import Order, OrderStatus, evolve
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
    rows = np.array([[1000, 1010, 990, 1005, 10_000], [1003, 1020, 1001, 1010, 1_000]], dtype=np.int64)
    fields = {
        n: rows[:, i].reshape(2, 1).copy() for i, n in enumerate(["open", "high", "low", "close", "volume"])
    }
    return Panel(
        ts_ns=np.array([10, 20], dtype=np.int64),
        day=np.array([1, 1], dtype=np.int64),
        instruments=(inst,),
        valid=np.array([[True], [True]]),
        last_close=fields["close"].copy(),
        **fields,
    )


def _order(qty: int = 300, filled: int = 0, order_type: str = "market", limit: int = 0) -> Order:
    return Order(
        order_id="o1",
        strategy_id="s",
        instrument_id=7,
        side=1,
        order_type=order_type,
        qty_raw=qty,
        limit_px_raw=limit,
        filled_qty_raw=filled,
        status=OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.ACCEPTED,
    )


def test_replace_up_and_down_is_amended_at_the_step_time() -> None:
    venue = SimVenue(_panel(), FillModel(participation_e8=10_000_000))  # 10% of volume: 100 at step 1
    order = _order(300, filled=100)
    up = venue.replace(0, order, 500, 0)
    assert up == OrderReplaced(ts_ns=10, order_id="o1", qty_raw=500, prev_qty_raw=300, limit_px_raw=0)
    amended = evolve(order, up)
    assert (amended.qty_raw, amended.leaves_qty_raw, amended.status) == (
        500,
        400,
        OrderStatus.PARTIALLY_FILLED,
    )
    down = venue.replace(0, amended, 200, 0)
    assert isinstance(down, OrderReplaced) and down.qty_raw == 200
    smaller = evolve(amended, down)
    (fill,) = venue.match(1, [smaller])
    assert (fill.fill_qty_raw, fill.leaves_qty_raw) == (100, 0)  # the amended quantity, not 300
    assert evolve(smaller, fill).status is OrderStatus.FILLED


def test_limit_orders_can_move_their_price_on_the_tick() -> None:
    venue = SimVenue(_panel(), FillModel())
    answer = venue.replace(0, _order(200, order_type="limit", limit=1000), 200, 1005)
    assert isinstance(answer, OrderReplaced) and answer.limit_px_raw == 1005


@pytest.mark.parametrize(
    ("order", "qty", "px", "code"),
    [
        (_order(300, filled=200), 200, 0, "REPLACE_BELOW_FILLED: qty_raw=200, filled_qty_raw=200"),
        (_order(300, filled=200), 100, 0, "REPLACE_BELOW_FILLED"),
        (_order(300), 350, 0, "LOT_SIZE: qty_raw=350"),
        (_order(300), 300, 1000, "REPLACE_ORDER_TYPE: a market order with limit_px_raw=1000"),
        (_order(200, order_type="limit", limit=1000), 200, 1001, "TICK_SIZE: limit_px_raw=1001"),
        (
            msgspec.structs.replace(_order(300), status=OrderStatus.CANCELLED),
            400,
            0,
            "NOT_WORKING: order is cancelled",
        ),
    ],
)
def test_refused_replaces_name_the_rule(order: Order, qty: int, px: int, code: str) -> None:
    answer = SimVenue(_panel(), FillModel()).replace(1, order, qty, px)
    assert isinstance(answer, OrderReplaceRejected)
    assert answer.reason.startswith(code), answer.reason
    assert (answer.ts_ns, answer.order_id, answer.qty_raw, answer.limit_px_raw) == (20, "o1", qty, px)
