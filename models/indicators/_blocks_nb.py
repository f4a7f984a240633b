"""Building blocks of the indicator kernels: small state machines kept in a float64 state
vector ``st`` at an offset ``o``. Each ``*_push`` takes one finite value and returns the block's
output (NaN while it warms up). Counters and ring positions are stored as floats (exact below
2**53). All arithmetic is written out in one order so a batch loop and a one-bar update that
call the same block produce the same bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# --- rolling sum (TA-Lib's order: keep the sum of the last n-1 values, add the new one) ------
# layout: [count (saturates at n-1), acc, pos, ring(n)]


def sum_size(n: int) -> int:
    return n + 3


@njit(cache=True, inline="always")
def sum_push(st, o, n, x):
    c = st[o]
    pos = int(st[o + 2])
    acc = st[o + 1] + x
    st[o + 3 + pos] = x
    pos += 1
    if pos == n:
        pos = 0
    st[o + 2] = pos
    if c < n - 1:
        st[o] = c + 1
        st[o + 1] = acc
        return np.nan
    st[o + 1] = acc - st[o + 3 + pos]
    return acc


@njit(cache=True, inline="always")
def sma_push(st, o, n, x):
    return sum_push(st, o, n, x) / n


# --- EMA seeded with the SMA of its first n values; k = 2 / (n + 1) ---------------------------
# layout: [count (saturates at n), acc / ema]


def ema_size() -> int:
    return 2


@njit(cache=True, inline="always")
def ema_push(st, o, n, k, x):
    c = st[o]
    if c >= n:
        v = ((x - st[o + 1]) * k) + st[o + 1]
        st[o + 1] = v
        return v
    st[o] = c + 1
    acc = st[o + 1] + x
    if c < n - 1:
        st[o + 1] = acc
        return np.nan
    v = acc / n
    st[o + 1] = v
    return v


# --- rolling max / min over the last n values (ties: the latest index) -------------------------
# layout: [count, value, index, pos, ring(n)]; count is the absolute bar number (not capped)


def ext_size(n: int) -> int:
    return n + 4


@njit(cache=True, inline="always")
def max_push(st, o, n, x):
    c = st[o]
    pos = int(st[o + 3])
    st[o + 4 + pos] = x
    pos += 1
    if pos == n:
        pos = 0
    st[o + 3] = pos
    st[o] = c + 1
    trailing = c - n + 1
    if c == 0 or x >= st[o + 1]:
        st[o + 1] = x
        st[o + 2] = c
    elif st[o + 2] < trailing:
        best = st[o + 4 + pos]
        bidx = trailing
        slot = pos
        for k in range(1, n):
            slot += 1
            if slot == n:
                slot = 0
            v = st[o + 4 + slot]
            if v >= best:
                best = v
                bidx = trailing + k
        st[o + 1] = best
        st[o + 2] = bidx
    if c < n - 1:
        return np.nan
    return st[o + 1]


@njit(cache=True, inline="always")
def min_push(st, o, n, x):
    c = st[o]
    pos = int(st[o + 3])
    st[o + 4 + pos] = x
    pos += 1
    if pos == n:
        pos = 0
    st[o + 3] = pos
    st[o] = c + 1
    trailing = c - n + 1
    if c == 0 or x <= st[o + 1]:
        st[o + 1] = x
        st[o + 2] = c
    elif st[o + 2] < trailing:
        best = st[o + 4 + pos]
        bidx = trailing
        slot = pos
        for k in range(1, n):
            slot += 1
            if slot == n:
                slot = 0
            v = st[o + 4 + slot]
            if v <= best:
                best = v
                bidx = trailing + k
        st[o + 1] = best
        st[o + 2] = bidx
    if c < n - 1:
        return np.nan
    return st[o + 1]


# --- rolling mean and population variance ------------------------------------------------------
# Sums of (x - K) with a shift K reset to the newest value every n bars (then re-summed exactly
# from the ring), so running sums cannot drift; when the variance is lost in cancellation
# (var < 1e-4 of the shifted second moment) it is recomputed two-pass from the ring, which makes
# a flat window's variance exactly 0.
# layout: [count (saturates at n), pos, K, s1, s2, mean_out, ring(n)]


def var_size(n: int) -> int:
    return n + 6


@njit(cache=True, inline="always")
def var_push(st, o, n, x):
    """Returns the variance (NaN in warm-up); the window mean is left in st[o + 5]."""
    c = st[o]
    pos = int(st[o + 1])
    if c == 0:
        st[o + 2] = x
    k = st[o + 2]
    d = x - k
    if c >= n:
        od = st[o + 6 + pos] - k
        s1 = st[o + 3] + d - od
        s2 = st[o + 4] + d * d - od * od
    else:
        s1 = st[o + 3] + d
        s2 = st[o + 4] + d * d
        st[o] = c + 1
    st[o + 6 + pos] = x
    pos += 1
    if pos == n:
        pos = 0
    st[o + 1] = pos
    if c >= n - 1 and pos == 0:
        k = x
        s1 = 0.0
        s2 = 0.0
        for j in range(n):
            dj = st[o + 6 + j] - k
            s1 += dj
            s2 += dj * dj
        st[o + 2] = k
    st[o + 3] = s1
    st[o + 4] = s2
    if c < n - 1:
        st[o + 5] = np.nan
        return np.nan
    m1 = s1 / n
    m2 = s2 / n
    var = m2 - m1 * m1
    mean = k + m1
    if var < 1e-4 * m2:
        total = 0.0
        for j in range(n):
            total += st[o + 6 + j]
        mean = total / n
        var = 0.0
        for j in range(n):
            dj = st[o + 6 + j] - mean
            var += dj * dj
        var = var / n
    st[o + 5] = mean
    return var


# --- rolling sum re-summed exactly every n bars (for sums of squares that must not drift) ------
# layout: [count (saturates at n), pos, s, ring(n)]


def rsum_size(n: int) -> int:
    return n + 3


@njit(cache=True, inline="always")
def rsum_push(st, o, n, x):
    c = st[o]
    pos = int(st[o + 1])
    if c >= n:
        s = st[o + 2] + x - st[o + 3 + pos]
    else:
        s = st[o + 2] + x
        st[o] = c + 1
    st[o + 3 + pos] = x
    pos += 1
    if pos == n:
        pos = 0
    st[o + 1] = pos
    if c >= n - 1 and pos == 0:
        s = 0.0
        for j in range(n):
            s += st[o + 3 + j]
    st[o + 2] = s
    if c < n - 1:
        return np.nan
    return s


# --- Wilder's RSI: seeded with the simple means of the first n gains and losses -----------------
# layout: [count (saturates at n+1), prev, gain, loss]


def rsi_size() -> int:
    return 4


@njit(cache=True, inline="always")
def rsi_push(st, o, n, x):
    c = st[o]
    if c == 0:
        st[o] = 1.0
        st[o + 1] = x
        return np.nan
    diff = x - st[o + 1]
    st[o + 1] = x
    gain = st[o + 2]
    loss = st[o + 3]
    if c <= n:
        if diff < 0:
            loss -= diff
        else:
            gain += diff
        if c < n:
            st[o] = c + 1
            st[o + 2] = gain
            st[o + 3] = loss
            return np.nan
        st[o] = c + 1
        loss /= n
        gain /= n
    else:
        loss *= n - 1
        gain *= n - 1
        if diff < 0:
            loss -= diff
        else:
            gain += diff
        loss /= n
        gain /= n
    st[o + 2] = gain
    st[o + 3] = loss
    total = gain + loss
    if total != 0.0:
        return 100.0 * (gain / total)
    return 0.0


@njit(cache=True, inline="always")
def true_range(high, low, prev_close):
    tr = high - low
    t = abs(prev_close - high)
    if t > tr:
        tr = t
    t = abs(prev_close - low)
    if t > tr:
        tr = t
    return tr
