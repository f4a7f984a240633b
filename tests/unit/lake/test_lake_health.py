"""Gaps against the calendar: suspension candidates vs missing bars."""

from __future__ import annotations

import numpy as np

from lake.health import find_end_gap, find_gaps
from lake.sessions import sessions_for

MINUTE = 60_000_000_000


def xshg_day(day: str) -> np.ndarray:
    base = np.datetime64(f"{day}T01:30", "ns").astype(np.int64)  # 09:30 Shanghai
    return np.r_[base + np.arange(1, 121) * MINUTE, base + (210 + np.arange(1, 121)) * MINUTE].astype(
        np.int64
    )


def test_a_missing_session_is_a_suspension_and_missing_minutes_are_missing_data() -> None:
    sessions = sessions_for("XSHG", 20190101, 20190110)
    days = ["2019-01-02", "2019-01-03", "2019-01-04", "2019-01-07"]
    ts = np.concatenate([xshg_day(d) for d in days if d != "2019-01-03"])
    ts = np.delete(ts, [10, 11, 200])  # three minutes of 2019-01-02 lost
    report = find_gaps(ts, sessions, "1m")
    assert (report.sessions_expected, report.sessions_present) == (4, 3)
    assert report.suspension_sessions == 1 and report.suspension_days == [20190103]
    assert report.missing_bars == 3 and report.short_sessions == [(20190102, 3)]
    assert report.bars_expected == 4 * 240 and report.bars_present == 3 * 240 - 3
    hourly = np.concatenate([xshg_day(d)[[59, 119, 179, 239]] for d in days])
    assert find_gaps(hourly, sessions, "1h").bars_expected == 16
    assert find_gaps(hourly, sessions, "1h").missing_bars == 0


def test_partial_first_and_last_sessions_are_not_gaps() -> None:
    sessions = sessions_for("24x7", 20190101, 20190105)
    start = np.datetime64("2019-01-02T13:00", "ns").astype(np.int64)
    ts = start + np.arange(1, 1441 * 2, dtype=np.int64) * MINUTE  # mid-day to mid-day
    report = find_gaps(ts, sessions, "1m")
    assert (report.missing_bars, report.suspension_sessions, report.coverage) == (0, 0, 1.0)
    report = find_gaps(ts[:5], sessions, "1m")
    assert (report.bars_expected, report.missing_bars) == (5, 0)


def test_daily_gaps_count_sessions() -> None:
    sessions = sessions_for("XNYS", 20240101, 20240131)
    closes = sessions.close_ns[sessions.day >= 20240102]
    report = find_gaps(np.delete(closes, [3, 4]), sessions, "1d")
    assert report.suspension_sessions == 2 and report.missing_bars == 0
    assert report.suspension_days == [int(d) for d in sessions.day[sessions.day >= 20240102][[3, 4]]]


def test_bars_missing_after_the_last_bar_up_to_the_end() -> None:
    # XSHG 2019-01-02, 03, 04: the series stops at 10:00 on the 2nd, the data set runs to 15:00 on the 4th
    sessions = sessions_for("XSHG", 20190101, 20190110)
    last, end = xshg_day("2019-01-02")[29], xshg_day("2019-01-04")[-1]
    report = find_end_gap(int(last), int(end), sessions, "1m")
    assert (report.missing_end_bars, report.missing_end_sessions) == (210 + 240 + 240, 2)
    assert report.bars_expected == 690 and report.end_day == 20190104
    # the end mid-session: its grid points up to it (11:00 on the 4th: 90 minutes)
    report = find_end_gap(int(last), int(xshg_day("2019-01-04")[89]), sessions, "1m")
    assert report.missing_end_bars == 210 + 240 + 90
    # delisted on the 3rd: the 4th is not missing
    report = find_end_gap(int(last), int(end), sessions, "1m", last_day=20190103)
    assert (report.missing_end_bars, report.missing_end_sessions, report.end_day) == (450, 1, 20190103)
    # hourly: 10:30, 11:30, 14:00, 15:00 a session; the 10:00 bar's session keeps 10:30 on
    assert find_end_gap(int(last), int(end), sessions, "1h").missing_end_bars == 4 + 4 + 4
    # nothing after the end, or the end itself
    assert find_end_gap(int(end), int(end), sessions, "1m").missing_end_bars == 0
    assert find_end_gap(int(end), int(last), sessions, "1m").missing_end_bars == 0


def test_daily_bars_missing_at_the_end_count_sessions() -> None:
    sessions = sessions_for("XNYS", 20240101, 20240131)
    closes = sessions.close_ns[sessions.day >= 20240102]
    report = find_end_gap(int(closes[5]), int(closes[-1]), sessions, "1d")
    assert report.missing_end_bars == report.missing_end_sessions == len(closes) - 6
    assert report.end_day == int(sessions.day[-1])
    sixth = int(sessions.day[sessions.day >= 20240102][5])  # the last bar's session
    delisted = find_end_gap(int(closes[5]), int(closes[-1]), sessions, "1d", last_day=sixth)
    assert (delisted.missing_end_bars, delisted.end_day) == (0, sixth)
