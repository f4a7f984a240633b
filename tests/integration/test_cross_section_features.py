"""Cross-sectional features over the lake (``models.features.cross_section``): the operators on
small hand-checked frames, a planted look-ahead caught by the causality check, and a feature
materialised over real US daily bars (ORCL, NVDA, YHOO), cached under its definition's hash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_yahoo
from models.features.cross_section import (
    FeatureSpec,
    LookAheadError,
    check_causal,
    cs_neutralise,
    cs_rank,
    cs_winsorise,
    cs_zscore,
    materialise,
    time_series,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"

FRAME = pl.DataFrame({
    "ts_ns": [1, 1, 1, 1, 2, 2, 2, 2],
    "instrument_id": [1, 2, 3, 4, 1, 2, 3, 4],
    "value": [1.0, 2.0, 3.0, 10.0, 4.0, 4.0, 1.0, 3.0],
    "sector": ["a", "a", "b", "b", "a", "a", "b", "b"],
    "size": [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0],
})  # fmt: skip


def test_rank_zscore_and_winsorise_within_each_timestamp() -> None:
    assert cs_rank(FRAME)["value"].to_list() == [0.25, 0.5, 0.75, 1.0, 0.875, 0.875, 0.25, 0.5]
    z = cs_zscore(FRAME)["value"].to_numpy()
    first = np.array([1.0, 2.0, 3.0, 10.0])
    assert np.allclose(z[:4], (first - first.mean()) / first.std(ddof=1))
    clipped = cs_winsorise(FRAME, 0.0, 0.75)["value"].to_list()
    assert clipped[:4] == [1.0, 2.0, 3.0, float(np.quantile(first, 0.75))]


def test_neutralise_removes_the_group_means_and_the_exposure() -> None:
    by_group = cs_neutralise(FRAME, group="sector")
    means = by_group.group_by(["ts_ns", "sector"]).agg(pl.col("value").mean())["value"].to_list()
    assert np.allclose(means, 0.0)
    residual = cs_neutralise(FRAME, exposure="size")
    for ts in (1, 2):
        part = residual.filter(pl.col("ts_ns") == ts)
        x = part["size"].to_numpy() - part["size"].mean()
        assert abs(float((x * part["value"].to_numpy()).sum())) < 1e-9  # orthogonal to the exposure


def _bars() -> pl.DataFrame:
    rng = np.random.default_rng(4)
    rows = [(t, i, int(1000 + 50 * np.sin(t / 7 + i) + rng.integers(0, 20)), 100 + t) for t in range(60)
            for i in (1, 2, 3)]  # fmt: skip
    return pl.DataFrame(rows, schema=["ts_ns", "instrument_id", "close", "volume"], orient="row")


def test_a_planted_look_ahead_is_caught_and_a_causal_feature_passes() -> None:
    bars = _bars()
    spec = FeatureSpec("momentum", {"lookback": 5}, (("zscore", {}),))
    check_causal(spec.compute, bars, 40)  # causal: no error

    def peeks(frame: pl.DataFrame) -> pl.DataFrame:  # tomorrow's return: a planted look-ahead
        ordered = frame.sort(["instrument_id", "ts_ns"])
        future = (pl.col("close").shift(-1) / pl.col("close") - 1.0).over("instrument_id")
        return ordered.with_columns(future.alias("value")).select("ts_ns", "instrument_id", "value")

    with pytest.raises(LookAheadError, match="at ts_ns 40, instrument 1"):
        check_causal(peeks, bars, 40)


def test_unknown_features_and_operators_say_so() -> None:
    with pytest.raises(ValueError, match="unknown feature 'alpha'"):
        time_series(_bars(), "alpha", {})
    with pytest.raises(ValueError, match="winsorise needs"):
        cs_winsorise(FRAME, 0.9, 0.1)


@pytest.mark.needs_shared_data
@pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}")
def test_a_feature_over_real_bars_is_materialised_once_and_cached(tmp_path: Path) -> None:
    names = ("orcl-1995-2014.txt", "nvda-1999-2014.txt", "yhoo-1996-2014.txt")
    files = [SHARED / "us" / name for name in names]
    ingest(tmp_path, files, parse_yahoo)
    lake = Lake(tmp_path)
    spec = FeatureSpec("momentum", {"lookback": 126, "skip": 21}, (("winsorise", {"low": 0.0, "high": 1.0}),
                                                                      ("rank", {})))  # fmt: skip
    folder = materialise(lake, "1d", spec)
    values = pl.read_parquet(folder / "feature.parquet")
    ranked = values.drop_nulls("value").filter(pl.col("value").is_not_nan())
    assert ranked.height > 3 * 3000
    assert ranked["value"].min() > 0 and ranked["value"].max() == 1.0
    written = (folder / "feature.parquet").stat().st_mtime_ns
    assert materialise(lake, "1d", spec) == folder  # cached: same definition, same lake content
    assert (folder / "feature.parquet").stat().st_mtime_ns == written
    other = materialise(lake, "1d", FeatureSpec("momentum", {"lookback": 63}))
    assert other != folder and other.parent == folder.parent
