"""From lake to registered artifact in one call: features and labels on the lake's bars, a
deterministic fit on one training window — LightGBM, or the PyTorch network of
``models.ml.mlp`` (``learner="torch_mlp"``) — with walk-forward folds inside it for the
out-of-sample metrics, and the frozen artifact in the registry (journaled to ``sink`` when
one is given). ``train_walk_forward`` also keeps, and can register, each fold's model
(``tape train``, ``cli/train_cmd.py``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import numpy as np
import numpy.typing as npt
import polars as pl

from lake.partitioned import Lake
from models.features.cross_section import FeatureSpec
from models.ml.features import feature_name, panel_frame, spec_to_json
from models.ml.labels import LabelSpec
from models.ml.registry import EventSink, register
from models.ml.train import (
    Fold,
    FoldResult,
    TrainedModel,
    classes_of,
    design_rows,
    folds,
    predict_scores,
    train_window,
    walk_forward_with,
)

if TYPE_CHECKING:
    from models.ml.mlp import MlpConfig, TrainedNet

__all__ = [
    "LEARNERS",
    "FoldModel",
    "Progress",
    "TrainOptions",
    "TrainRun",
    "train_and_register",
    "train_walk_forward",
]


def _day(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).date().isoformat()


LEARNERS = ("lightgbm", "torch_mlp")

Progress = Callable[[int, int], None]
"""``progress(done, total)``: steps of a training run done (each feature, each fold, the final fit)."""


@dataclass(frozen=True)
class FoldModel:
    """One walk-forward window: its out-of-sample result, the model trained on its training
    window, and that model's artifact hash when the run registered the folds."""

    result: FoldResult
    model: TrainedModel | TrainedNet
    artifact: str | None


@dataclass(frozen=True)
class TrainRun:
    """A training run: the final model (trained on the whole window) and its artifact, and
    every walk-forward window inside it."""

    artifact: str
    model: TrainedModel | TrainedNet
    folds: list[FoldModel]
    meta: dict[str, Any]


class TrainOptions(TypedDict, total=False):
    """``train_and_register``'s keyword settings: those of ``train_walk_forward`` (which
    documents them and holds their defaults)."""

    frequency: str
    seed: int
    learner: str
    task: str
    params: dict[str, Any] | None
    num_boost_round: int
    mlp: MlpConfig | None
    wf_train: int
    wf_test: int
    sink: EventSink | None


def train_and_register(
    lake: Lake,
    registry: Path,
    specs: Sequence[FeatureSpec],
    label: LabelSpec,
    start_ts: int,
    end_ts: int,
    **options: Unpack[TrainOptions],
) -> tuple[str, TrainedModel | TrainedNet]:
    """Train on the lake's bars in [start_ts, end_ts] and register the model: the final model
    of ``train_walk_forward`` with the same settings. Returns the hash and the trained model
    (``TrainedModel`` or ``TrainedNet``)."""
    run = train_walk_forward(lake, registry, specs, label, start_ts, end_ts, **options)
    return run.artifact, run.model


