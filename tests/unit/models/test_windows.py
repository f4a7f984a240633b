"""Rolling standard deviations computed from each window alone (models.features.windows), and
every time-series feature the same at a bar whatever history precedes its window — what lets a
model trained on a lake's whole history see the same floats in a data set exported later."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from models.features.alpha158 import ALPHA158, alpha_features
from models.features.cross_section import FeatureSpec
from models.features.windows import int_window_std, window_std
from models.ml.features import feature_matrix, feature_name

DAY = 86_400_000_000_000


def _bars(steps: int = 900, names: int = 5, seed: int = 11) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(names):
        close = np.round(10_000 * np.exp(np.cumsum(rng.normal(0.0, 0.03, steps)))).astype(np.int64)
        high = close + rng.integers(0, 80, steps)
        low = np.maximum(close - rng.integers(0, 80, steps), 1)
        keep = rng.random(steps) > 0.03  # a few missing bars per name
        frames.append(pl.DataFrame({
            "ts_ns": np.arange(steps, dtype=np.int64) * DAY, "instrument_id": i + 1,
            "open": close + rng.integers(-40, 40, steps), "high": high, "low": low, "close": close,
            "volume": rng.integers(1_000, 3_000_000_000, steps),
        }).filter(pl.Series(keep)))  # fmt: skip
    return pl.concat(frames).sort(["ts_ns", "instrument_id"])


def _numpy_std(values: np.ndarray, window: int) -> np.ndarray:
    out = np.full(values.size, np.nan)
    for end in range(window - 1, values.size):
        out[end] = np.std(values[end - window + 1 : end + 1], ddof=1)
    return out


@pytest.mark.parametrize("window", [2, 5, 20])
def test_the_window_std_is_the_windows_own_std_and_null_where_rolling_std_is(window: int) -> None:
    """Two instruments, one after the other (an integer std restarts its windows at the second
    by itself), a null among the floats: each value is the window's std, and null exactly where
    Polars' rolling_std per instrument is null."""
    rng = np.random.default_rng(window)
    ints = rng.integers(1, 4_000_000_000, 300)
    floats = rng.normal(0.0, 0.02, 300)
    frame = pl.DataFrame({"instrument_id": np.repeat([7, 3], 150), "i": ints, "f": floats}).with_columns(
        pl.when(pl.int_range(pl.len()) == 100).then(None).otherwise(pl.col("f")).alias("f")
    )
    got = frame.select(
        int_window_std("i", window).alias("i"),
        int_window_std("i", window).over("instrument_id").alias("i_over"),
        window_std(pl.col("f"), window).over("instrument_id").alias("f"),
    )
    expect = frame.select(
        pl.col("i").cast(pl.Float64).rolling_std(window).over("instrument_id"),
        pl.col("f").rolling_std(window).over("instrument_id"),
    )
    assert got.get_column("i").to_list() == got.get_column("i_over").to_list()
    for column, values in (("i", ints.astype(np.float64)), ("f", floats)):
        mine, theirs = got.get_column(column), expect.get_column(column)
        assert mine.is_null().to_list() == theirs.is_null().to_list()  # the same warm-up and gaps
        want = np.concatenate([_numpy_std(values[:150], window), _numpy_std(values[150:], window)])
        present = mine.is_not_null().to_numpy()
        np.testing.assert_allclose(mine.to_numpy()[present], want[present], rtol=1e-13)
    with pytest.raises(ValueError, match="at least 2"):
        window_std(pl.col("f"), 1)
    with pytest.raises(ValueError, match="at least 2"):
        int_window_std("i", 1)


SPECS = [
    FeatureSpec("momentum", {"lookback": 20, "skip": 5}),
    FeatureSpec("volatility", {"window": 20}),
    FeatureSpec("volatility", {"window": 5}),
    FeatureSpec("distance_from_mean", {"window": 20}),
    FeatureSpec("log_dollar_volume", {"window": 20}),
    *(FeatureSpec("alpha158", {"name": name}) for name in ALPHA158),
]


