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


def test_require_names_every_gap_per_pair_not_only_the_first() -> None:
    # Rates on 1-4 July and 25 July; weekdays 30 June .. 4 August are required, within 5 days.
    rows = [FxRate(day=d, currency="CNY", base="USD", rate_e8=14_000_000) for d in (20140701, 20140702)]
    rows += [FxRate(day=d, currency="CNY", base="USD", rate_e8=14_000_000) for d in (20140703, 20140704)]
    rows.append(FxRate(day=20140725, currency="CNY", base="USD", rate_e8=14_100_000))
    table = FxTable("USD", rows, stale_days_max=5)
    weekdays = [20140630, 20140701, 20140702, 20140703, 20140704, 20140707, 20140708, 20140709]
    weekdays += [20140710, 20140711, 20140714, 20140715, 20140716, 20140717, 20140718, 20140721]
    weekdays += [20140722, 20140723, 20140724, 20140725, 20140728, 20140729, 20140730, 20140731]
    weekdays += [20140801, 20140804]
    with pytest.raises(FxError) as caught:
        table.require(["USD", "CNY", "USDT"], weekdays)
    message = str(caught.value)
    # the first gap in full, as before
    assert message.startswith("fx: no CNY/USD rate on or before 20140630 (the first is on 20140701); ")
    assert "41 rates missing or stale in all (fx.stale_days_max = 5)" in message
    assert (
        "CNY/USD on 15 days: 20140630 (the first is on 20140701), "
        "20140710 to 20140724 (11 days, latest on 20140704), "
        "20140731 to 20140804 (3 days, latest on 20140725)"
    ) in message
    assert "USDT/USD: none in the data set, needed on 26 days (20140630 to 20140804)" in message


def test_require_names_the_first_runs_of_gaps_and_counts_the_rest() -> None:
    # a rate every other day, none usable the day after (stale_days_max 0): 7 runs of one day
    rows = [FxRate(day=20240101 + 2 * k, currency="CNY", base="USD", rate_e8=14_000_000) for k in range(8)]
    table = FxTable("USD", rows, stale_days_max=0)
    with pytest.raises(FxError) as caught:
        table.require(["CNY"], range(20240101, 20240116))
    message = str(caught.value)
    assert message.startswith("fx: no CNY/USD rate on 20240102: the latest, on 20240101, is 1 day old")
    assert "CNY/USD on 7 days: 20240102 (latest on 20240101), 20240104 (latest on 20240103)," in message
    assert message.endswith("20240110 (latest on 20240109) and 2 more runs")
