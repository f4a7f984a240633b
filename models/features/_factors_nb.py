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
    return sma_cross_rows_nb(close, valid, fast, slow, 0, steps, sma_cross_carry(names, slow))


_RING = 4  # carry columns before the ring of closes


@njit(cache=True)
def sma_cross_carry(names, slow):
    """Fresh windows for ``sma_cross_rows_nb`` / ``sma_cross_step_nb``: one row per name of
    [bars seen, fast sum, slow sum, last side, the last ``slow`` closes (a ring)]."""
    return np.zeros((names, _RING + slow), dtype=np.int64)


@njit(cache=True, inline="always")
def _sma_push(carry, col, px, fast, slow):
    """One valid close into a name's windows; returns its side."""
    count = carry[col, 0]
    slot = _RING + count % slow
    sum_slow = carry[col, 2] + px - carry[col, slot]
    sum_fast = carry[col, 1] + px
    if count >= fast:
        sum_fast -= carry[col, _RING + (count - fast) % slow]
    carry[col, slot] = px
    count += 1
    carry[col, 0] = count
    carry[col, 1] = sum_fast
    carry[col, 2] = sum_slow
    if count >= slow:
        diff = sum_fast * slow - sum_slow * fast
        if diff > 0:
            carry[col, 3] = 1
        elif diff < 0:
            carry[col, 3] = -1
    return carry[col, 3]


@njit(cache=True)
def sma_cross_rows_nb(close, valid, fast, slow, start, end, carry):
    """``sma_cross_state_nb`` for rows ``start .. end-1`` only, carrying the windows in
    ``carry`` (updated in place), so consecutive calls give the rows one whole pass would."""
    names = close.shape[1]
    state = np.zeros((end - start, names), dtype=np.int8)
    for col in range(names):
        last = carry[col, 3]
        for step in range(start, end):
            if valid[step, col]:
                last = _sma_push(carry, col, close[step, col], fast, slow)
            state[step - start, col] = last
    return state


@njit(cache=True)
def sma_cross_step_nb(close, valid, fast, slow, row, carry, signals):
    """One arrived row: the windows move on, and ``signals`` (one per name, written) holds each
    name's new side where it crossed (+1 up, -1 down) or 0. True when some name crossed. A
    cross is a change of side after both averages exist (0 -> +-1 is not one)."""
    crossed = False
    for col in range(close.shape[1]):
        signals[col] = 0
        if valid[row, col]:
            before = carry[col, 3]
            side = _sma_push(carry, col, close[row, col], fast, slow)
            if before != 0 and side != before:
                signals[col] = side
                crossed = True
    return crossed
