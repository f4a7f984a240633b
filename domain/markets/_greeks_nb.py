"""Numba kernel for generalised Black-Scholes-Merton greeks: arrays in, arrays out, no objects.

Cost of carry ``b``: Black-Scholes with dividend yield q has b = r - q; Black-76 (futures) has
b = 0 with the forward as the underlying price. Serial loop (no ``parallel``): bit-identical
results run to run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

F = TypeVar("F", bound=Callable[..., Any])
_jit = cast(Callable[[F], F], njit(cache=True))

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@_jit
def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


@_jit
def _pdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


@_jit
def _expired(
    i: int, s: float, k: float, call: bool,
    price: FloatArray, delta: FloatArray, gamma: FloatArray, vega: FloatArray, theta: FloatArray,
) -> None:  # fmt: skip
    intrinsic = max(s - k, 0.0) if call else max(k - s, 0.0)
    price[i] = intrinsic
    if call:
        delta[i] = 1.0 if s > k else 0.0
    else:
        delta[i] = -1.0 if s < k else 0.0
    gamma[i] = 0.0
    vega[i] = 0.0
    theta[i] = 0.0


@_jit
def bsm_greeks_nb(
    underlying: FloatArray, strike: FloatArray, t_years: FloatArray, vol: FloatArray,
    rate: FloatArray, carry: FloatArray, is_call: BoolArray,
    price: FloatArray, delta: FloatArray, gamma: FloatArray, vega: FloatArray, theta: FloatArray,
) -> None:  # fmt: skip
    """Fill price/delta/gamma/vega/theta for each row. Vega per 1.0 of vol, theta per year."""
    for i in range(underlying.shape[0]):
        s, k, t, sigma = underlying[i], strike[i], t_years[i], vol[i]
        r, b, call = rate[i], carry[i], is_call[i]
        if t <= 0.0 or sigma <= 0.0:
            _expired(i, s, k, call, price, delta, gamma, vega, theta)
            continue
        sqrt_t = math.sqrt(t)
        d1 = (math.log(s / k) + (b + 0.5 * sigma * sigma) * t) / (sigma * sqrt_t)
        d2 = d1 - sigma * sqrt_t
        carry_df = math.exp((b - r) * t)
        rate_df = math.exp(-r * t)
        density = _pdf(d1)
        gamma[i] = carry_df * density / (s * sigma * sqrt_t)
        vega[i] = s * carry_df * density * sqrt_t
        decay = -s * carry_df * density * sigma / (2.0 * sqrt_t)
        if call:
            price[i] = s * carry_df * _cdf(d1) - k * rate_df * _cdf(d2)
            delta[i] = carry_df * _cdf(d1)
            theta[i] = decay - (b - r) * s * carry_df * _cdf(d1) - r * k * rate_df * _cdf(d2)
        else:
            price[i] = k * rate_df * _cdf(-d2) - s * carry_df * _cdf(-d1)
            delta[i] = carry_df * (_cdf(d1) - 1.0)
            theta[i] = decay + (b - r) * s * carry_df * _cdf(-d1) + r * k * rate_df * _cdf(-d2)
