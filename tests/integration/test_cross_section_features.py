"""Cross-sectional features over the lake (``models.features.cross_section``): the operators on
small hand-checked frames, a planted look-ahead caught by the causality check, and a feature
materialised over real US daily bars (ORCL, NVDA, YHOO), cached under its definition's hash."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lake.ingest import ingest
from lake.partitioned import Lake
from lake.schema import Kind
from lake.sources import parse_yahoo
from models.features.cross_section import (
    FeatureSpec,
    LookAheadError,
    causal_cuts,
    check_causal,
    cs_neutralise,
    cs_rank,
    cs_winsorise,
    cs_zscore,
    frame_hash,
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


NAN = float("nan")


def _one_stamp(values: list[float | None], **columns: list) -> pl.DataFrame:
    n = len(values)
    return pl.DataFrame({"ts_ns": [1] * n, "instrument_id": list(range(1, n + 1)),
                         "value": pl.Series(values, dtype=pl.Float64), **columns})  # fmt: skip


MISSING = [NAN, None, float("inf"), float("-inf")]  # an infinity made the timestamp's z-scores NaN


@pytest.mark.parametrize("missing", MISSING)
def test_a_missing_value_nan_or_null_is_skipped_by_every_operator(missing: float | None) -> None:
    frame = _one_stamp([1.0, 2.0, missing, 4.0, 2.0], sector=["a", "a", "a", "b", "c"])
    present = np.array([1.0, 2.0, 4.0, 2.0])
    # ranks among the four present values (the tie at 2.0 averaged), the missing row null
    assert cs_rank(frame)["value"].to_list() == [0.25, 0.625, None, 1.0, 0.625]
    z = cs_zscore(frame)["value"].to_list()
    assert z[2] is None
    assert np.allclose([z[0], z[1], z[3], z[4]], (present - present.mean()) / present.std(ddof=1))
    # within sector a the mean of 1 and 2; b and c are single-name groups: 0
    assert cs_neutralise(frame, group="sector")["value"].to_list() == [-0.5, 0.5, None, 0.0, 0.0]
    ten = _one_stamp([float(v) for v in range(1, 11)] + [missing])
    clipped = cs_winsorise(ten, 0.1, 0.9)["value"].to_list()
    assert clipped[0] == pytest.approx(1.9) and clipped[9] == pytest.approx(9.1) and clipped[10] is None
    assert clipped[1:9] == [float(v) for v in range(2, 10)]


def test_a_missing_group_or_a_timestamp_of_missing_values_stays_missing() -> None:
    frame = _one_stamp([1.0, 3.0, 5.0], sector=["a", None, "a"])
    assert cs_neutralise(frame, group="sector")["value"].to_list() == [-2.0, None, 2.0]
    empty = _one_stamp([NAN, None])
    assert cs_rank(empty)["value"].to_list() == [None, None]
    assert cs_zscore(empty)["value"].to_list() == [None, None]


@pytest.mark.parametrize("missing", MISSING)
def test_neutralise_by_exposure_is_least_squares_on_the_rows_present(missing: float | None) -> None:
    frame = _one_stamp([1.0, 2.0, 3.0, 10.0, missing, 7.0], size=[1.0, 2.0, missing, 4.0, 5.0, 4.0])
    out = cs_neutralise(frame, exposure="size")["value"].to_list()
    assert out[2] is None and out[4] is None  # a missing exposure, a missing value
    fitted = [0, 1, 3, 5]
    y = np.array([1.0, 2.0, 10.0, 7.0])
    x = np.array([1.0, 2.0, 4.0, 4.0])
    beta, alpha = np.polyfit(x, y, 1)
    residual = np.array([out[k] for k in fitted])
    assert np.allclose(residual, y - (alpha + beta * x))
    assert abs(residual.sum()) < 1e-9 and abs((residual * x).sum()) < 1e-9  # orthogonal
    # the QA repro: sizes [1, 2, None, 4] gave residuals with mean 0.333
    repro = cs_neutralise(_one_stamp([1.0, 2.0, 3.0, 10.0], size=[1.0, 2.0, None, 4.0]), exposure="size")
    kept = repro.drop_nulls("value")
    assert kept.height == 3 and abs(kept["value"].sum()) < 1e-9
    assert abs((kept["value"] * kept["size"]).sum()) < 1e-9


def test_neutralise_by_group_then_exposure_with_ties_and_a_single_name_group() -> None:
    frame = pl.DataFrame({"ts_ns": [1] * 6 + [2] * 3, "instrument_id": [1, 2, 3, 4, 5, 6, 1, 2, 3],
                          "value": [2.0, 2.0, 5.0, NAN, 1.0, 3.0, 1.0, 1.0, 1.0],
                          "sector": ["a", "a", "b", "b", "c", "b", "a", "a", "a"],
                          "size": [1.0, 3.0, 2.0, 2.0, 8.0, 4.0, 1.0, 2.0, 3.0]})  # fmt: skip
    out = cs_neutralise(frame, group="sector", exposure="size")
    first = out.filter(pl.col("ts_ns") == 1)["value"].to_list()
    assert first[3] is None
    assert out.filter(pl.col("ts_ns") == 2)["value"].to_list() == [0.0, 0.0, 0.0]  # all tied
    kept = out.filter((pl.col("ts_ns") == 1) & pl.col("value").is_not_null())
    x = kept["size"].to_numpy() - kept["size"].mean()
    assert abs(kept["value"].sum()) < 1e-9 and abs(float((x * kept["value"].to_numpy()).sum())) < 1e-9


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


def _over_instrument(statistic: pl.Expr) -> Callable[[pl.DataFrame], pl.DataFrame]:
    def compute(frame: pl.DataFrame) -> pl.DataFrame:
        ordered = frame.sort(["instrument_id", "ts_ns"])
        return ordered.with_columns(statistic.over("instrument_id").alias("value")).select(
            "ts_ns", "instrument_id", "value"
        )

    return compute


def test_a_full_sample_statistic_is_caught_at_the_default_cuts() -> None:
    peaked = pl.DataFrame({"ts_ns": range(30), "instrument_id": [1] * 30,
                           "close": [20 - abs(t - 5) for t in range(30)]})  # fmt: skip
    peak = _over_instrument(pl.col("close") / pl.col("close").max())
    check_causal(peak, peaked, 20)  # the one late cut of before: the maximum was set at bar 5
    with pytest.raises(LookAheadError, match="on the bars up to"):
        check_causal(peak, peaked)
    close = pl.col("close").cast(pl.Float64)
    scaled = _over_instrument((close - close.min()) / (close.max() - close.min()))
    with pytest.raises(LookAheadError):
        check_causal(scaled, _bars())
    assert causal_cuts(peaked) == [0, 1, 3, 7, 15, 22]


@pytest.mark.parametrize(
    "statistic",
    [
        pl.col("close").cast(pl.Float64).rolling_mean(5),
        pl.col("close").cast(pl.Float64).rolling_std(7),
        pl.col("close").cast(pl.Float64).ewm_mean(alpha=0.2),
        pl.col("close").cast(pl.Float64).ewm_mean(span=10, adjust=False),
        pl.col("close").cast(pl.Float64).cum_max() / pl.col("close").cast(pl.Float64).cum_sum(),
        pl.col("close").rank().cum_count(),
        pl.col("close").cast(pl.Float64).pct_change(3),
    ],
)
def test_causal_expressions_pass_every_cut(statistic: pl.Expr) -> None:
    result = check_causal(_over_instrument(statistic), _bars())
    assert result.height == _bars().height


@pytest.mark.parametrize(
    "spec",
    [
        FeatureSpec(
            "momentum", {"lookback": 5, "skip": 1}, (("winsorise", {"low": 0.1, "high": 0.9}), ("rank", {}))
        ),
        FeatureSpec("volatility", {"window": 10}, (("zscore", {}),)),
        FeatureSpec("distance_from_mean", {"window": 8}),
        FeatureSpec("log_dollar_volume", {"window": 5}, (("neutralise", {"exposure": "volume"}),)),
        FeatureSpec("alpha158", {"name": "ROC5"}),
    ],
)
def test_the_projects_features_pass_every_cut(spec: FeatureSpec) -> None:
    check_causal(spec.compute, _bars())


@pytest.mark.parametrize(
    ("name", "params", "steps", "message"),
    [
        (
            "momentum",
            {"lookback": -5},
            (),
            "lookback must be a whole number of bars from 1 to 100000, got -5",
        ),
        ("momentum", {"lookback": 5, "skip": -1}, (), "skip must be a whole number of bars from 0"),
        ("momentum", {"lookback": 2.7}, (), "got 2.7"),
        ("momentum", {"lookback": True}, (), "got True"),
        ("momentum", {"lookback": 5, "skip": 5}, (), "skip must be less than lookback"),
        ("momentum", {"lookback": 5, "lokback": 3}, (), "unknown.*lokback; accepted: lookback, skip"),
        ("momentum", {}, (), "needs lookback"),
        ("distance_from_mean", {"window": -3}, (), "window must be a whole number of bars from 1"),
        ("volatility", {"window": 1}, (), "window must be a whole number of bars from 2"),
        ("log_dollar_volume", {"window": 10**6}, (), "from 1 to 100000"),
        ("alpha158", {"name": "KMID", "window": 3}, (), "accepted: name"),
        ("momentum", {"lookback": 5}, (("rnk", {}),), "unknown step 'rnk'; known: rank, zscore, winsorise"),
        ("momentum", {"lookback": 5}, (("rank", {"pct": True}),), "step rank: unknown.*accepted: none"),
        ("momentum", {"lookback": 5}, (("winsorise", {"low": 0.1}),), "step winsorise: needs high"),
        ("momentum", {"lookback": 5}, (("winsorise", {"low": 0.9, "high": 0.1}),), "0 <= low < high <= 1"),
        ("momentum", {"lookback": 5}, (("neutralise", {}),), "group and/or exposure"),
        ("momentum", {"lookback": 5}, (("neutralise", {"sector": "s"}),), "accepted: group, exposure"),
    ],
)
def test_a_spec_is_validated_when_built(name: str, params: dict, steps: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FeatureSpec(name, params, steps)


def test_valid_specs_still_build() -> None:
    FeatureSpec("momentum", {"lookback": 60.0, "skip": 0})
    FeatureSpec("volatility", {"window": 20}, (("winsorise", {"low": 0, "high": 1}), ("zscore", {})))
    both = {"group": "sector", "exposure": "size"}
    FeatureSpec("log_dollar_volume", {"window": 5}, (("neutralise", both),))


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


@pytest.mark.needs_shared_data
@pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}")
def test_full_sample_min_max_scaling_of_real_bars_is_caught(tmp_path: Path) -> None:
    files = [SHARED / "us" / name for name in ("orcl-1995-2014.txt", "nvda-1999-2014.txt")]
    ingest(tmp_path, files, parse_yahoo)
    bars = pl.from_arrow(Lake(tmp_path).read(Kind.BARS, "1d"))
    assert isinstance(bars, pl.DataFrame)
    close = pl.col("close").cast(pl.Float64)
    scaled = _over_instrument((close - close.min()) / (close.max() - close.min()))
    with pytest.raises(LookAheadError):
        check_causal(scaled, bars)
    check_causal(_over_instrument(close.rolling_mean(20) / close.cum_max()), bars)  # causal: passes


class _StubLake:
    """What materialise reads of a lake: its root, content hash and bars per frequency."""

    def __init__(self, root: Path, bars: dict[str, pl.DataFrame]) -> None:
        self.root = root
        self.content_hash = "c0ffee"
        self._bars = bars

    def read(self, kind: Kind, frequency: str) -> object:
        assert kind is Kind.BARS
        return self._bars[frequency].to_arrow()


def test_the_cache_key_holds_the_frequency_and_the_extra_columns(tmp_path: Path) -> None:
    daily = _bars()
    minute = daily.with_columns((pl.col("close") * 3 - 7 * pl.col("ts_ns")).alias("close"))
    lake = _StubLake(tmp_path, {"1d": daily, "1m": minute})
    spec = FeatureSpec("momentum", {"lookback": 3})
    day = materialise(lake, "1d", spec)  # type: ignore[arg-type]
    minute_folder = materialise(lake, "1m", spec)  # type: ignore[arg-type]
    assert minute_folder != day  # it returned the 1d folder
    assert pl.read_parquet(minute_folder / "feature.parquet").equals(spec.compute(minute))
    assert materialise(lake, "1d", spec) == day  # type: ignore[arg-type]
    by_sector = FeatureSpec("momentum", {"lookback": 3}, (("neutralise", {"group": "sector"}),))
    one = pl.DataFrame({"instrument_id": [1, 2, 3], "sector": ["a", "a", "b"]})
    other = pl.DataFrame({"instrument_id": [1, 2, 3], "sector": ["a", "b", "b"]})
    first = materialise(lake, "1d", by_sector, extra=one)  # type: ignore[arg-type]
    second = materialise(lake, "1d", by_sector, extra=other)  # type: ignore[arg-type]
    assert second != first  # it returned the first sector map's result
    want = by_sector.compute(daily.join(other, on="instrument_id", how="left"))
    assert pl.read_parquet(second / "feature.parquet").equals(want)
    shuffled = one.reverse()  # the same content in another row order: the same key
    assert materialise(lake, "1d", by_sector, extra=shuffled) == first  # type: ignore[arg-type]
    assert json.loads((second / "feature.json").read_text())["extra_hash"] == frame_hash(other)
