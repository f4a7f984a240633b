"""Resampling along sessions: OHLCV rules, the A-share lunch break, incremental == one-shot."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.resample import ResampleError, Resampler, resample

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
    assert one_shot["volume"].sum() == pa.compute.sum(bars.column("volume")).as_py()


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
