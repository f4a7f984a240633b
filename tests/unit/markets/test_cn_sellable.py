"""A-share T+1 sellable book and lot rules."""

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.markets import (
    Board,
    LotRule,
    SellableBook,
    apply_buy_fill,
    apply_sell_fill,
    check_buy_qty,
    check_sell,
    check_sell_qty,
    cn_lot_rule,
    release_sell,
    reserve_sell,
    roll_to,
    sellable,
)
from domain.markets._dated import date_to_day, day_to_date

MON, TUE, WED = 20240311, 20240312, 20240313


def test_buys_today_are_not_sellable_until_the_next_session_across_partial_fills() -> None:
    book = SellableBook(day=MON)
    book = apply_buy_fill(book, MON, 300)
    book = apply_buy_fill(book, MON, 200)  # second partial fill of the same order
    assert sellable(book) == 0
    assert (
        check_sell(book, MON, 100) == "CN_T_PLUS_1: sellable=0, order_qty=100, holding=500, bought_today=500"
    )
    book = apply_buy_fill(book, TUE, 100)  # rolls to Tuesday; Monday's 500 are now sellable
    assert sellable(book) == 500
    assert check_sell(book, TUE, 600) is not None
    book = reserve_sell(book, TUE, 400)
    assert sellable(book) == 100
    book = apply_sell_fill(book, TUE, 300)
    book = apply_sell_fill(book, TUE, 100)
    assert (book.holding, book.bought_today, book.reserved) == (200, 100, 0)
    assert sellable(book) == 100
    assert sellable(roll_to(book, WED)) == 200


def test_cancelled_sell_releases_its_reservation() -> None:
    book = reserve_sell(apply_buy_fill(SellableBook(day=MON), MON, 1000), TUE, 700)
    book = apply_sell_fill(book, TUE, 200)
    book = release_sell(book, TUE, 500)  # the rest is cancelled
    assert sellable(book) == 800


def test_t_plus_zero_instrument_can_sell_same_day() -> None:
    book = apply_buy_fill(SellableBook(day=MON, t_plus=0), MON, 1000)
    assert sellable(book) == 1000


def test_book_refuses_to_go_back_in_time_and_is_snapshot_able() -> None:
    book = apply_buy_fill(SellableBook(day=TUE), TUE, 100)
    with pytest.raises(ValueError, match="back"):
        roll_to(book, MON)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(book), type=SellableBook) == book
    with pytest.raises(ValueError, match="exceeds the reserved"):
        apply_sell_fill(book, TUE, 100)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(1, 3)),
        st.tuples(st.just("buy"), st.integers(1, 1000)),
        st.tuples(st.just("sell"), st.integers(1, 1500)),
        st.tuples(st.just("fill"), st.integers(1, 800)),
        st.tuples(st.just("cancel"), st.integers(0, 0)),
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(ops)
def test_t_plus_1_never_violated_under_random_sequences(sequence: list[tuple[str, int]]) -> None:
    date = day_to_date(MON)
    book = SellableBook(day=MON)
    buys: list[tuple[int, int]] = []  # oracle: (day, qty)
    sold = 0
    for op, value in sequence:
        day = date_to_day(date)
        bought_before = sum(qty for buy_day, qty in buys if buy_day < day)
        if op == "advance":
            date = date.fromordinal(date.toordinal() + value)
        elif op == "buy":
            book = apply_buy_fill(book, day, value)
            buys.append((day, value))
        elif op == "sell":
            oracle_available = bought_before - sold - roll_to(book, day).reserved
            reason = check_sell(book, day, value)
            assert (reason is None) == (value <= oracle_available), (value, oracle_available, reason)
            if reason is None:
                book = reserve_sell(book, day, value)
        elif op == "fill" and roll_to(book, day).reserved:
            qty = min(value, roll_to(book, day).reserved)
            book = apply_sell_fill(book, day, qty)
            sold += qty
            assert sold <= bought_before, "sold shares bought in the same session"
        elif op == "cancel":
            book = release_sell(book, day, roll_to(book, day).reserved)
        assert book.holding == sum(qty for _, qty in buys) - sold
        assert sellable(book) >= 0


def test_lot_rules_by_board() -> None:
    main = cn_lot_rule(Board.MAIN, 20240102)
    assert check_buy_qty(main, 100) is None
    assert check_buy_qty(main, 150) == "CN_LOT: min=100, step=100, order_qty=150"
    star = cn_lot_rule(Board.STAR, 20240102)
    assert check_buy_qty(star, 200) is None
    assert check_buy_qty(star, 201) is None  # 200 then 1-share increments
    assert check_buy_qty(star, 199) is not None
    assert check_buy_qty(star, 100_001) == "CN_LOT: max=100000, order_qty=100001"
    bse = cn_lot_rule(Board.BSE, 20240102)
    assert check_buy_qty(bse, 101) is None
    assert check_buy_qty(bse, 99) is not None
    with pytest.raises(ValueError, match="no lot rule"):
        cn_lot_rule(Board.FUND, 20240102)


@pytest.mark.parametrize(
    ("rule", "qty", "sellable_qty", "ok"),
    [
        (LotRule(100, 100), 300, 1000, True),
        (LotRule(100, 100), 50, 250, True),  # the whole odd remainder alone
        (LotRule(100, 100), 150, 250, True),  # one lot plus the whole odd remainder
        (LotRule(100, 100), 30, 250, False),  # part of the odd remainder
        (LotRule(100, 100), 120, 250, False),
        (LotRule(100, 100), 250, 250, True),
        (LotRule(200, 1), 150, 150, True),  # STAR: below 200 only as the whole remainder
        (LotRule(200, 1), 150, 350, False),
        (LotRule(200, 1), 230, 350, True),
    ],
)
def test_odd_lot_sells_only_as_the_whole_remainder(
    rule: LotRule, qty: int, sellable_qty: int, ok: bool
) -> None:
    assert (check_sell_qty(rule, qty, sellable_qty) is None) is ok