def train_walk_forward(
    lake: Lake,
    registry: Path,
    specs: Sequence[FeatureSpec],
    label: LabelSpec,
    start_ts: int,
    end_ts: int,
    *,
    frequency: str = "1d",
    seed: int = 7,
    learner: str = "lightgbm",
    task: str = "regression",
    params: dict[str, Any] | None = None,
    num_boost_round: int = 200,
    mlp: MlpConfig | None = None,
    wf_train: int = 504,
    wf_test: int = 126,
    wf_step: int | None = None,
    register_folds: bool = False,
    sink: EventSink | None = None,
    progress: Progress | None = None,
    require_folds: bool = False,
) -> TrainRun:
    """Train on the lake's ``frequency`` bars in [start_ts, end_ts] walk-forward, and register
    the final model (trained on the whole window) as an artifact.

    ``learner`` is ``"lightgbm"`` (``params``, ``num_boost_round``) or ``"torch_mlp"``
    (``mlp``: a ``models.ml.mlp.MlpConfig``, default settings when None); ``task`` is
    ``"regression"`` (the forward return) or ``"classification"`` (``label_class`` from the
    label's thresholds: two classes up/down, three or more with a dead zone; predictions are
    class probabilities, ranked by ``P(top) - P(bottom)``). Each walk-forward window's model is
    kept and, with ``register_folds``, registered as an artifact of its own (its training
    window the fold's, its ``walk_forward`` the fold and its out-of-sample test window and rank
    IC) before the final model. ``wf_step`` moves each fold (default ``wf_test``).
    ``progress(done, total)`` is called before the lake is read (0 done), after each feature
    (each is computed and checked causal: most of the time before the first fit on a wide
    panel), after each fold and after the final fit; the total (features + folds + 1) is known
    once the features are. With ``require_folds``, a window that holds no walk-forward fold is refused
    (``ValueError``)."""
    if learner not in LEARNERS:
        raise ValueError(f"unknown learner {learner!r}: one of {', '.join(LEARNERS)}")
    classes = classes_of(task, label)
    features = len(specs)
    if progress is not None:  # drawn now: the lake read and the features come before the first fit
        progress(0, features + 2)
    bars = panel_frame(lake.panel(frequency, end_ns=end_ts))
    rows = design_rows(bars, specs, label, on_feature=lambda done: _report(progress, done, features + 2))
    names = [feature_name(s) for s in specs]
    window_stamps = rows.filter(rows["ts_ns"] >= start_ts).get_column("ts_ns").unique().sort().to_list()
    windows = folds(window_stamps, wf_train, wf_test, wf_step)
    if not window_stamps:  # say why: no bars, none in the window, or a label longer than the data
        raise ValueError(_no_rows_reason(bars, frequency, label, start_ts, end_ts))
    if require_folds and not windows:
        raise ValueError(
            f"0 walk-forward windows: the training window holds {len(window_stamps)} labelled bars, fewer "
            f"than {wf_train} training + {wf_test} test bars"
        )
    total = features + len(windows) + 1  # each feature, each window, the final model
    _report(progress, features, total)
    fitted: list[TrainedModel | TrainedNet] = []

    def fit(fold: Fold) -> tuple[int, Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]]:
        model, predict_rows = _fit(
            learner, rows, names, fold.train, seed, params, num_boost_round, mlp, classes
        )
        fitted.append(model)
        _report(progress, features + len(fitted), total)
        return model.rows, predict_rows

    results = walk_forward_with(rows, names, windows, fit)
    model, _ = _fit(learner, rows, names, (start_ts, end_ts), seed, params, num_boost_round, mlp, classes)
    wf_ic = float(np.mean([r.test_ic for r in results])) if results else 0.0
    metrics = {**model.metrics, "wf_folds": float(len(results)), "wf_mean_test_ic": wf_ic}
    wf_folds = [
        {"train": [_day(r.fold.train[0]), _day(r.fold.train[1])],
         "test": [_day(r.fold.test[0]), _day(r.fold.test[1])], "test_ic": r.test_ic, "test_rows": r.test_rows}
        for r in results
    ]  # fmt: skip
    walk = {"train_bars": wf_train, "test_bars": wf_test}
    if wf_step is not None:  # only when asked: artifacts trained before the setting keep their bytes
        walk["step_bars"] = wf_step
    common = {
        "frequency": frequency,
        "features": [spec_to_json(s) for s in specs],
        "feature_names": names,
        "label": label.to_json(),
        **({"task": task, "classes": classes} if classes else {}),  # a regressor's meta as before
    }
    data = {
        "lake_content_hash": lake.content_hash,
        "instruments": sorted(i.symbol for i in lake.instruments()),
    }

    def artifact_meta(trained: TrainedModel | TrainedNet, walk_forward: dict[str, Any],
                      metrics: dict[str, float]) -> dict[str, Any]:  # fmt: skip
        return {"format": 1, "kind": learner, **_model_meta(trained, num_boost_round), **common,
                "train_window": _window(trained.start_ts, trained.end_ts), **data, "rows": trained.rows,
                "rows_hash": trained.rows_hash, "walk_forward": walk_forward, "metrics": metrics}  # fmt: skip

    fold_models = [
        FoldModel(result, fold_model, None)
        if not register_folds
        else _register_fold(registry, result, fold_model, len(results), walk, artifact_meta, sink)
        for result, fold_model in zip(results, fitted, strict=True)
    ]
    meta = artifact_meta(model, {**walk, "folds": wf_folds}, metrics)
    digest = register(registry, _payload(model), meta, sink=sink)
    if progress is not None:
        progress(total, total)
    return TrainRun(digest, model, fold_models, meta)


