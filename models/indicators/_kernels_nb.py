"""One-bar update kernels of every indicator, and the batch drivers that loop them.

An update is ``f(st, p, <inputs...>, out, i)``: it advances the state vector ``st`` by one bar
of finite inputs and writes the bar's outputs into column ``i`` of ``out`` (NaN while warming
up). ``p`` holds the parameters as float64. The batch form is a driver that calls the same
``f`` for every bar, so batch and one-bar updates run the same arithmetic in the same order.
A bar with any NaN input is skipped by both forms: its outputs are NaN, the state is unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from models.indicators._blocks_nb import (
    ema_push,
    max_push,
    min_push,
    rsi_push,
    rsum_push,
    sma_push,
    sum_push,
    true_range,
    var_push,
)

NAN = np.nan

# ----------------------------------------------------------------------------- drivers
# The drivers take the indicator's update kernel as an argument (a first-class function), so
# each (driver, kernel) pair compiles once per process: Numba's on-disk cache cannot reload a
# function specialised on a dispatcher argument ("underlying object has vanished" from a cache
# another process wrote), so the drivers are not cached.


@njit(cache=True, inline="always")
def _nan_col(out, i):
    for k in range(out.shape[0]):
        out[k, i] = NAN


@njit(cache=False)  # takes a dispatcher: not cached (see above)
def run1_nb(f, st, p, a, out):
    for i in range(a.shape[0]):
        x = a[i]
        if x != x:
            _nan_col(out, i)
        else:
            f(st, p, x, out, i)


@njit(cache=False)  # takes a dispatcher: not cached (see above)
def run2_nb(f, st, p, a, b, out):
    for i in range(a.shape[0]):
        x, y = a[i], b[i]
        if x != x or y != y:
            _nan_col(out, i)
        else:
            f(st, p, x, y, out, i)


@njit(cache=False)  # takes a dispatcher: not cached (see above)
def run3_nb(f, st, p, a, b, c, out):
    for i in range(a.shape[0]):
        x, y, z = a[i], b[i], c[i]
        if x != x or y != y or z != z:
            _nan_col(out, i)
        else:
            f(st, p, x, y, z, out, i)


@njit(cache=False)  # takes a dispatcher: not cached (see above)
def run4_nb(f, st, p, a, b, c, d, out):
    for i in range(a.shape[0]):
        x, y, z, w = a[i], b[i], c[i], d[i]
        if x != x or y != y or z != z or w != w:
            _nan_col(out, i)
        else:
            f(st, p, x, y, z, w, out, i)


@njit(cache=False)  # takes a dispatcher: not cached (see above)
def run5_nb(f, st, p, a, b, c, d, e, out):
    for i in range(a.shape[0]):
        x, y, z, w, v = a[i], b[i], c[i], d[i], e[i]
        if x != x or y != y or z != z or w != w or v != v:
            _nan_col(out, i)
        else:
            f(st, p, x, y, z, w, v, out, i)


# ----------------------------------------------------------------------------- moving averages
# p: [n, k] for EMA-based, [n] otherwise


@njit(cache=True, inline="always")
def sma_nb(st, p, x, out, i):
    out[0, i] = sma_push(st, 0, int(p[0]), x)


@njit(cache=True, inline="always")
def ema_nb(st, p, x, out, i):
    out[0, i] = ema_push(st, 0, p[0], p[1], x)


@njit(cache=True, inline="always")
def wma_nb(st, p, x, out, i):
    """layout: [count, pos, acc_w, acc_s, ring(n)]; p: [n, n(n+1)/2]."""
    n = int(p[0])
    c = st[0]
    pos = int(st[1])
    st[4 + pos] = x
    pos += 1
    if pos == n:
        pos = 0
    st[1] = pos
    if c < n - 1:
        st[0] = c + 1
        st[2] += x * (c + 1.0)
        st[3] += x
        out[0, i] = NAN
        return
    s = st[3] + x
    w = st[2] + x * p[0]
    out[0, i] = w / p[1]
    st[2] = w - s
    st[3] = s - st[4 + pos]


@njit(cache=True, inline="always")
def dema_nb(st, p, x, out, i):
    e1 = ema_push(st, 0, p[0], p[1], x)
    out[0, i] = NAN
    if e1 == e1:
        e2 = ema_push(st, 2, p[0], p[1], e1)
        out[0, i] = (2.0 * e1) - e2


@njit(cache=True, inline="always")
def tema_nb(st, p, x, out, i):
    out[0, i] = NAN
    e1 = ema_push(st, 0, p[0], p[1], x)
    if e1 == e1:
        e2 = ema_push(st, 2, p[0], p[1], e1)
        if e2 == e2:
            e3 = ema_push(st, 4, p[0], p[1], e2)
            out[0, i] = e3 + ((3.0 * e1) - (3.0 * e2))


@njit(cache=True, inline="always")
def trima_nb(st, p, x, out, i):
    """SMA(b) of SMA(a), a = n // 2 + 1, b = (n + 1) // 2; p: [a, b]."""
    a = int(p[0])
    s1 = sma_push(st, 0, a, x)
    out[0, i] = NAN
    if s1 == s1:
        out[0, i] = sma_push(st, a + 3, int(p[1]), s1)


