"""The hive layout, pruned reads, per-step cross-sections, Polars scans and commits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from domain.instruments import Instrument
from lake.partitioned import Lake, LakeError
from lake.schema import Kind, SchemaError, conform

DAY_NS = 86_400 * 10**9
Y2019 = 1_546_300_800 * 10**9  # 2019-01-01 00:00 UTC


def bars(ts: list[int], ids: list[int], close: list[int] | None = None) -> pa.Table:
    count = len(ts)
    price = np.array(close if close is not None else [100 + i for i in range(count)], dtype=np.int64)
    return pa.table(
        {
            "ts_ns": np.array(ts, dtype=np.int64),
            "day": np.full(count, 20190101, dtype=np.int32),
            "instrument_id": np.array(ids, dtype=np.int32),
            "open": price,
            "high": price + 1,
            "low": price - 1,
            "close": price,
            "volume": np.ones(count, dtype=np.int64),
            "turnover": pa.nulls(count, pa.int64()),
        }
    )


def instrument(instrument_id: int, symbol: str) -> Instrument:
    return Instrument(
        instrument_id=instrument_id,
        symbol=symbol,
        venue="T",
        asset_class="equity",
        currency="USD",
        price_digits=2,
        tick_raw=1,
        qty_digits=0,
        lot_raw=1,
    )


def test_layout_daily_by_year_intraday_by_symbol_and_year(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    year_end = Y2019 + 364 * DAY_NS + DAY_NS  # a bar closing at midnight belongs to 2019
    lake.commit([(Kind.BARS, "1d", bars([Y2019 + DAY_NS, year_end, year_end + DAY_NS], [1, 2, 1]))])
    lake.commit([(Kind.BARS, "1m", bars([Y2019 + 60 * 10**9, Y2019 + 120 * 10**9], [3, 4]))])
    assert sorted(lake.files) == [
        "bars/freq=1d/year=2019/part-0.parquet",
        "bars/freq=1d/year=2020/part-0.parquet",
        "bars/freq=1m/instrument_id=3/year=2019/part-0.parquet",
        "bars/freq=1m/instrument_id=4/year=2019/part-0.parquet",
    ]
    assert lake.partitions(Kind.BARS, "1m", instrument_ids=[4]) == [
        "bars/freq=1m/instrument_id=4/year=2019/part-0.parquet"
    ]
    assert lake.read(Kind.BARS, "1d", instrument_ids=[1]).column("ts_ns").to_pylist() == [
        Y2019 + DAY_NS,
        year_end + DAY_NS,
    ]


def test_merge_appends_and_refuses_duplicate_keys(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    first = lake.commit([(Kind.BARS, "1d", bars([Y2019 + DAY_NS], [1]))])
    second = lake.commit([(Kind.BARS, "1d", bars([Y2019 + 2 * DAY_NS], [1]))])
    assert first != second
    assert lake.read(Kind.BARS, "1d").num_rows == 2
    before = dict(lake.files)
    with pytest.raises(LakeError, match="duplicate key"):
        lake.commit([(Kind.BARS, "1d", bars([Y2019 + DAY_NS], [1]))])
    assert lake.files == before
    assert lake.verify() == []


def test_cross_sections_and_panel(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    ts = [Y2019 + DAY_NS, Y2019 + DAY_NS, Y2019 + 2 * DAY_NS]
    lake.commit(
        [(Kind.BARS, "1d", bars(ts, [2, 1, 2], close=[200, 100, 201]))],
        instruments=[instrument(1, "A"), instrument(2, "B")],
    )
    steps = list(lake.cross_sections("1d"))
    assert [step for step, _ in steps] == [Y2019 + DAY_NS, Y2019 + 2 * DAY_NS]
    assert steps[0][1].column("instrument_id").to_pylist() == [1, 2]
    assert lake.cross_section("1d", Y2019 + 2 * DAY_NS).column("close").to_pylist() == [201]
    panel = lake.panel("1d")
    assert panel.close.tolist() == [[100, 200], [0, 201]]
    assert panel.valid.tolist() == [[True, True], [False, True]]
    assert panel.last_close.tolist() == [[100, 200], [100, 201]]


def test_polars_scan_prunes_partitions(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.commit([(Kind.BARS, "1m", bars([Y2019 + 60 * 10**9] * 3, [1, 2, 3]))])
    query = lake.scan(Kind.BARS, "1m").filter(pl.col("instrument_id") == 2).select("close")  # type: ignore[attr-defined]
    plan = query.explain()
    assert "instrument_id=2" in plan
    assert "instrument_id=1" not in plan
    assert query.collect()["close"].to_list() == [101]


def test_conform_refuses_nulls_and_lossy_casts() -> None:
    table = bars([1], [1])
    with pytest.raises(SchemaError, match="missing columns"):
        conform(table.drop_columns(["close"]), Kind.BARS)
    with pytest.raises(SchemaError, match="cannot cast"):
        conform(table.set_column(3, "open", pa.array([1.5])), Kind.BARS)
    with pytest.raises(SchemaError, match="nulls"):
        conform(table.set_column(3, "open", pa.array([None], pa.int64())), Kind.BARS)


@pytest.mark.parametrize("bound", ["start_ns", "end_ns"])
@pytest.mark.parametrize("value", [10**19, -(10**19)])
def test_a_bound_outside_int64_is_refused_naming_it(tmp_path: Path, bound: str, value: int) -> None:
    """It was pyarrow's TypeError ('unexpected argument type')."""
    lake = Lake(tmp_path)
    lake.commit([(Kind.BARS, "1d", bars([Y2019 + DAY_NS], [1]))])
    with pytest.raises(ValueError, match=f"^{bound} = {value} is outside the nanosecond timestamps"):
        lake.read(Kind.BARS, "1d", **{bound: value})
    with pytest.raises(ValueError, match="must be whole nanoseconds"):
        lake.read(Kind.BARS, "1d", **{bound: 1.5e18})


def test_a_bound_of_zero_filters_without_ts_ns_among_the_columns(tmp_path: Path) -> None:
    """A bound of 0 did not add ts_ns to the columns read, then filtered on it (a KeyError)."""
    lake = Lake(tmp_path)
    lake.commit([(Kind.BARS, "1d", bars([Y2019 + DAY_NS, Y2019 + 2 * DAY_NS], [1, 1], close=[5, 6]))])
    assert lake.read(Kind.BARS, "1d", start_ns=0, columns=["close"]).column("close").to_pylist() == [5, 6]
    assert lake.read(Kind.BARS, "1d", end_ns=0, columns=["close"]).num_rows == 0
