"""Numba factor kernels over raw integer prices (exact: no float running sums)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def sma_cross_state_nb(close, valid, fast, slow):
    """Per (step, name): +1 when SMA(fast) > SMA(slow), -1 when below, by the last
    non-zero difference (ties keep the previous side), 0 before ``slow`` bars exist.

    Sums are int64 over raw prices and compared as ``sum_fast * slow`` vs
    ``sum_slow * fast``, so ties are exact ties. Missing bars do not advance the windows.
    """
    steps, names = close.shape
    state = np.zeros((steps, names), dtype=np.int8)
    for col in range(names):
        ring = np.zeros(slow, dtype=np.int64)
        count = 0
        sum_fast = 0
        sum_slow = 0
        last = 0
        for step in range(steps):
            if valid[step, col]:
                px = close[step, col]
                slot = count % slow
                sum_slow += px - ring[slot]
                sum_fast += px
                if count >= fast:
                    sum_fast -= ring[(count - fast) % slow]
                ring[slot] = px
                count += 1
                if count >= slow:
                    diff = sum_fast * slow - sum_slow * fast
                    if diff > 0:
                        last = 1
                    elif diff < 0:
                        last = -1
            state[step, col] = last
    return state