@njit(cache=True, inline="always")
def kama_nb(st, p, x, out, i):
    """layout: [count, pos, sumroc, kama, prev, ring(n+1)]; p: [n, const_max, const_diff]."""
    n = int(p[0])
    m = n + 1
    c = st[0]
    pos = int(st[1])
    out[0, i] = NAN
    if c > 0:
        nxt = pos + 1
        if nxt == m:
            nxt = 0
        if c <= n:
            st[2] += abs(x - st[4])
        else:
            st[2] -= abs(st[5 + pos] - st[5 + nxt])
            st[2] += abs(x - st[4])
        if c >= n:
            if c == n:
                st[3] = st[4]
            roc = x - st[5 + nxt]
            sroc = st[2]
            if sroc <= roc or sroc == 0.0:
                er = 1.0
            else:
                er = abs(roc / sroc)
            sc = (er * p[2]) + p[1]
            sc *= sc
            st[3] = ((x - st[3]) * sc) + st[3]
            out[0, i] = st[3]
    st[5 + pos] = x
    pos += 1
    if pos == m:
        pos = 0
    st[1] = pos
    st[4] = x
    if c <= n:
        st[0] = c + 1


# ----------------------------------------------------------------------------- MACD, PPO, TRIX


@njit(cache=True, inline="always")
def macd_nb(st, p, x, out, i):
    """TA-Lib's seeding: both EMAs start at bar slow-1, the fast one from the SMA of its last
    ``fast`` values. layout: [count, sum_slow, sum_fast, ema_fast, ema_slow, signal ema(2)];
    p: [fast, k_fast, slow, k_slow, signal, k_signal]."""
    fast = p[0]
    slow = p[2]
    c = st[0]
    if c < slow:
        st[0] = c + 1
        st[1] += x
        if c >= slow - fast:
            st[2] += x
        if c < slow - 1:
            out[0, i] = NAN
            out[1, i] = NAN
            out[2, i] = NAN
            return
        st[3] = st[2] / fast
        st[4] = st[1] / slow
    else:
        st[3] = ((x - st[3]) * p[1]) + st[3]
        st[4] = ((x - st[4]) * p[3]) + st[4]
    macd = st[3] - st[4]
    sig = ema_push(st, 5, p[4], p[5], macd)
    out[0, i] = macd
    out[1, i] = sig
    out[2, i] = macd - sig


