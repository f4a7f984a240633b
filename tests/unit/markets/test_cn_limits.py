"""A-share price limits: bands by board x ST x date, integer half-up limits, checks, locked bars."""

from decimal import ROUND_HALF_UP, Decimal

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.fixed import RATE_SCALE
from domain.instruments import Instrument
from domain.markets import (
    Board,
    Dated,
    LimitBand,
    RuleNotDefined,
    board_from_code,
    check_price_limit,
    check_suspended,
    check_tick,
    cn_instrument_limits,
    cn_price_band,
    cn_price_limits,
    limit_prices,
    limit_prices_array,
    listing_session_number,
    locked_at_limit,
    locked_at_limit_array,
    locked_reason,
)

TEN = LimitBand(10_000_000, 10_000_000)
FIVE = LimitBand(5_000_000, 5_000_000)
TWENTY = LimitBand(20_000_000, 20_000_000)
THIRTY = LimitBand(30_000_000, 30_000_000)


def test_half_up_limit_from_1_15_close_is_1_27_and_1_04() -> None:
    # Binary floats give round(1.15 * 1.1, 2) == 1.26; the exchange's half-up result is 1.27.
    limits = limit_prices(115, TEN, 1)
    assert limits.up_raw == 127
    assert limits.down_raw == 104


@pytest.mark.parametrize(
    ("ref", "band", "up", "down"),
    [
        (1023, TEN, 1125, 921),  # 11.253 -> 11.25, 9.207 -> 9.21
        (1321, TEN, 1453, 1189),  # SPDB 2011-06-02 close 13.21: 14.531 -> 14.53, 11.889 -> 11.89
        (203, FIVE, 213, 193),  # 2.1315 -> 2.13, 1.9285 -> 1.93
        (1005, TWENTY, 1206, 804),
        (1000, THIRTY, 1300, 700),
        (1, TEN, 1, 1),  # 0.011 -> 0.01, down never below one tick
    ],
)
def test_limit_prices_known_values(ref: int, band: LimitBand, up: int, down: int) -> None:
    limits = limit_prices(ref, band, 1)
    assert (limits.up_raw, limits.down_raw) == (up, down)


@pytest.mark.parametrize(
    ("board", "st_flag", "day", "band"),
    [
        (Board.MAIN, False, 20110603, TEN),
        (Board.MAIN, True, 20110603, FIVE),
        (Board.MAIN, True, 20260703, FIVE),  # last ST ±5% session week
        (Board.MAIN, True, 20260706, TEN),  # ST band raised to ±10% (MARKET_RULES 1.2)
        (Board.CHINEXT, False, 20200821, TEN),
        (Board.CHINEXT, True, 20200821, FIVE),
        (Board.CHINEXT, False, 20200824, TWENTY),
        (Board.CHINEXT, True, 20200824, TWENTY),
        (Board.STAR, True, 20190722, TWENTY),
        (Board.BSE, False, 20211115, THIRTY),
        (Board.FUND, False, 20240102, TEN),
    ],
)
def test_band_by_board_st_and_date(board: Board, st_flag: bool, day: int, band: LimitBand) -> None:
    assert cn_price_band(board, st_flag, day) == band


def test_no_limits_before_1996_12_16_and_unknown_dates_raise() -> None:
    assert cn_price_band(Board.MAIN, False, 19961213) is None
    assert cn_price_limits(Board.MAIN, False, 19961213, 1000, 1) is None
    with pytest.raises(RuleNotDefined, match="STAR"):
        cn_price_band(Board.STAR, False, 20190719)
    with pytest.raises(RuleNotDefined, match="BSE"):
        cn_price_band(Board.BSE, False, 20211112)


