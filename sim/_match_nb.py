"""Numba matching kernels: arrays in, arrays out; no objects, no I/O."""

from __future__ import annotations

import numpy as np
from numba import njit

RATE = 100_000_000  # 1e-8 units, as domain.fixed.RATE_SCALE
MARKET = 0
LIMIT = 1


@njit(cache=True)
def _round_against(numerator: int, denominator: int, side: int) -> int:
    """Buys round up, sells round down: a price the trader never benefits from."""
    quotient = numerator // denominator
    if side > 0 and quotient * denominator != numerator:
        quotient += 1
    return quotient


@njit(cache=True)
def match_step_nb(
    sides,
    order_types,
    limit_px,
    qty_open,
    columns,
    lots,
    ticks,
    bar_open,
    bar_high,
    bar_low,
    bar_volume,
    bar_valid,
    slippage_e8,
    participation_e8,
    out_px,
    out_qty,
):
    """Fill each open order against one step's bars (row vectors over the universe).

    Market orders fill at the open moved against the trader by ``slippage_e8`` and rounded
    onto the tick grid against the trader. A buy limit fills when the bar's low trades at
    or through the limit, at the better of open and limit; sells mirror it. With
    ``participation_e8 > 0`` the fill is capped at that fraction of the bar's volume,
    rounded down to whole lots (partial fills). Unfilled orders get ``out_qty = 0``.
    """
    for k in range(sides.shape[0]):
        column = columns[k]
        out_qty[k] = 0
        out_px[k] = 0
        if not bar_valid[column]:
            continue
        side = sides[k]
        if order_types[k] == MARKET:
            numerator = bar_open[column] * (RATE + side * slippage_e8)
            px = _round_against(numerator, RATE * ticks[k], side) * ticks[k]
        elif side > 0:
            if bar_low[column] > limit_px[k]:
                continue
            px = min(bar_open[column], limit_px[k])
        else:
            if bar_high[column] < limit_px[k]:
                continue
            px = max(bar_open[column], limit_px[k])
        qty = qty_open[k]
        if participation_e8 > 0:
            cap = bar_volume[column] * participation_e8 // RATE
            cap = (cap // lots[k]) * lots[k]
            qty = min(qty, cap)
        if qty > 0 and px > 0:
            out_qty[k] = qty
            out_px[k] = px


@njit(cache=True)
def next_fill_step_nb(sides, order_types, limit_px, columns, after_step, low, high, valid):
    """The first step after ``after_step`` at which any of the orders can fill, or -1."""
    best = -1
    steps = valid.shape[0]
    for k in range(sides.shape[0]):
        column = columns[k]
        stop = steps if best < 0 else best
        for step in range(after_step + 1, stop):
            if not valid[step, column]:
                continue
            if order_types[k] == MARKET:
                best = step
                break
            if sides[k] > 0 and low[step, column] <= limit_px[k]:
                best = step
                break
            if sides[k] < 0 and high[step, column] >= limit_px[k]:
                best = step
                break
    return best


def warm_up() -> None:
    """Compile (or load from cache) the kernels on tiny inputs."""
    one = np.ones(1, dtype=np.int64)
    zero = np.zeros(1, dtype=np.int64)
    valid = np.ones(1, dtype=np.bool_)
    out_a = np.zeros(1, dtype=np.int64)
    out_b = np.zeros(1, dtype=np.int64)
    match_step_nb(one, zero, zero, one, zero, one, one, one, one, one, one, valid, 0, 0, out_a, out_b)
    next_fill_step_nb(one, zero, zero, zero, -1, one.reshape(1, 1), one.reshape(1, 1), valid.reshape(1, 1))
