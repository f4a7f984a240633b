"""Volatility targeting: scale = target / realised, capped, with a minimum history."""

import math

import numpy as np
import pytest

from domain.riskrules import VolTarget, apply_scale, vol_target_scale

CONFIG = VolTarget(
    target_vol_e8=10_000_000,
    periods_per_year=252,
    window=60,
    min_history=20,
    scale_min_e8=10_000_000,
    scale_max_e8=200_000_000,
)


def returns_with_vol(annual_vol: float, n: int) -> np.ndarray:
    daily = annual_vol / math.sqrt(252)
    return np.array([daily, -daily] * (n // 2))  # mean 0, sample std ~ daily


def test_scale_is_target_over_realised() -> None:
    result = vol_target_scale(returns_with_vol(0.20, 60), CONFIG)
    assert result.reason == "scaled"
    assert result.history == 60
    assert abs(result.realised_vol_e8 - 20_170_000) < 100_000  # ddof=1 on 60 points
    assert result.scale_e8 == 10_000_000 * 100_000_000 // result.realised_vol_e8


def test_only_the_window_counts() -> None:
    calm_then_wild = np.concatenate([returns_with_vol(0.01, 200), returns_with_vol(0.40, 60)])
    assert vol_target_scale(calm_then_wild, CONFIG).scale_e8 < 30_000_000


def test_short_history_falls_back() -> None:
    result = vol_target_scale(returns_with_vol(0.2, 18), CONFIG)
    assert (result.reason, result.scale_e8, result.history) == ("short_history", 100_000_000, 18)


def test_caps() -> None:
    assert vol_target_scale(returns_with_vol(0.01, 60), CONFIG).reason == "capped_max"
    assert vol_target_scale(returns_with_vol(0.01, 60), CONFIG).scale_e8 == 200_000_000
    wild = vol_target_scale(returns_with_vol(5.0, 60), CONFIG)
    assert (wild.reason, wild.scale_e8) == ("capped_min", 10_000_000)
    flat = vol_target_scale(np.zeros(40), CONFIG)
    assert (flat.reason, flat.scale_e8) == ("zero_vol", CONFIG.fallback_scale_e8)  # no information


def test_nan_is_an_error() -> None:
    with pytest.raises(ValueError, match="NaN"):
        vol_target_scale([0.01] * 30 + [float("nan")], CONFIG)


def test_apply_scale_toward_zero() -> None:
    assert apply_scale(np.array([101, -101, 0]), 50_000_000).tolist() == [50, -50, 0]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="min_history"):
        VolTarget(min_history=1)
    with pytest.raises(ValueError, match="fallback"):
        VolTarget(fallback_scale_e8=300_000_000)
