"""LightGBM regressors and classifiers on lake features, trained with deterministic settings,
and walk-forward.

Classification (``classes`` > 0): the label is ``label_class`` (how many of the label spec's
thresholds the forward return exceeds, 0 .. classes-1), the objective ``binary`` for two
classes and ``multiclass`` otherwise; the model predicts class probabilities
(``predict_proba``), and its *score* — what strategies rank by and what the walk-forward rank
IC is computed on — is ``P(highest class) - P(lowest class)`` (``class_score``).

Determinism: one thread, LightGBM's ``deterministic`` and ``force_row_wise`` modes and every
seed set from one ``seed``; rows in (ts_ns, instrument_id) order. The same rows and seed give a
byte-identical model text on one machine (tests/unit/models/test_ml.py checks it).

Embargo: a window trains only on rows whose label *ends* at or before the window's last bar,
so no training label reads a price the next window trades on; ``check_labels`` verifies it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from models.features.cross_section import FeatureSpec
from models.ml.features import feature_matrix, feature_name
from models.ml.labels import LabelSpec, check_labels, forward_returns

__all__ = [
    "DEFAULT_PARAMS",
    "TASKS",
    "Fold",
    "FoldResult",
    "TrainedModel",
    "average_ranks",
    "class_labels",
    "check_params",
    "class_score",
    "classes_of",
    "classification_metrics",
    "design_rows",
    "folds",
    "feature_array",
    "model_features",
    "predict",
    "predict_proba",
    "predict_scores",
    "rank_ic",
    "rows_hash",
    "train_window",
    "walk_forward",
    "walk_forward_with",
    "window_rows",
]

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
}


TASKS = ("regression", "classification")


def classes_of(task: str, label: LabelSpec) -> int:
    """How many classes ``task`` trains on ``label``: 0 for regression; for classification one
    more than the label's thresholds (a classifier needs at least one threshold)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: one of {', '.join(TASKS)}")
    if task == "regression":
        return 0
    if not label.thresholds:
        raise ValueError(
            "classification needs label thresholds (e.g. thresholds = [0.0] for up/down, "
            "[-0.02, 0.02] for three classes with a dead zone)"
        )
    return len(label.thresholds) + 1


def check_params(params: dict[str, Any], num_boost_round: int = 1) -> None:
    """Raise ``ValueError`` naming the problem unless LightGBM takes these settings (over
    ``DEFAULT_PARAMS``) and ``num_boost_round``: what ``lightgbm.train`` would refuse part-way
    into training (``learning_rate = "fast"``: "Unknown token fast") is refused before it."""
    import lightgbm as lgb

    if num_boost_round < 1:
        raise ValueError(f"num_boost_round must be at least 1, got {num_boost_round}")
    rows = np.arange(8, dtype=np.float64).reshape(8, 1)
    settings = _deterministic(params, 0)
    try:
        lgb.Booster(params=settings, train_set=lgb.Dataset(rows, label=rows[:, 0], params=settings))
    except (lgb.basic.LightGBMError, TypeError, ValueError) as error:
        raise ValueError(f"LightGBM refuses params {params}: {' '.join(str(error).split())}") from None


def _deterministic(params: dict[str, Any], seed: int, classes: int = 0) -> dict[str, Any]:
    task: dict[str, Any] = {}
    if classes == 2:
        task = {"objective": "binary"}
    elif classes > 2:
        task = {"objective": "multiclass", "num_class": classes}
    return {**DEFAULT_PARAMS, **params, **task, "num_threads": 1, "deterministic": True,
            "force_row_wise": True, "seed": seed, "verbose": -1}  # fmt: skip


def design_rows(
    bars: pl.DataFrame,
    specs: Sequence[FeatureSpec],
    label: LabelSpec,
    *,
    on_feature: Callable[[int], None] | None = None,
) -> pl.DataFrame:
    """Features (checked causal) joined with their labels (checked at their gap and horizon):
    ``ts_ns, instrument_id``, one column per feature, ``label, label_start_ts, label_end_ts``;
    only rows where every feature is finite and the label exists. ``on_feature(done)``: after
    each feature."""
    features = feature_matrix(bars, specs, on_feature=on_feature)
    labels = forward_returns(bars, label)
    check_labels(labels, bars, label)
    rows = features.join(labels, on=["ts_ns", "instrument_id"], how="inner")
    names = [feature_name(s) for s in specs]
    finite = pl.all_horizontal([pl.col(n).is_not_null() & pl.col(n).is_finite() for n in names])
    return rows.filter(finite).sort(["ts_ns", "instrument_id"])


