"""Daily-settled futures: the rqalpha IC example, no notional through cash, settlement VWAPs."""

from __future__ import annotations

from domain.events import OrderFilled
from domain.fixed import Rounding
from domain.futures import position_value_minor, settlement_vwap_raw, variation_postings
from domain.instruments import Instrument, notional_minor
from domain.ledger import Position, margined_fill_postings

IC = Instrument(
    instrument_id=7,
    symbol="IC2403",
    venue="CCFX",
    asset_class="future",
    currency="CNY",
    price_digits=1,
    tick_raw=2,  # 0.2 index points
    qty_digits=0,
    lot_raw=1,
    multiplier=200,
)


def _fill(side: int, qty: int, px: int, commission: int = 0) -> OrderFilled:
    return OrderFilled(
        ts_ns=0,
        order_id="o",
        instrument_id=IC.instrument_id,
        side=side,
        fill_qty_raw=qty,
        fill_px_raw=px,
        leaves_qty_raw=0,
        notional_minor=notional_minor(IC, qty, px, Rounding.HALF_EVEN),
        commission_minor=commission,
        currency="CNY",
    )


def test_ic_two_lots_settle_at_5361_8_pay_24_720_cny() -> None:
    # rqalpha: (5361.8 - 5300.0) x 2 x 200 = 24,720.00 CNY
    postings, position = margined_fill_postings(Position(), _fill(1, 2, 53_000, commission=1_234))
    assert [(p.account, p.amount_minor) for p in postings] == [
        ("assets:cash:CNY", -1_234),
        ("expenses:commission:CNY", 1_234),
    ]
    assert position == Position(2, 2 * 5300 * 200 * 100)  # reference value, not cash
    assert position_value_minor(IC, position, 53_618) == 2_472_000
    settlement, settled, value = variation_postings(IC, position, 53_618)
    assert [(p.account, p.amount_minor) for p in settlement] == [
        ("assets:cash:CNY", 2_472_000),
        ("income:variation_margin:CNY", -2_472_000),
    ]
    assert settled == Position(2, value) and value == 2 * 53_618 * 200 * 10
    assert position_value_minor(IC, settled, 53_618) == 0


def test_closing_realises_fill_price_minus_last_settlement() -> None:
    _, position = margined_fill_postings(Position(), _fill(-1, 3, 53_000))  # short 3
    _, position, _ = variation_postings(IC, position, 53_100)  # short loses 10 pts x 3 x 200
    postings, flat = margined_fill_postings(position, _fill(1, 1, 52_900))  # buy 1 back
    realized = {p.account: p.amount_minor for p in postings}
    assert realized == {"assets:cash:CNY": 20 * 200 * 100, "income:realized:CNY": -20 * 200 * 100}
    assert flat.qty_raw == -2 and flat.cost_minor == -2 * 53_100 * 200 * 10


def test_settlement_vwap_rounds_half_even_to_the_tick() -> None:
    assert settlement_vwap_raw([100, 104], [1, 1], 2) == 102
    assert settlement_vwap_raw([100, 102], [1, 1], 2) == 100  # 101 = 50.5 ticks -> 50 (even)
    assert settlement_vwap_raw([100, 106], [3, 1], 2) == 102  # 101.5 = 50.75 ticks -> 51
    assert settlement_vwap_raw([10, 20], [0, 0], 1) == 0


def test_equities_keep_notional_value() -> None:
    stock = Instrument(
        instrument_id=1,
        symbol="X",
        venue="XNYS",
        asset_class="equity",
        currency="USD",
        price_digits=2,
        tick_raw=1,
        qty_digits=0,
        lot_raw=1,
    )
    assert position_value_minor(stock, Position(10, 999), 1_234) == 12_340
