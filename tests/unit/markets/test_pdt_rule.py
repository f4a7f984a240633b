"""US pattern-day-trader rule: FINRA-style day-trade counting on hand-made fill sequences, the
window, the 6% condition, the equity minimum and the broker's stop day."""

from __future__ import annotations

import msgspec
import pytest

from domain.markets import (
    DayTradeBook,
    PdtRule,
    check_pdt,
    completes_day_trade,
    pdt_window,
    record_fill,
    split_fill,
    window_counts,
)

BUY, SELL = 1, -1


def _run(fills: list[tuple[int, int]], start: int = 0, day: int = 20240102, iid: int = 1) -> DayTradeBook:
    """Apply (side, qty) fills of one instrument in one session from position ``start``."""
    book = DayTradeBook()
    position = start
    for side, qty in fills:
        book = record_fill(book, day, iid, position, side, qty)
        position += side * qty
    return book


def _day_trades(book: DayTradeBook) -> int:
    return sum(r.day_trades for r in book.records)


@pytest.mark.parametrize(
    ("fills", "start", "expected"),
    [
        ([(BUY, 100), (SELL, 100)], 0, 1),
        ([(BUY, 100), (BUY, 100), (SELL, 200)], 0, 1),  # buy, buy, sell = 1
        ([(BUY, 100), (SELL, 50), (SELL, 50)], 0, 1),  # buy, sell, sell = 1
        ([(BUY, 100), (SELL, 100), (BUY, 100), (SELL, 100)], 0, 2),  # buy, sell, buy, sell = 2
        ([(SELL, 100), (BUY, 100)], 0, 1),  # short, cover
        ([(SELL, 100), (BUY, 100)], 100, 0),  # overnight long sold, then a new buy: none
        ([(SELL, 100), (BUY, 100), (SELL, 100)], 100, 1),  # ... and that buy sold again
        ([(BUY, 100), (SELL, 300), (BUY, 200)], 0, 2),  # through zero: long closed, short covered
        ([(BUY, 100)], 0, 0),
        ([(BUY, 50), (SELL, 10)], 200, 1),  # adds to an overnight long, then sells part
    ],
)
def test_day_trades_counted_as_finra_does(fills: list[tuple[int, int]], start: int, expected: int) -> None:
    book = _run(fills, start)
    assert _day_trades(book) == expected
    (record,) = book.records
    assert record.trades == len(fills)


def test_fill_through_zero_is_one_execution_closing_and_opening() -> None:
    assert split_fill(100, SELL, 300) == (100, 200)
    assert split_fill(-100, BUY, 40) == (40, 0)
    assert split_fill(0, SELL, 5) == (0, 5)
    (record,) = _run([(BUY, 100), (SELL, 300)]).records
    assert (record.opening, record.closing, record.trades, record.day_trades, record.armed) == (
        2,
        1,
        2,
        1,
        True,
    )
    with pytest.raises(ValueError, match="side"):
        split_fill(0, 0, 5)
    with pytest.raises(ValueError, match="positive"):
        split_fill(0, BUY, 0)


def test_sessions_and_instruments_are_counted_apart() -> None:
    book = record_fill(DayTradeBook(), 20240102, 1, 0, BUY, 10)
    assert not completes_day_trade(book, 20240103, 1, 10, SELL)  # bought yesterday: not a day trade
    assert not completes_day_trade(book, 20240102, 2, 10, SELL)
    assert not completes_day_trade(book, 20240102, 1, 10, BUY)  # adding is not closing
    assert completes_day_trade(book, 20240102, 1, 10, SELL)
    book = record_fill(book, 20240103, 1, 10, SELL, 10)
    assert _day_trades(book) == 0


def test_window_is_five_xnys_sessions_and_old_records_drop() -> None:
    rule = PdtRule()
    # 2024-01-15 is Martin Luther King Jr. Day (closed).
    assert pdt_window(rule, 20240117) == (20240110, 20240111, 20240112, 20240116, 20240117)
    book = DayTradeBook()
    for day in (20240109, 20240110, 20240117):
        book = record_fill(book, day, 1, 0, BUY, 1, keep_from=pdt_window(rule, day)[0])
        book = record_fill(book, day, 1, 1, SELL, 1, keep_from=pdt_window(rule, day)[0])
    assert [r.day for r in book.records] == [20240110, 20240117]  # 01-09 left the window
    assert window_counts(book, pdt_window(rule, 20240117)) == (2, 4)


