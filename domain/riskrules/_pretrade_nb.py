"""Numba kernels for the portfolio rules: int64 arrays in, arrays mutated in place, no objects.

Every kernel only moves weights toward zero (``|w'| <= |w|``, sign kept), so a later rule can
never break an earlier one whose measure is a sum of magnitudes. Products stay below 2**62:
weights and limits are bounded by ``LIMIT_E8_MAX`` (< 2**31) and ratios are reduced first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

F = TypeVar("F", bound=Callable[..., Any])
_jit = cast(Callable[[F], F], njit(cache=True))

IntArray = npt.NDArray[np.int64]

_RATIO_DEN_MAX = 1 << 31


@_jit
def reduce_ratio_nb(num: int, den: int) -> tuple[int, int]:
    """A ratio <= num/den whose denominator fits 31 bits (num <= den is assumed)."""
    while den > _RATIO_DEN_MAX:
        num = num >> 1
        den = (den + 1) >> 1
    return num, den


@_jit
def group_abs_sums_nb(weights: IntArray, group: IntArray, out_sums: IntArray) -> int:
    """Fill ``out_sums[g] = sum |w_i|`` over members ``group[i] == g`` (``-1`` = no group); max."""
    out_sums[:] = 0
    for i in range(weights.shape[0]):
        g = group[i]
        if g >= 0:
            out_sums[g] += abs(weights[i])
    largest = 0
    for g in range(out_sums.shape[0]):
        largest = max(largest, out_sums[g])
    return largest


@_jit
def clip_groups_nb(
    weights: IntArray, group: IntArray, sums: IntArray, limit: int, out_affected: IntArray
) -> int:
    """Shrink every breaching group's members by ``limit / sum`` (toward zero); count affected."""
    count = 0
    for i in range(weights.shape[0]):
        g = group[i]
        w = weights[i]
        if g < 0 or w == 0 or sums[g] <= limit:
            continue
        num, den = reduce_ratio_nb(limit, sums[g])
        magnitude = abs(w) * num // den
        weights[i] = magnitude if w > 0 else -magnitude
        out_affected[count] = i
        count += 1
    return count


@_jit
def scale_all_nb(weights: IntArray, num: int, den: int, out_affected: IntArray) -> int:
    """Scale every weight by ``num / den`` (<= 1) toward zero; count the weights that changed."""
    num, den = reduce_ratio_nb(num, den)
    count = 0
    for i in range(weights.shape[0]):
        w = weights[i]
        magnitude = abs(w) * num // den
        scaled = magnitude if w > 0 else -magnitude
        if scaled != w:
            weights[i] = scaled
            out_affected[count] = i
            count += 1
    return count


@_jit
def revert_groups_nb(
    weights: IntArray,
    current: IntArray,
    group: IntArray,
    sums: IntArray,
    limit: int,
    out_affected: IntArray,
) -> int:
    """Reject the change of each breaching group's members: keep the current weight, but never
    beyond the target (clamped into ``[min(0, w), max(0, w)]``); count the names changed."""
    count = 0
    for i in range(weights.shape[0]):
        g = group[i]
        if g < 0 or sums[g] <= limit:
            continue
        w = weights[i]
        low = min(0, w)
        high = max(0, w)
        kept = min(max(current[i], low), high)
        if kept != w:
            weights[i] = kept
            out_affected[count] = i
            count += 1
    return count


@_jit
def side_sums_nb(weights: IntArray) -> tuple[int, int]:
    """(sum of longs, sum of |shorts|)."""
    long_sum = 0
    short_sum = 0
    for i in range(weights.shape[0]):
        w = weights[i]
        if w > 0:
            long_sum += w
        else:
            short_sum -= w
    return long_sum, short_sum


@_jit
def shrink_side_nb(weights: IntArray, side: int, num: int, den: int, out_affected: IntArray) -> int:
    """Scale the weights whose sign is ``side`` by ``num / den`` toward zero."""
    num, den = reduce_ratio_nb(num, den)
    count = 0
    for i in range(weights.shape[0]):
        w = weights[i]
        if w * side <= 0:
            continue
        magnitude = abs(w) * num // den
        weights[i] = magnitude * side
        out_affected[count] = i
        count += 1
    return count


@_jit
def perp_side_groups_nb(weights: IntArray, is_perp: npt.NDArray[np.bool_], out_group: IntArray) -> None:
    """Group 0 = long perpetuals, 1 = short perpetuals, -1 = everything else."""
    for i in range(weights.shape[0]):
        w = weights[i]
        if not is_perp[i] or w == 0:
            out_group[i] = -1
        else:
            out_group[i] = 0 if w > 0 else 1
