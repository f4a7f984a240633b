"""Volatility targeting: scale the book by ``target_vol / realised_vol``, capped, with a minimum
history. Float math over a returns array (model math); the result is an integer 1e-8 scale
(rounded toward zero, so the scaled book never exceeds the exact target) applied to integer weights.

Run before ``evaluate_intent``: the portfolio limits apply to the scaled vector.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import numpy.typing as npt

from domain.fixed import RATE_SCALE

__all__ = ["VolScale", "VolTarget", "apply_scale", "vol_target_scale"]

IntArray = npt.NDArray[np.int64]


class VolTarget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    target_vol_e8: int = 10_000_000  # annualised, 1e-8: 10%
    periods_per_year: int = 252
    window: int = 60  # the last ``window`` returns are used
    min_history: int = 20  # fewer returns than this: ``fallback_scale_e8``
    scale_min_e8: int = 0
    scale_max_e8: int = 200_000_000  # 2x
    fallback_scale_e8: int = RATE_SCALE

    def __post_init__(self) -> None:
        if self.target_vol_e8 <= 0:
            raise ValueError("vol_target.target_vol_e8: must be positive")
        if self.periods_per_year <= 0:
            raise ValueError("vol_target.periods_per_year: must be positive")
        if not 2 <= self.min_history <= self.window:
            raise ValueError("vol_target.min_history: must be in [2, window]")
        if not 0 <= self.scale_min_e8 <= self.scale_max_e8 <= 1_000_000_000:
            raise ValueError("vol_target: need 0 <= scale_min_e8 <= scale_max_e8 <= 1e9 (10x)")
        if not self.scale_min_e8 <= self.fallback_scale_e8 <= self.scale_max_e8:
            raise ValueError("vol_target.fallback_scale_e8: must lie within the scale caps")


class VolScale(msgspec.Struct, frozen=True, kw_only=True):
    scale_e8: int
    realised_vol_e8: int  # annualised; 0 when there was not enough history
    history: int
    reason: str  # "scaled" | "capped_max" | "capped_min" | "short_history" | "zero_vol"


def vol_target_scale(returns: npt.ArrayLike, config: VolTarget) -> VolScale:
    """The scale for the next step from per-period returns (oldest first; NaN is an error)."""
    values = np.asarray(returns, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("returns: expected a 1-d array")
    if not bool(np.all(np.isfinite(values))):
        raise ValueError("returns: NaN or infinite values (drop or fill them upstream)")
    recent = values[-config.window :]
    history = int(recent.shape[0])
    if history < config.min_history:
        return VolScale(
            scale_e8=config.fallback_scale_e8, realised_vol_e8=0, history=history, reason="short_history"
        )
    realised = float(np.std(recent, ddof=1)) * math.sqrt(config.periods_per_year)
    realised_e8 = math.floor(realised * RATE_SCALE)
    if realised_e8 == 0:
        # No variation (e.g. a book still all cash): no information about risk, not "no risk".
        return VolScale(
            scale_e8=config.fallback_scale_e8, realised_vol_e8=0, history=history, reason="zero_vol"
        )
    raw_e8 = config.target_vol_e8 * RATE_SCALE // realised_e8  # toward zero
    scale = min(max(raw_e8, config.scale_min_e8), config.scale_max_e8)
    reason = (
        "capped_max"
        if raw_e8 > config.scale_max_e8
        else "capped_min"
        if raw_e8 < config.scale_min_e8
        else "scaled"
    )
    return VolScale(scale_e8=scale, realised_vol_e8=realised_e8, history=history, reason=reason)


def apply_scale(weights_e8: IntArray, scale_e8: int) -> IntArray:
    """``w x scale`` rounded toward zero (so |w'| <= |w| x scale exactly)."""
    assert 0 <= scale_e8 <= 1_000_000_000
    weights = np.asarray(weights_e8, dtype=np.int64)
    magnitude = np.abs(weights) * scale_e8 // RATE_SCALE
    result: IntArray = np.where(weights < 0, -magnitude, magnitude)
    return result
