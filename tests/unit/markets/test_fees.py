"""Fees, taxes and commissions: dated rates, per-order minimums, caps, never negative."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.fixed import Rounding
from domain.markets import (
    BINANCE_SPOT_VIP0,
    BINANCE_USDM_VIP0,
    CN_STAMP_DUTY,
    IBKR_PRO_FIXED,
    IBKR_PRO_TIERED,
    RQALPHA_DEFAULT_CN_COMMISSION,
    CommissionSchedule,
    OrderCommission,
    RuleNotDefined,
    accrue_commission,
    borrow_fee_minor,
    cn_exchange_fees,
    commission_total_minor,
    finra_taf_minor,
    ibkr_tiered_schedule,
    maker_taker_fee_minor,
    sec_fee_minor,
)

BUY, SELL = 1, -1
NOTIONAL = 10_000_000  # 100,000.00 CNY / USD in minor units


@pytest.mark.parametrize(
    ("day", "sell_duty"),
    [(20150803, 10_000), (20230825, 10_000), (20230827, 10_000), (20230828, 5_000), (20260105, 5_000)],
)
def test_stamp_duty_on_sells_by_date(day: int, sell_duty: int) -> None:
    assert cn_exchange_fees(SELL, day, NOTIONAL).stamp_duty_minor == sell_duty
    assert cn_exchange_fees(BUY, day, NOTIONAL).stamp_duty_minor == 0
    assert cn_exchange_fees(SELL, day, NOTIONAL, is_fund=True).stamp_duty_minor == 0


def test_stamp_duty_table_2008_and_unknown_dates_raise() -> None:
    assert CN_STAMP_DUTY.at(20080618).applies(BUY)  # 0.1% both sides 2008-04-24..2008-09-18
    assert not CN_STAMP_DUTY.at(20080919).applies(BUY)
    assert CN_STAMP_DUTY.at(20080919).rate_e8 == 100_000
    with pytest.raises(RuleNotDefined, match="stamp duty"):
        CN_STAMP_DUTY.at(20080423)
    # The transfer/handling tables start 2015-08-01: earlier fills must bring their own schedule.
    with pytest.raises(RuleNotDefined, match="transfer fee"):
        cn_exchange_fees(SELL, 20110603, NOTIONAL)


@pytest.mark.parametrize(
    ("day", "transfer", "handling"),
    [
        (20220428, 200, 487),  # 0.002% / 0.00487%
        (20220429, 100, 487),  # transfer fee halved
        (20230828, 100, 341),  # handling fee cut
    ],
)
def test_transfer_and_handling_fees_by_date(day: int, transfer: int, handling: int) -> None:
    fees = cn_exchange_fees(BUY, day, NOTIONAL)
    assert (fees.transfer_minor, fees.handling_minor, fees.regulatory_minor) == (transfer, handling, 200)
    assert fees.total_minor == transfer + handling + 200
    all_in = cn_exchange_fees(BUY, day, NOTIONAL, exchange_fees_in_commission=True)
    assert (all_in.handling_minor, all_in.regulatory_minor) == (0, 0)


def test_fee_lines_round_half_up_to_the_fen() -> None:
    # 10,150.00 CNY sold on 2024-01-02: duty 5.075 -> 5.08; transfer 0.1015 -> 0.10.
    fees = cn_exchange_fees(SELL, 20240102, 1_015_000)
    assert fees.stamp_duty_minor == 508
    assert fees.transfer_minor == 10
    down = cn_exchange_fees(SELL, 20240102, 1_015_000, rounding=Rounding.DOWN)
    assert down.stamp_duty_minor == 507


def test_commission_minimum_is_charged_once_per_order_across_partial_fills() -> None:
    schedule = RQALPHA_DEFAULT_CN_COMMISSION  # 0.08%, min 5 CNY
    acc = OrderCommission()
    charged = []
    for notional in (100_000, 200_000, 300_000, 400_000):  # 1,000 / 2,000 / 3,000 / 4,000 CNY
        fee, acc = accrue_commission(acc, schedule, notional, 100, 0)
        charged.append(fee)
    # Cumulative 1,000 / 3,000 / 6,000 CNY stay under the 5 CNY minimum (0.80 / 2.40 / 4.80),
    # so only the first fill pays (the minimum, once); 10,000 CNY -> 8.00 CNY in total.
    assert charged == [500, 0, 0, 300]
    assert sum(charged) == commission_total_minor(schedule, 1_000_000, 400, 0) == 800
    # Per-fill minimums would have charged 20 CNY.


def test_ibkr_fixed_examples_from_the_pricing_page() -> None:
    assert commission_total_minor(IBKR_PRO_FIXED, 250_000, 100, 0) == 100  # 100 sh @ $25 -> $1.00
    assert commission_total_minor(IBKR_PRO_FIXED, 2_500_000, 1_000, 0) == 500  # 1,000 sh @ $25 -> $5.00
    assert commission_total_minor(IBKR_PRO_FIXED, 25_000, 1_000, 0) == 250  # 1,000 sh @ $0.25 -> 1% cap


def test_ibkr_tiered_rate_by_month_volume() -> None:
    low = ibkr_tiered_schedule(IBKR_PRO_TIERED, 0)
    assert commission_total_minor(low, 5_000_000, 10_000, 0) == 3_500  # $0.0035 x 10,000
    assert commission_total_minor(low, 250_000, 10, 0) == 35  # minimum $0.35
    mid = ibkr_tiered_schedule(IBKR_PRO_TIERED, 300_001)
    assert mid.per_share_e8 == 200_000
    assert ibkr_tiered_schedule(IBKR_PRO_TIERED, 300_000).per_share_e8 == 350_000
    assert ibkr_tiered_schedule(IBKR_PRO_TIERED, 100_000_001).per_share_e8 == 50_000


@pytest.mark.parametrize(
    ("day", "fee"),
    [
        (20230227, 800),  # $8.00 per $1M on $1M of sales
        (20240521, 800),
        (20240522, 2_780),
        (20250513, 2_780),
        (20250514, 0),
        (20260403, 0),
        (20260404, 2_060),
    ],
)
def test_sec_section31_by_date(day: int, fee: int) -> None:
    assert sec_fee_minor(SELL, day, 100_000_000) == fee
    assert sec_fee_minor(BUY, day, 100_000_000) == 0


def test_sec_fee_rounds_up_to_the_cent_and_is_undefined_before_the_table() -> None:
    assert sec_fee_minor(SELL, 20260501, 1_000_000) == 21  # $10,000 x 20.60/1M = 20.6 cents -> 21
    assert sec_fee_minor(SELL, 20260501, 1_000_000, rounding=Rounding.HALF_EVEN) == 21
    assert sec_fee_minor(SELL, 20260501, 100) == 1  # $1 of sales still pays one cent (rounded up)
    with pytest.raises(RuleNotDefined):
        sec_fee_minor(SELL, 20140609, 1_000_000)


@pytest.mark.parametrize(
    ("day", "shares", "fee"),
    [
        (20250102, 1_000, 17),  # $0.166 -> $0.17
        (20250102, 100_000, 830),  # $16.60 capped at $8.30
        (20260102, 1_000, 20),  # $0.195 -> $0.20
        (20260102, 60_000, 979),  # $11.70 capped at $9.79
        (20270104, 10_000, 232),
        (20280103, 100_000, 1_205),
    ],
)
def test_finra_taf_by_date_with_cap(day: int, shares: int, fee: int) -> None:
    assert finra_taf_minor(SELL, day, shares, 0) == fee
    assert finra_taf_minor(BUY, day, shares, 0) == 0


def test_borrow_and_crypto_fees() -> None:
    # $100,000 short at 3% a year for 3 days (a weekend): 100000 x 0.03 x 3 / 360 = $25.00.
    assert borrow_fee_minor(10_000_000, 3_000_000, 3, Rounding.CEILING) == 2_500
    usdt = 10_000 * 10**6  # 10,000 USDT in micro-USDT
    assert maker_taker_fee_minor(BINANCE_SPOT_VIP0, True, usdt, Rounding.HALF_UP) == 10 * 10**6
    assert maker_taker_fee_minor(BINANCE_USDM_VIP0, True, usdt, Rounding.HALF_UP) == 2 * 10**6
    assert maker_taker_fee_minor(BINANCE_USDM_VIP0, False, usdt, Rounding.HALF_UP) == 5 * 10**6


cn_days = st.sampled_from([20150801, 20200102, 20220429, 20230828, 20240522, 20250514, 20260404])
us_days = st.sampled_from([20240102, 20240522, 20250514, 20260101, 20260404, 20270105, 20280103])
sides = st.sampled_from([BUY, SELL])
roundings = st.sampled_from(list(Rounding))


@given(side=sides, day=cn_days, notional=st.integers(0, 10**12), rounding=roundings, fund=st.booleans())
def test_cn_fees_never_negative(side: int, day: int, notional: int, rounding: Rounding, fund: bool) -> None:
    fees = cn_exchange_fees(side, day, notional, is_fund=fund, rounding=rounding)
    assert min(fees.stamp_duty_minor, fees.transfer_minor, fees.handling_minor, fees.regulatory_minor) >= 0


@given(
    side=sides, day=us_days, notional=st.integers(0, 10**12), shares=st.integers(0, 10**8), rounding=roundings
)
def test_us_fees_never_negative(side: int, day: int, notional: int, shares: int, rounding: Rounding) -> None:
    assert sec_fee_minor(side, day, notional, rounding=rounding) >= 0
    assert finra_taf_minor(side, day, shares, 0, rounding=rounding) >= 0


@given(
    fills=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**5)), min_size=1, max_size=12),
    rate=st.integers(0, 300_000),
    per_share=st.integers(0, 1_000_000),
    minimum=st.integers(0, 2_000),
    cap=st.one_of(st.none(), st.integers(0, 2_000_000)),
    rounding=roundings,
)
def test_commission_increments_never_negative_and_sum_to_the_order_total(
    fills: list[tuple[int, int]], rate: int, per_share: int, minimum: int, cap: int | None, rounding: Rounding
) -> None:
    schedule = CommissionSchedule(
        currency="USD",
        rate_e8=rate,
        per_share_e8=per_share,
        min_minor=minimum,
        max_rate_e8=cap,
        rounding=rounding,
    )
    acc = OrderCommission()
    total = 0
    for notional, qty in fills:
        fee, acc = accrue_commission(acc, schedule, notional, qty, 0)
        assert fee >= 0
        total += fee
    assert total == commission_total_minor(schedule, acc.notional_minor, acc.qty_raw, 0)


def test_negative_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        cn_exchange_fees(SELL, 20240102, -1)
    with pytest.raises(ValueError, match="side"):
        sec_fee_minor(0, 20260404, 100)
    assert CN_STAMP_DUTY.at(20230828).rate_e8 == 50_000