@njit(cache=True, inline="always")
def ppo_nb(st, p, x, out, i):
    """p: [fast, k_fast, slow, k_slow]; two EMA blocks, each SMA-seeded on its own."""
    f = ema_push(st, 0, p[0], p[1], x)
    s = ema_push(st, 2, p[2], p[3], x)
    if s != s:
        out[0, i] = NAN
    elif s != 0.0:
        out[0, i] = ((f - s) / s) * 100.0
    else:
        out[0, i] = 0.0


@njit(cache=True, inline="always")
def trix_nb(st, p, x, out, i):
    """1-bar rate of change (percent) of a triple EMA; layout: 3 EMA blocks, [has_prev, prev]."""
    out[0, i] = NAN
    e1 = ema_push(st, 0, p[0], p[1], x)
    if e1 != e1:
        return
    e2 = ema_push(st, 2, p[0], p[1], e1)
    if e2 != e2:
        return
    e3 = ema_push(st, 4, p[0], p[1], e2)
    if e3 != e3:
        return
    if st[6] != 0.0:
        prev = st[7]
        out[0, i] = ((e3 / prev) - 1.0) * 100.0 if prev != 0.0 else 0.0
    st[6] = 1.0
    st[7] = e3


# ----------------------------------------------------------------------------- momentum family


@njit(cache=True, inline="always")
def _lag_push(st, n, x):
    """Ring of the last n values: returns x[t - n] (NaN while fewer) and stores x. layout:
    [count, pos, ring(n)]."""
    c = st[0]
    pos = int(st[1])
    old = st[2 + pos]
    st[2 + pos] = x
    pos += 1
    if pos == n:
        pos = 0
    st[1] = pos
    if c < n:
        st[0] = c + 1
        return NAN
    return old


@njit(cache=True, inline="always")
def mom_nb(st, p, x, out, i):
    old = _lag_push(st, int(p[0]), x)
    out[0, i] = x - old


@njit(cache=True, inline="always")
def roc_nb(st, p, x, out, i):
    old = _lag_push(st, int(p[0]), x)
    if old != old:
        out[0, i] = NAN
    elif old != 0.0:
        out[0, i] = ((x / old) - 1.0) * 100.0
    else:
        out[0, i] = 0.0


@njit(cache=True, inline="always")
def rsi_nb(st, p, x, out, i):
    out[0, i] = rsi_push(st, 0, int(p[0]), x)


@njit(cache=True, inline="always")
def _tie(a, b):
    """a and b equal but for rounding: within 1e-14 of their magnitude (as TA-Lib 0.8)."""
    return abs(a - b) <= 1e-14 * (abs(a) + abs(b))


@njit(cache=True, inline="always")
def stochf_core(st, o, k_n, d_n, hi, lo, c):
    """Fast %K over k_n bars and its SMA(d_n); blocks: max(k_n), min(k_n), sma(d_n)."""
    hh = max_push(st, o, k_n, hi)
    ll = min_push(st, o + k_n + 4, k_n, lo)
    if hh != hh:
        return NAN, NAN
    if _tie(hh, ll):
        fk = 0.0
    else:
        fk = (c - ll) / ((hh - ll) / 100.0)
    fd = sma_push(st, o + 2 * (k_n + 4), d_n, fk)
    return fk, fd


@njit(cache=True, inline="always")
def stochf_nb(st, p, hi, lo, c, out, i):
    fk, fd = stochf_core(st, 0, int(p[0]), int(p[1]), hi, lo, c)
    out[0, i] = fk
    out[1, i] = fd


@njit(cache=True, inline="always")
def stoch_nb(st, p, hi, lo, c, out, i):
    """p: [fastk, slowk, slowd]; %K slow = SMA(slowk) of fast %K, %D slow = SMA(slowd) of it."""
    k_n = int(p[0])
    sk_n = int(p[1])
    _fk, sk = stochf_core(st, 0, k_n, sk_n, hi, lo, c)
    out[0, i] = sk
    out[1, i] = NAN
    if sk == sk:
        out[1, i] = sma_push(st, 2 * (k_n + 4) + sk_n + 3, int(p[2]), sk)


