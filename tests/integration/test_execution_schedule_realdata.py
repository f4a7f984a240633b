"""TWAP / VWAP / POV slice schedules (``domain.execution.schedule``) on real one-minute bars.

* A-shares: SPDB (600000.SH) 分时 minutes from ../shared/data/cn/hikyuu, 240 minutes a
  session (09:30-11:29 and 13:00-14:59 Beijing time, the lunch break in between), lot 100.
  TDX minute volume is in 手 (lots of 100 shares); quantities here are shares.
* Crypto: Binance XRP/ETH 1m bars from ../shared/data/crypto/freqtrade, 24x7; minutes without
  trades have no bar. Quantities are whole XRP.

The VWAP profile is the previous sessions' volume by minute of the session (what a router
knows before the session), POV follows the session's own observed volume. Skipped with the
reason when ../shared is absent.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from domain.execution.schedule import Slice, SliceRules, pov_schedule, twap_schedule, vwap_schedule
from domain.fixed import RATE_SCALE

SHARED = Path(__file__).resolve().parents[3] / "shared"
SPDB_MINUTES = SHARED / "data" / "cn" / "hikyuu" / "time1min_600000.SH.csv"
XRP_MINUTES = SHARED / "data" / "crypto" / "freqtrade" / "XRP_ETH-1m.feather"

pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not SPDB_MINUTES.is_file(), reason=f"shared data not found at {SPDB_MINUTES}"),
]

SHANGHAI = ZoneInfo("Asia/Shanghai")
NS_PER_MIN = 60 * 10**9
SESSION_MINUTES = 240
PROFILE_SESSIONS = 20
LOT_SHARES = 100
LUNCH = (time(11, 30), time(13, 0))


# --- the data ---------------------------------------------------------------------------


def _spdb_sessions() -> list[tuple[list[int], list[int]]]:
    """Per session, in date order: (UTC ns of each minute, volume in shares)."""
    sessions: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    with SPDB_MINUTES.open(newline="") as handle:
        for row in csv.DictReader(handle):
            local = datetime.strptime(row["datetime"], "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI)
            times, volumes = sessions[row["datetime"][:10]]
            times.append(int(local.timestamp()) * 10**9)
            volumes.append(int(row["vol"]) * LOT_SHARES)
    ordered = [sessions[day] for day in sorted(sessions)]
    assert all(len(times) == SESSION_MINUTES for times, _ in ordered), "a session is not 240 minutes"
    return ordered


def _in_lunch_break(ts_ns: int) -> bool:
    local = datetime.fromtimestamp(ts_ns / 10**9, tz=SHANGHAI).time()
    return LUNCH[0] <= local < LUNCH[1]


def _cumulative_lots(slices: list[Slice], bins: list[int], lot_raw: int) -> np.ndarray:  # type: ignore[type-arg]
    per_bin = dict.fromkeys(bins, 0)
    for piece in slices:
        per_bin[piece.ts_ns] += piece.qty_raw // lot_raw
    return np.cumsum([per_bin[ts] for ts in bins])


def _assert_vwap_follows(
    slices: list[Slice], bins: list[int], profile: np.ndarray, lots: int, lot: int
) -> None:  # type: ignore[type-arg]
    cumulative = _cumulative_lots(slices, bins, lot)
    target = lots * np.cumsum(profile) / profile.sum()
    assert np.all(np.abs(cumulative - target) <= 1.0), float(np.max(np.abs(cumulative - target)))


# --- A-shares: a session with a lunch break ---------------------------------------------


@pytest.fixture(scope="module")
def spdb() -> list[tuple[list[int], list[int]]]:
    return _spdb_sessions()


@pytest.mark.parametrize("parent_lots", [7, 240, 1_234])
def test_twap_on_the_trading_clock_skips_the_lunch_break(
    spdb: list[tuple[list[int], list[int]]], parent_lots: int
) -> None:
    """TWAP over the 240 trading minutes: the schedule runs on a trading-time axis and each
    slice is mapped to the session minute it falls in, so none lands in the lunch break."""
    rules = SliceRules(lot_raw=LOT_SHARES, lot_notional_minor=10_00 * LOT_SHARES)
    for minutes, _ in spdb[-5:]:
        slices = twap_schedule(parent_lots * LOT_SHARES, rules, 0, SESSION_MINUTES * NS_PER_MIN, 16)
        placed = [minutes[piece.ts_ns // NS_PER_MIN] + piece.ts_ns % NS_PER_MIN for piece in slices]
        lots = [piece.qty_raw // LOT_SHARES for piece in slices]
        assert sum(lots) == parent_lots
        assert max(lots) - min(lots) <= 1
        assert all(piece.qty_raw % LOT_SHARES == 0 for piece in slices)
        assert not any(_in_lunch_break(ts) for ts in placed)
        assert placed == sorted(placed) and minutes[0] <= placed[0] and placed[-1] <= minutes[-1]
        assert len(slices) == min(parent_lots, 16)  # fewer lots than slices: some are empty
    # The same schedule on the wall clock (09:30-15:00) would send slices into the break.
    minutes = spdb[-1][0]
    naive = twap_schedule(240 * LOT_SHARES, rules, minutes[0], minutes[-1] + NS_PER_MIN, 16)
    assert any(_in_lunch_break(piece.ts_ns) for piece in naive)


@pytest.mark.parametrize("parent_lots", [50, 2_000, 31_415])
def test_vwap_follows_the_previous_sessions_minute_profile(
    spdb: list[tuple[list[int], list[int]]], parent_lots: int
) -> None:
    rules = SliceRules(lot_raw=LOT_SHARES, lot_notional_minor=10_00 * LOT_SHARES)
    for index in range(PROFILE_SESSIONS, len(spdb)):
        history = np.array([volumes for _, volumes in spdb[index - PROFILE_SESSIONS : index]], dtype=np.int64)
        profile = history.sum(axis=0)  # by minute of the session
        minutes = spdb[index][0]
        slices = vwap_schedule(parent_lots * LOT_SHARES, rules, minutes, profile)
        assert sum(piece.qty_raw for piece in slices) == parent_lots * LOT_SHARES
        assert all(piece.qty_raw % LOT_SHARES == 0 for piece in slices)
        assert not any(_in_lunch_break(piece.ts_ns) for piece in slices)
        _assert_vwap_follows(slices, minutes, profile, parent_lots, LOT_SHARES)
    # The profile is real: the open and the close are heavier than midday.
    assert profile[0] > np.median(profile) and profile[-1] > np.median(profile)


def test_vwap_with_a_minimum_notional_merges_small_slices(spdb: list[tuple[list[int], list[int]]]) -> None:
    rules = SliceRules(lot_raw=LOT_SHARES, lot_notional_minor=10_00 * LOT_SHARES, min_notional_minor=5_000_00)
    history = np.array([volumes for _, volumes in spdb[-PROFILE_SESSIONS - 1 : -1]], dtype=np.int64)
    slices = vwap_schedule(300 * LOT_SHARES, rules, spdb[-1][0], history.sum(axis=0))
    assert sum(piece.qty_raw for piece in slices) == 300 * LOT_SHARES
    assert all(piece.qty_raw // LOT_SHARES >= rules.min_lots() == 5 for piece in slices)
    assert not any(_in_lunch_break(piece.ts_ns) for piece in slices)


@pytest.mark.parametrize("participation_e8", [1_000_000, 5_000_000, 20_000_000])
def test_pov_stays_under_the_observed_volume(
    spdb: list[tuple[list[int], list[int]]], participation_e8: int
) -> None:
    rules = SliceRules(lot_raw=LOT_SHARES, lot_notional_minor=10_00 * LOT_SHARES)
    parent = 5_000 * LOT_SHARES
    for minutes, volumes in spdb[-10:]:
        slices, remaining = pov_schedule(parent, rules, minutes, np.array(volumes), participation_e8)
        assert sum(piece.qty_raw for piece in slices) + remaining == parent
        assert all(piece.qty_raw > 0 and piece.qty_raw % LOT_SHARES == 0 for piece in slices)
        assert not any(_in_lunch_break(piece.ts_ns) for piece in slices)
        observed = dict(zip(minutes, np.cumsum(volumes).tolist(), strict=True))
        sent = 0
        for piece in slices:  # every prefix of children within participation x volume so far
            sent += piece.qty_raw
            assert sent * RATE_SCALE <= participation_e8 * observed[piece.ts_ns]
        if remaining:  # only a parent larger than the session's allowance is left over
            assert parent * RATE_SCALE > participation_e8 * sum(volumes) - RATE_SCALE * LOT_SHARES


# --- crypto: 24x7, minutes without trades have no bar -----------------------------------


@pytest.fixture(scope="module")
def xrp() -> dict[str, tuple[list[int], list[int]]]:
    if not XRP_MINUTES.is_file():
        pytest.skip(f"shared data not found at {XRP_MINUTES}")
    import pyarrow.feather as feather

    table = feather.read_table(XRP_MINUTES).to_pydict()
    days: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for stamp, volume in zip(table["date"], table["volume"], strict=True):
        times, volumes = days[stamp.strftime("%Y-%m-%d")]
        times.append(int(stamp.timestamp()) * 10**9)
        volumes.append(round(volume))
    return dict(days)


def test_crypto_twap_vwap_pov_around_the_clock(xrp: dict[str, tuple[list[int], list[int]]]) -> None:
    rules = SliceRules(lot_raw=1, lot_notional_minor=0)
    previous_times, previous_volumes = xrp["2019-10-11"]
    profile_by_minute = np.zeros(1_440, dtype=np.int64)
    for ts, volume in zip(previous_times, previous_volumes, strict=True):
        profile_by_minute[(ts // NS_PER_MIN) % 1_440] += volume
    minutes, volumes = xrp["2019-10-12"]
    assert 900 < len(minutes) < 1_440  # real gaps: no bar without a trade
    day_start = minutes[0] - minutes[0] % (1_440 * NS_PER_MIN)

    twap = twap_schedule(100_003, rules, day_start, day_start + 1_440 * NS_PER_MIN, 24)
    assert [piece.ts_ns for piece in twap] == [day_start + hour * 60 * NS_PER_MIN for hour in range(24)]
    lots = [piece.qty_raw for piece in twap]
    assert sum(lots) == 100_003 and max(lots) - min(lots) <= 1

    profile = np.array([profile_by_minute[(ts // NS_PER_MIN) % 1_440] for ts in minutes], dtype=np.int64)
    vwap = vwap_schedule(250_000, rules, minutes, profile)
    assert sum(piece.qty_raw for piece in vwap) == 250_000
    _assert_vwap_follows(vwap, minutes, profile, 250_000, 1)

    slices, remaining = pov_schedule(40_000, rules, minutes, np.array(volumes), 10_000_000)
    observed = dict(zip(minutes, np.cumsum(volumes).tolist(), strict=True))
    sent = 0
    for piece in slices:
        sent += piece.qty_raw
        assert sent * RATE_SCALE <= 10_000_000 * observed[piece.ts_ns]
    assert sent + remaining == 40_000
    assert remaining == 0  # a tenth of a day's XRP/ETH volume covers 40,000 XRP
    assert slices[-1].ts_ns < minutes[-1]  # ... before the day ends
