"""Resampling along sessions: OHLCV rules, the A-share lunch break, incremental == one-shot."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.holidays import read_holidays
from lake.resample import ResampleError, Resampler, resample
from tests.factories import weekday_bars

MINUTE = 60_000_000_000
DAY0 = np.datetime64("2019-01-02T00:00", "ns").astype(np.int64)  # a UTC midnight


def crypto_bars(minutes: int, instruments: int = 1, seed: int = 0, start: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    ts = DAY0 + (np.arange(minutes, dtype=np.int64) + 1 + start) * MINUTE
    tables = []
    for instrument in range(1, instruments + 1):
        close = 10_000 + np.cumsum(rng.integers(-5, 6, minutes))
        open_ = close + rng.integers(-3, 4, minutes)
        tables.append(
            pa.table(
                {
                    "ts_ns": ts,
                    "day": np.zeros(minutes, dtype=np.int32),
                    "instrument_id": np.full(minutes, instrument, dtype=np.int32),
                    "open": open_,
                    "high": np.maximum(open_, close) + 2,
                    "low": np.minimum(open_, close) - 2,
                    "close": close,
                    "volume": rng.integers(0, 50, minutes),
                    "turnover": rng.integers(0, 500_000, minutes),
                }
            )
        )
    return pa.concat_tables(tables).sort_by("ts_ns")


def test_ohlcv_rules_on_utc_hours() -> None:
    bars = crypto_bars(180)
    out = resample(bars, "1h", calendar="24x7")
    assert out.height == 3
    first = bars.slice(0, 60).to_pydict()
    row = out.row(0, named=True)
    assert row["ts_ns"] == DAY0 + 60 * MINUTE
    assert row["open"] == first["open"][0] and row["close"] == first["close"][-1]
    assert row["high"] == max(first["high"]) and row["low"] == min(first["low"])
    assert row["volume"] == sum(first["volume"]) and row["turnover"] == sum(first["turnover"])
    assert row["vwap"] == pytest.approx(sum(first["turnover"]) / sum(first["volume"]))
    assert row["bar_count"] == 60 and row["day"] == 20190102


def test_turnover_null_anywhere_makes_the_bucket_null_and_vwap_falls_back() -> None:
    bars = crypto_bars(10)
    bars = bars.set_column(8, "turnover", pa.array([None] + [1] * 9, pa.int64()))
    row = resample(bars, "5m", calendar="24x7").row(0, named=True)
    volume = bars.column("volume").to_numpy()[:5]
    assert row["turnover"] is None
    expected = (bars.column("close").to_numpy()[:5] * volume).sum() / volume.sum()
    assert row["vwap"] == pytest.approx(expected)


def xshg_minutes(day: str) -> np.ndarray:
    """240 bar closes (UTC ns) of one XSHG session: 09:31..11:30 and 13:01..15:00 Shanghai."""
    base = np.datetime64(f"{day}T01:30", "ns").astype(np.int64)  # 09:30 Shanghai
    morning = base + np.arange(1, 121, dtype=np.int64) * MINUTE
    afternoon = base + (210 + np.arange(1, 121, dtype=np.int64)) * MINUTE  # 13:00 + k
    return np.r_[morning, afternoon]


def test_ashare_lunch_break_is_never_spanned() -> None:
    ts = xshg_minutes("2019-01-02")
    close = np.arange(len(ts), dtype=np.int64) + 1000
    bars = pa.table(
        {
            "ts_ns": ts,
            "day": np.zeros(len(ts), dtype=np.int32),
            "instrument_id": np.ones(len(ts), dtype=np.int32),
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": np.ones(len(ts), dtype=np.int64),
            "turnover": close,
        }
    )
    hours = resample(bars, "1h", calendar="XSHG")
    local = (hours["ts_ns"].to_numpy() - np.datetime64("2019-01-02T00:00", "ns").astype(np.int64)) // MINUTE
    assert [(m + 480) // 60 * 100 + (m + 480) % 60 for m in local.tolist()] == [1030, 1130, 1400, 1500]
    assert hours["bar_count"].to_list() == [60, 60, 60, 60]
    assert resample(bars, "15m", calendar="XSHG")["bar_count"].to_list() == [15] * 16
    day = resample(bars, "1d", calendar="XSHG").row(0, named=True)
    assert (day["open"], day["close"], day["volume"], day["day"]) == (1000, 1239, 240, 20190102)
    lunch = bars.set_column(0, "ts_ns", pa.array(ts + 30 * MINUTE))  # shifted into the break
    with pytest.raises(ResampleError, match="outside XSHG sessions"):
        resample(lunch, "1h", calendar="XSHG")


def incremental(bars: pa.Table, cuts: list[int], frequency: str) -> pl.DataFrame:
    resampler = Resampler(frequency, calendar="24x7")
    edges = [0, *sorted(cuts), bars.num_rows]
    parts = [resampler.update(bars.slice(a, b - a)) for a, b in itertools.pairwise(edges)]
    parts.append(resampler.flush())
    return pl.concat(parts).sort(["instrument_id", "ts_ns"])


@settings(max_examples=40, deadline=None)
@given(
    minutes=st.integers(1, 400),
    start=st.integers(0, 59),
    cuts=st.lists(st.integers(0, 800), max_size=6),
    frequency=st.sampled_from(["5m", "15m", "1h", "1d"]),
    drop=st.lists(st.integers(0, 399), max_size=20),
)
def test_incremental_equals_one_shot(
    minutes: int, start: int, cuts: list[int], frequency: str, drop: list[int]
) -> None:
    bars = crypto_bars(minutes, instruments=2, seed=minutes, start=start)
    keep = np.ones(bars.num_rows, dtype=np.bool_)
    keep[[d for d in drop if d < bars.num_rows]] = False  # missing minutes: gaps inside buckets
    bars = bars.filter(pa.array(keep))
    one_shot = resample(bars, frequency, calendar="24x7")
    pieces = incremental(bars, [c % (bars.num_rows + 1) for c in cuts], frequency)
    assert pieces.equals(one_shot)
    assert one_shot["volume"].sum() == (pa.compute.sum(bars.column("volume")).as_py() or 0)  # empty: null


@settings(max_examples=25, deadline=None)
@given(minutes=st.integers(2, 300), frequency=st.sampled_from(["5m", "1h", "1d"]), nulls=st.booleans())
def test_parallel_slices_stitch_to_the_serial_result(minutes: int, frequency: str, nulls: bool) -> None:
    """Slices run on threads; buckets cut apart (even across several slices) fold back."""
    import lake.resample as module

    bars = crypto_bars(minutes, instruments=3, seed=minutes).sort_by([("instrument_id", "ascending")])
    if nulls:
        turnover = bars.column("turnover").to_numpy().astype(object)
        turnover[::7] = None
        bars = bars.set_column(8, "turnover", pa.array(turnover.tolist(), pa.int64()))
    serial = resample(bars, frequency, calendar="24x7")
    saved = module.PARALLEL_MIN_ROWS, module.WORKERS
    module.PARALLEL_MIN_ROWS, module.WORKERS = 1, 5  # a 1d bucket straddles several cuts
    try:
        parallel = resample(bars, frequency, calendar="24x7")
        shuffled = resample(bars.take(np.arange(bars.num_rows)[::-1].copy()), frequency, calendar="24x7")
    finally:
        module.PARALLEL_MIN_ROWS, module.WORKERS = saved
    assert parallel.equals(serial) and shuffled.equals(serial)


# --- session choices: US extended hours, A-share call auctions ----------------------------------


def at(local: str, offset_hours: int) -> int:
    """A local wall-clock time (ISO, no zone) at a fixed UTC offset -> UTC ns."""
    return int(np.datetime64(local, "ns").astype(np.int64)) - offset_hours * 3_600 * 1_000_000_000


def hand_bars(ts: list[int], close: list[int], volume: list[int], turnover: list[int | None]) -> pa.Table:
    n = len(ts)
    close_array = np.asarray(close, dtype=np.int64)
    return pa.table(
        {
            "ts_ns": np.asarray(ts, dtype=np.int64),
            "day": np.zeros(n, dtype=np.int32),
            "instrument_id": np.ones(n, dtype=np.int32),
            "open": close_array - 1,
            "high": close_array + 2,
            "low": close_array - 3,
            "close": close_array,
            "volume": np.asarray(volume, dtype=np.int64),
            "turnover": pa.array(turnover, pa.int64()),
        }
    )


def ohlcv(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    columns = ["ts_ns", "day", "open", "high", "low", "close", "volume", "turnover", "vwap", "bar_count"]
    return [tuple(row) for row in frame.select(columns).iter_rows()]


EST = -5  # New York in January
NY = "2019-01-02T"


def us_extended_day() -> pa.Table:
    ts = [
        at(NY + hhmm, EST)
        for hhmm in ("09:29", "09:30", "09:31", "09:32", "15:59", "16:00", "16:01", "16:02")
    ]
    close = [100, 101, 110, 111, 120, 121, 130, 131]
    volume = [1, 2, 10, 20, 30, 40, 3, 4]
    return hand_bars(ts, close, volume, [c * v for c, v in zip(close, volume, strict=True)])


def test_us_extended_hours_are_separate_segments_and_one_day() -> None:
    bars = us_extended_day()
    hours = resample(bars, "1h", calendar="XNYS", session="extended")
    # pre-market (04:00, 09:30] on the 04:00 grid; regular on the 09:30 grid; post on the 16:00 grid
    assert ohlcv(hours) == [
        (at(NY + "09:30", EST), 20190102, 99, 103, 97, 101, 3, 302, 302 / 3, 2),
        (at(NY + "10:30", EST), 20190102, 109, 113, 107, 111, 30, 3320, 3320 / 30, 2),
        (at(NY + "16:00", EST), 20190102, 119, 123, 117, 121, 70, 8440, 8440 / 70, 2),
        (at(NY + "17:00", EST), 20190102, 129, 133, 127, 131, 7, 914, 914 / 7, 2),
    ]
    day = resample(bars, "1d", calendar="XNYS", session="extended")
    total = 302 + 3320 + 8440 + 914
    assert ohlcv(day) == [(at(NY + "20:00", EST), 20190102, 99, 133, 97, 131, 110, total, total / 110, 8)]
    regular = resample(bars.slice(2, 4), "1d", calendar="XNYS")  # the regular bars alone
    assert ohlcv(regular) == [(at(NY + "16:00", EST), 20190102, 109, 123, 107, 121, 100, 11760, 117.6, 4)]
    with pytest.raises(ResampleError, match="outside XNYS sessions"):
        resample(bars, "1h", calendar="XNYS")  # regular: extended-hours bars stay rejected
    with pytest.raises(ResampleError, match="outside XNYS extended sessions"):
        resample(hand_bars([at(NY + "20:01", EST)], [1], [1], [1]), "1h", calendar="XNYS", session="extended")
    with pytest.raises(ResampleError, match="session for XNYS"):
        resample(bars, "1h", calendar="XNYS", session="auctions")


CST = 8  # Shanghai


def cn_bars(day: str, times: list[str], close: list[int], volume: list[int]) -> pa.Table:
    return hand_bars(
        [at(f"{day}T{t}", CST) for t in times],
        close,
        volume,
        [c * v for c, v in zip(close, volume, strict=True)],
    )


CN_TIMES = ["09:20", "09:25", "09:31", "09:32", "14:56", "14:57", "14:58", "15:00"]
CN_CLOSE = [99, 100, 101, 102, 103, 104, 105, 106]
CN_VOLUME = [0, 7, 1, 2, 3, 4, 0, 9]


def test_ashare_call_auctions_are_their_own_buckets() -> None:
    bars = cn_bars("2019-01-02", CN_TIMES, CN_CLOSE, CN_VOLUME)  # SSE has a closing auction since 2018-08-20
    day = "2019-01-02T"
    five = resample(bars, "5m", calendar="XSHG", session="auctions", exchange="SSE")
    assert ohlcv(five) == [
        (at(day + "09:25", CST), 20190102, 98, 102, 96, 100, 7, 700, 100.0, 2),  # one bucket at any step
        (at(day + "09:35", CST), 20190102, 100, 104, 98, 102, 3, 305, 305 / 3, 2),
        (at(day + "14:57", CST), 20190102, 102, 106, 100, 104, 7, 725, 725 / 7, 2),  # clipped at 14:57
        (at(day + "15:00", CST), 20190102, 104, 108, 102, 106, 9, 954, 106.0, 2),  # the closing auction
    ]
    daily = resample(bars, "1d", calendar="XSHG", session="auctions", exchange="SSE")
    assert ohlcv(daily) == [(at(day + "15:00", CST), 20190102, 98, 108, 96, 106, 26, 2684, 2684 / 26, 8)]
    with pytest.raises(ResampleError, match="outside XSHG sessions"):
        resample(bars, "5m", calendar="XSHG")  # regular: auction bars stay rejected
    with pytest.raises(ResampleError, match="exchange SSE or SZSE"):
        resample(bars, "5m", calendar="XSHG", session="auctions")
    pre_open = cn_bars("2019-01-02", ["09:28"], [1], [1])  # 09:25-09:30 matches nothing
    with pytest.raises(ResampleError, match="outside XSHG auctions sessions"):
        resample(pre_open, "5m", calendar="XSHG", session="auctions", exchange="SSE")


def test_closing_auction_follows_cn_phase_by_exchange_and_date() -> None:
    bars = cn_bars("2018-01-02", CN_TIMES, CN_CLOSE, CN_VOLUME)
    stamps = {}
    for exchange in ("SSE", "SZSE"):
        out = resample(bars, "5m", calendar="XSHG", session="auctions", exchange=exchange)
        local = (out["ts_ns"].to_numpy() - at("2018-01-02T00:00", CST)) // MINUTE
        stamps[exchange] = [int(m // 60 * 100 + m % 60) for m in local]
    assert stamps["SSE"] == [925, 935, 1500]  # SSE before 2018-08-20: continuous to 15:00
    assert stamps["SZSE"] == [925, 935, 1457, 1500]


def test_a_day_spanning_a_gap_between_segments_is_an_error() -> None:
    bars = cn_bars("2019-01-02", ["09:31", "12:00"], [1, 2], [1, 1])  # the second bar: lunch break
    for session, exchange in (("regular", None), ("auctions", "SZSE")):
        with pytest.raises(ResampleError, match="outside XSHG"):
            resample(bars, "1d", calendar="XSHG", session=session, exchange=exchange)


def session_minutes(calendar: str, session: str, exchange: str | None) -> np.ndarray:
    """Every 1m bar close of the session set on 2019-01-02 (one day, the whole grid)."""
    from lake.resample import sessions_covering

    sessions = sessions_covering(calendar, np.array([at("2019-01-02T12:00", 0)]), session, exchange)
    chosen = sessions.day == 20190102
    closes = [
        np.arange(start + MINUTE, stop + 1, MINUTE, dtype=np.int64)
        for start, stop in zip(sessions.open_ns[chosen], sessions.close_ns[chosen], strict=True)
    ]
    minutes = np.concatenate(closes)
    for start, stop in zip(sessions.break_start_ns[chosen], sessions.break_end_ns[chosen], strict=True):
        if start != -1:  # the regular A-share table keeps the lunch break inside the session
            minutes = minutes[(minutes <= start) | (minutes > stop)]
    return minutes


SESSION_SETS = {
    "us_extended": ("XNYS", "extended", None),
    "cn_auctions": ("XSHG", "auctions", "SZSE"),
    "cn_regular": ("XSHG", "regular", None),
}


@settings(max_examples=30, deadline=None)
@given(
    which=st.sampled_from(sorted(SESSION_SETS)),
    keep_every=st.integers(1, 7),
    cuts=st.lists(st.integers(0, 2000), max_size=6),
    frequency=st.sampled_from(["5m", "15m", "1h", "1d"]),
    seed=st.integers(0, 1000),
)
def test_incremental_equals_one_shot_under_session_choices(
    which: str, keep_every: int, cuts: list[int], frequency: str, seed: int
) -> None:
    calendar, session, exchange = SESSION_SETS[which]
    ts = session_minutes(calendar, session, exchange)
    rng = np.random.default_rng(seed)
    ts = ts[rng.integers(0, keep_every, len(ts)) == 0]  # a random subset: gaps, auctions hit or missed
    if len(ts) == 0:
        return
    close = 1_000 + np.cumsum(rng.integers(-5, 6, len(ts)))
    volume = rng.integers(0, 50, len(ts))
    bars = hand_bars(ts.tolist(), close.tolist(), volume.tolist(), (close * volume).tolist())
    one_shot = resample(bars, frequency, calendar=calendar, session=session, exchange=exchange)
    resampler = Resampler(frequency, calendar=calendar, session=session, exchange=exchange)
    edges = [0, *sorted(c % (bars.num_rows + 1) for c in cuts), bars.num_rows]
    parts = [resampler.update(bars.slice(a, b - a)) for a, b in itertools.pairwise(edges)]
    parts.append(resampler.flush())
    assert pl.concat(parts).sort(["instrument_id", "ts_ns"]).equals(one_shot)
    assert one_shot["volume"].sum() == int(volume.sum())


SUPPLIED = "year,date,name\n2027,2027-01-01,synthetic one\n2027,2027-01-13,synthetic two\n"
"""Two synthetic 2027 XSHG closures (a Friday and a Wednesday), not 2027's real ones."""


