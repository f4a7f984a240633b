"""Monte Carlo of a run's daily returns: a seeded circular block bootstrap.

Each simulated path draws ``n`` returns (``n`` = the run's sessions) as consecutive blocks of
``block`` sessions from random start points, wrapping around the end (a circular block
bootstrap keeps the short-range dependence — volatility clusters — that single-day draws would
break). The same seed draws the same paths. For every path the same statistics as the report's
(``sim.performance``) are computed; ``summarise`` gives their percentiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CELLS_MAX", "PathStats", "block_bootstrap", "path_stats", "summarise"]

FloatArray = npt.NDArray[np.float64]
PERCENTILES = (5, 25, 50, 75, 95)
# Resampled returns (paths x sessions) one bootstrap may hold: the paths and their statistics
# take ~40 bytes a cell at their peak, so ~2 GB here (10,000 paths of 2,520 sessions, ten years
# of days, are half of it). More is refused before anything is drawn.
CELLS_MAX = 50_000_000


def block_bootstrap(returns: FloatArray, samples: int, block: int, seed: int) -> FloatArray:
    """``samples`` paths (rows) of ``len(returns)`` resampled returns."""
    r = np.asarray(returns, dtype=np.float64)
    n = r.size
    if n < 2:
        raise ValueError(f"need at least two returns to resample, got {n}")
    if not 1 <= block <= n:
        raise ValueError(f"block must be between 1 and the {n} returns, got {block}")
    if samples < 1:
        raise ValueError(f"samples must be positive, got {samples}")
    if samples * n > CELLS_MAX:
        raise ValueError(
            f"{samples:,} paths of {n:,} sessions are {samples * n:,} resampled returns, above the "
            f"{CELLS_MAX:,} one bootstrap holds (~2 GB): at most {CELLS_MAX // n:,} paths for this run"
        )
    rng = np.random.default_rng(seed)
    blocks = -(-n // block)
    starts = rng.integers(0, n, size=(samples, blocks))
    index = (starts[:, :, None] + np.arange(block)[None, None, :]) % n
    return r[index.reshape(samples, blocks * block)[:, :n]]


@dataclass(frozen=True)
class PathStats:
    total_return: FloatArray
    annual_return: FloatArray
    sharpe: FloatArray
    max_drawdown: FloatArray  # <= 0


def path_stats(paths: FloatArray, factor: int) -> PathStats:
    """Per path (row): total and annual return, Sharpe and maximum drawdown (empyrical's
    definitions, as ``sim.performance.return_stats``)."""
    n = paths.shape[1]
    wealth = np.cumprod(1.0 + paths, axis=1)
    total = wealth[:, -1] - 1.0
    annual = (1.0 + total) ** (factor / n) - 1.0
    std = paths.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(std > 0, paths.mean(axis=1) / std * math.sqrt(factor), np.nan)
    start = np.ones((paths.shape[0], 1))
    curve = np.concatenate([start, wealth], axis=1)
    peak = np.fmax.accumulate(curve, axis=1)
    drawdown = ((curve - peak) / peak).min(axis=1)
    return PathStats(total, annual, sharpe, drawdown)


def summarise(stats: PathStats) -> dict[str, dict[str, float]]:
    """Percentiles (5, 25, 50, 75, 95) of each statistic, and the share of losing paths."""
    out: dict[str, dict[str, float]] = {}
    for name in ("total_return", "annual_return", "sharpe", "max_drawdown"):
        values = getattr(stats, name)
        values = values[np.isfinite(values)]
        out[name] = {f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES} if values.size else {}
    out["probability"] = {"loss": float(np.mean(stats.total_return < 0))}
    return out
