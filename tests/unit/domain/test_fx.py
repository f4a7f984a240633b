"""``domain.fx``: the day's rate as of the latest row within the staleness limit; errors name
the currency and the day."""

from __future__ import annotations

import pytest

from domain.fx import FxError, FxRate, FxTable, cross_minor, to_base_minor

ROWS = [
    FxRate(day=20240104, currency="CNY", base="USD", rate_e8=14_000_000),
    FxRate(day=20240105, currency="CNY", base="USD", rate_e8=14_100_000),
    FxRate(day=20240105, currency="USD", base="CNY", rate_e8=709_000_000),  # another base: ignored
]


def test_the_rate_is_the_latest_on_or_before_the_day_within_the_limit() -> None:
    table = FxTable("USD", ROWS, stale_days_max=3)
    assert table.currencies == ["CNY"]
    assert table.rate_e8("CNY", 20240104) == 14_000_000
    assert table.rate_e8("CNY", 20240108) == 14_100_000  # Monday: Friday's rate, 3 days old
    assert table.rate_e8("USD", 20240108) == 100_000_000  # the base itself
    with pytest.raises(FxError, match=r"no CNY/USD rate on 20240109: the latest, on 20240105, is 4 days old"):
        table.rate_e8("CNY", 20240109)
    with pytest.raises(FxError, match=r"no CNY/USD rate on or before 20240103"):
        table.rate_e8("CNY", 20240103)
    with pytest.raises(FxError, match=r"no USDT/USD rate in the data set \(needed on 20240104\)"):
        table.require(["CNY", "USDT", "USD"], [20240104])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (FxRate(day=20240104, currency="CNY", base="USD", rate_e8=0), "not positive"),
        (FxRate(day=20240104, currency="XYZ", base="USD", rate_e8=1), "unknown currency 'XYZ'"),
        (FxRate(day=20240132, currency="CNY", base="USD", rate_e8=1), "20240132 is not a YYYYMMDD date"),
        (FxRate(day=20240104, currency="USD", base="USD", rate_e8=1), "into itself"),
        (ROWS[0], "two CNY/USD rates on 20240104"),
    ],
)
def test_bad_rows_are_refused(row: FxRate, message: str) -> None:
    with pytest.raises(FxError, match=message):
        FxTable("USD", [ROWS[0], row], stale_days_max=0)


def test_conversions_to_the_minor_unit() -> None:
    # 1,234.57 CNY at 0.14 USD = 172.8398 USD -> 172.84; USDT has six decimals.
    assert to_base_minor(123_457, "CNY", "USD", 14_000_000) == 17_284
    assert to_base_minor(-123_457, "CNY", "USD", 14_000_000) == -17_284
    assert to_base_minor(5, "USDT", "USD", 100_000_000) == 0  # 0.000005 USD: half-even to zero
    # 0.125 USD -> 0.12 (half-even), 0.135 -> 0.14
    assert to_base_minor(125_000, "USDT", "USD", 100_000_000) == 12
    assert to_base_minor(135_000, "USDT", "USD", 100_000_000) == 14
    # 100 USD into USDT at USDT = 1.0032 USD: 99.6810207... -> 99.681021 USDT
    assert cross_minor(10_000, "USD", 100_000_000, "USDT", 100_320_000) == 99_681_021