def test_ipo_no_limit_sessions_and_day_one_issue_band() -> None:
    # STAR: first five sessions have no limit, the sixth has ±20%.
    for session in range(1, 6):
        assert (
            cn_price_band(Board.STAR, False, 20240102, listing_day=20240102, session_number=session) is None
        )
    assert cn_price_band(Board.STAR, False, 20240109, listing_day=20240102, session_number=6) == TWENTY
    # ChiNext listed before the 2020-08-24 reform: day one 144%/64% of issue, then ±10%.
    day1 = cn_price_band(Board.CHINEXT, False, 20190102, listing_day=20190102, session_number=1)
    assert day1 == LimitBand(44_000_000, 36_000_000)
    issue_limits = limit_prices(1000, day1, 1)
    assert (issue_limits.up_raw, issue_limits.down_raw) == (1440, 640)
    assert cn_price_band(Board.CHINEXT, False, 20190103, listing_day=20190102, session_number=2) == TEN
    # Main board under full registration (listings from 2023-04-10): five no-limit sessions.
    assert cn_price_band(Board.MAIN, False, 20230414, listing_day=20230410, session_number=5) is None
    assert cn_price_band(Board.MAIN, False, 20230417, listing_day=20230410, session_number=6) == TEN
    with pytest.raises(ValueError, match="together"):
        cn_price_band(Board.MAIN, False, 20230417, listing_day=20230410)


def test_check_price_limit_reason_carries_code_and_numbers() -> None:
    limits = limit_prices(930, TEN, 1)  # 9.30 -> 10.23 / 8.37
    assert limits.up_raw == 1023
    assert check_price_limit(1024, limits, 2) == "CN_PRICE_LIMIT: limit_up=10.23, order_px=10.24"
    assert check_price_limit(836, limits, 2) == "CN_PRICE_LIMIT: limit_down=8.37, order_px=8.36"
    assert check_price_limit(1023, limits, 2) is None
    assert check_price_limit(837, limits, 2) is None
    assert check_price_limit(99_999, None, 2) is None


def test_reference_off_the_tick_grid_is_an_error() -> None:
    with pytest.raises(ValueError, match="tick grid"):
        limit_prices(10235, TEN, 10)


def test_tick_and_suspension_checks() -> None:
    assert check_tick(10235, 10, 3) == "CN_TICK: tick=0.010, order_px=10.235"
    assert check_tick(10230, 10, 3) is None
    assert check_suspended(True, 20150706) == "CN_SUSPENDED: day=20150706"
    assert check_suspended(False, 20150706) is None


def test_locked_bar_blocks_one_side_only() -> None:
    limits = limit_prices(1000, TEN, 1)  # 11.00 / 9.00
    # One-price limit-up bar: buys cannot fill, sells can.
    assert locked_at_limit(1, 1100, 1100, limits)
    assert not locked_at_limit(-1, 1100, 1100, limits)
    assert locked_reason(1, 1100, 1100, limits, 2) == "CN_LIMIT_LOCKED: limit_up=11.00, bar_low=11.00"
    # The bar touched limit-up but traded below it: a buy can fill.
    assert not locked_at_limit(1, 1050, 1100, limits)
    # Limit-down lock blocks sells.
    assert locked_at_limit(-1, 900, 900, limits)
    assert locked_reason(-1, 900, 900, limits, 2) == "CN_LIMIT_LOCKED: limit_down=9.00, bar_high=9.00"
    assert not locked_at_limit(1, 900, 900, limits)
    assert not locked_at_limit(1, 1100, 1100, None)


def test_board_from_code() -> None:
    assert board_from_code("600000") is Board.MAIN
    assert board_from_code("000001") is Board.MAIN
    assert board_from_code("688981") is Board.STAR
    assert board_from_code("300750") is Board.CHINEXT
    assert board_from_code("830799") is Board.BSE
    with pytest.raises(ValueError, match="prefix"):
        board_from_code("900901")


def test_dated_table_rejects_unsorted_entries() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        Dated.of("bad", [(20200102, 1), (20200101, 2)])
    with pytest.raises(ValueError, match="YYYYMMDD"):
        Dated.of("bad", [(20200230, 1)])


bands = st.sampled_from([TEN, FIVE, TWENTY, THIRTY, LimitBand(44_000_000, 36_000_000)])


