"""One feature computation for training and for the strategy: the kernel's panel (or the lake's
bars, pivoted to one) as a long Polars frame, then ``models.features.cross_section`` feature
specs, so a model sees in a backtest exactly the floats it was trained on."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from domain.market import Panel
from models.features.cross_section import FeatureSpec, check_causal

__all__ = ["feature_matrix", "feature_name", "panel_frame", "spec_from_json", "spec_to_json"]


def panel_frame(panel: Panel) -> pl.DataFrame:
    """One row per (ts_ns, instrument_id) where the panel has a bar, sorted that way, with the
    raw integer ``open high low close volume`` (as the lake stores them)."""
    rows, cols = np.nonzero(panel.valid)
    ids = np.array([inst.instrument_id for inst in panel.instruments], dtype=np.int64)
    data: dict[str, Any] = {"ts_ns": panel.ts_ns[rows].astype(np.int64), "instrument_id": ids[cols]}
    for name in ("open", "high", "low", "close", "volume"):
        data[name] = getattr(panel, name)[rows, cols].astype(np.int64)
    return pl.DataFrame(data).sort(["ts_ns", "instrument_id"])


def spec_to_json(spec: FeatureSpec) -> dict[str, Any]:
    """The spec as an artifact records it, with the version of its definition computed."""
    return {"name": spec.name, "params": spec.params, "steps": [[op, params] for op, params in spec.steps],
            "version": spec.resolved_version}  # fmt: skip


def spec_from_json(data: dict[str, Any]) -> FeatureSpec:
    """The spec an artifact recorded, at the version it was trained with (1 for an artifact
    written before features had versions)."""
    steps = tuple((str(op), dict(params)) for op, params in data.get("steps", []))
    return FeatureSpec(str(data["name"]), dict(data.get("params", {})), steps, int(data.get("version", 1)))


def _text(name: str, params: dict[str, Any]) -> str:
    return name + (json.dumps(params, sort_keys=True, separators=(",", ":")) if params else "")


def feature_name(spec: FeatureSpec) -> str:
    """A column name that states the definition, unique per distinct spec:
    ``momentum{"lookback":60}|winsorise{"high":0.99,"low":0.01}|rank``. A step without
    parameters is its operator alone, as names have always been written (``|rank``), so the
    names of specs whose steps take none are the names registered artifacts hold."""
    text = spec.name + json.dumps(spec.params, sort_keys=True, separators=(",", ":"))
    return "|".join([text, *(_text(op, params) for op, params in spec.steps)])


def feature_matrix(
    frame: pl.DataFrame,
    specs: Sequence[FeatureSpec],
    *,
    check: bool = True,
    names: Sequence[str] | None = None,
    on_feature: Callable[[int], None] | None = None,
) -> pl.DataFrame:
    """``ts_ns, instrument_id`` and one float column per spec (named by ``feature_name``, or
    ``names`` in spec order: an artifact's recorded ``feature_names``), for every row of
    ``frame``; null or NaN where a feature is still warming up. With ``check``, each spec is
    first run through ``check_causal`` at its default cuts (spread over the timestamps), whose
    full computation is the one used. ``on_feature(done)`` is called after each spec (the
    features are most of a training run's time before its first fit)."""
    columns = [feature_name(spec) for spec in specs] if names is None else list(names)
    if len(columns) != len(specs) or len(set(columns)) != len(columns):
        raise ValueError(f"one distinct column name per feature spec is needed, got {columns}")
    out = frame.select("ts_ns", "instrument_id")
    for done, (spec, column) in enumerate(zip(specs, columns, strict=True), 1):
        values = check_causal(spec.compute, frame) if check else spec.compute(frame)
        values = values.rename({"value": column})
        out = out.join(values, on=["ts_ns", "instrument_id"], how="left")
        if on_feature is not None:
            on_feature(done)
    return out.sort(["ts_ns", "instrument_id"])
