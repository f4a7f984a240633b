"""Calendars: XSHG / XNYS from exchange_calendars, 24x7, A-share phases, coverage errors."""

import datetime as dt

import pytest

from domain.markets import (
    CalendarNotCovered,
    CnPhase,
    cn_phase,
    is_session,
    last_covered_day,
    session_intervals_ns,
    sessions,
    us_extended_intervals_ns,
)


def _utc(day: int, hour: int, minute: int) -> int:
    date = dt.date(day // 10000, day // 100 % 100, day % 100)
    return int(dt.datetime(date.year, date.month, date.day, hour, minute, tzinfo=dt.UTC).timestamp()) * 10**9


def test_xshg_golden_week_and_weekend_make_up_days_are_closed() -> None:
    # National Day 2024: closed 10-01..10-07; Sunday 09-29 and Saturday 10-12 (调休) stay closed.
    assert sessions("XSHG", 20240926, 20241014) == [
        20240926,
        20240927,
        20240930,
        20241008,
        20241009,
        20241010,
        20241011,
        20241014,
    ]


def test_xshg_lunch_break_splits_the_session() -> None:
    morning, afternoon = session_intervals_ns("XSHG", 20240301)
    assert morning == (_utc(20240301, 1, 30), _utc(20240301, 3, 30))  # 09:30-11:30 Beijing
    assert afternoon == (_utc(20240301, 5, 0), _utc(20240301, 7, 0))  # 13:00-15:00


def test_past_the_last_covered_year_raises_never_guesses() -> None:
    last = last_covered_day("XSHG")
    assert last is not None
    with pytest.raises(CalendarNotCovered, match="XSHG"):
        sessions("XSHG", 20261201, last + 10000)
    with pytest.raises(CalendarNotCovered):
        is_session("XSHG", 19890103)


def test_xnys_holidays_early_close_and_extended_hours() -> None:
    assert not is_session("XNYS", 20240704)
    assert is_session("XNYS", 20240705)
    ((open_ns, close_ns),) = session_intervals_ns("XNYS", 20241129)  # day after Thanksgiving
    assert close_ns - open_ns == (3 * 60 + 30) * 60 * 10**9  # 09:30-13:00 ET
    pre, post = us_extended_intervals_ns(20240105)
    assert pre == (_utc(20240105, 9, 0), _utc(20240105, 14, 30))  # 04:00-09:30 EST
    assert post == (_utc(20240105, 21, 0), _utc(20240106, 1, 0))  # 16:00-20:00 EST
    summer_pre, _ = us_extended_intervals_ns(20240701)
    assert summer_pre[0] == _utc(20240701, 8, 0)  # 04:00 EDT


def test_crypto_is_24x7() -> None:
    assert sessions("24x7", 20240228, 20240302) == [20240228, 20240229, 20240301, 20240302]
    assert session_intervals_ns("24x7", 20240302) == ((_utc(20240302, 0, 0), _utc(20240303, 0, 0)),)
    with pytest.raises(ValueError, match="unknown calendar"):
        sessions("XSHE", 20240102, 20240102)


@pytest.mark.parametrize(
    ("exchange", "day", "hhmm", "phase"),
    [
        ("SSE", 20240301, 914, CnPhase.CLOSED),
        ("SSE", 20240301, 915, CnPhase.OPEN_AUCTION),
        ("SSE", 20240301, 927, CnPhase.PRE_OPEN),
        ("SSE", 20240301, 930, CnPhase.CONTINUOUS),
        ("SSE", 20240301, 1200, CnPhase.LUNCH),
        ("SSE", 20240301, 1456, CnPhase.CONTINUOUS),
        ("SSE", 20240301, 1457, CnPhase.CLOSE_AUCTION),
        ("SSE", 20240301, 1500, CnPhase.CLOSED),
        ("SSE", 20170301, 1458, CnPhase.CONTINUOUS),  # before SSE's 2018 closing auction
        ("SZSE", 20170301, 1458, CnPhase.CLOSE_AUCTION),
    ],
)
def test_a_share_phases(exchange: str, day: int, hhmm: int, phase: CnPhase) -> None:
    assert cn_phase(exchange, day, hhmm) is phase
