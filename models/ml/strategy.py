"""ModelRanker: trade one registered model artifact (LightGBM or the PyTorch network, a
regressor or a classifier), top-k names by predicted return or class score; WalkForwardRanker:
trade a walk-forward run's window artifacts one after another, each only in its own
out-of-sample window.

``entry = "models.ml.strategy:ModelRanker"`` with ``params = { artifact_dir = "...",
artifact = "<hash>", top_k = 1, weight = 0.95 }`` (and, optionally, ``portfolio`` —
``topk``, ``topk_dropout`` or ``score_weighted`` — with its parameters: ``models.portfolio``).
``schedule`` loads the artifact (its bytes verified against the hash), computes the artifact's
features on the panel with the same code training used (``models.ml.features``; causal,
checked), predicts every (step, name) once, and rebalances at each month's last step;
``decide`` turns that step's predictions into weights with ``models.portfolio`` (by default
the ``top_k`` valid names with the highest predictions, equally weighted; ties by instrument
id). ``loaded_models`` reports the artifact and the hash of its predictions, which the kernel
journals as ``model.loaded`` when the run begins. A replay builds a fresh instance from the
journaled parameters, so it loads the same bytes (or refuses the run if they changed),
recomputes the predictions and re-derives that event.

A classifier artifact (``task = "classification"`` in its ``artifact.json``) predicts class
probabilities; the strategies rank by its class score, ``P(highest class) - P(lowest class)``
(``models.ml.train.class_score``), with the same portfolios.

``WalkForwardRanker`` (``params = { artifact_dir = "...", artifacts = ["<hash>", ...] }``)
takes the window artifacts ``tape train`` registers (``register_folds``): each names its
out-of-sample test window in ``walk_forward``. The artifact of a window scores the steps inside
that window and no other, so the stitched out-of-sample run is one backtest; building the
strategy refuses an artifact whose training window does not end before its trading window
begins (a leak), an artifact with no test window (a final model), and windows that are out of
order or overlap. Each artifact is journaled as ``model.loaded`` (in window order) with the
hash of the predictions it made in its window; ``window_of_step`` says which artifact scored
each step (-1: none). The first step after the last window closes every position (targets 0):
no artifact is left to trade.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Unpack

import numpy as np
import numpy.typing as npt
import polars as pl

from domain.market import Panel
from kernel.strategy import LoadedModel, MarketView
from models.features.cross_section import check_version
from models.ml.features import feature_matrix, panel_frame, spec_from_json
from models.ml.registry import Artifact, ArtifactError, load
from models.portfolio import PortfolioParams, portfolio_of

__all__ = [
    "ARTIFACT_FORMAT",
    "MODEL_KINDS",
    "ModelRanker",
    "WalkForwardRanker",
    "artifact_probabilities",
    "check_artifact",
    "check_out_of_sample",
    "month_end_steps",
    "predict_artifact",
    "predictions_hash",
    "score_panel",
]

MODEL_KINDS = ("lightgbm", "torch_mlp")
ARTIFACT_FORMAT = 1
"""The ``format`` of the ``artifact.json`` this code writes and reads (``models.ml.artifact``)."""


def _check_kind(artifact: Artifact) -> None:
    kind = artifact.meta.get("kind")
    if kind not in MODEL_KINDS:
        raise ArtifactError(
            f"model artifact {artifact.hash} is of kind {kind!r}: one of {', '.join(MODEL_KINDS)}"
        )


def check_artifact(artifact: Artifact) -> None:
    """Refuse (``ArtifactError``, naming the artifact and why) what this code cannot score, when a
    strategy is built rather than part-way into a run: another ``format`` (a newer Tape's), a kind
    it has no learner for, features it does not compute at the recorded versions, feature names
    that do not match them, or a LightGBM model text LightGBM cannot read."""
    _check_kind(artifact)
    meta, name = artifact.meta, f"model artifact {artifact.hash}"
    if meta.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(
            f"{name} is of format {meta.get('format')!r}; this Tape reads format {ARTIFACT_FORMAT} "
            "(train it again with this version: tape train)"
        )
    try:
        specs = [spec_from_json(spec) for spec in meta["features"]]
        for spec in specs:
            check_version(spec.name, spec.params, spec.version)
        names = list(meta["feature_names"])
    except (KeyError, TypeError, ValueError) as error:
        reason = f"no {error}" if isinstance(error, KeyError) else str(error)
        raise ArtifactError(f"{name}: its features cannot be computed here: {reason}") from None
    if len(names) != len(specs):
        raise ArtifactError(f"{name} names {len(names)} features for its {len(specs)} feature specs")
    if meta["kind"] == "lightgbm":
        from models.ml.train import model_features

        try:
            columns = model_features(artifact.model_text)
        except Exception as error:  # LightGBM's own error type (or not UTF-8 text)
            shown = " ".join(str(error).split())
            raise ArtifactError(f"{name}: LightGBM cannot read its {artifact.model_file}: {shown}") from None
        if columns != len(names):
            raise ArtifactError(
                f"{name}: its model takes {columns} features, its metadata names {len(names)}"
            )


def predict_artifact(artifact: Artifact, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The artifact's scores for feature rows ``x`` (columns in its ``feature_names`` order): a
    regressor's predicted return, a classifier's ``P(top class) - P(bottom class)``."""
    _check_kind(artifact)
    if artifact.meta["kind"] == "lightgbm":
        from models.ml.train import predict_scores

        return predict_scores(artifact.model_text, x, int(artifact.meta.get("classes", 0)))
    from models.ml.mlp import predict_mlp

    return predict_mlp(artifact.model_bytes, artifact.meta, x)


def artifact_probabilities(artifact: Artifact, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A classifier artifact's class probabilities for feature rows ``x``, (rows, classes)."""
    _check_kind(artifact)
    classes = int(artifact.meta.get("classes", 0))
    if not classes:
        raise ArtifactError(f"model artifact {artifact.hash} is a regressor: it has no class probabilities")
    if artifact.meta["kind"] == "lightgbm":
        from models.ml.train import predict_proba

        return predict_proba(artifact.model_text, x, classes)
    from models.ml.mlp import predict_mlp_proba

    return predict_mlp_proba(artifact.model_bytes, artifact.meta, x)


def score_panel(
    artifact: Artifact, panel: Panel, features: dict[str, pl.DataFrame] | None = None
) -> npt.NDArray[np.float64]:
    """The artifact's scores, (steps, instruments); NaN where a bar or a feature is missing. The
    features are computed on the panel with the code training used (causal, checked); pass a
    dict as ``features`` to compute each feature list once for several artifacts."""
    specs = [spec_from_json(s) for s in artifact.meta["features"]]
    names = list(artifact.meta["feature_names"])
    key = json.dumps([artifact.meta["features"], names], sort_keys=True)
    cache = {} if features is None else features
    if key not in cache:
        cache[key] = feature_matrix(panel_frame(panel), specs, names=names)  # the names it was trained with
    matrix = cache[key]
    finite = pl.all_horizontal([pl.col(n).is_not_null() & pl.col(n).is_finite() for n in names])
    rows = matrix.filter(finite)
    prediction = predict_artifact(artifact, rows.select(names).to_numpy().astype(np.float64))
    scores = np.full((panel.steps, len(panel.instruments)), np.nan)
    step = np.searchsorted(panel.ts_ns, rows.get_column("ts_ns").to_numpy())
    ids = np.array([i.instrument_id for i in panel.instruments], dtype=np.int64)
    order = np.argsort(ids)
    column = order[np.searchsorted(ids[order], rows.get_column("instrument_id").to_numpy())]
    scores[step, column] = prediction
    return scores


def month_end_steps(panel: Panel, scores: npt.NDArray[np.float64], start_day: int) -> npt.NDArray[np.int64]:
    """Each month's last step that has a score for at least one name, on or after ``start_day``."""
    month = panel.day // 100
    month_end = np.ones(panel.steps, dtype=np.bool_)
    month_end[:-1] = month[1:] != month[:-1]
    scored = np.isfinite(scores).any(axis=1)
    return np.flatnonzero(month_end & scored & (panel.day >= start_day)).astype(np.int64)


def predictions_hash(scores: npt.NDArray[np.float64]) -> str:
    """blake2b-128 over the predictions' shape and float64 bytes (NaN where none)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.asarray(scores.shape, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(scores, dtype="<f8").tobytes())
    return digest.hexdigest()


class ModelRanker:
    def __init__(
        self,
        *,
        artifact_dir: str,
        artifact: str,
        start_day: int = 0,
        strategy_id: str = "model_ranker",
        in_sample: bool = False,
        **portfolio: Unpack[PortfolioParams],
    ) -> None:
        if not isinstance(in_sample, bool):
            raise ArtifactError(f"ModelRanker: in_sample must be true or false, got {in_sample!r}")
        self.portfolio = portfolio_of(**portfolio)
        self.spec = self.portfolio.spec
        self.strategy_id = strategy_id
        self.top_k = self.spec.top_k
        self.weight = self.spec.weight
        self.start_day = start_day  # YYYYMMDD: no decision before it (0: from the first scored step)
        self.in_sample = in_sample  # True: trading inside the training window is meant
        self.model = load(Path(artifact_dir), artifact)  # refuses a missing or altered artifact at build time
        check_artifact(self.model)
        self.scores = np.zeros((0, 0))

    def loaded_models(self) -> list[LoadedModel]:
        """The artifact and its predictions over the panel ``schedule`` scored (journaled)."""
        kind = str(self.model.meta["kind"])
        return [LoadedModel(self.model.hash, kind, predictions_hash(self.scores),
                            int(np.isfinite(self.scores).sum()))]  # fmt: skip

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        """Each month's last step that has a score for at least one name (and is on or after
        ``start_day``)."""
        self.scores = score_panel(self.model, panel)
        steps = month_end_steps(panel, self.scores, self.start_day)
        ids = np.array([i.instrument_id for i in panel.instruments], dtype=np.int64)
        self.portfolio.prepare(self.scores, panel.valid, steps, ids)
        return steps

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return self.portfolio.weights(view.step, self.scores[view.step], view.valid())


def check_out_of_sample(strategy: object, first_day: int) -> None:
    """Refuse (``ArtifactError``) a ``ModelRanker`` that would decide inside its artifact's
    training window: trading from ``first_day`` (YYYYMMDD, the run's first trading day), or
    its ``start_day`` when later, on or before the training window's last day, it would trade
    on returns its model learnt (look-ahead) — unless built with ``in_sample = True``. Other
    strategies pass (``WalkForwardRanker`` checks each window when it is built). Called by the
    command line for a new run, not on replay: a journal written before the check still
    re-derives."""
    if not isinstance(strategy, ModelRanker) or strategy.in_sample:
        return
    trained_to = int(strategy.model.meta.get("train_window", {}).get("end_ts_ns", 0))
    last_day = int(_day(trained_to).replace("-", ""))
    first = max(int(strategy.start_day), int(first_day))
    if first <= last_day:
        raise ArtifactError(
            f"ModelRanker: artifact {strategy.model.hash} was trained on data to {_day(trained_to)} and "
            f"would trade from {first // 10000}-{first // 100 % 100:02d}-{first % 100:02d}: its training "
            "window overlaps its trading window (look-ahead); set start_day after its last training day, or "
            "in_sample = true to trade inside it on purpose"
        )


class WalkForwardRanker:
    """Trade walk-forward window artifacts in sequence, each only inside its own out-of-sample
    window (module docstring); the portfolio parameters are ``ModelRanker``'s."""

    def __init__(
        self,
        *,
        artifact_dir: str,
        artifacts: list[str],
        start_day: int = 0,
        strategy_id: str = "walk_forward_ranker",
        **portfolio: Unpack[PortfolioParams],
    ) -> None:
        if not isinstance(artifacts, list) or not artifacts or not all(isinstance(a, str) for a in artifacts):
            raise ArtifactError("walk-forward ranker: artifacts must be a non-empty list of artifact hashes")
        self.portfolio = portfolio_of(**portfolio)
        self.spec = self.portfolio.spec
        self.strategy_id = strategy_id
        self.start_day = start_day
        self.models = [load(Path(artifact_dir), digest) for digest in artifacts]
        for model in self.models:
            check_artifact(model)
        self.windows = [_trading_window(model) for model in self.models]
        for before, after, model in zip(self.windows, self.windows[1:], self.models[1:], strict=False):
            if after[0] <= before[1]:
                raise ArtifactError(
                    f"walk-forward ranker: artifact {model.hash} trades from {_day(after[0])}, not after the "
                    f"previous window's end {_day(before[1])}: windows must be in order and must not overlap"
                )
        self.scores = np.zeros((0, 0))
        self.window_of_step = np.zeros(0, dtype=np.int64)
        self.close_step = -1
        self._scored: list[npt.NDArray[np.float64]] = []

    def loaded_models(self) -> list[LoadedModel]:
        """One per artifact, in window order: its predictions inside its own window (journaled)."""
        return [LoadedModel(model.hash, str(model.meta["kind"]), predictions_hash(scores),
                            int(np.isfinite(scores).sum()))
                for model, scores in zip(self.models, self._scored, strict=True)]  # fmt: skip

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        """Score each window's steps with its artifact; rebalance at each month's last scored
        step (from ``start_day``), and close everything at the first step after the last window."""
        self.scores = np.full((panel.steps, len(panel.instruments)), np.nan)
        self.window_of_step = np.full(panel.steps, -1, dtype=np.int64)
        self._scored = []
        features: dict[str, pl.DataFrame] = {}
        for index, (model, (first, last)) in enumerate(zip(self.models, self.windows, strict=True)):
            inside = (panel.ts_ns >= first) & (panel.ts_ns <= last)
            own = np.full_like(self.scores, np.nan)
            if inside.any():
                own[inside] = score_panel(model, panel, features)[inside]
            self.scores[inside] = own[inside]
            self.window_of_step[inside] = index
            self._scored.append(own)
        steps = month_end_steps(panel, self.scores, self.start_day)
        after = np.flatnonzero(panel.ts_ns > self.windows[-1][1])
        self.close_step = int(after[0]) if after.size and steps.size else -1
        ids = np.array([i.instrument_id for i in panel.instruments], dtype=np.int64)
        self.portfolio.prepare(self.scores, panel.valid, steps, ids)
        if self.close_step >= 0:
            steps = np.append(steps, np.int64(self.close_step))
        return steps

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        if view.step == self.close_step:  # past the last window: no artifact may trade
            return np.zeros(self.scores.shape[1])
        return self.portfolio.weights(view.step, self.scores[view.step], view.valid())


def _day(ts_ns: int) -> str:
    return np.datetime_as_string(np.datetime64(int(ts_ns), "ns"), unit="D")


def _trading_window(model: Artifact) -> tuple[int, int]:
    """The artifact's out-of-sample window (first and last ts_ns), after checking that its
    training window — labels included (they end by its last bar) — ends before it begins."""
    _check_kind(model)
    walk = model.meta.get("walk_forward", {})
    if "test_start_ts_ns" not in walk or "test_end_ts_ns" not in walk:
        raise ArtifactError(
            f"walk-forward ranker: artifact {model.hash} names no out-of-sample window (a final model, "
            "not a walk-forward window's): trade it with ModelRanker"
        )
    first, last = int(walk["test_start_ts_ns"]), int(walk["test_end_ts_ns"])
    trained_to = int(model.meta["train_window"]["end_ts_ns"])
    if trained_to >= first:
        raise ArtifactError(
            f"walk-forward ranker: artifact {model.hash} was trained on data to {_day(trained_to)} and would "
            f"trade from {_day(first)}: its training window overlaps its trading window (look-ahead)"
        )
    if last < first:
        raise ArtifactError(f"walk-forward ranker: artifact {model.hash}'s test window ends before it begins")
    return first, last
