"""Option greeks over a chain: Black-Scholes (spot, dividend yield) and Black-76 (futures).

Floats are fine here: greeks are model math, not money. Results are deterministic (serial
Numba loop). Units: ``t_years`` in years, ``vol`` and ``rate`` as annual decimals (0.2 = 20%),
vega per 1.0 of volatility (divide by 100 for "per vol point"), theta per year (divide by 365
for per calendar day). At or past expiry (or zero vol) the price is intrinsic, delta is the
step (ATM counts as out of the money) and the other greeks are 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from domain.markets._greeks_nb import bsm_greeks_nb

__all__ = ["Greeks", "OPTION_MULTIPLIER_US_EQUITY", "black76_greeks", "black_scholes_greeks"]

OPTION_MULTIPLIER_US_EQUITY = 100
"""Standard US equity option deliverable (MARKET_RULES.md §2.3, P: OCC); adjusted contracts differ."""

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


class Greeks(NamedTuple):
    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray


def _run(
    underlying: ArrayLike, strike: ArrayLike, t_years: ArrayLike, vol: ArrayLike,
    rate: ArrayLike, carry: ArrayLike, is_call: ArrayLike,
) -> Greeks:  # fmt: skip
    arrays = np.broadcast_arrays(
        np.asarray(underlying, dtype=np.float64),
        np.asarray(strike, dtype=np.float64),
        np.asarray(t_years, dtype=np.float64),
        np.asarray(vol, dtype=np.float64),
        np.asarray(rate, dtype=np.float64),
        np.asarray(carry, dtype=np.float64),
        np.asarray(is_call, dtype=np.bool_),
    )
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(array.reshape(-1)) for array in arrays]
    if np.any(flat[0] <= 0.0) or np.any(flat[1] <= 0.0):
        raise ValueError("underlying and strike must be positive")
    if not all(np.all(np.isfinite(array)) for array in flat[:6]):
        raise ValueError("greeks inputs must be finite")
    outputs = [np.empty(flat[0].shape[0], dtype=np.float64) for _ in range(5)]
    bsm_greeks_nb(*flat, *outputs)
    return Greeks(*(output.reshape(shape) for output in outputs))


def black_scholes_greeks(
    spot: ArrayLike, strike: ArrayLike, t_years: ArrayLike, vol: ArrayLike, rate: ArrayLike,
    is_call: ArrayLike, dividend_yield: ArrayLike = 0.0,
) -> Greeks:  # fmt: skip
    """Black-Scholes-Merton on a spot with a continuous dividend yield; inputs broadcast."""
    carry = np.asarray(rate, dtype=np.float64) - np.asarray(dividend_yield, dtype=np.float64)
    return _run(spot, strike, t_years, vol, rate, carry, is_call)


def black76_greeks(
    forward: ArrayLike, strike: ArrayLike, t_years: ArrayLike, vol: ArrayLike, rate: ArrayLike,
    is_call: ArrayLike,
) -> Greeks:  # fmt: skip
    """Black-76 on a futures / forward price (delta, gamma with respect to the forward)."""
    return _run(forward, strike, t_years, vol, rate, 0.0, is_call)
