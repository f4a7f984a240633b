"""Portfolio construction from scores: what a model strategy holds, given each (step, name)'s
score. One module for every score-driven strategy (``models.ml.strategy.ModelRanker`` trading a
registry artifact, ``models.qlib_bridge.QlibSignalRanker`` trading an imported Qlib signal), so
the rules below are written once.

A name is *eligible* at a step when it has a finite score and a bar there. Names are ranked by
score, highest first, ties broken by instrument id (the lower id ranks first), so the same
scores always give the same portfolio whatever the column order.

Methods (``PortfolioSpec.method``):

- ``topk``: hold the ``top_k`` best-ranked eligible names, each at ``weight / count`` (count =
  how many were chosen; fewer than ``top_k`` when fewer are eligible).
- ``topk_dropout``: a held set of ``top_k`` names that rotates slowly. At each rebalance, of the
  held names that can trade (a bar at the step) and fell out of the top ``top_k`` (or have no
  score), the ``n_drop`` worst-ranked (a name without a score counts as worst) are sold; then the
  best-ranked eligible names not held are bought until ``top_k`` are held again. A held name
  without a bar (suspended) cannot be sold and keeps its place. Each rebalance therefore sells at
  most ``n_drop`` names and buys at most ``n_drop`` plus the places that were empty. The held
  set is a function of the scores and bars at the rebalance steps only (computed once, in
  ``Portfolio.prepare``), never of earlier ``decide`` calls, so a one-day replay and a prefix of
  the panel see the same set. Targets: a sold name 0, a bought name ``weight / top_k``, a kept
  name NaN (its position is left as it is, so holding it costs no turnover) — or, with
  ``resize_held``, ``weight / top_k`` as well (every held name re-weighted each rebalance).
- ``score_weighted``: weights proportional to the scores. Scores are first demeaned across the
  eligible names (``demean``, default on: a model's overall bias moves no weight); with
  ``top_k`` > 0 only the ``top_k`` best (and, long-short, the ``top_k`` worst) names take part.
  Long-only keeps the positive part and scales the weights to sum to ``weight``; long-short
  scales the positive side to ``weight / 2`` and the negative side to ``-weight / 2`` (each side
  on its own: dollar-neutral before the caps). ``cap`` bounds each name's absolute weight: the
  excess of a capped name goes to the uncapped names of its side in proportion to their scores,
  repeated until none exceeds the cap (a side whose names are all capped holds less than its
  share).

Weights are fractions of the strategy's capital; the kernel's risk policy, the A-share lot and
T+1 rules and the order planner size them, as for every other strategy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import numpy.typing as npt

__all__ = [
    "METHODS",
    "Portfolio",
    "PortfolioParams",
    "PortfolioSpec",
    "capped_proportional",
    "dropout_holdings",
    "portfolio_of",
    "ranking",
    "score_weights",
    "topk_weights",
]

METHODS = ("topk", "topk_dropout", "score_weighted")

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PortfolioSpec:
    """How scores become weights (module docstring): ``method`` one of ``METHODS``; ``top_k``
    names (``score_weighted``: 0 = every eligible name); ``n_drop`` sells per rebalance at most
    (``topk_dropout``); ``weight`` the gross fraction of capital; ``cap`` the largest absolute
    weight of one name (``score_weighted``); ``long_short`` and ``demean`` (``score_weighted``);
    ``resize_held`` (``topk_dropout``)."""

    method: str = "topk"
    top_k: int = 1
    n_drop: int = 1
    weight: float = 0.95
    cap: float = 1.0
    long_short: bool = False
    demean: bool = True
    resize_held: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"portfolio must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "score_weighted":
            if self.top_k < 0:
                raise ValueError(f"top_k must be 0 (every name) or positive, got {self.top_k}")
        elif self.top_k < 1:
            raise ValueError(f"top_k must be positive, got {self.top_k}")
        if self.method == "topk_dropout" and not 1 <= self.n_drop <= self.top_k:
            raise ValueError(f"n_drop must be in 1..top_k ({self.top_k}), got {self.n_drop}")
        if not 0.0 < self.weight <= 1.0:
            raise ValueError(f"weight must be in (0, 1], got {self.weight}")
        if not 0.0 < self.cap <= 1.0:
            raise ValueError(f"cap must be in (0, 1], got {self.cap}")


def ranking(score: FloatArray, eligible: BoolArray, ids: IntArray) -> IntArray:
    """The eligible columns, best first: highest score, ties by the lower instrument id."""
    columns = np.flatnonzero(eligible)
    order = np.lexsort((ids[columns], -score[columns]))
    return columns[order].astype(np.int64)


def topk_weights(
    score: FloatArray, eligible: BoolArray, ids: IntArray, top_k: int, weight: float
) -> FloatArray:
    """``weight / count`` on the ``top_k`` best-ranked eligible names, 0 elsewhere."""
    weights = np.zeros(score.shape[0])
    chosen = ranking(score, eligible, ids)[:top_k]
    if chosen.size:
        weights[chosen] = weight / chosen.size
    return weights


def capped_proportional(strength: FloatArray, total: float, cap: float) -> FloatArray:
    """Non-negative weights proportional to ``strength`` (>= 0) summing to ``total``, none above
    ``cap``: a capped name's excess goes to the others in proportion, until none exceeds it. When
    every name with strength is capped the sum is below ``total``."""
    weights = np.zeros(strength.shape[0])
    free = strength > 0
    remaining = total
    while remaining > 0 and free.any():
        share = remaining * strength[free] / strength[free].sum()
        over = share > cap
        if not over.any():
            weights[free] = share
            break
        capped = np.flatnonzero(free)[over]
        weights[capped] = cap
        remaining -= cap * capped.size
        free[capped] = False
    return weights


def score_weights(score: FloatArray, eligible: BoolArray, ids: IntArray, spec: PortfolioSpec) -> FloatArray:
    """Weights proportional to the (demeaned) scores of the eligible names (module docstring)."""
    weights = np.zeros(score.shape[0])
    ranked = ranking(score, eligible, ids)
    if ranked.size == 0:
        return weights
    centred = score[ranked] - (score[ranked].mean() if spec.demean else 0.0)
    best = np.ones(ranked.size, dtype=np.bool_)  # may go long
    worst = np.ones(ranked.size, dtype=np.bool_)  # may go short
    if spec.top_k > 0:
        best[spec.top_k :] = False
        worst[: max(ranked.size - spec.top_k, 0)] = False
    long_strength = np.where(best & (centred > 0), centred, 0.0)
    if not spec.long_short:
        weights[ranked] = capped_proportional(long_strength, spec.weight, spec.cap)
        return weights
    short_strength = np.where(worst & (centred < 0), -centred, 0.0)
    weights[ranked] = capped_proportional(long_strength, spec.weight / 2, spec.cap) - capped_proportional(
        short_strength, spec.weight / 2, spec.cap
    )
    return weights


def dropout_holdings(
    scores: FloatArray, valid: BoolArray, steps: IntArray, ids: IntArray, top_k: int, n_drop: int
) -> BoolArray:
    """The held set after each rebalance step of ``steps`` (rows of the result, in order), from
    an empty book: sell at most ``n_drop`` of the tradable held names outside the top ``top_k``
    (worst first; no score is worst), then buy the best-ranked eligible names not held up to
    ``top_k``. Row ``i`` depends on ``scores`` and ``valid`` at ``steps[:i + 1]`` only."""
    names = scores.shape[1]
    held = np.zeros(names, dtype=np.bool_)
    out = np.zeros((steps.size, names), dtype=np.bool_)
    for row, step in enumerate(steps):
        score, tradable = scores[step], valid[step]
        eligible = np.isfinite(score) & tradable
        ranked = ranking(score, eligible, ids)
        top = np.zeros(names, dtype=np.bool_)
        top[ranked[:top_k]] = True
        position = np.full(names, ranked.size, dtype=np.int64)  # no score: after every ranked name
        position[ranked] = np.arange(ranked.size)
        candidates = np.flatnonzero(held & tradable & ~top)
        # worst first: the latest rank; among unscored names (equal rank), the higher id first
        worst_first = candidates[np.lexsort((-ids[candidates], -position[candidates]))]
        held[worst_first[:n_drop]] = False
        buy = ranked[~held[ranked]][: max(top_k - int(held.sum()), 0)]
        held[buy] = True
        out[row] = held
    return out


class Portfolio:
    """A ``PortfolioSpec`` applied to one strategy's scores: ``prepare`` once per panel (in the
    strategy's ``schedule``), then ``weights`` at each scheduled step (in its ``decide``)."""

    def __init__(self, spec: PortfolioSpec) -> None:
        self.spec = spec
        self.ids = np.zeros(0, dtype=np.int64)
        self.steps = np.zeros(0, dtype=np.int64)
        self.held = np.zeros((0, 0), dtype=np.bool_)

    def prepare(self, scores: FloatArray, valid: BoolArray, steps: IntArray, ids: IntArray) -> None:
        """Remember the instrument ids and the rebalance steps; for ``topk_dropout``, compute the
        held set at every rebalance step."""
        self.ids = np.asarray(ids, dtype=np.int64)
        self.steps = np.asarray(steps, dtype=np.int64)
        if self.spec.method == "topk_dropout":
            self.held = dropout_holdings(
                scores, valid, self.steps, self.ids, self.spec.top_k, self.spec.n_drop
            )
        else:
            self.held = np.zeros((self.steps.size, scores.shape[1]), dtype=np.bool_)

    def weights(self, step: int, score: FloatArray, valid: BoolArray) -> FloatArray:
        """The targets at ``step`` from its row of scores and bars (NaN: leave the position)."""
        spec = self.spec
        eligible = np.isfinite(score) & valid
        if spec.method == "topk":
            return topk_weights(score, eligible, self.ids, spec.top_k, spec.weight)
        if spec.method == "score_weighted":
            return score_weights(score, eligible, self.ids, spec)
        row = int(np.searchsorted(self.steps, step))
        if row >= self.steps.size or self.steps[row] != step:
            raise ValueError(f"step {step} is not a rebalance step of this portfolio")
        after = self.held[row]
        before = self.held[row - 1] if row > 0 else np.zeros_like(after)
        each = spec.weight / spec.top_k
        targets = np.where(after, np.nan if not spec.resize_held else each, 0.0)
        targets[after & ~before] = each  # bought
        targets[~after & ~before] = 0.0
        return targets


class PortfolioParams(TypedDict, total=False):
    """The portfolio parameters a model strategy takes (defaults in ``portfolio_of``)."""

    top_k: int
    weight: float
    portfolio: str
    n_drop: int
    cap: float
    long_short: bool
    demean: bool
    resize_held: bool


def portfolio_of(
    *,
    top_k: int = 1,
    weight: float = 0.95,
    portfolio: str = "topk",
    n_drop: int = 1,
    cap: float = 1.0,
    long_short: bool = False,
    demean: bool = True,
    resize_held: bool = False,
) -> Portfolio:
    """The ``Portfolio`` a model strategy's parameters name."""
    return Portfolio(PortfolioSpec(portfolio, top_k, n_drop, weight, cap, long_short, demean, resize_held))
