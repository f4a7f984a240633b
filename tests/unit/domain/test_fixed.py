from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.fixed import Rounding, div_round, floor_to_lot, from_decimal_text, round_to_tick
from domain.instruments import Instrument, notional_minor, qty_for_value

CASES = [
    # numerator, denominator, floor, ceiling, down, half_even, half_up
    (5, 2, 2, 3, 2, 2, 3),
    (7, 2, 3, 4, 3, 4, 4),
    (-5, 2, -3, -2, -2, -2, -3),
    (-7, 2, -4, -3, -3, -4, -4),
    (10, 3, 3, 4, 3, 3, 3),
    (-10, 3, -4, -3, -3, -3, -3),
    (6, 3, 2, 2, 2, 2, 2),
]


@pytest.mark.parametrize(("num", "den", "floor", "ceil", "down", "even", "up"), CASES)
def test_div_round_table(num: int, den: int, floor: int, ceil: int, down: int, even: int, up: int) -> None:
    assert div_round(num, den, Rounding.FLOOR) == floor
    assert div_round(num, den, Rounding.CEILING) == ceil
    assert div_round(num, den, Rounding.DOWN) == down
    assert div_round(num, den, Rounding.HALF_EVEN) == even
    assert div_round(num, den, Rounding.HALF_UP) == up


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**6), st.sampled_from(list(Rounding)))
def test_div_round_matches_decimal(num: int, den: int, rounding: Rounding) -> None:
    modes = {
        Rounding.FLOOR: "ROUND_FLOOR",
        Rounding.CEILING: "ROUND_CEILING",
        Rounding.DOWN: "ROUND_DOWN",
        Rounding.HALF_EVEN: "ROUND_HALF_EVEN",
        Rounding.HALF_UP: "ROUND_HALF_UP",
    }
    expected = (Decimal(num) / Decimal(den)).quantize(Decimal(1), rounding=modes[rounding])
    assert div_round(num, den, rounding) == int(expected)


def test_decimal_text_is_exact() -> None:
    assert from_decimal_text("10.23", 2, Rounding.HALF_EVEN) == 1023
    assert from_decimal_text("1.005", 2, Rounding.HALF_UP) == 101
    assert from_decimal_text("1.005", 2, Rounding.HALF_EVEN) == 100
    assert from_decimal_text("-0.5", 0, Rounding.HALF_UP) == -1
    assert from_decimal_text("1E+3", 2, Rounding.HALF_EVEN) == 100_000
    with pytest.raises(ValueError, match="finite"):
        from_decimal_text("NaN", 2, Rounding.HALF_EVEN)


def test_lots_and_ticks() -> None:
    assert floor_to_lot(250, 100) == 200
    assert floor_to_lot(-250, 100) == -200
    assert round_to_tick(1027, 5, Rounding.HALF_EVEN) == 1025
    assert round_to_tick(1028, 5, Rounding.CEILING) == 1030


def _stock(**kw: object) -> Instrument:
    fields: dict[str, object] = dict(
        instrument_id=1,
        symbol="X",
        venue="T",
        asset_class="equity",
        currency="USD",
        price_digits=2,
        tick_raw=1,
        qty_digits=0,
        lot_raw=100,
    )
    fields.update(kw)
    return Instrument(**fields)  # type: ignore[arg-type]


def test_notional_and_sizing_in_integers() -> None:
    stock = _stock()
    assert notional_minor(stock, 300, 1023, Rounding.HALF_EVEN) == 306_900  # 300 x 10.23 USD
    assert qty_for_value(stock, 1_000_000, 1023) == 900  # 10,000 USD buys 977 -> 900 in lots of 100
    coin = _stock(currency="USDT", price_digits=2, qty_digits=6, lot_raw=1)
    assert notional_minor(coin, 1_500_000, 6_543_210, Rounding.HALF_EVEN) == 98_148_150_000  # 1.5 x 65432.10


def test_instrument_rejects_bad_facts() -> None:
    with pytest.raises(ValueError, match="tick_raw"):
        _stock(tick_raw=0)
    with pytest.raises(ValueError, match="unknown currency"):
        _stock(currency="XXX")