def test_every_feature_is_the_same_at_a_bar_whatever_history_precedes_its_window() -> None:
    """The features on bars from step 450 on equal, bit for bit, those on every bar, at every
    row where the later start has warmed up (Polars' rolling_std gave ~1e-17 differences here)."""
    bars = _bars()
    full = feature_matrix(bars, SPECS, check=False)
    later = feature_matrix(bars.filter(pl.col("ts_ns") >= 450 * DAY), SPECS, check=False)
    both = later.join(full, on=["ts_ns", "instrument_id"], suffix="_full")
    for spec in SPECS:
        name = feature_name(spec)
        mine = both.get_column(name).to_numpy()
        whole = both.get_column(f"{name}_full").to_numpy()
        warm = np.isfinite(mine)
        assert warm.sum() > 1_500, name
        np.testing.assert_array_equal(mine[warm], whole[warm], err_msg=name)


def test_alpha_features_in_one_pass_equal_the_feature_specs() -> None:
    """``alpha_features`` (the bench's pass: the standard deviations over the whole sorted
    column) gives the floats the feature specs (per instrument) give training and trading."""
    bars = _bars()
    specs = [FeatureSpec("alpha158", {"name": name}) for name in ALPHA158]
    one_pass = alpha_features(bars)
    per_spec = feature_matrix(bars, specs, check=False)
    for spec in specs:
        left = one_pass.get_column(str(spec.params["name"])).to_numpy()
        right = per_spec.get_column(feature_name(spec)).to_numpy()
        np.testing.assert_array_equal(left, right, err_msg=feature_name(spec))


def test_an_artifact_records_each_features_version_and_an_old_one_is_computed_as_it_was() -> None:
    """The specs an artifact records carry the version of their definition (2 for the window
    standard deviations, 1 otherwise); a spec recorded without one (an artifact from before
    versions) is version 1 and computes Polars' rolling_std as it was trained with; a version
    this code does not have is refused; version-1 cache keys are what they were."""
    import hashlib
    import json

    from models.ml.features import spec_from_json, spec_to_json

    bars = _bars()
    current = [
        spec_to_json(FeatureSpec("volatility", {"window": 20}))["version"],
        spec_to_json(FeatureSpec("momentum", {"lookback": 20}))["version"],
        spec_to_json(FeatureSpec("alpha158", {"name": "STD20"}))["version"],
        spec_to_json(FeatureSpec("alpha158", {"name": "VSTD5"}))["version"],
        spec_to_json(FeatureSpec("alpha158", {"name": "MA20"}))["version"],
    ]
    assert current == [2, 1, 2, 2, 1]
    close = pl.col("close").cast(pl.Float64)
    for name, params, legacy in (
        ("volatility", {"window": 20}, (close / close.shift(1)).log().rolling_std(20)),
        ("alpha158", {"name": "STD20"}, close.rolling_std(20) / close),
    ):
        old = spec_from_json({"name": name, "params": params, "steps": []})
        new = spec_from_json(spec_to_json(FeatureSpec(name, params)))
        assert (old.version, new.version) == (1, 2)
        want = bars.sort(["instrument_id", "ts_ns"]).with_columns(legacy.over("instrument_id").alias("value"))
        want = want.sort(["ts_ns", "instrument_id"]).get_column("value").to_numpy()
        was = old.compute(bars).get_column("value").to_numpy()
        now = new.compute(bars).get_column("value").to_numpy()
        np.testing.assert_array_equal(was, want)  # bit for bit what the artifact was trained on
        np.testing.assert_allclose(now, was, rtol=1e-12)
        assert (now[np.isfinite(now)] != was[np.isfinite(was)]).any(), name  # the two versions differ
    with pytest.raises(ValueError, match="has no version 3"):
        FeatureSpec("volatility", {"window": 20}, (), 3).compute(bars)
    momentum = FeatureSpec("momentum", {"lookback": 20})
    definition = {"name": "momentum", "params": {"lookback": 20}, "steps": (), "inputs": "ab"}
    assert (
        momentum.key("ab")
        == hashlib.blake2b(json.dumps(definition, sort_keys=True).encode(), digest_size=16).hexdigest()
    )
    assert FeatureSpec("volatility", {"window": 20}).key("ab") != FeatureSpec(
        "volatility", {"window": 20}, (), 1
    ).key("ab")
