"""models.ml.mlp on a small seeded panel: byte-identical weights for the same rows and seed (and
the caller's torch state left alone), another seed gives other weights, the embargo, walk-forward
out of sample, the artifact round trip through the registry, and predictions that do not depend
on how many rows are scored together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch", reason="the ml extra (torch==2.13.0) is not installed")

from models.features.cross_section import FeatureSpec  # noqa: E402
from models.ml.features import feature_name  # noqa: E402
from models.ml.labels import LabelSpec  # noqa: E402
from models.ml.mlp import (  # noqa: E402
    PREDICT_BLOCK_ROWS,
    MlpConfig,
    deterministic_torch,
    predict_mlp,
    predict_mlp_proba,
    train_window_mlp,
    walk_forward_mlp,
)
from models.ml.registry import load, register  # noqa: E402
from models.ml.strategy import predict_artifact  # noqa: E402
from models.ml.train import design_rows, feature_array, folds, rank_ic  # noqa: E402

DAY = 86_400_000_000_000
SPECS = [FeatureSpec("momentum", {"lookback": 10}), FeatureSpec("volatility", {"window": 10}),
         FeatureSpec("distance_from_mean", {"window": 5})]  # fmt: skip
NAMES = [feature_name(s) for s in SPECS]
SMALL = MlpConfig(hidden=(16, 8), epochs=8, batch_rows=128)


def _bars(steps: int = 400, names: int = 6, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, int, int]] = []
    for i in range(names):
        close = np.round(10_000 * np.exp(np.cumsum(rng.normal(0.0003 * i, 0.02, steps)))).astype(np.int64)
        keep = rng.random(steps) > 0.03
        volume = rng.integers(1_000, 5_000, steps)
        rows.extend((int(t) * DAY, i + 1, int(close[t]), int(volume[t])) for t in np.flatnonzero(keep))
    return pl.DataFrame(rows, schema=["ts_ns", "instrument_id", "close", "volume"], orient="row").sort(
        ["ts_ns", "instrument_id"]
    )


@pytest.fixture(scope="module")
def rows() -> pl.DataFrame:
    return design_rows(_bars(), SPECS, LabelSpec(5, 1))


def test_same_rows_and_seed_give_byte_identical_weights_and_another_seed_does_not(rows: pl.DataFrame) -> None:
    threads = torch.get_num_threads()
    before = torch.random.get_rng_state()
    first = train_window_mlp(rows, NAMES, 0, 300 * DAY, seed=11, config=SMALL)
    again = train_window_mlp(rows, NAMES, 0, 300 * DAY, seed=11, config=SMALL)
    other = train_window_mlp(rows, NAMES, 0, 300 * DAY, seed=12, config=SMALL)
    assert first.weights == again.weights
    assert first.meta() == again.meta()
    assert other.weights != first.weights  # initialisation and batch order come from the seed
    # 3 inputs -> 16 -> 8 -> 1: (3*16 + 16) + (16*8 + 8) + (8 + 1) float32 values
    assert len(first.weights) == 4 * (3 * 16 + 16 + 16 * 8 + 8 + 8 + 1)
    assert first.training["torch_version"] == torch.__version__ and first.training["seed"] == 11
    # the caller's torch settings and global generator are as they were
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.random.get_rng_state(), before)


def test_a_classifier_network_is_byte_identical_per_seed_and_gives_class_probabilities(
    tmp_path: Path,
) -> None:
    rows = design_rows(_bars(), SPECS, LabelSpec(5, 1, (-0.01, 0.01)))
    first = train_window_mlp(rows, NAMES, 0, 300 * DAY, seed=11, config=SMALL, classes=3)
    again = train_window_mlp(rows, NAMES, 0, 300 * DAY, seed=11, config=SMALL, classes=3)
    other = train_window_mlp(rows, NAMES, 0, 300 * DAY, seed=12, config=SMALL, classes=3)
    assert first.weights == again.weights != other.weights and first.meta() == again.meta()
    assert first.network["outputs"] == 3 and first.training["loss"] == "cross_entropy"
    assert "label_scale" not in first.preprocessing
    assert len(first.weights) == 4 * (3 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3)  # three outputs
    x = feature_array(rows.filter(pl.col("ts_ns") > 300 * DAY), NAMES)
    proba = predict_mlp_proba(first.weights, first.meta(), x)
    assert proba.shape == (x.shape[0], 3) and np.all(proba > 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)  # float32 softmax
    np.testing.assert_array_equal(predict_mlp(first.weights, first.meta(), x), proba[:, 2] - proba[:, 0])
    # a row's probabilities do not depend on the rows scored with it (fixed blocks)
    np.testing.assert_array_equal(predict_mlp_proba(first.weights, first.meta(), x[5:9]), proba[5:9])
    digest = register(tmp_path, first.weights, {"kind": "torch_mlp", "classes": 3, **first.meta()})
    np.testing.assert_array_equal(predict_artifact(load(tmp_path, digest), x), proba[:, 2] - proba[:, 0])
    with pytest.raises(ValueError, match="no class probabilities"):
        regressor = train_window_mlp(rows, NAMES, 0, 300 * DAY, seed=11, config=SMALL)
        predict_mlp_proba(regressor.weights, regressor.meta(), x)


def test_the_network_learns_a_nonlinear_signal_out_of_sample() -> None:
    """Rows whose label is a nonlinear function of the features (plus noise): the network trained
    on the first 300 days ranks the next 100 days' labels well (a linear ranker cannot see the
    sign flip in ``f0 * f1``)."""
    rng = np.random.default_rng(5)
    days, names = 400, 8
    x = rng.normal(size=(days * names, 3))
    label = x[:, 0] * x[:, 1] + 0.5 * np.tanh(x[:, 2]) + rng.normal(0, 0.1, days * names)
    ts = np.repeat(np.arange(days, dtype=np.int64) * DAY, names)
    frame = pl.DataFrame({"ts_ns": ts, "instrument_id": np.tile(np.arange(names), days),
                          "a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": label,
                          "label_end_ts": ts})  # fmt: skip
    net = train_window_mlp(frame, ["a", "b", "c"], 0, 299 * DAY, seed=1, config=MlpConfig(epochs=40))
    later = frame.filter(pl.col("ts_ns") >= 300 * DAY)
    predicted = predict_mlp(net.weights, net.meta(), feature_array(later, ["a", "b", "c"]))
    out_of_sample = rank_ic(predicted, later.get_column("label").to_numpy())
    print(f"train IC {net.metrics['train_ic']:.3f}, out of sample {out_of_sample:.3f}")
    assert net.metrics["train_ic"] > 0.8
    assert out_of_sample > 0.8, out_of_sample
    linear = np.linalg.lstsq(np.c_[x[:2400], np.ones(2400)], label[:2400], rcond=None)[0]
    assert rank_ic(np.c_[x[2400:], np.ones(800)] @ linear, label[2400:]) < 0.5  # the signal is not linear


def test_training_embargoes_labels_past_the_window(rows: pl.DataFrame) -> None:
    end = 200 * DAY
    net = train_window_mlp(rows, NAMES, 0, end, config=SMALL)
    embargoed = rows.filter((pl.col("ts_ns") <= end) & (pl.col("label_end_ts") <= end))
    assert net.rows == embargoed.height < rows.filter(pl.col("ts_ns") <= end).height
    with pytest.raises(ValueError, match="no labelled rows"):
        train_window_mlp(rows, NAMES, 0, 2 * DAY, config=SMALL)


def test_walk_forward_trains_each_window_and_predicts_only_the_next(rows: pl.DataFrame) -> None:
    stamps = rows.get_column("ts_ns").unique().sort().to_list()
    windows = folds(stamps, 150, 80)
    results = walk_forward_mlp(rows, NAMES, windows, config=SMALL)
    assert len(results) == len(windows) >= 2
    for result in results:
        assert result.fold.train[1] < result.fold.test[0]
        out = result.predictions.get_column("ts_ns").to_numpy()
        assert out.min() >= result.fold.test[0] and out.max() <= result.fold.test[1]
        assert np.isfinite(result.predictions.get_column("prediction").to_numpy()).all()


def test_predictions_do_not_depend_on_the_rows_scored_with_them(rows: pl.DataFrame) -> None:
    net = train_window_mlp(rows, NAMES, 0, 300 * DAY, config=SMALL)
    x = feature_array(rows, NAMES)
    assert x.shape[0] > PREDICT_BLOCK_ROWS + 10  # more than one block
    whole = predict_mlp(net.weights, net.meta(), x)
    for cut in (1, 7, PREDICT_BLOCK_ROWS - 1, PREDICT_BLOCK_ROWS + 3):
        np.testing.assert_array_equal(predict_mlp(net.weights, net.meta(), x[:cut]), whole[:cut])
    with deterministic_torch(0):  # rows scored one at a time agree too
        single = np.array([predict_mlp(net.weights, net.meta(), x[i : i + 1])[0] for i in range(5)])
    np.testing.assert_array_equal(single, whole[:5])


def test_the_weights_round_trip_through_the_registry_and_a_bad_layout_is_refused(
    rows: pl.DataFrame, tmp_path: Path
) -> None:
    net = train_window_mlp(rows, NAMES, 0, 300 * DAY, config=SMALL)
    meta = {"kind": "torch_mlp", "feature_names": NAMES, **net.meta()}
    digest = register(tmp_path, net.weights, meta)
    artifact = load(tmp_path, digest)
    assert artifact.model_file == "model.bin"
    assert (tmp_path / digest / "model.bin").read_bytes() == net.weights
    x = feature_array(rows, NAMES)
    np.testing.assert_array_equal(predict_artifact(artifact, x), predict_mlp(net.weights, net.meta(), x))
    with pytest.raises(ValueError, match=r"model\.bin holds"):
        predict_mlp(net.weights[:-4], net.meta(), x)
    wider = {**net.meta(), "network": {**net.network, "hidden": [32, 8]}}
    with pytest.raises(ValueError, match="do not match"):
        predict_mlp(net.weights, wider, x)
    with pytest.raises(ValueError, match="hidden"):
        MlpConfig(hidden=(0,))
