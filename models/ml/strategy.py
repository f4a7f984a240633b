"""ModelRanker: trade one registered model artifact (LightGBM or the PyTorch network), top-k
names by predicted return.

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
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from domain.market import Panel
from kernel.strategy import LoadedModel, MarketView
from models.ml.features import feature_matrix, panel_frame, spec_from_json
from models.ml.registry import Artifact, ArtifactError, load
from models.portfolio import Portfolio, PortfolioSpec

__all__ = ["MODEL_KINDS", "ModelRanker", "predict_artifact", "predictions_hash"]

MODEL_KINDS = ("lightgbm", "torch_mlp")


def predict_artifact(artifact: Artifact, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The artifact's predictions for feature rows ``x`` (columns in its ``feature_names`` order)."""
    kind = artifact.meta.get("kind")
    if kind == "lightgbm":
        from models.ml.train import predict

        return predict(artifact.model_text, x)
    if kind == "torch_mlp":
        from models.ml.mlp import predict_mlp

        return predict_mlp(artifact.model_bytes, artifact.meta, x)
    raise ArtifactError(
        f"model artifact {artifact.hash} is of kind {kind!r}: one of {', '.join(MODEL_KINDS)}"
    )


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
        top_k: int = 1,
        weight: float = 0.95,
        start_day: int = 0,
        strategy_id: str = "model_ranker",
        portfolio: str = "topk",
        n_drop: int = 1,
        cap: float = 1.0,
        long_short: bool = False,
        demean: bool = True,
        resize_held: bool = False,
    ) -> None:
        self.spec = PortfolioSpec(portfolio, top_k, n_drop, weight, cap, long_short, demean, resize_held)
        self.portfolio = Portfolio(self.spec)
        self.strategy_id = strategy_id
        self.top_k = top_k
        self.weight = weight
        self.start_day = start_day  # YYYYMMDD: no decision before it (0: from the first scored step)
        self.model = load(Path(artifact_dir), artifact)  # refuses a missing or altered artifact at build time
        if self.model.meta.get("kind") not in MODEL_KINDS:
            raise ArtifactError(
                f"model artifact {artifact} is of kind {self.model.meta.get('kind')!r}: one of "
                f"{', '.join(MODEL_KINDS)}"
            )
        self.scores = np.zeros((0, 0))

    def loaded_models(self) -> list[LoadedModel]:
        """The artifact and its predictions over the panel ``schedule`` scored (journaled)."""
        kind = str(self.model.meta["kind"])
        return [LoadedModel(self.model.hash, kind, predictions_hash(self.scores),
                            int(np.isfinite(self.scores).sum()))]  # fmt: skip

    def _score(self, panel: Panel) -> npt.NDArray[np.float64]:
        """Predictions, (steps, instruments); NaN where a bar or a feature is missing."""
        specs = [spec_from_json(s) for s in self.model.meta["features"]]
        names = list(self.model.meta["feature_names"])
        frame = panel_frame(panel)
        matrix = feature_matrix(frame, specs)
        finite = pl.all_horizontal([pl.col(n).is_not_null() & pl.col(n).is_finite() for n in names])
        rows = matrix.filter(finite)
        prediction = predict_artifact(self.model, rows.select(names).to_numpy().astype(np.float64))
        scores = np.full((panel.steps, len(panel.instruments)), np.nan)
        step = np.searchsorted(panel.ts_ns, rows.get_column("ts_ns").to_numpy())
        ids = np.array([i.instrument_id for i in panel.instruments], dtype=np.int64)
        order = np.argsort(ids)
        column = order[np.searchsorted(ids[order], rows.get_column("instrument_id").to_numpy())]
        scores[step, column] = prediction
        return scores

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        """Each month's last step that has a score for at least one name (and is on or after
        ``start_day``)."""
        self.scores = self._score(panel)
        month = panel.day // 100
        month_end = np.ones(panel.steps, dtype=np.bool_)
        month_end[:-1] = month[1:] != month[:-1]
        scored = np.isfinite(self.scores).any(axis=1)
        steps = np.flatnonzero(month_end & scored & (panel.day >= self.start_day)).astype(np.int64)
        ids = np.array([i.instrument_id for i in panel.instruments], dtype=np.int64)
        self.portfolio.prepare(self.scores, panel.valid, steps, ids)
        return steps

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return self.portfolio.weights(view.step, self.scores[view.step], view.valid())
