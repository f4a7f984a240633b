"""Perpetual funding and margin in integers."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.fixed import Rounding
from domain.instruments import Instrument
from domain.ledger import assert_balanced
from domain.markets import (
    MarginBracket,
    check_liquidation,
    funding_payment_minor,
    funding_postings,
    funding_rate_e8,
    funding_times_ns,
    initial_margin_minor,
    is_liquidatable,
    maintenance_margin_minor,
    margin_balance_minor,
    unrealized_pnl_minor,
)

BTC_PERP = Instrument(
    instrument_id=1,
    symbol="BTCUSDT-PERP",
    venue="BINANCE",
    asset_class="perpetual",
    currency="USDT",
    price_digits=1,
    tick_raw=1,
    qty_digits=3,
    lot_raw=1,
)
HOUR_NS = 3_600 * 10**9


def test_funding_long_pays_short_receives_on_positive_rate() -> None:
    # 0.5 BTC at mark 60,000.0 = 30,000 USDT notional; rate 0.01% -> 3 USDT.
    assert funding_payment_minor(BTC_PERP, 500, 600_000, 10_000, Rounding.HALF_UP) == -3_000_000
    assert funding_payment_minor(BTC_PERP, -500, 600_000, 10_000, Rounding.HALF_UP) == 3_000_000
    assert funding_payment_minor(BTC_PERP, 500, 600_000, -10_000, Rounding.HALF_UP) == 3_000_000
    assert funding_payment_minor(BTC_PERP, 0, 600_000, 10_000, Rounding.HALF_UP) == 0


def test_funding_rounding_is_named_and_symmetric() -> None:
    # 0.001 BTC x 60,000.1 x 0.0123% = 0.00738012300 USDT -> 7,380.123 micro-USDT
    assert funding_payment_minor(BTC_PERP, 1, 600_001, 12_300, Rounding.HALF_UP) == -7_380
    assert funding_payment_minor(BTC_PERP, 1, 600_001, 12_300, Rounding.CEILING) == -7_381
    assert funding_payment_minor(BTC_PERP, -1, 600_001, 12_300, Rounding.CEILING) == 7_381


def test_funding_postings_balance() -> None:
    paid = funding_postings(-3_000_000, "USDT")
    assert_balanced(paid)
    assert [(p.account, p.amount_minor) for p in paid] == [
        ("assets:cash:USDT", -3_000_000),
        ("expenses:funding:USDT", 3_000_000),
    ]
    assert funding_postings(0, "USDT") == []


def test_funding_times_are_half_open_multiples_of_the_interval() -> None:
    day = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC
    assert funding_times_ns(day, day + 24 * HOUR_NS, 8) == [
        day + 8 * HOUR_NS,
        day + 16 * HOUR_NS,
        day + 24 * HOUR_NS,
    ]
    assert funding_times_ns(day - 1, day, 8) == [day]
    assert funding_times_ns(day, day + 8 * HOUR_NS - 1, 8) == []
    with pytest.raises(ValueError, match="interval"):
        funding_times_ns(day, day + HOUR_NS, 3)


def test_funding_rate_formula_clamps() -> None:
    assert funding_rate_e8(premium_e8=0, cap_e8=300_000) == 10_000  # interest 0.01% when premium is 0
    assert funding_rate_e8(premium_e8=200_000, cap_e8=300_000) == 150_000  # clamp(I - P) at -0.05%
    assert funding_rate_e8(premium_e8=900_000, cap_e8=300_000) == 300_000  # contract cap


BRACKETS = (
    MarginBracket(50_000 * 10**6, 400_000, 0),  # 0.4% up to 50k USDT
    MarginBracket(250_000 * 10**6, 500_000, 50 * 10**6),
    MarginBracket(None, 1_000_000, 1_300 * 10**6),
)


def test_maintenance_margin_brackets_and_liquidation() -> None:
    assert maintenance_margin_minor(30_000 * 10**6, BRACKETS, Rounding.CEILING) == 120 * 10**6
    assert maintenance_margin_minor(100_000 * 10**6, BRACKETS, Rounding.CEILING) == 450 * 10**6
    assert initial_margin_minor(30_000 * 10**6, 20, Rounding.CEILING) == 1_500 * 10**6
    # Long 0.5 BTC from 60,000 with 1,500 USDT isolated margin; mark falls to 57,200:
    # upnl -1,400, balance 100; maintenance 0.4% x 28,600 = 114.4 -> liquidate.
    assert unrealized_pnl_minor(BTC_PERP, 500, 600_000, 572_000, Rounding.FLOOR) == -1_400 * 10**6
    balance = margin_balance_minor(1_500 * 10**6, BTC_PERP, 500, 600_000, 572_000)
    maintenance = maintenance_margin_minor(28_600 * 10**6, BRACKETS, Rounding.CEILING)
    assert is_liquidatable(balance, maintenance)
    reason = check_liquidation(balance, maintenance, "USDT")
    assert reason == "PERP_LIQUIDATION: margin_balance=100.000000, maintenance_margin=114.400000 USDT"
    safe = margin_balance_minor(1_500 * 10**6, BTC_PERP, 500, 600_000, 590_000)
    assert check_liquidation(safe, maintenance, "USDT") is None


@given(
    qty=st.integers(-(10**6), 10**6),
    mark=st.integers(1, 10**7),
    rate=st.integers(-300_000, 300_000),
)
def test_funding_is_zero_sum_between_long_and_short(qty: int, mark: int, rate: int) -> None:
    long_side = funding_payment_minor(BTC_PERP, qty, mark, rate, Rounding.HALF_UP)
    short_side = funding_payment_minor(BTC_PERP, -qty, mark, rate, Rounding.HALF_UP)
    assert long_side == -short_side