def xshg_days(days: list[str]) -> pa.Table:
    ts = np.concatenate([xshg_minutes(day) for day in days])
    return hand_bars(ts.tolist(), (1_000 + np.arange(len(ts))).tolist(), [1] * len(ts), [None] * len(ts))


def test_xshg_past_the_library_resamples_on_supplied_holidays(tmp_path: Path) -> None:
    """``segments_for`` took no holidays, so resampling XSHG bars past exchange_calendars' last
    year (2026) was refused even with the operator's holiday file, pointing at ``tape export
    --holidays`` (which cannot help); bars of the last covered day (2026-12-31) were refused too,
    for the day after them. ``holidays=`` (read with ``tape export``'s reader) extends it."""
    path = tmp_path / "holidays.csv"
    path.write_text(SUPPLIED)
    holidays = read_holidays(path, "XSHG")
    last_covered = resample(xshg_days(["2026-12-31"]), "1h", calendar="XSHG")
    assert last_covered["bar_count"].to_list() == [60, 60, 60, 60]

    past = xshg_days(["2027-01-12", "2027-01-14"])  # around the supplied 2027-01-13 closure
    with pytest.raises(ResampleError, match="records holidays only through 2026-12-31") as refused:
        resample(past, "1h", calendar="XSHG")
    assert 'holidays=lake.holidays.read_holidays(FILE, "XSHG")' in str(refused.value)
    assert "tape export" not in str(refused.value)
    hours = resample(past, "1h", calendar="XSHG", holidays=holidays)
    assert hours["day"].to_list() == [20270112] * 4 + [20270114] * 4
    assert hours["bar_count"].to_list() == [60] * 8
    resampler = Resampler("1h", calendar="XSHG", holidays=holidays)  # the incremental form too
    parts = [resampler.update(past.slice(0, 300)), resampler.update(past.slice(300)), resampler.flush()]
    assert pl.concat(parts).equals(hours)
    auctions = resample(past, "1d", calendar="XSHG", session="auctions", exchange="SSE", holidays=holidays)
    assert auctions["day"].to_list() == [20270112, 20270114]
    with pytest.raises(ResampleError, match="outside XSHG sessions"):  # a bar on a supplied closure
        resample(xshg_days(["2027-01-13"]), "1h", calendar="XSHG", holidays=holidays)

    # Daily bars of the factory's XSHG-like set: one session per weekday not supplied as closed.
    daily, _ = weekday_bars("2026-12-28", "2027-01-15", closed=("2027-01-01", "2027-01-13"), names=1)
    daily = daily.append_column("turnover", pa.nulls(daily.num_rows, pa.int64()))
    days = resample(daily, "1d", calendar="XSHG", holidays=holidays)["day"].to_list()
    assert days == [
        20261228, 20261229, 20261230, 20261231, 20270104, 20270105, 20270106, 20270107, 20270108,
        20270111, 20270112, 20270114, 20270115,
    ]  # fmt: skip
