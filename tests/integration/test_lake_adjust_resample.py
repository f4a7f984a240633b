"""Adjustment and resampling on the real files in ../shared/data."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from lake.adjust import adjust, factors
from lake.resample import resample
from lake.sources import parse_freqtrade, parse_hikyuu_actions, parse_hikyuu_day, parse_hikyuu_minute
from lake.validate import validate_bars

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}")
pytestmark = pytest.mark.needs_shared_data
HIKYUU = SHARED / "cn" / "hikyuu"


def accepted(parsed, qty_digits: int | None = None) -> tuple[object, pa.Table]:  # type: ignore[no-untyped-def]
    from lake.sessions import sessions_for

    instrument, bars = parsed.bars[0]
    sessions = None
    if bars.daily:
        sessions = sessions_for(parsed.calendar, int(bars.day.min()), int(bars.day.max()))
    qty = instrument.qty_digits if qty_digits is None else qty_digits
    result = validate_bars(bars, price_digits=instrument.price_digits, qty_digits=qty, sessions=sessions)
    return instrument, result.accepted


@needs_shared
def test_spdb_backward_adjustment_has_no_artificial_gaps() -> None:
    instrument, bars = accepted(parse_hikyuu_day(HIKYUU / "600000.SH_day_raw_tdx.csv"))
    parsed = parse_hikyuu_actions(HIKYUU / "stock_weight_corporate_actions.csv")
    columns = next(c for t, c in parsed.actions if t.symbol == "600000.SH")
    acts = pa.table({name: values for name, values in columns.items() if name != "line"})
    result = factors(bars, acts, instrument)
    steps = {row["ex_date"]: row for row in result.actions.to_pylist()}
    assert steps[20110603]["reference"] == 1004  # (13.21 - 0.16) / 1.3, on the 0.01 grid
    assert steps[20060512]["status"] == "reform_transfer"  # 股改 consideration: total shares unchanged
    assert steps[20030120]["status"] == "no_price_effect"  # a placement price without rights shares
    assert sum(row["status"] == "applied" for row in steps.values()) == 11
    view = adjust(bars, acts, instrument, mode="backward").to_pandas().set_index("day")
    raw = bars.to_pandas().set_index("day")["close"]
    for ex_date, row in steps.items():
        if row["status"] != "applied":
            continue
        here = view.index.get_loc(row["effective_day"])
        adjusted_ratio = view["close_adj"].iloc[here] / view["close_adj"].iloc[here - 1]
        assert adjusted_ratio == pytest.approx(raw.iloc[here] / row["reference"], rel=1e-12), ex_date
    # The reform day: raw and adjusted move alike (no factor), 10.86 -> 10.21 across the suspension.
    here = view.index.get_loc(20060512)
    assert view["close_adj"].iloc[here] / view["close_adj"].iloc[here - 1] == pytest.approx(1021 / 1086)
    forward = adjust(bars, acts, instrument, mode="forward")
    assert forward.column("close_adj")[-1].as_py() == pytest.approx(raw.iloc[-1] / 100)
    # Raw is the truth: every big raw drop on an ex-date is gone from the adjusted series.
    raw_returns = np.diff(np.log(raw.to_numpy()))
    adj_returns = np.diff(np.log(view["close_adj"].to_numpy()))
    ex_rows = [view.index.get_loc(r["effective_day"]) - 1 for r in steps.values() if r["status"] == "applied"]
    assert raw_returns[ex_rows].min() < -0.4  # 2002-08-22, 10转5派2
    assert np.abs(adj_returns[ex_rows]).max() < 0.11  # inside the 10% limit band


@needs_shared
def test_hikyuu_minutes_resample_along_xshg_sessions() -> None:
    _, bars = accepted(parse_hikyuu_minute(HIKYUU / "time1min_600000.SH.csv"))
    hours = resample(bars, "1h", calendar="XSHG")
    assert hours.height == 43 * 4
    local = (hours["ts_ns"].to_numpy() // 60_000_000_000 + 8 * 60) % 1440
    assert sorted(set(local.tolist())) == [630, 690, 840, 900]  # 10:30 11:30 14:00 15:00
    assert hours["bar_count"].to_list() == [60] * (43 * 4)
    five = resample(bars, "5m", calendar="XSHG")
    assert five.height == 43 * 48 and five["volume"].sum() == pa.compute.sum(bars.column("volume")).as_py()
    days = resample(bars, "1d", calendar="XSHG")
    assert days.height == 43 and days["day"][0] == 20181203


@needs_shared
def test_czsc_index_minutes_to_days_agree_with_the_daily_file() -> None:
    with zipfile.ZipFile(SHARED / "cn" / "czsc" / "000001.XSHG_index_1min_2015-2019.zip") as archive:
        raw = pl.read_csv(io.BytesIO(archive.read("000001.XSHG_1min.csv")))
    ts = (
        raw["dt"].str.to_datetime("%Y-%m-%d %H:%M:%S").dt.replace_time_zone("Asia/Shanghai").dt.epoch("ns")
    )  # labels are bar ends
    bars = pl.DataFrame(
        {
            "ts_ns": ts,
            "day": pl.Series(np.zeros(len(ts), dtype=np.int32)),
            "instrument_id": pl.Series(np.ones(len(ts), dtype=np.int32)),
            **{c: (raw[c] * 100).round().cast(pl.Int64) for c in ("open", "high", "low", "close")},
            "volume": raw["vol"].cast(pl.Int64),
            "turnover": pl.Series([None] * len(ts), dtype=pl.Int64),
        }
    )
    days = resample(bars, "1d", calendar="XSHG")
    daily = pl.read_csv(SHARED / "cn" / "czsc" / "000001.SH_index_day.csv").with_columns(
        pl.col("dt").str.slice(0, 10).str.replace_all("-", "").cast(pl.Int32).alias("day")
    )
    both = days.join(daily, on="day")
    assert both.height == days.height == 1000
    cents = {c: (both[f"{c}_right"] * 100).round().cast(pl.Int64) for c in ("open", "high", "low", "close")}
    assert (both["close"] == cents["close"]).mean() > 0.97  # type: ignore[operator]
    assert (both["open"] == cents["open"]).mean() > 0.97  # type: ignore[operator]
    # Daily extremes come from ticks; minute bars can only sit inside them (within 0.05%).
    assert (both["high"] <= cents["high"]).mean() > 0.99  # type: ignore[operator]
    assert ((both["high"] - cents["high"]).abs() / cents["high"]).max() < 5e-4  # type: ignore[operator]
    assert (both["low"] >= cents["low"]).mean() > 0.99  # type: ignore[operator]


@needs_shared
def test_freqtrade_1m_to_5m_matches_the_exchange_5m_file() -> None:
    folder = SHARED / "crypto" / "freqtrade"
    _, bars = accepted(parse_freqtrade(folder / "XRP_ETH-1m.feather"))
    five = resample(bars, "5m", calendar="24x7", qty_digits=8)
    reference = feather.read_table(folder / "XRP_ETH-5m.feather").to_pandas()
    assert five.height == len(reference) == 706
    close_ts = (reference["date"].astype("int64") + 300_000_000_000).to_numpy()
    assert five["ts_ns"].to_list() == close_ts.tolist()
    for name in ("open", "high", "low", "close"):
        assert five[name].to_list() == np.rint(reference[name].to_numpy() * 1e8).astype(np.int64).tolist()
    assert five["volume"].to_list() == np.rint(reference["volume"].to_numpy() * 1e8).astype(np.int64).tolist()


def tick_minutes(path: Path, instrument: int) -> tuple[pa.Table, pl.DataFrame]:
    """hikyuu/TDX ticks -> 1m contract bars (price x 1000). A tick belongs to the minute it
    ends in, except the prints of a match at 09:25, 11:30 or 15:00 (stamped a few seconds after
    it), which belong to that minute; the 09:25 prints are the opening call auction."""
    ticks = pl.read_csv(path).with_columns(
        pl.col("datetime").str.to_datetime("%Y-%m-%d %H:%M:%S"),
        (pl.col("price") * 1000).round().cast(pl.Int64).alias("price"),
        pl.col("vol").cast(pl.Int64),
    )
    minute = pl.col("datetime").dt.truncate("1m")
    hhmm = pl.col("datetime").dt.hour().cast(pl.Int32) * 100 + pl.col("datetime").dt.minute()
    stamp = pl.when(hhmm.is_in([925, 1130, 1500])).then(minute).otherwise(minute + pl.duration(minutes=1))
    ticks = ticks.with_columns(stamp.dt.replace_time_zone("Asia/Shanghai").alias("close_at"))
    bars = (
        ticks.group_by("close_at", maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("vol").sum().alias("volume"),
            (pl.col("price") * pl.col("vol")).sum().alias("turnover"),
        )
        .sort("close_at")
        .with_columns(
            pl.col("close_at")
            .dt.convert_time_zone("UTC")
            .dt.cast_time_unit("ns")
            .dt.epoch("ns")
            .alias("ts_ns"),
            pl.lit(0, pl.Int32).alias("day"),
            pl.lit(instrument, pl.Int32).alias("instrument_id"),
        )
    )
    return bars.select(
        ["ts_ns", "day", "instrument_id", "open", "high", "low", "close", "volume", "turnover"]
    ).to_arrow(), ticks


@needs_shared
def test_hikyuu_tick_minutes_keep_the_0925_auction_separate() -> None:
    from lake.resample import ResampleError

    files = sorted(HIKYUU.glob("trans_*.csv"))
    if not files:
        pytest.skip("no hikyuu tick files")
    checked = 0
    for instrument, path in enumerate(files, start=1):
        exchange = "SSE" if path.stem.endswith(".SH") else "SZSE"
        bars, ticks = tick_minutes(path, instrument)
        auction_ticks = ticks.filter(
            (pl.col("datetime").dt.hour() == 9) & (pl.col("datetime").dt.minute() == 25)
        )
        assert auction_ticks.height > 0 and (auction_ticks["buyorsell"] == 2).all()
        five = resample(bars, "5m", calendar="XSHG", session="auctions", exchange=exchange)
        local = five.with_columns(
            pl.from_epoch("ts_ns", "ns")
            .dt.replace_time_zone("UTC")
            .dt.convert_time_zone("Asia/Shanghai")
            .alias("t")
        )
        opening = local.filter((pl.col("t").dt.hour() == 9) & (pl.col("t").dt.minute() == 25))
        per_day = (
            auction_ticks.group_by(pl.col("datetime").dt.date()).agg(pl.col("vol").sum()).sort("datetime")
        )
        assert opening["volume"].to_list() == per_day["vol"].to_list()  # the auction alone, every day
        assert (opening["bar_count"] == 1).all()
        after = local.filter(pl.col("t").dt.hour().cast(pl.Int32) * 100 + pl.col("t").dt.minute() > 925)
        first_after = after.group_by(pl.col("t").dt.date().alias("date")).agg(pl.col("t").min())["t"]
        assert (first_after.dt.hour().cast(pl.Int32) * 100 + first_after.dt.minute() >= 935).all()
        closing = local.filter(pl.col("t").dt.hour() == 15)  # the closing auction (both, in 2019)
        late = ticks.filter(
            pl.col("datetime").dt.hour().cast(pl.Int32) * 100 + pl.col("datetime").dt.minute() >= 1457
        )
        assert closing["volume"].sum() == late["vol"].sum()
        days = resample(bars, "1d", calendar="XSHG", session="auctions", exchange=exchange)
        assert days["volume"].sum() == ticks["vol"].sum() == five["volume"].sum()  # 1d includes them
        with pytest.raises(ResampleError, match="outside XSHG sessions"):
            resample(bars, "5m", calendar="XSHG")  # the regular session has no 09:25 bar
        checked += opening.height
    assert checked >= 2 * len(files)  # several days per file