@njit(cache=True, inline="always")
def stochrsi_nb(st, p, x, out, i):
    """p: [period, fastk, fastd]; fast stochastic of RSI (high = low = close = RSI)."""
    r = rsi_push(st, 0, int(p[0]), x)
    out[0, i] = NAN
    out[1, i] = NAN
    if r == r:
        fk, fd = stochf_core(st, 4, int(p[1]), int(p[2]), r, r, r)
        out[0, i] = fk
        out[1, i] = fd


@njit(cache=True, inline="always")
def willr_nb(st, p, hi, lo, c, out, i):
    n = int(p[0])
    hh = max_push(st, 0, n, hi)
    ll = min_push(st, n + 4, n, lo)
    if hh != hh:
        out[0, i] = NAN
        return
    out[0, i] = 0.0 if _tie(hh, ll) else (hh - c) / ((hh - ll) / (-100.0))


@njit(cache=True, inline="always")
def cci_nb(st, p, hi, lo, c, out, i):
    """layout: [count, pos, ring(n)] of typical prices; mean and mean deviation re-summed."""
    n = int(p[0])
    tp = (hi + lo + c) / 3.0
    cnt = st[0]
    pos = int(st[1])
    st[2 + pos] = tp
    pos += 1
    if pos == n:
        pos = 0
    st[1] = pos
    if cnt < n - 1:
        st[0] = cnt + 1
        out[0, i] = NAN
        return
    avg = 0.0
    for j in range(n):
        avg += st[2 + j]
    avg /= n
    dev = 0.0
    for j in range(n):
        dev += abs(st[2 + j] - avg)
    num = tp - avg
    if num != 0.0 and dev != 0.0:
        out[0, i] = num / (0.015 * (dev / n))
    else:
        out[0, i] = 0.0


@njit(cache=True, inline="always")
def ultosc_nb(st, p, hi, lo, c, out, i):
    """layout: [count, prev_close], then a sum block of buying pressure and one of true range
    for each of the three periods; p: [p1, p2, p3]."""
    out[0, i] = NAN
    if st[0] == 0.0:
        st[0] = 1.0
        st[1] = c
        return
    pc = st[1]
    st[1] = c
    true_low = lo if lo < pc else pc
    bp = c - true_low
    tr = true_range(hi, lo, pc)
    o = 2
    total = 0.0
    ready = True
    for j in range(3):
        n = int(p[j])
        a = sum_push(st, o, n, bp)
        b = sum_push(st, o + n + 3, n, tr)
        o += 2 * (n + 3)
        if a != a:
            ready = False
        elif b != 0.0:
            total += (4.0 if j == 0 else (2.0 if j == 1 else 1.0)) * (a / b)
    if ready:
        out[0, i] = 100.0 * (total / 7.0)


# ----------------------------------------------------------------------------- volatility


@njit(cache=True, inline="always")
def trange_nb(st, p, hi, lo, c, out, i):
    out[0, i] = true_range(hi, lo, st[1]) if st[0] != 0.0 else NAN
    st[0] = 1.0
    st[1] = c


@njit(cache=True, inline="always")
def atr_push(st, o, n, hi, lo, c):
    """Wilder ATR seeded with the SMA of the first n true ranges. layout: [count, prev_close,
    acc / atr]."""
    cnt = st[o]
    if cnt == 0.0:
        st[o] = 1.0
        st[o + 1] = c
        return NAN
    tr = true_range(hi, lo, st[o + 1])
    st[o + 1] = c
    if cnt <= n:
        st[o] = cnt + 1
        acc = st[o + 2] + tr
        if cnt < n:
            st[o + 2] = acc
            return NAN
        v = acc / n
    else:
        v = ((st[o + 2] * (n - 1)) + tr) / n
    st[o + 2] = v
    return v


