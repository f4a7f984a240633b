"""models.ml on a small seeded panel: labels at their declared gap (a planted overlap is
caught), the embargo, byte-identical training, the registry's hash check, and the strategy's
causality (deciding on a truncated panel gives the same scores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from models.features.cross_section import TIME_SERIES, FeatureSpec, LookAheadError
from models.ml.features import feature_matrix, feature_name, spec_to_json
from models.ml.labels import LabelOverlapError, LabelSpec, check_labels, classify, forward_returns
from models.ml.registry import ArtifactError, list_artifacts, load, register

lgb = pytest.importorskip("lightgbm", reason="the ml extra (lightgbm) is not installed")

from models.ml.train import (  # noqa: E402
    classes_of,
    design_rows,
    folds,
    predict_proba,
    predict_scores,
    rank_ic,
    train_window,
    walk_forward,
)

DAY = 86_400_000_000_000
SPECS = [FeatureSpec("momentum", {"lookback": 10}), FeatureSpec("volatility", {"window": 10}),
         FeatureSpec("distance_from_mean", {"window": 5})]  # fmt: skip


def _bars(steps: int = 400, names: int = 6, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, int, int]] = []
    for i in range(names):
        close = np.round(10_000 * np.exp(np.cumsum(rng.normal(0.0003 * i, 0.02, steps)))).astype(np.int64)
        keep = rng.random(steps) > 0.03  # a few missing bars per name
        volume = rng.integers(1_000, 5_000, steps)
        rows.extend((int(t) * DAY, i + 1, int(close[t]), int(volume[t])) for t in np.flatnonzero(keep))
    frame = pl.DataFrame(rows, schema=["ts_ns", "instrument_id", "close", "volume"], orient="row")
    return frame.sort(["ts_ns", "instrument_id"])


def test_forward_returns_start_gap_bars_after_the_feature_bar_in_each_names_own_bars() -> None:
    bars = _bars()
    spec = LabelSpec(horizon=5, gap=1)
    labels = forward_returns(bars, spec)
    check_labels(labels, bars, spec)
    one = bars.filter(pl.col("instrument_id") == 2).sort("ts_ns")
    close, ts = one.get_column("close").to_numpy().astype(float), one.get_column("ts_ns").to_numpy()
    mine = labels.filter(pl.col("instrument_id") == 2).sort("ts_ns")
    assert mine.height == one.height - 6
    np.testing.assert_array_equal(mine.get_column("label").to_numpy(), close[6:] / close[1:-5] - 1.0)
    np.testing.assert_array_equal(mine.get_column("label_start_ts").to_numpy(), ts[1:-5])
    assert (mine.get_column("label_start_ts") > mine.get_column("ts_ns")).all()


def test_a_planted_overlap_is_caught() -> None:
    bars = _bars()
    spec = LabelSpec(horizon=5, gap=1)
    labels = forward_returns(bars, spec)
    # one label whose start is moved back to its own feature bar: it now overlaps by one bar
    planted = labels.with_columns(
        pl.when(pl.int_range(pl.len()) == 100).then(pl.col("ts_ns")).otherwise(pl.col("label_start_ts"))
        .alias("label_start_ts")
    )  # fmt: skip
    with pytest.raises(LabelOverlapError, match="1 label"):
        check_labels(planted, bars, spec)
    # labels built with gap 0 checked as if they had gap 1: every one is caught
    with pytest.raises(LabelOverlapError):
        check_labels(forward_returns(bars, LabelSpec(5, 0)), bars, spec)
    with pytest.raises(ValueError, match="gap"):
        LabelSpec(horizon=5, gap=-1)


def test_a_label_whose_value_peeks_into_its_features_is_caught_though_its_stamps_are_honest() -> None:
    """A planted look-ahead in a label's value: returns measured from the feature bar's own
    close (gap 0) but stamped as gap 1, so every timestamp is where the spec says. Only the
    values betray it; and one label nudged by one ulp, or one class moved, is caught too."""
    bars = _bars()
    spec = LabelSpec(horizon=5, gap=1)
    honest = forward_returns(bars, spec)
    peeking = forward_returns(bars, LabelSpec(horizon=6, gap=0))  # close[t+6] / close[t] - 1
    planted = honest.drop("label").join(
        peeking.select("ts_ns", "instrument_id", "label"), on=["ts_ns", "instrument_id"], how="inner"
    )
    assert planted.height == honest.height
    with pytest.raises(LabelOverlapError, match="not the return between their start and end closes"):
        check_labels(planted, bars, spec)
    one = honest.with_columns(
        pl.when(pl.int_range(pl.len()) == 200).then(pl.col("label") * (1 + 2**-52)).otherwise(pl.col("label"))
        .alias("label")
    )  # fmt: skip
    with pytest.raises(LabelOverlapError, match=r"^1 label"):
        check_labels(one, bars, spec)
    classed = LabelSpec(horizon=5, gap=1, thresholds=(-0.01, 0.01))
    labels = forward_returns(bars, classed)
    check_labels(labels, bars, classed)
    moved = labels.with_columns(
        pl.when(pl.int_range(pl.len()) == 50).then((pl.col("label_class") + 1) % 3)
        .otherwise(pl.col("label_class")).alias("label_class")
    )  # fmt: skip
    with pytest.raises(LabelOverlapError, match=r"^1 label"):
        check_labels(moved, bars, classed)


def test_a_label_past_the_window_is_caught_and_training_embargoes_it() -> None:
    bars = _bars()
    spec = LabelSpec(horizon=5, gap=1)
    labels = forward_returns(bars, spec)
    end = 200 * DAY
    with pytest.raises(LabelOverlapError, match="end after the window"):
        check_labels(labels.filter(pl.col("ts_ns") <= end), bars, spec, window_end_ts=end)
    rows = design_rows(bars, SPECS, spec)
    names = [feature_name(s) for s in SPECS]
    model = train_window(rows, names, 0, end, num_boost_round=10)
    embargoed = rows.filter((pl.col("ts_ns") <= end) & (pl.col("label_end_ts") <= end))
    assert model.rows == embargoed.height < rows.filter(pl.col("ts_ns") <= end).height


def test_classification_thresholds() -> None:
    frame = pl.DataFrame({"label": [-0.05, -0.01, 0.0, 0.02, 0.2]})
    assert classify(frame, [-0.02, 0.01]).get_column("label_class").to_list() == [0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="ascending"):
        LabelSpec(5, 1, (0.1, -0.1))


def test_a_feature_that_peeks_one_bar_ahead_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TIME_SERIES, "peek", lambda _f, _p: pl.col("close").cast(pl.Float64).shift(-1))
    with pytest.raises(LookAheadError):
        feature_matrix(_bars(), [FeatureSpec("peek")])
    with pytest.raises(LookAheadError):
        design_rows(_bars(), [*SPECS, FeatureSpec("peek")], LabelSpec(5, 1))


def test_same_rows_and_seed_give_a_byte_identical_model_and_another_seed_does_not() -> None:
    rows = design_rows(_bars(), SPECS, LabelSpec(5, 1))
    names = [feature_name(s) for s in SPECS]
    first = train_window(rows, names, 0, 300 * DAY, seed=11, num_boost_round=40)
    again = train_window(rows, names, 0, 300 * DAY, seed=11, num_boost_round=40)
    other = train_window(rows, names, 0, 300 * DAY, seed=12, num_boost_round=40)
    assert first.model_text.encode() == again.model_text.encode()
    assert first.rows_hash == again.rows_hash
    assert other.model_text != first.model_text  # bagging draws from the seed


@pytest.mark.parametrize("thresholds", [(0.0,), (-0.01, 0.01)])
def test_a_classifier_is_byte_identical_per_seed_and_predicts_class_probabilities(
    thresholds: tuple[float, ...],
) -> None:
    label = LabelSpec(5, 1, thresholds)
    classes = classes_of("classification", label)
    assert classes == len(thresholds) + 1
    rows = design_rows(_bars(), SPECS, label)
    names = [feature_name(s) for s in SPECS]
    first = train_window(rows, names, 0, 300 * DAY, seed=11, num_boost_round=30, classes=classes)
    again = train_window(rows, names, 0, 300 * DAY, seed=11, num_boost_round=30, classes=classes)
    other = train_window(rows, names, 0, 300 * DAY, seed=12, num_boost_round=30, classes=classes)
    assert first.model_text.encode() == again.model_text.encode() != other.model_text.encode()
    assert first.params["objective"] == ("binary" if classes == 2 else "multiclass")
    test = rows.filter(pl.col("ts_ns") > 300 * DAY)
    x = test.select(names).to_numpy().astype(np.float64)
    proba = predict_proba(first.model_text, x, classes)
    assert proba.shape == (test.height, classes) and np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(predict_scores(first.model_text, x, classes), proba[:, -1] - proba[:, 0])
    # the in-sample metrics are the classifier's, and what it ranks by is compared with the return
    assert {"train_logloss", "train_accuracy", "train_ic"} <= set(first.metrics)
    assert 1.0 / classes - 0.1 < first.metrics["train_accuracy"] <= 1.0


def test_classification_needs_thresholds_and_a_known_task() -> None:
    with pytest.raises(ValueError, match="needs label thresholds"):
        classes_of("classification", LabelSpec(5, 1))
    with pytest.raises(ValueError, match="unknown task"):
        classes_of("ranking", LabelSpec(5, 1, (0.0,)))
    assert classes_of("regression", LabelSpec(5, 1, (0.0,))) == 0
    rows = design_rows(_bars(), SPECS, LabelSpec(5, 1))  # no thresholds: no label_class to learn
    with pytest.raises(ValueError, match="label_class"):
        train_window(rows, [feature_name(s) for s in SPECS], 0, 300 * DAY, num_boost_round=5, classes=2)


def test_walk_forward_trains_each_window_and_predicts_only_the_next() -> None:
    rows = design_rows(_bars(), SPECS, LabelSpec(5, 1))
    names = [feature_name(s) for s in SPECS]
    stamps = rows.get_column("ts_ns").unique().sort().to_list()
    windows = folds(stamps, 150, 50)
    assert len(windows) == (len(stamps) - 150) // 50
    results = walk_forward(rows, names, windows, num_boost_round=10)
    for result in results:
        assert result.fold.train[1] < result.fold.test[0]
        stamps_out = result.predictions.get_column("ts_ns").to_numpy()
        assert stamps_out.min() >= result.fold.test[0] and stamps_out.max() <= result.fold.test[1]
        assert result.test_rows == result.predictions.height > 0


def test_the_registry_stores_by_content_hash_and_refuses_changed_bytes(tmp_path: Path) -> None:
    meta = {"kind": "lightgbm", "features": [], "train_window": {"end_ts_ns": 5}}
    digest = register(tmp_path, "tree text\n", meta)
    assert register(tmp_path, "tree text\n", meta) == digest  # same content, same folder
    loaded = load(tmp_path, digest)
    assert loaded.model_text == "tree text\n" and loaded.meta == meta
    assert [a.hash for a in list_artifacts(tmp_path)] == [digest]
    (tmp_path / digest / "model.txt").write_text("tree text, edited\n")
    with pytest.raises(ArtifactError, match="hashes to"):
        load(tmp_path, digest)
    with pytest.raises(ArtifactError, match="no model artifact"):
        load(tmp_path, "0" * 32)


def test_a_missing_artifact_is_named_as_missing_not_as_a_missing_model_txt(tmp_path: Path) -> None:
    """A hash with no folder (or no registry) said '<registry>/<hash>/model.txt is missing', and a
    network whose model.bin was deleted was told its model.txt was missing."""
    with pytest.raises(ArtifactError, match=f"no model artifact {'0' * 32} under .*: no such folder$"):
        load(tmp_path, "0" * 32)
    with pytest.raises(ArtifactError, match=r"no model registry at .*nowhere$"):
        load(tmp_path / "nowhere", "0" * 32)
    digest = register(tmp_path, b"\x00" * 8, {"kind": "torch_mlp"})
    (tmp_path / digest / "model.bin").unlink()
    with pytest.raises(ArtifactError, match=r"its model file \(model.txt or model.bin\) is missing"):
        load(tmp_path, digest)


def test_tape_models_lists_the_registry_and_refuses_an_altered_artifact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    meta = {"kind": "lightgbm", "features": [{"name": "momentum"}], "label": {"horizon": 5, "gap": 1},
            "train_window": {"start": "2004-01-01", "end": "2009-12-31", "end_ts_ns": 1}, "rows": 10,
            "metrics": {"wf_mean_test_ic": 0.01}, "lake_content_hash": "ab" * 16}  # fmt: skip
    digest = register(tmp_path, "tree\n", {**meta, "rows": 1446})
    assert main(["models", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert digest in printed and "2004-01-01" in printed and "5/1" in printed
    assert "1,446" in printed and "+0.010" in printed  # as tape train prints them
    assert main(["models", str(tmp_path), "--csv", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["hash,train_start,train_end,horizon,gap,classes,rows,ic_out",
                     f"{digest},2004-01-01,2009-12-31,5,1,,1446,0.01"]  # fmt: skip
    (tmp_path / digest / "artifact.json").write_text("{}\n")
    assert main(["models", str(tmp_path)]) == 2
    shown = capsys.readouterr()
    assert "hashes to" in shown.out + shown.err


def test_tape_models_on_a_folder_that_is_not_a_registry_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tape models var/us`` (the folder above the registry) said 'no model artifact data
    under var/us: var/us/data/model.txt is missing', as though an artifact were damaged."""
    from cli.main import main

    register(tmp_path / "models-registry", "tree\n", {"kind": "lightgbm", "features": []})
    (tmp_path / "data").mkdir()
    assert main(["models", str(tmp_path)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert f"{tmp_path} is not a model registry: it holds data, models-registry, not only artifact" in out
    assert main(["models", str(tmp_path / "models-registry")]) == 0


def test_tape_models_at_60_columns_wraps_the_window_and_keeps_the_ic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 60 columns the table kept the hash and the one-line window and dropped h/gap, rows and
    the out-of-sample IC, the figure a model is chosen by. The window now wraps after its '..'
    (two whole dates) and the IC stays; the hash is never wrapped (it is copied whole)."""
    from cli.main import main
    from cli.progress import console

    meta = {"kind": "lightgbm", "features": [{"name": "momentum"}], "label": {"horizon": 5, "gap": 1},
            "train_window": {"start": "2004-01-01", "end": "2009-12-31", "end_ts_ns": 1}, "rows": 1446,
            "metrics": {"wf_mean_test_ic": 0.01}, "lake_content_hash": "ab" * 16}  # fmt: skip
    digest = register(tmp_path, "tree\n", meta)
    monkeypatch.setattr(console, "width", 60)
    assert main(["models", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 60
    row = next(i for i, line in enumerate(lines) if line.startswith(digest))
    assert lines[row].split() == [digest, "2004-01-01..", "+0.010"]
    assert lines[row + 1].split() == ["2009-12-31"]
    assert " ".join(" ".join(lines[row + 2 :]).split()).startswith("not shown at this width: h/gap, rows")
    monkeypatch.setattr(console, "width", 80)  # wide enough: every column, the window on one line
    assert main(["models", str(tmp_path)]) == 0
    assert f"{digest}  2004-01-01..2009-12-31  5/1    1,446  +0.010" in capsys.readouterr().out


def test_registering_journals_a_model_registered_event_to_the_sink(tmp_path: Path) -> None:
    from domain.events import ModelRegistered, decode_event, encode_event

    meta = {"kind": "lightgbm", "feature_names": ["a", "b"], "rows_hash": "cd" * 16,
            "lake_content_hash": "ab" * 16, "train_window": {"start_ts_ns": 3, "end_ts_ns": 9}}  # fmt: skip
    sink: list[ModelRegistered] = []
    digest = register(tmp_path, "tree text\n", meta, sink=sink)  # type: ignore[arg-type]
    register(tmp_path, "tree text\n", meta, sink=sink)  # type: ignore[arg-type]
    assert [(e.artifact, e.created) for e in sink] == [(digest, True), (digest, False)]
    event = sink[0]
    assert (event.ts_ns, event.train_start_ts_ns, event.train_end_ts_ns) == (9, 3, 9)
    assert (event.model_kind, event.model_file, event.model_bytes) == ("lightgbm", "model.txt", 10)
    assert event.feature_names == ["a", "b"] and event.rows_hash == "cd" * 16
    assert decode_event(encode_event(event)) == event  # a journal event like any other
    binary = register(tmp_path, b"\x00\x01weights", meta)
    assert load(tmp_path, binary).model_file == "model.bin" and binary != digest
    with pytest.raises(ArtifactError, match="not a text model"):
        _ = load(tmp_path, binary).model_text


def test_a_strategy_reporting_something_other_than_loaded_models_is_refused() -> None:
    from kernel.strategy import LoadedModel, strategy_models

    class Reports:
        def __init__(self, models: list[object]) -> None:
            self.models = models

        def loaded_models(self) -> list[object]:
            return self.models

    model = LoadedModel("ab" * 16, "lightgbm", "cd" * 16, 12)
    assert strategy_models(Reports([model])) == [model]
    assert strategy_models(object()) == []
    with pytest.raises(TypeError, match="LoadedModel"):
        strategy_models(Reports([("ab" * 16, "lightgbm")]))


def test_the_walk_forward_ranker_takes_honest_windows_and_refuses_leaks(tmp_path: Path) -> None:
    """Window artifacts (real LightGBM models on the seeded rows) whose ``walk_forward`` test
    windows follow their training windows are taken in order; a training window that reaches
    the trading window (by one bar or more), windows out of order or overlapping, and an
    artifact without a test window are refused when the strategy is built."""
    from models.ml.strategy import WalkForwardRanker

    rows = design_rows(_bars(), SPECS, LabelSpec(5, 1))
    names = [feature_name(s) for s in SPECS]

    def window(train: tuple[int, int], test: tuple[int, int] | None) -> str:
        model = train_window(rows, names, *train, num_boost_round=5)
        walk = {} if test is None else {"test_start_ts_ns": test[0], "test_end_ts_ns": test[1]}
        meta = {"format": 1, "kind": "lightgbm", "features": [spec_to_json(s) for s in SPECS],
                "feature_names": names, "walk_forward": walk,
                "train_window": {"start_ts_ns": train[0], "end_ts_ns": train[1]}}  # fmt: skip
        return register(tmp_path, model.model_text, meta)

    first = window((0, 150 * DAY), (151 * DAY, 200 * DAY))
    second = window((50 * DAY, 200 * DAY), (201 * DAY, 250 * DAY))
    ranker = WalkForwardRanker(artifact_dir=str(tmp_path), artifacts=[first, second], top_k=2)
    assert ranker.windows == [(151 * DAY, 200 * DAY), (201 * DAY, 250 * DAY)]
    for leak in (
        window((0, 160 * DAY), (151 * DAY, 200 * DAY)),
        window((0, 151 * DAY), (151 * DAY, 200 * DAY)),
    ):
        with pytest.raises(ArtifactError, match="overlaps its trading window"):
            WalkForwardRanker(artifact_dir=str(tmp_path), artifacts=[leak])
    with pytest.raises(ArtifactError, match="must be in order"):
        WalkForwardRanker(artifact_dir=str(tmp_path), artifacts=[second, first])
    overlapping = window((0, 180 * DAY), (190 * DAY, 230 * DAY))
    with pytest.raises(ArtifactError, match="must not overlap"):
        WalkForwardRanker(artifact_dir=str(tmp_path), artifacts=[first, overlapping])
    with pytest.raises(ArtifactError, match="names no out-of-sample window"):
        WalkForwardRanker(artifact_dir=str(tmp_path), artifacts=[window((0, 150 * DAY), None)])
    with pytest.raises(ArtifactError, match="non-empty list"):
        WalkForwardRanker(artifact_dir=str(tmp_path), artifacts=[])


def test_an_artifact_this_code_cannot_score_is_refused_when_the_strategy_is_built(tmp_path: Path) -> None:
    """A newer Tape's artifact format, a feature version this code does not compute, names that
    do not match the specs or the model, and model text LightGBM cannot read: each was taken
    when the strategy was built and failed in ``schedule`` as an internal error ('ValueError:
    feature ... has no version 9', 'LightGBMError: ...'), or (the format) was traded silently."""
    from models.ml.strategy import ModelRanker
    from models.plugins import PluginError, load_strategy

    rows = design_rows(_bars(), SPECS, LabelSpec(5, 1))
    names = [feature_name(s) for s in SPECS]
    model = train_window(rows, names, 0, 300 * DAY, num_boost_round=5).model_text
    good = {
        "format": 1,
        "kind": "lightgbm",
        "features": [spec_to_json(s) for s in SPECS],
        "feature_names": names,
    }
    ModelRanker(artifact_dir=str(tmp_path), artifact=register(tmp_path, model, good), top_k=2)
    future = [{**spec_to_json(SPECS[1]), "version": 9}]
    for meta, text, message in [
        ({**good, "format": 2}, model, "is of format 2; this Tape reads format 1"),
        ({**good, "features": [spec_to_json(SPECS[0]), *future, spec_to_json(SPECS[2])]}, model,
         r"its features cannot be computed here: feature volatility .* has no version 9"),
        ({**good, "features": [{"params": {}}]}, model, "its features cannot be computed here: no 'name'"),
        ({**good, "feature_names": names[:2]}, model, "names 2 features for its 3 feature specs"),
        ({**good, "features": good["features"][:2], "feature_names": names[:2]}, model,
         "its model takes 3 features, its metadata names 2"),
        (good, "tree\nversion=v9\n", "LightGBM cannot read its model.txt"),
    ]:  # fmt: skip
        digest = register(tmp_path, text, meta)
        with pytest.raises(ArtifactError, match=message):
            ModelRanker(artifact_dir=str(tmp_path), artifact=digest)
        with pytest.raises(
            PluginError, match=f"strategy models.ml.strategy:ModelRanker: model artifact {digest}"
        ):
            load_strategy(entry="models.ml.strategy:ModelRanker",
                          params={"artifact_dir": str(tmp_path), "artifact": digest})  # fmt: skip


def test_feature_names_are_unique_per_spec_and_old_names_still_score() -> None:
    low = FeatureSpec(
        "momentum", {"lookback": 10}, (("winsorise", {"low": 0.01, "high": 0.99}), ("rank", {}))
    )
    wide = FeatureSpec(
        "momentum", {"lookback": 10}, (("winsorise", {"low": 0.05, "high": 0.95}), ("rank", {}))
    )
    assert feature_name(low) != feature_name(wide)  # both were 'momentum{"lookback":10}|winsorise|rank'
    assert feature_name(low) == 'momentum{"lookback":10}|winsorise{"high":0.99,"low":0.01}|rank'
    # specs whose steps take no parameters keep the names registered artifacts hold
    assert feature_name(FeatureSpec("momentum", {"lookback": 60}, (("rank", {}), ("zscore", {})))) == (
        'momentum{"lookback":60}|rank|zscore'
    )
    assert feature_name(FeatureSpec("volatility", {"window": 20})) == 'volatility{"window":20}'
    bars = _bars()
    matrix = feature_matrix(bars, [low, wide])
    assert matrix.columns == ["ts_ns", "instrument_id", feature_name(low), feature_name(wide)]
    # an artifact trained before recorded the old name: the matrix is built with its names
    old = 'momentum{"lookback":10}|winsorise|rank'
    recorded = feature_matrix(bars, [low], names=[old])
    assert recorded.columns == ["ts_ns", "instrument_id", old]
    assert recorded[old].equals(matrix[feature_name(low)].alias(old))
    with pytest.raises(ValueError, match="one distinct column name per feature spec"):
        feature_matrix(bars, [low, wide], names=[old, old])


def test_the_rank_ic_gives_tied_predictions_their_mean_rank() -> None:
    """Ties were ranked by position, i.e. by the rows' (time, instrument) order: a constant
    prediction (a LightGBM that learnt nothing: min_data_in_leaf above the rows) scored the
    labels' drift through the window as its IC (on the US example, -0.37..+0.20 per window).
    Now tied values share their mean rank, as Spearman's correlation ranks them."""
    drift = np.linspace(-0.05, 0.05, 300) + np.random.default_rng(1).normal(0, 0.01, 300)
    assert rank_ic(np.full(300, 0.0186), drift) == 0.0
    # two tied groups: the IC is the Pearson correlation of the mean ranks, worked by hand
    prediction = np.array([1.0, 1.0, 2.0, 2.0, 2.0, 3.0])
    label = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.6])
    ranks_p, ranks_l = np.array([0.5, 0.5, 3.0, 3.0, 3.0, 5.0]), np.array([0.0, 2.0, 1.0, 4.0, 3.0, 5.0])
    assert rank_ic(prediction, label) == pytest.approx(float(np.corrcoef(ranks_p, ranks_l)[0, 1]), abs=1e-15)
    # without ties the ranks are the ordinal positions, as before: the same IC, bit for bit
    x, y = np.random.default_rng(2).normal(size=(2, 500))
    ordinal = [np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(np.float64) for v in (x, y)]
    assert rank_ic(x, y) == float(np.corrcoef(*ordinal)[0, 1])
