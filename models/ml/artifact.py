"""From lake to registered artifact in one call: features and labels on the lake's bars, a
deterministic LightGBM fit on one training window (walk-forward folds inside it for the
out-of-sample metrics), and the frozen artifact in the registry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from lake.partitioned import Lake
from models.features.cross_section import FeatureSpec
from models.ml.features import feature_name, panel_frame, spec_to_json
from models.ml.labels import LabelSpec
from models.ml.registry import register
from models.ml.train import TrainedModel, design_rows, folds, train_window, walk_forward

__all__ = ["train_and_register"]


def _day(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).date().isoformat()


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
    params: dict[str, Any] | None = None,
    num_boost_round: int = 200,
    wf_train: int = 504,
    wf_test: int = 126,
) -> tuple[str, TrainedModel]:
    """Train on the lake's ``frequency`` bars in [start_ts, end_ts] and register the model."""
    bars = panel_frame(lake.panel(frequency, end_ns=end_ts))
    rows = design_rows(bars, specs, label)
    names = [feature_name(s) for s in specs]
    model = train_window(
        rows, names, start_ts, end_ts, seed=seed, params=params, num_boost_round=num_boost_round
    )
    window_stamps = rows.filter(rows["ts_ns"] >= start_ts).get_column("ts_ns").unique().sort().to_list()
    results = walk_forward(
        rows, names, folds(window_stamps, wf_train, wf_test), seed=seed, params=params,
        num_boost_round=num_boost_round,
    )  # fmt: skip
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
        "kind": "lightgbm",
        "lightgbm_version": lgb.__version__,
        "frequency": frequency,
        "features": [spec_to_json(s) for s in specs],
        "feature_names": names,
        "label": label.to_json(),
        "train_window": window,
        "lake_content_hash": lake.content_hash,
        "instruments": sorted(i.symbol for i in lake.instruments()),
        "rows": model.rows,
        "rows_hash": model.rows_hash,
        "params": model.params,
        "num_boost_round": num_boost_round,
        "walk_forward": {"train_bars": wf_train, "test_bars": wf_test, "folds": wf_folds},
        "metrics": metrics,
    }
    return register(registry, model.model_text, meta), model