def _three_day_trades() -> DayTradeBook:
    book = DayTradeBook()
    for day in (20240102, 20240103, 20240104):
        book = record_fill(book, day, 1, 0, BUY, 10)
        book = record_fill(book, day, 1, 10, SELL, 10)
    return record_fill(book, 20240105, 1, 0, BUY, 10)


def test_fourth_day_trade_below_minimum_is_refused_with_the_numbers() -> None:
    rule = PdtRule()
    book = _three_day_trades()
    window = pdt_window(rule, 20240105)
    reason = check_pdt(rule, book, window, 20240105, 1, 10, SELL, 2_499_999)
    assert reason == (
        "US_PDT: day_trades_5d=4, trades_5d=8, equity_minor=2499999, min_equity_minor=2500000, "
        "stop_day=20260604"
    )
    assert check_pdt(rule, book, window, 20240105, 1, 10, SELL, 2_500_000) is None  # at the minimum
    assert check_pdt(rule, book, window, 20240105, 1, 10, BUY, 0) is None  # not a day trade
    assert check_pdt(PdtRule(day_trades=5), book, window, 20240105, 1, 10, SELL, 0) is None


def test_six_percent_condition() -> None:
    # 4 day trades out of 8 trades is 50%: a pattern. With the share at 50% it must be MORE.
    rule = PdtRule(min_share_e8=50_000_000)
    book = _three_day_trades()
    window = pdt_window(rule, 20240105)
    assert check_pdt(rule, book, window, 20240105, 1, 10, SELL, 0) is None
    rule = PdtRule(min_share_e8=49_999_999)
    assert check_pdt(rule, book, window, 20240105, 1, 10, SELL, 0) is not None


def test_day_trades_under_six_percent_are_not_a_pattern() -> None:
    rule = PdtRule()
    book = _three_day_trades()
    for n in range(60):  # 60 opening buys of other names: 4 / 69 trades < 6%
        book = record_fill(book, 20240105, 100 + n, 0, BUY, 1)
    window = pdt_window(rule, 20240105)
    assert window_counts(book, window) == (3, 67)
    assert check_pdt(rule, book, window, 20240105, 1, 10, SELL, 0) is None  # 4/68 = 5.9%
    book = DayTradeBook(records=book.records[:-3])  # 4/65 = 6.15%
    assert check_pdt(rule, book, window, 20240105, 1, 10, SELL, 0) is not None


def test_broker_stop_day() -> None:
    book = DayTradeBook()
    days = (20260529, 20260601, 20260602, 20260603)
    for day in days:
        book = record_fill(book, day, 1, 0, BUY, 10)
        book = record_fill(book, day, 1, 10, SELL, 10)
    book = record_fill(book, 20260604, 1, 0, BUY, 10)
    default = PdtRule()
    late = PdtRule(broker="late", stop_day=20270101)
    window = pdt_window(default, 20260604)
    assert not default.applies(20260604) and default.applies(20260603)
    assert check_pdt(default, book, window, 20260604, 1, 10, SELL, 0) is None
    assert check_pdt(late, book, window, 20260604, 1, 10, SELL, 0) is not None


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"stop_day": 20260603}, r"pdt\.stop_day"),
        ({"stop_day": 20271021}, r"pdt\.stop_day"),
        ({"stop_day": 20260631}, r"pdt\.stop_day.*YYYYMMDD"),
        ({"day_trades": 0}, r"pdt\.day_trades"),
        ({"window_sessions": 0}, r"pdt\.window_sessions"),
        ({"min_share_e8": 100_000_000}, r"pdt\.min_share_e8"),
        ({"min_equity_minor": -1}, r"pdt\.min_equity_minor"),
        ({"calendar": "XLON"}, r"pdt\.calendar"),
    ],
)
def test_bad_rule_is_refused_naming_the_field(fields: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        msgspec.convert(fields, PdtRule)


def test_rule_round_trips_from_toml_shape() -> None:
    rule = msgspec.convert({"broker": "IBKR", "stop_day": 20270301}, PdtRule)
    assert rule.stop_day == 20270301 and rule.min_equity_minor == 2_500_000 and rule.day_trades == 4
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"stopday": 20270301}, PdtRule)
