"""From lake to registered artifact in one call: features and labels on the lake's bars, a
deterministic fit on one training window — LightGBM, or the PyTorch network of
``models.ml.mlp`` (``learner="torch_mlp"``) — with walk-forward folds inside it for the
out-of-sample metrics, and the frozen artifact in the registry (journaled to ``sink`` when
one is given)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from lake.partitioned import Lake
from models.features.cross_section import FeatureSpec
from models.ml.features import feature_name, panel_frame, spec_to_json
from models.ml.labels import LabelSpec
from models.ml.registry import EventSink, register
from models.ml.train import Fold, FoldResult, TrainedModel, design_rows, folds, train_window, walk_forward

if TYPE_CHECKING:
    from models.ml.mlp import MlpConfig, TrainedNet

__all__ = ["LEARNERS", "train_and_register"]


def _day(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).date().isoformat()


LEARNERS = ("lightgbm", "torch_mlp")


def train_and_register(
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
    params: dict[str, Any] | None = None,
    num_boost_round: int = 200,
    mlp: MlpConfig | None = None,
    wf_train: int = 504,
    wf_test: int = 126,
    sink: EventSink | None = None,
) -> tuple[str, TrainedModel | TrainedNet]:
    """Train on the lake's ``frequency`` bars in [start_ts, end_ts] and register the model.

    ``learner`` is ``"lightgbm"`` (``params``, ``num_boost_round``) or ``"torch_mlp"``
    (``mlp``: a ``models.ml.mlp.MlpConfig``, default settings when None). Returns the hash
    and the trained model (``TrainedModel`` or ``TrainedNet``)."""
    if learner not in LEARNERS:
        raise ValueError(f"unknown learner {learner!r}: one of {', '.join(LEARNERS)}")
    bars = panel_frame(lake.panel(frequency, end_ns=end_ts))
    rows = design_rows(bars, specs, label)
    names = [feature_name(s) for s in specs]
    window_stamps = rows.filter(rows["ts_ns"] >= start_ts).get_column("ts_ns").unique().sort().to_list()
    windows = folds(window_stamps, wf_train, wf_test)
    if learner == "lightgbm":
        booster, results, model_meta = _lightgbm(rows, names, start_ts, end_ts, windows, seed, params,
                                                 num_boost_round)  # fmt: skip
        model: TrainedModel | TrainedNet = booster
        payload: str | bytes = booster.model_text
    else:
        net, results, model_meta = _torch_mlp(rows, names, start_ts, end_ts, windows, seed, mlp)
        model, payload = net, net.weights
    wf_ic = float(np.mean([r.test_ic for r in results])) if results else 0.0
    metrics = {**model.metrics, "wf_folds": float(len(results)), "wf_mean_test_ic": wf_ic}
    window = {"start_ts_ns": start_ts, "end_ts_ns": end_ts, "start": _day(start_ts), "end": _day(end_ts),
              "embargo": "labels end by end_ts_ns"}  # fmt: skip
    wf_folds = [
        {"train": [_day(r.fold.train[0]), _day(r.fold.train[1])],
         "test": [_day(r.fold.test[0]), _day(r.fold.test[1])], "test_ic": r.test_ic, "test_rows": r.test_rows}
        for r in results
    ]  # fmt: skip
    meta = {
        "format": 1,
        "kind": learner,
        **model_meta,
        "frequency": frequency,
        "features": [spec_to_json(s) for s in specs],
        "feature_names": names,
        "label": label.to_json(),
        "train_window": window,
        "lake_content_hash": lake.content_hash,
        "instruments": sorted(i.symbol for i in lake.instruments()),
        "rows": model.rows,
        "rows_hash": model.rows_hash,
        "walk_forward": {"train_bars": wf_train, "test_bars": wf_test, "folds": wf_folds},
        "metrics": metrics,
    }
    return register(registry, payload, meta, sink=sink), model


def _lightgbm(
    rows: pl.DataFrame,
    names: list[str],
    start_ts: int,
    end_ts: int,
    windows: list[Fold],
    seed: int,
    params: dict[str, Any] | None,
    num_boost_round: int,
) -> tuple[TrainedModel, list[FoldResult], dict[str, Any]]:
    import lightgbm as lgb

    model = train_window(rows, names, start_ts, end_ts, seed=seed, params=params,
                         num_boost_round=num_boost_round)  # fmt: skip
    results = walk_forward(rows, names, windows, seed=seed, params=params, num_boost_round=num_boost_round)
    meta = {"lightgbm_version": lgb.__version__, "params": model.params, "num_boost_round": num_boost_round}
    return model, results, meta


def _torch_mlp(
    rows: pl.DataFrame,
    names: list[str],
    start_ts: int,
    end_ts: int,
    windows: list[Fold],
    seed: int,
    config: MlpConfig | None,
) -> tuple[TrainedNet, list[FoldResult], dict[str, Any]]:
    from models.ml.mlp import train_window_mlp, walk_forward_mlp  # the ml extra's torch

    net = train_window_mlp(rows, names, start_ts, end_ts, seed=seed, config=config)
    results = walk_forward_mlp(rows, names, windows, seed=seed, config=config)
    return net, results, net.meta()