@njit(cache=True, inline="always")
def atr_nb(st, p, hi, lo, c, out, i):
    out[0, i] = atr_push(st, 0, p[0], hi, lo, c)


@njit(cache=True, inline="always")
def natr_nb(st, p, hi, lo, c, out, i):
    a = atr_push(st, 0, p[0], hi, lo, c)
    if a != a:
        out[0, i] = NAN
    elif c != 0.0:
        out[0, i] = (a / c) * 100.0
    else:
        out[0, i] = 0.0


@njit(cache=True, inline="always")
def bbands_nb(st, p, x, out, i):
    """p: [n, k]; middle = rolling mean, band = k * population standard deviation."""
    var = var_push(st, 0, int(p[0]), x)
    if var != var:
        out[0, i] = NAN
        out[1, i] = NAN
        out[2, i] = NAN
        return
    mid = st[5]
    band = p[1] * math.sqrt(var)
    out[0, i] = mid + band
    out[1, i] = mid
    out[2, i] = mid - band


@njit(cache=True, inline="always")
def zscore_nb(st, p, x, out, i):
    var = var_push(st, 0, int(p[0]), x)
    if var != var:
        out[0, i] = NAN
    elif var > 0.0:
        out[0, i] = (x - st[5]) / math.sqrt(var)
    else:
        out[0, i] = 0.0


@njit(cache=True, inline="always")
def keltner_nb(st, p, hi, lo, c, out, i):
    """p: [n, k_ema, atr_n, mult]; middle = EMA(close, n), bands = middle +- mult * ATR(atr_n)."""
    mid = ema_push(st, 0, p[0], p[1], c)
    a = atr_push(st, 2, p[2], hi, lo, c)
    if mid != mid or a != a:
        out[0, i] = NAN
        out[1, i] = NAN
        out[2, i] = NAN
        return
    out[0, i] = mid + p[3] * a
    out[1, i] = mid
    out[2, i] = mid - p[3] * a


@njit(cache=True, inline="always")
def donchian_nb(st, p, hi, lo, out, i):
    n = int(p[0])
    up = max_push(st, 0, n, hi)
    dn = min_push(st, n + 4, n, lo)
    out[0, i] = up
    out[1, i] = (up + dn) / 2.0
    out[2, i] = dn


@njit(cache=True, inline="always")
def rvol_nb(st, p, x, out, i):
    """p: [n, periods_per_year]; sqrt(ppy * mean of the last n squared log returns).
    layout: [has_prev, prev, rsum block]. A non-positive price is skipped like a NaN bar."""
    if x <= 0.0:
        out[0, i] = NAN
        return
    if st[0] == 0.0:
        st[0] = 1.0
        st[1] = x
        out[0, i] = NAN
        return
    r = math.log(x / st[1])
    st[1] = x
    n = int(p[0])
    s = rsum_push(st, 2, n, r * r)
    out[0, i] = math.sqrt(p[1] * (s / n)) if s == s else NAN


# ----------------------------------------------------------------------------- trend


@njit(cache=True, inline="always")
def _dm(diff_p, diff_m):
    """(+DM, -DM) of one bar from the high's rise and the low's fall."""
    if diff_m > 0 and diff_p < diff_m:
        return 0.0, diff_m
    if diff_p > 0 and diff_p > diff_m:
        return diff_p, 0.0
    return 0.0, 0.0


@njit(cache=True, inline="always")
def _di_dx(st, out, i):
    """Writes +DI and -DI (0 when the smoothed TR is 0); returns DX (NaN when undefined)."""
    ptr = st[6]
    if ptr == 0.0:
        out[1, i] = 0.0
        out[2, i] = 0.0
        return NAN
    plus = 100.0 * (st[4] / ptr)
    minus = 100.0 * (st[5] / ptr)
    out[1, i] = plus
    out[2, i] = minus
    s = minus + plus
    if s != 0.0:
        return 100.0 * (abs(minus - plus) / s)
    return NAN