@given(ticks=st.integers(1, 1_000_000), band=bands, tick=st.sampled_from([1, 10]))
def test_every_limit_is_on_the_tick_grid_and_nearest_to_the_band_edge(
    ticks: int, band: LimitBand, tick: int
) -> None:
    ref = ticks * tick
    limits = limit_prices(ref, band, tick)
    assert limits.up_raw % tick == 0
    assert limits.down_raw % tick == 0
    exact_up = Decimal(ref) * (RATE_SCALE + band.up_e8) / RATE_SCALE
    exact_down = Decimal(ref) * (RATE_SCALE - band.down_e8) / RATE_SCALE
    assert limits.up_raw == (exact_up / tick).quantize(Decimal(1), ROUND_HALF_UP) * tick
    # Within the band, up to the half tick the exchange's rounding allows.
    assert abs(limits.up_raw - exact_up) * 2 <= tick
    if exact_down >= tick:
        assert abs(limits.down_raw - exact_down) * 2 <= tick
    else:
        assert limits.down_raw == tick
    assert limits.down_raw <= ref <= limits.up_raw


@given(
    ref_ticks=st.lists(st.integers(1, 1_000_000), min_size=1, max_size=30),
    band=bands,
    tick=st.sampled_from([1, 10]),
)
def test_vectorised_limits_equal_scalar(ref_ticks: list[int], band: LimitBand, tick: int) -> None:
    refs = [value * tick for value in ref_ticks]
    n = len(refs)
    ref = np.array(refs, dtype=np.int64)
    up, down = limit_prices_array(
        ref, np.full(n, band.up_e8, np.int64), np.full(n, band.down_e8, np.int64), np.full(n, tick, np.int64)
    )
    for i, value in enumerate(refs):
        scalar = limit_prices(value, band, tick)
        assert (int(up[i]), int(down[i])) == (scalar.up_raw, scalar.down_raw)


def test_vectorised_locked_mask_and_unlimited_rows() -> None:
    sides = np.array([1, -1, 1, -1], dtype=np.int64)
    low = np.array([1100, 900, 1100, 900], dtype=np.int64)
    high = np.array([1100, 900, 1100, 950], dtype=np.int64)
    up = np.array([1100, 1100, 0, 1100], dtype=np.int64)
    down = np.array([900, 900, 0, 900], dtype=np.int64)
    assert locked_at_limit_array(sides, low, high, up, down).tolist() == [True, True, False, False]
    ref = np.array([1000, 1000], dtype=np.int64)
    up_out, down_out = limit_prices_array(
        ref, np.array([0, 10_000_000]), np.array([0, 10_000_000]), np.array([1, 1])
    )
    assert up_out.tolist() == [0, 1100]
    assert down_out.tolist() == [0, 900]


def test_listing_sessions_count_xshg_sessions_across_a_closure() -> None:
    """Sessions since listing are XSHG trading days, not calendar days: a STAR name listed on
    2024-02-07 has sessions 02-07, 02-08, (Spring Festival closure 02-09..02-18), 02-19,
    02-20, 02-21 without a limit; 02-22 is session 6 with ±20%."""
    assert [listing_session_number(20240207, d) for d in (20240207, 20240208, 20240219, 20240221)] == [
        1,
        2,
        3,
        5,
    ]
    assert listing_session_number(20240207, 20240222) == 6
    assert listing_session_number(0, 20240222) is None  # no listing day: seasoned
    assert listing_session_number(20240207, 20240206) is None  # before listing: no regime
    assert listing_session_number(20240207, 20240401) is None  # past the window: seasoned
    star = Instrument(instrument_id=1, symbol="688001.SH", venue="SSE", asset_class="equity", currency="CNY",
                      price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1, board="star",
                      listing_day=20240207)  # fmt: skip
    assert cn_instrument_limits(star, 20240221, 2000) is None
    day6 = cn_instrument_limits(star, 20240222, 2000)
    assert day6 is not None and (day6.up_raw, day6.down_raw) == (2400, 1600)
    seasoned = msgspec.structs.replace(star, listing_day=0)
    assert cn_instrument_limits(seasoned, 20240221, 2000) == day6