def rows_hash(rows: pl.DataFrame) -> str:
    """blake2b of the rows' columns (names and values, in order): the training set's identity."""
    digest = hashlib.blake2b(digest_size=16)
    for name in rows.columns:
        digest.update(name.encode() + b"\0")
        digest.update(np.ascontiguousarray(rows.get_column(name).to_numpy()).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class TrainedModel:
    model_text: str
    features: tuple[str, ...]
    start_ts: int
    end_ts: int
    rows: int
    rows_hash: str
    params: dict[str, Any]
    num_boost_round: int
    metrics: dict[str, float] = field(default_factory=dict)
    classes: int = 0  # 0: a regressor; otherwise a classifier over label_class 0 .. classes-1


def window_rows(rows: pl.DataFrame, start_ts: int, end_ts: int) -> pl.DataFrame:
    """Rows whose feature bar is in [start, end] and whose label ends by ``end`` (the embargo)."""
    return rows.filter(
        (pl.col("ts_ns") >= start_ts) & (pl.col("ts_ns") <= end_ts) & (pl.col("label_end_ts") <= end_ts)
    )


def feature_array(rows: pl.DataFrame, names: Sequence[str]) -> npt.NDArray[np.float64]:
    return rows.select(names).to_numpy().astype(np.float64)


def train_window(
    rows: pl.DataFrame,
    features: Sequence[str],
    start_ts: int,
    end_ts: int,
    *,
    seed: int = 7,
    params: dict[str, Any] | None = None,
    num_boost_round: int = 200,
    classes: int = 0,
) -> TrainedModel:
    """Train on ``design_rows`` rows in [start_ts, end_ts], labels embargoed at end_ts; with
    ``classes`` > 0 a classifier on ``label_class`` (the rows need the label's thresholds)."""
    window = window_rows(rows, start_ts, end_ts)
    if window.height == 0:
        raise ValueError(f"no labelled rows in the training window {start_ts}..{end_ts}")
    if window.filter(pl.col("label_end_ts") > end_ts).height:  # the embargo, stated once more
        raise AssertionError("a training label extends past the window")
    import lightgbm as lgb  # the ml extra; imported where used so the torch path does not need it

    settings = _deterministic(params or {}, seed, classes)
    x, y = feature_array(window, features), window.get_column("label").to_numpy().astype(np.float64)
    target = class_labels(window, classes) if classes else y
    data = lgb.Dataset(x, label=target, feature_name=[f"f{i}" for i in range(len(features))],
                       params={"verbose": -1}, free_raw_data=False)  # fmt: skip
    booster = lgb.train(settings, data, num_boost_round=num_boost_round)
    text = booster.model_to_string(num_iteration=-1)
    if classes:
        proba = predict_proba(text, x, classes)
        metrics = {"train_rows": float(window.height), "train_ic": rank_ic(class_score(proba), y),
                   **classification_metrics(proba, target)}  # fmt: skip
    else:
        fitted = predict(text, x)
        metrics = {"train_rows": float(window.height), "train_ic": rank_ic(fitted, y),
                   "train_rmse": float(np.sqrt(np.mean((fitted - y) ** 2)))}  # fmt: skip
    return TrainedModel(text, tuple(features), start_ts, end_ts, window.height, rows_hash(window),
                        settings, num_boost_round, metrics, classes)  # fmt: skip


def class_labels(window: pl.DataFrame, classes: int) -> npt.NDArray[np.float64]:
    """The window's ``label_class`` column (0 .. classes-1), checked."""
    if "label_class" not in window.columns:
        raise ValueError("classification needs rows labelled with thresholds (no label_class column)")
    target = window.get_column("label_class").to_numpy().astype(np.float64)
    if target.size and (target.min() < 0 or target.max() >= classes):
        raise ValueError(f"label_class outside 0..{classes - 1}: the label has other thresholds")
    return target


def classification_metrics(
    proba: npt.NDArray[np.float64], target: npt.NDArray[np.float64]
) -> dict[str, float]:
    """In-sample log loss and accuracy of class probabilities ``proba`` (rows, classes)."""
    index = target.astype(np.int64)
    picked = np.clip(proba[np.arange(index.size), index], 1e-15, 1.0)
    return {"train_logloss": float(-np.mean(np.log(picked))),
            "train_accuracy": float(np.mean(np.argmax(proba, axis=1) == index))}  # fmt: skip


def class_score(proba: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """What a classifier's rows rank by: P(highest class) - P(lowest class), in [-1, 1]."""
    return np.asarray(proba[:, -1] - proba[:, 0], dtype=np.float64)


def model_features(model_text: str) -> int:
    """How many feature columns a LightGBM model text takes (LightGBM's error if it cannot read it)."""
    import lightgbm as lgb

    return int(lgb.Booster(model_str=model_text).num_feature())


def predict(model_text: str, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The model's predictions, single-threaded (row order does not change any value)."""
    import lightgbm as lgb

    booster = lgb.Booster(model_str=model_text)
    if x.shape[0] == 0:
        return np.zeros(0)
    return np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)


def predict_proba(model_text: str, x: npt.NDArray[np.float64], classes: int) -> npt.NDArray[np.float64]:
    """A LightGBM classifier's class probabilities, (rows, classes), single-threaded."""
    raw = predict(model_text, x)
    if classes == 2:
        return np.column_stack([1.0 - raw, raw]) if raw.size else np.zeros((0, 2))
    return raw.reshape(x.shape[0], classes)


def predict_scores(model_text: str, x: npt.NDArray[np.float64], classes: int = 0) -> npt.NDArray[np.float64]:
    """What a strategy ranks by: a regressor's prediction, or a classifier's ``class_score``."""
    return class_score(predict_proba(model_text, x, classes)) if classes else predict(model_text, x)


def average_ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """0-based ranks, tied values sharing the mean of their positions (Spearman's ranks): where
    no value ties, the ordinal positions 0 .. n-1 exactly."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks


def rank_ic(prediction: npt.NDArray[np.float64], label: npt.NDArray[np.float64]) -> float:
    """Spearman correlation of prediction and label (tied values share their mean rank); 0 if
    degenerate. Ties were ranked by position once, i.e. by the rows' (time, instrument) order:
    a constant prediction scored the labels' drift over the window as its IC."""
    if prediction.size < 3:
        return 0.0
    a, b = average_ranks(np.asarray(prediction)), average_ranks(np.asarray(label))
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[int, int]  # first and last ts_ns of the training window
    test: tuple[int, int]


def folds(stamps: Sequence[int], train: int, test: int, step: int | None = None) -> list[Fold]:
    """Rolling windows over the distinct bar timestamps, as ``tape walkforward`` cuts sessions:
    ``train`` bars, then the next ``test`` bars; each fold moves ``step`` (default ``test``)."""
    step = step or test
    if train < 1 or test < 1 or step < 1:
        raise ValueError("walk-forward: train, test and step must be positive")
    out: list[Fold] = []
    start = 0
    while start + train + test - 1 < len(stamps):
        last = start + train - 1
        out.append(Fold(len(out), (stamps[start], stamps[last]), (stamps[last + 1], stamps[last + test])))
        start += step
    return out


@dataclass(frozen=True)
class FoldResult:
    fold: Fold
    train_rows: int
    test_rows: int
    test_ic: float
    predictions: pl.DataFrame  # ts_ns, instrument_id, prediction, label over the test window


def walk_forward(
    rows: pl.DataFrame,
    features: Sequence[str],
    windows: Sequence[Fold],
    *,
    seed: int = 7,
    params: dict[str, Any] | None = None,
    num_boost_round: int = 200,
    classes: int = 0,
) -> list[FoldResult]:
    """Train LightGBM on each fold's window (embargoed) and predict its test window, out of
    sample (a classifier's predictions: its ``class_score``)."""

    def fit(fold: Fold) -> tuple[int, Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]]:
        model = train_window(rows, features, *fold.train, seed=seed, params=params,
                             num_boost_round=num_boost_round, classes=classes)  # fmt: skip
        return model.rows, lambda x: predict_scores(model.model_text, x, classes)

    return walk_forward_with(rows, features, windows, fit)


FitFold = Callable[[Fold], tuple[int, Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]]]
"""Trains one fold's window; returns its training rows and the fitted model's predict."""


def walk_forward_with(
    rows: pl.DataFrame, features: Sequence[str], windows: Sequence[Fold], fit: FitFold
) -> list[FoldResult]:
    """Any learner walk-forward: ``fit`` each fold's (embargoed) window, predict its test window."""
    results = []
    for fold in windows:
        train_rows, model_predict = fit(fold)
        test = rows.filter((pl.col("ts_ns") >= fold.test[0]) & (pl.col("ts_ns") <= fold.test[1]))
        prediction = model_predict(feature_array(test, features))
        label = test.get_column("label").to_numpy().astype(np.float64)
        frame = test.select("ts_ns", "instrument_id", "label").with_columns(
            pl.Series("prediction", prediction)
        )
        results.append(FoldResult(fold, train_rows, test.height, rank_ic(prediction, label), frame))
    return results