@njit(cache=True, inline="always")
def adx_nb(st, p, hi, lo, c, out, i):
    """Wilder's directional movement as TA-Lib computes it. layout: [count, prev_high, prev_low,
    prev_close, +DM sum, -DM sum, TR sum, DX sum / ADX]; outputs adx, +DI, -DI."""
    n = p[0]
    cnt = st[0]
    out[0, i] = NAN
    out[1, i] = NAN
    out[2, i] = NAN
    if cnt == 0.0:
        st[0] = 1.0
        st[1] = hi
        st[2] = lo
        st[3] = c
        return
    diff_p = hi - st[1]
    diff_m = st[2] - lo
    tr = true_range(hi, lo, st[3])
    st[1] = hi
    st[2] = lo
    st[3] = c
    dm_p, dm_m = _dm(diff_p, diff_m)
    if cnt < n:
        st[4] += dm_p
        st[5] += dm_m
        st[6] += tr
        st[0] = cnt + 1
        return
    st[4] = st[4] - (st[4] / n) + dm_p
    st[5] = st[5] - (st[5] / n) + dm_m
    st[6] = st[6] - (st[6] / n) + tr
    if cnt < 2 * n:
        st[0] = cnt + 1
    dx = _di_dx(st, out, i)
    if cnt < 2 * n - 1:
        if dx == dx:
            st[7] += dx
        return
    if cnt == 2 * n - 1:
        if dx == dx:
            st[7] += dx
        st[7] = st[7] / n
    elif dx == dx:
        st[7] = ((st[7] * (n - 1)) + dx) / n
    out[0, i] = st[7]


@njit(cache=True, inline="always")
def aroon_nb(st, p, hi, lo, out, i):
    """Windows of n + 1 bars; outputs aroon_down, aroon_up, oscillator (up - down)."""
    n = int(p[0])
    m = n + 1
    cnt = st[0]  # the max block's own counter: the bar number
    hh = max_push(st, 0, m, hi)
    min_push(st, m + 4, m, lo)
    if hh != hh:
        out[0, i] = NAN
        out[1, i] = NAN
        out[2, i] = NAN
        return
    factor = 100.0 / n
    hidx = st[2]
    lidx = st[m + 4 + 2]
    out[0, i] = factor * (n - (cnt - lidx))
    out[1, i] = factor * (n - (cnt - hidx))
    out[2, i] = factor * (hidx - lidx)


@njit(cache=True, inline="always")
def _sar_long(st, p, prev_h, prev_l, hi, lo):
    sar = st[2]
    if lo <= sar:  # reversal to short
        st[1] = 0.0
        sar = st[3]
        if sar < prev_h:
            sar = prev_h
        if sar < hi:
            sar = hi
        value = sar
        st[4] = p[0]
        st[3] = lo
        sar = sar + st[4] * (st[3] - sar)
        if sar < prev_h:
            sar = prev_h
        if sar < hi:
            sar = hi
    else:
        value = sar
        if hi > st[3]:
            st[3] = hi
            st[4] += p[0]
            if st[4] > p[1]:
                st[4] = p[1]
        sar = sar + st[4] * (st[3] - sar)
        if sar > prev_l:
            sar = prev_l
        if sar > lo:
            sar = lo
    st[2] = sar
    return value


@njit(cache=True, inline="always")
def _sar_short(st, p, prev_h, prev_l, hi, lo):
    sar = st[2]
    if hi >= sar:  # reversal to long
        st[1] = 1.0
        sar = st[3]
        if sar > prev_l:
            sar = prev_l
        if sar > lo:
            sar = lo
        value = sar
        st[4] = p[0]
        st[3] = hi
        sar = sar + st[4] * (st[3] - sar)
        if sar > prev_l:
            sar = prev_l
        if sar > lo:
            sar = lo
    else:
        value = sar
        if lo < st[3]:
            st[3] = lo
            st[4] += p[0]
            if st[4] > p[1]:
                st[4] = p[1]
        sar = sar + st[4] * (st[3] - sar)
        if sar < prev_h:
            sar = prev_h
        if sar < hi:
            sar = hi
    st[2] = sar
    return value