def _report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def _no_rows_reason(bars: pl.DataFrame, frequency: str, label: LabelSpec, start_ts: int, end_ts: int) -> str:
    """Why the training window ``start_ts..end_ts`` holds no labelled row (``bars``: the lake's
    bars up to ``end_ts``): the lake has no bars at ``frequency``, none in the window, the
    label's ``gap + horizon`` bars are more than any instrument's bars, or the features never
    warm up where a label exists."""
    window = f"{_day(start_ts)}..{_day(end_ts)}"
    if bars.height == 0:
        return f"no labelled rows: the lake has no {frequency} bars up to {_day(end_ts)}"
    inside = bars.filter(pl.col("ts_ns") >= start_ts)
    first, last = _day(int(bars["ts_ns"].min())), _day(int(bars["ts_ns"].max()))  # type: ignore[arg-type]
    if inside.height == 0:
        return (f"no labelled rows: the lake has no {frequency} bars in the training window {window} "
                f"(its bars up to the window's end: {first}..{last})")  # fmt: skip
    most = int(bars.group_by("instrument_id").len().get_column("len").max())  # type: ignore[arg-type]
    need = label.gap + label.horizon
    if most <= need:
        return (f"no labelled rows: the label needs gap {label.gap} + horizon {label.horizon} = {need} later "
                f"bars, but no instrument has more than {most} {frequency} bars up to {_day(end_ts)} "
                f"({first}..{last}): the horizon is longer than the data")  # fmt: skip
    most_inside = int(inside.group_by("instrument_id").len().get_column("len").max())  # type: ignore[arg-type]
    if most_inside <= need:
        return (f"no labelled rows: the training window {window} holds at most {most_inside} "
                f"{frequency} bars of an instrument, and a label ends gap {label.gap} + horizon "
                f"{label.horizon} = {need} bars after its feature bar, inside the window")  # fmt: skip
    return (f"no labelled rows in the training window {window}: every row there lacks a label (the last "
            f"{need} bars of each instrument) or a finite feature (features still warming up)")  # fmt: skip


def _register_fold(
    registry: Path,
    result: FoldResult,
    model: TrainedModel | TrainedNet,
    of: int,
    walk: dict[str, Any],
    artifact_meta: Callable[[TrainedModel | TrainedNet, dict[str, Any], dict[str, float]], dict[str, Any]],
    sink: EventSink | None,
) -> FoldModel:
    """Register one walk-forward window's model: its ``walk_forward`` names the fold and its
    out-of-sample test window (dates and ns) and rank IC."""
    fold = result.fold
    fold_walk = {**walk, "fold": fold.index, "of": of, "test": [_day(fold.test[0]), _day(fold.test[1])],
                 "test_start_ts_ns": fold.test[0], "test_end_ts_ns": fold.test[1],
                 "test_ic": result.test_ic, "test_rows": result.test_rows}  # fmt: skip
    metrics = {**model.metrics, "test_ic": result.test_ic, "test_rows": float(result.test_rows)}
    digest = register(registry, _payload(model), artifact_meta(model, fold_walk, metrics), sink=sink)
    return FoldModel(result, model, digest)


def _window(start_ts: int, end_ts: int) -> dict[str, Any]:
    return {"start_ts_ns": start_ts, "end_ts_ns": end_ts, "start": _day(start_ts), "end": _day(end_ts),
            "embargo": "labels end by end_ts_ns"}  # fmt: skip


def _payload(model: TrainedModel | TrainedNet) -> str | bytes:
    return model.model_text if isinstance(model, TrainedModel) else model.weights


def _model_meta(model: TrainedModel | TrainedNet, num_boost_round: int) -> dict[str, Any]:
    if isinstance(model, TrainedModel):
        import lightgbm as lgb

        return {
            "lightgbm_version": lgb.__version__,
            "params": model.params,
            "num_boost_round": num_boost_round,
        }
    return model.meta()


def _fit(
    learner: str,
    rows: pl.DataFrame,
    names: list[str],
    window: tuple[int, int],
    seed: int,
    params: dict[str, Any] | None,
    num_boost_round: int,
    mlp: MlpConfig | None,
    classes: int,
) -> tuple[TrainedModel | TrainedNet, Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]]:
    """One deterministic fit on ``window`` (embargoed) and the fitted model's predict (a
    classifier's: its class score)."""
    if learner == "lightgbm":
        booster = train_window(
            rows, names, *window, seed=seed, params=params, num_boost_round=num_boost_round, classes=classes
        )
        return booster, lambda x: predict_scores(booster.model_text, x, classes)
    from models.ml.mlp import predict_mlp, train_window_mlp  # the ml extra's torch

    net = train_window_mlp(rows, names, *window, seed=seed, config=mlp, classes=classes)
    net_meta = net.meta()
    return net, lambda x: predict_mlp(net.weights, net_meta, x)