@njit(cache=True, inline="always")
def sar_nb(st, p, hi, lo, out, i):
    """Parabolic SAR, started as TA-Lib starts it. layout: [count, is_long, sar, ep, af,
    prev_high, prev_low]; p: [acceleration, maximum]."""
    cnt = st[0]
    if cnt == 0.0:
        st[0] = 1.0
        st[5] = hi
        st[6] = lo
        out[0, i] = NAN
        return
    if cnt == 1.0:
        st[0] = 2.0
        diff_p = hi - st[5]
        diff_m = st[6] - lo
        down = diff_m > 0 and diff_p < diff_m
        st[4] = p[0]
        if down:
            st[1] = 0.0
            st[3] = lo
            st[2] = st[5]
        else:
            st[1] = 1.0
            st[3] = hi
            st[2] = st[6]
        prev_h = hi
        prev_l = lo
    else:
        prev_h = st[5]
        prev_l = st[6]
    if st[1] != 0.0:
        out[0, i] = _sar_long(st, p, prev_h, prev_l, hi, lo)
    else:
        out[0, i] = _sar_short(st, p, prev_h, prev_l, hi, lo)
    st[5] = hi
    st[6] = lo


@njit(cache=True, inline="always")
def ichimoku_nb(st, p, hi, lo, out, i):
    """p: [tenkan, kijun, senkou_b, displacement]; outputs tenkan, kijun, span_a, span_b (the
    cloud at this bar: leading spans computed ``displacement`` bars ago), lead_a, lead_b.
    layout: 6 extreme blocks, then [count, pos, ring_a(d), ring_b(d)]."""
    n1 = int(p[0])
    n2 = int(p[1])
    n3 = int(p[2])
    o2 = 2 * (n1 + 4)
    o3 = o2 + 2 * (n2 + 4)
    o = o3 + 2 * (n3 + 4)
    tenkan = (max_push(st, 0, n1, hi) + min_push(st, n1 + 4, n1, lo)) / 2.0
    kijun = (max_push(st, o2, n2, hi) + min_push(st, o2 + n2 + 4, n2, lo)) / 2.0
    senkou = (max_push(st, o3, n3, hi) + min_push(st, o3 + n3 + 4, n3, lo)) / 2.0
    lead_a = (tenkan + kijun) / 2.0
    lead_b = senkou
    d = int(p[3])
    cnt = st[o]
    pos = int(st[o + 1])
    span_a = st[o + 2 + pos]
    span_b = st[o + 2 + d + pos]
    st[o + 2 + pos] = lead_a
    st[o + 2 + d + pos] = lead_b
    pos += 1
    if pos == d:
        pos = 0
    st[o + 1] = pos
    if cnt < d:
        st[o] = cnt + 1
        span_a = NAN
        span_b = NAN
    out[0, i] = tenkan
    out[1, i] = kijun
    out[2, i] = span_a
    out[3, i] = span_b
    out[4, i] = lead_a
    out[5, i] = lead_b


@njit(cache=True, inline="always")
def heikin_ashi_nb(st, p, o_, hi, lo, c, out, i):
    """layout: [count, ha_open, ha_close]; outputs ha_open, ha_high, ha_low, ha_close."""
    if st[0] == 0.0:
        st[0] = 1.0
        ha_open = (o_ + c) / 2.0
    else:
        ha_open = (st[1] + st[2]) / 2.0
    ha_close = (o_ + hi + lo + c) / 4.0
    st[1] = ha_open
    st[2] = ha_close
    out[0, i] = ha_open
    out[1, i] = max(hi, max(ha_open, ha_close))
    out[2, i] = min(lo, min(ha_open, ha_close))
    out[3, i] = ha_close


# ----------------------------------------------------------------------------- volume


@njit(cache=True, inline="always")
def obv_nb(st, p, c, v, out, i):
    """layout: [count, prev_close, obv]; starts at the first bar's volume (as TA-Lib)."""
    if st[0] == 0.0:
        st[0] = 1.0
        st[2] = v
    elif c > st[1]:
        st[2] += v
    elif c < st[1]:
        st[2] -= v
    st[1] = c
    out[0, i] = st[2]


@njit(cache=True, inline="always")
def _clv_volume(hi, lo, c, v):
    rng = hi - lo
    if rng > 0.0:
        return (((c - lo) - (hi - c)) / rng) * v
    return 0.0


@njit(cache=True, inline="always")
def ad_nb(st, p, hi, lo, c, v, out, i):
    st[0] += _clv_volume(hi, lo, c, v)
    out[0, i] = st[0]


@njit(cache=True, inline="always")
def adosc_nb(st, p, hi, lo, c, v, out, i):
    """EMA(fast) - EMA(slow) of the A/D line, both seeded with the first A/D value (TA-Lib).
    layout: [count, ad, fast, slow]; p: [fast, k_fast, slow, k_slow]."""
    ad = st[1] + _clv_volume(hi, lo, c, v)
    st[1] = ad
    cnt = st[0]
    if cnt == 0.0:
        st[2] = ad
        st[3] = ad
    else:
        st[2] = (p[1] * ad) + ((1.0 - p[1]) * st[2])
        st[3] = (p[3] * ad) + ((1.0 - p[3]) * st[3])
    if cnt < p[2] - 1:
        st[0] = cnt + 1
        out[0, i] = NAN
        return
    out[0, i] = st[2] - st[3]


@njit(cache=True, inline="always")
def mfi_nb(st, p, hi, lo, c, v, out, i):
    """A typical price within 1e-14 (relative) of the previous one is no change (no flow);
    after n bars without flow both sums are reset to exactly 0. layout: [count, prev_tp,
    null_run], sum block of positive flow, sum block of negative flow."""
    n = int(p[0])
    tp = (hi + lo + c) / 3.0
    if st[0] == 0.0:
        st[0] = 1.0
        st[1] = tp
        out[0, i] = NAN
        return
    d = tp - st[1]
    flat = abs(d) <= 1e-14 * (abs(tp) + abs(st[1]))
    st[1] = tp
    mf = 0.0 if flat else tp * v
    pos_f = 0.0 if d < 0.0 else mf
    neg_f = mf if d < 0.0 else 0.0
    ps = sum_push(st, 3, n, pos_f)
    ns = sum_push(st, n + 6, n, neg_f)
    run = st[2] + 1.0 if mf == 0.0 else 0.0
    if run >= n:
        run = n
        st[4] = 0.0
        st[n + 7] = 0.0
        if ps == ps:
            ps = 0.0
            ns = 0.0
    st[2] = run
    if ps != ps:
        out[0, i] = NAN
        return
    total = ps + ns
    if total <= 0.0:
        out[0, i] = 0.0
        return
    clamped = 0.0 if ps < 0.0 else (total if ps > total else ps)
    out[0, i] = 100.0 * (clamped / total)


@njit(cache=True, inline="always")
def vwap_nb(st, p, hi, lo, c, v, session, out, i):
    """Cumulative typical-price VWAP since the session started; restarts when ``session``
    changes. layout: [started, session, sum(tp * v), sum(v)]."""
    if st[0] == 0.0 or session != st[1]:
        st[0] = 1.0
        st[1] = session
        st[2] = 0.0
        st[3] = 0.0
    tp = (hi + lo + c) / 3.0
    st[2] += tp * v
    st[3] += v
    out[0, i] = st[2] / st[3] if st[3] > 0.0 else NAN
