"""One-bar step kernels of every indicator, and the batch drivers that loop them.

A step is ``f(s, r, p, <inputs...>, out, i) -> s``: it takes the indicator's scalar state ``s``
(a tuple of floats), its rings ``r`` (a float64 array) and one bar of finite inputs, writes the
bar's outputs into column ``i`` of ``out`` (NaN while warming up) and returns the new scalar
state. ``p`` holds the parameters as float64. The batch form is a driver that calls the same
``f`` for every bar, carrying ``s`` from bar to bar; the one-bar form calls ``f`` once per
update. So both run the same arithmetic in the same order, and in the batch loop the scalar
state stays in registers instead of being stored and reloaded through memory every bar.
A bar with any NaN input is skipped by both forms: its outputs are NaN, the state is unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from models.indicators._blocks_nb import (
    atr_push,
    cci_value,
    clv_volume,
    ema_next,
    ema_push,
    hilo_push,
    kama_next,
    msum_push,
    rsi_push,
    rsum_push,
    sum2_push,
    sum_push,
    true_range,
    var_push,
)

NAN = np.nan
_FLAGS = {"error_model": "numpy", "_nrt": False}

# ----------------------------------------------------------------------------- drivers
# The drivers take the indicator's step kernel as an argument (a first-class function), so
# each (driver, kernel) pair compiles once per process: Numba's on-disk cache cannot reload a
# function specialised on a dispatcher argument ("underlying object has vanished" from a cache
# another process wrote), so the drivers are not cached.


@njit(cache=True, inline="always", **_FLAGS)
def _nan_col(out, i):
    for k in range(out.shape[0]):
        out[k, i] = NAN


@njit(cache=False, **_FLAGS)  # takes a dispatcher: not cached (see above)
def run1_nb(f, s, r, p, a, out):
    for i in range(a.shape[0]):
        x = a[i]
        if x != x:
            _nan_col(out, i)
        else:
            s = f(s, r, p, x, out, i)
    return s


@njit(cache=False, **_FLAGS)  # takes a dispatcher: not cached (see above)
def run2_nb(f, s, r, p, a, b, out):
    for i in range(a.shape[0]):
        x, y = a[i], b[i]
        if x != x or y != y:
            _nan_col(out, i)
        else:
            s = f(s, r, p, x, y, out, i)
    return s


@njit(cache=False, **_FLAGS)  # takes a dispatcher: not cached (see above)
def run3_nb(f, s, r, p, a, b, c, out):
    for i in range(a.shape[0]):
        x, y, z = a[i], b[i], c[i]
        if x != x or y != y or z != z:
            _nan_col(out, i)
        else:
            s = f(s, r, p, x, y, z, out, i)
    return s


@njit(cache=False, **_FLAGS)  # takes a dispatcher: not cached (see above)
def run4_nb(f, s, r, p, a, b, c, d, out):
    for i in range(a.shape[0]):
        x, y, z, w = a[i], b[i], c[i], d[i]
        if x != x or y != y or z != z or w != w:
            _nan_col(out, i)
        else:
            s = f(s, r, p, x, y, z, w, out, i)
    return s


@njit(cache=False, **_FLAGS)  # takes a dispatcher: not cached (see above)
def run5_nb(f, s, r, p, a, b, c, d, e, out):
    for i in range(a.shape[0]):
        x, y, z, w, v = a[i], b[i], c[i], d[i], e[i]
        if x != x or y != y or z != z or w != w or v != v:
            _nan_col(out, i)
        else:
            s = f(s, r, p, x, y, z, w, v, out, i)
    return s


# ----------------------------------------------------------------------------- moving averages
# p: [n, k] for EMA-based, [n] otherwise


@njit(cache=True, inline="always", **_FLAGS)
def sma_nb(s, r, p, x, out, i):
    """s: moving-sum block (one addition a bar); r: ring(n)."""
    c, acc, pos = s
    n = p[0]
    c, acc, pos, v = msum_push(c, acc, pos, r, 0, int(n), x)
    out[0, i] = v / n
    return (c, acc, pos)


@njit(cache=True, inline="always", **_FLAGS)
def ema_nb(s, r, p, x, out, i):
    c, v = s
    c, v, e = ema_push(c, v, p[0], p[1], x)
    out[0, i] = e
    return (c, v)


@njit(cache=True, inline="always", **_FLAGS)
def wma_nb(s, r, p, x, out, i):
    """s: [count, pos, w, sm]: the weighted sum (weights 1..n, newest n) and the plain sum of
    the last n values; r: ring(n); p: [n, n(n+1)/2]. Each carried sum takes one addition a bar:
    w + (n * x - sm) and sm + (x - x[n ago]) (the terms are off the chains)."""
    c, pos, w, sm = s
    n = int(p[0])
    ip = pos
    if c < n:
        c = c + 1.0
        w = w + x * c
        sm = sm + x
    else:
        w = w + (x * p[0] - sm)
        sm = sm + (x - r[ip])
    r[ip] = x
    ip += 1
    if ip == n:
        ip = 0
    out[0, i] = w / p[1] if c >= n else NAN
    return (c, ip, w, sm)


@njit(cache=True, inline="always", **_FLAGS)
def dema_nb(s, r, p, x, out, i):
    c1, v1, c2, v2 = s
    c1, v1, e1 = ema_push(c1, v1, p[0], p[1], x)
    out[0, i] = NAN
    if e1 == e1:
        c2, v2, e2 = ema_push(c2, v2, p[0], p[1], e1)
        out[0, i] = (2.0 * e1) - e2
    return (c1, v1, c2, v2)


@njit(cache=True, inline="always", **_FLAGS)
def tema_nb(s, r, p, x, out, i):
    c1, v1, c2, v2, c3, v3 = s
    out[0, i] = NAN
    c1, v1, e1 = ema_push(c1, v1, p[0], p[1], x)
    if e1 == e1:
        c2, v2, e2 = ema_push(c2, v2, p[0], p[1], e1)
        if e2 == e2:
            c3, v3, e3 = ema_push(c3, v3, p[0], p[1], e2)
            out[0, i] = e3 + ((3.0 * e1) - (3.0 * e2))
    return (c1, v1, c2, v2, c3, v3)


@njit(cache=True, inline="always", **_FLAGS)
def trima_nb(s, r, p, x, out, i):
    """SMA(b) of SMA(a), a = n // 2 + 1, b = (n + 1) // 2; p: [a, b]; r: ring(a), ring(b)."""
    c1, a1, q1, c2, a2, q2 = s
    a = int(p[0])
    c1, a1, q1, v1 = sum_push(c1, a1, q1, r, 0, a, x)
    s1 = v1 / a
    out[0, i] = NAN
    if s1 == s1:
        b = int(p[1])
        c2, a2, q2, v2 = sum_push(c2, a2, q2, r, a, b, s1)
        out[0, i] = v2 / b
    return (c1, a1, q1, c2, a2, q2)


@njit(cache=True, inline="always", **_FLAGS)
def kama_nb(s, r, p, x, out, i):
    """s: [count, pos, sumroc, kama, prev]; r: ring(n+1); p: [n, const_max, const_diff]."""
    c, pos, sumroc, kama, prev = s
    n = int(p[0])
    m = n + 1
    ip = pos
    out[0, i] = NAN
    if c > 0:
        nxt = ip + 1
        if nxt == m:
            nxt = 0
        if c <= n:
            sumroc += abs(x - prev)
        else:
            sumroc -= abs(r[ip] - r[nxt])
            sumroc += abs(x - prev)
        if c >= n:
            if c == n:
                kama = prev
            roc = x - r[nxt]
            kama = kama_next(kama, sumroc, roc, p[1], p[2], x)
            out[0, i] = kama
    r[ip] = x
    ip += 1
    if ip == m:
        ip = 0
    if c <= n:
        c = c + 1.0
    return (c, ip, sumroc, kama, x)


# ----------------------------------------------------------------------------- MACD, PPO, TRIX


@njit(cache=True, inline="always", **_FLAGS)
def macd_nb(s, r, p, x, out, i):
    """TA-Lib's seeding: both EMAs start at bar slow-1, the fast one from the SMA of its last
    ``fast`` values. s: [count, sum_slow, sum_fast, ema_fast, ema_slow, signal ema(2)];
    p: [fast, k_fast, slow, k_slow, signal, k_signal]."""
    c, sum_slow, sum_fast, ef, es, sc, sv = s
    fast = p[0]
    slow = p[2]
    if c < slow:
        sum_slow += x
        if c >= slow - fast:
            sum_fast += x
        if c < slow - 1:
            out[0, i] = NAN
            out[1, i] = NAN
            out[2, i] = NAN
            return (c + 1.0, sum_slow, sum_fast, ef, es, sc, sv)
        c = c + 1.0
        ef = sum_fast / fast
        es = sum_slow / slow
    else:
        ef = ema_next(ef, p[1], x)
        es = ema_next(es, p[3], x)
    macd = ef - es
    sc, sv, sig = ema_push(sc, sv, p[4], p[5], macd)
    out[0, i] = macd
    out[1, i] = sig
    out[2, i] = macd - sig
    return (c, sum_slow, sum_fast, ef, es, sc, sv)


@njit(cache=True, inline="always", **_FLAGS)
def ppo_nb(s, r, p, x, out, i):
    """p: [fast, k_fast, slow, k_slow]; two EMA blocks, each SMA-seeded on its own."""
    c1, v1, c2, v2 = s
    c1, v1, f = ema_push(c1, v1, p[0], p[1], x)
    c2, v2, e = ema_push(c2, v2, p[2], p[3], x)
    if e != e:
        out[0, i] = NAN
    elif e != 0.0:
        out[0, i] = ((f - e) / e) * 100.0
    else:
        out[0, i] = 0.0
    return (c1, v1, c2, v2)


@njit(cache=True, inline="always", **_FLAGS)
def trix_nb(s, r, p, x, out, i):
    """1-bar rate of change (percent) of a triple EMA; s: 3 EMA blocks, [has_prev, prev]."""
    c1, v1, c2, v2, c3, v3, has_prev, prev = s
    out[0, i] = NAN
    c1, v1, e1 = ema_push(c1, v1, p[0], p[1], x)
    if e1 == e1:
        c2, v2, e2 = ema_push(c2, v2, p[0], p[1], e1)
        if e2 == e2:
            c3, v3, e3 = ema_push(c3, v3, p[0], p[1], e2)
            if e3 == e3:
                if has_prev != 0.0:
                    out[0, i] = ((e3 / prev) - 1.0) * 100.0 if prev != 0.0 else 0.0
                has_prev = 1.0
                prev = e3
    return (c1, v1, c2, v2, c3, v3, has_prev, prev)


# ----------------------------------------------------------------------------- momentum family


@njit(cache=True, inline="always", **_FLAGS)
def _lag_push(c, pos, r, n, x):
    """Ring of the last n values: -> (count, pos, x[t - n] or NaN while fewer); stores x."""
    ip = pos
    old = r[ip]
    r[ip] = x
    ip += 1
    if ip == n:
        ip = 0
    if c < n:
        return c + 1.0, ip, NAN
    return c, ip, old


@njit(cache=True, inline="always", **_FLAGS)
def mom_nb(s, r, p, x, out, i):
    """s: [count, pos]; r: ring(n)."""
    c, pos = s
    c, pos, old = _lag_push(c, pos, r, int(p[0]), x)
    out[0, i] = x - old
    return (c, pos)


@njit(cache=True, inline="always", **_FLAGS)
def roc_nb(s, r, p, x, out, i):
    c, pos = s
    c, pos, old = _lag_push(c, pos, r, int(p[0]), x)
    if old != old:
        out[0, i] = NAN
    elif old != 0.0:
        out[0, i] = ((x / old) - 1.0) * 100.0
    else:
        out[0, i] = 0.0
    return (c, pos)


@njit(cache=True, inline="always", **_FLAGS)
def rsi_nb(s, r, p, x, out, i):
    c, prev, gain, loss = s
    c, prev, gain, loss, v = rsi_push(c, prev, gain, loss, int(p[0]), x)
    out[0, i] = v
    return (c, prev, gain, loss)


@njit(cache=True, inline="always", **_FLAGS)
def _tie(a, b):
    """a and b equal but for rounding: within 1e-14 of their magnitude (as TA-Lib 0.8)."""
    return abs(a - b) <= 1e-14 * (abs(a) + abs(b))


@njit(cache=True, inline="always", **_FLAGS)
def _fast_k(hh, ll, c):
    if _tie(hh, ll):
        return 0.0
    return (c - ll) / ((hh - ll) / 100.0)


@njit(cache=True, inline="always", **_FLAGS)
def stochf_nb(s, r, p, hi, lo, c, out, i):
    """s: hilo block, sum block of %K; r: highs(fastk), lows(fastk), ring(fastd)."""
    hc, hp, hv, hx, lv, lx, dc, da, dq = s
    k_n = int(p[0])
    d_n = int(p[1])
    hc, hp, hv, hx, lv, lx, hh, ll = hilo_push(hc, hp, hv, hx, lv, lx, r, 0, k_n, hi, lo)
    if hh != hh:
        out[0, i] = NAN
        out[1, i] = NAN
    else:
        fk = _fast_k(hh, ll, c)
        dc, da, dq, fd = sum_push(dc, da, dq, r, 2 * k_n, d_n, fk)
        out[0, i] = fk
        out[1, i] = fd / d_n
    return (hc, hp, hv, hx, lv, lx, dc, da, dq)


@njit(cache=True, inline="always", **_FLAGS)
def stoch_nb(s, r, p, hi, lo, c, out, i):
    """p: [fastk, slowk, slowd]; %K slow = SMA(slowk) of fast %K, %D slow = SMA(slowd) of it.
    s: hilo block, sum block (slowk), sum block (slowd)."""
    hc, hp, hv, hx, lv, lx, kc, ka, kq, dc, da, dq = s
    k_n = int(p[0])
    sk_n = int(p[1])
    hc, hp, hv, hx, lv, lx, hh, ll = hilo_push(hc, hp, hv, hx, lv, lx, r, 0, k_n, hi, lo)
    out[0, i] = NAN
    out[1, i] = NAN
    if hh == hh:
        fk = _fast_k(hh, ll, c)
        kc, ka, kq, sks = sum_push(kc, ka, kq, r, 2 * k_n, sk_n, fk)
        sk = sks / sk_n
        out[0, i] = sk
        if sk == sk:
            sd_n = int(p[2])
            dc, da, dq, sd = sum_push(dc, da, dq, r, 2 * k_n + sk_n, sd_n, sk)
            out[1, i] = sd / sd_n
    return (hc, hp, hv, hx, lv, lx, kc, ka, kq, dc, da, dq)


@njit(cache=True, inline="always", **_FLAGS)
def stochrsi_nb(s, r, p, x, out, i):
    """p: [period, fastk, fastd]; fast stochastic of RSI (high = low = close = RSI)."""
    rc, rp, rg, rl, hc, hp, hv, hx, lv, lx, dc, da, dq = s
    rc, rp, rg, rl, v = rsi_push(rc, rp, rg, rl, int(p[0]), x)
    out[0, i] = NAN
    out[1, i] = NAN
    if v == v:
        k_n = int(p[1])
        d_n = int(p[2])
        hc, hp, hv, hx, lv, lx, hh, ll = hilo_push(hc, hp, hv, hx, lv, lx, r, 0, k_n, v, v)
        if hh == hh:
            fk = _fast_k(hh, ll, v)
            dc, da, dq, fd = sum_push(dc, da, dq, r, 2 * k_n, d_n, fk)
            out[0, i] = fk
            out[1, i] = fd / d_n
    return (rc, rp, rg, rl, hc, hp, hv, hx, lv, lx, dc, da, dq)


@njit(cache=True, inline="always", **_FLAGS)
def willr_nb(s, r, p, hi, lo, c, out, i):
    hc, hp, hv, hx, lv, lx = s
    hc, hp, hv, hx, lv, lx, hh, ll = hilo_push(hc, hp, hv, hx, lv, lx, r, 0, int(p[0]), hi, lo)
    if hh != hh:
        out[0, i] = NAN
    else:
        out[0, i] = 0.0 if _tie(hh, ll) else (hh - c) / ((hh - ll) / (-100.0))
    return (hc, hp, hv, hx, lv, lx)


@njit(cache=True, inline="always", **_FLAGS)
def cci_nb(s, r, p, hi, lo, c, out, i):
    """s: [count, pos]; r: ring(n) of typical prices; mean and mean deviation re-summed."""
    cnt, pos = s
    n = int(p[0])
    tp = (hi + lo + c) / 3.0
    ip = pos
    r[ip] = tp
    ip += 1
    if ip == n:
        ip = 0
    if cnt < n - 1:
        out[0, i] = NAN
        return (cnt + 1.0, ip)
    avg = 0.0
    for j in range(n):
        avg += r[j]
    avg /= n
    dev = 0.0
    for j in range(n):
        dev += abs(r[j] - avg)
    out[0, i] = cci_value(tp, avg, dev, n)
    return (cnt, ip)


@njit(cache=True, inline="always", **_FLAGS)
def ultosc_nb(s, r, p, hi, lo, c, out, i):
    """s: [count, prev_close], then for each of the three periods a pair of sums (buying
    pressure, true range) sharing count and pos; p: [p1, p2, p3]."""
    cnt, pc, c1, q1, b1, t1, c2, q2, b2, t2, c3, q3, b3, t3 = s
    out[0, i] = NAN
    if cnt == 0.0:
        return (1.0, c, c1, q1, b1, t1, c2, q2, b2, t2, c3, q3, b3, t3)
    true_low = lo if lo < pc else pc
    bp = c - true_low
    tr = true_range(hi, lo, pc)
    n1 = int(p[0])
    n2 = int(p[1])
    n3 = int(p[2])
    c1, q1, b1, t1, a, b = sum2_push(c1, q1, b1, t1, r, 0, n1, bp, tr)
    total = 0.0
    ready = True
    if a != a:
        ready = False
    elif b != 0.0:
        total += 4.0 * (a / b)
    o = 2 * n1
    c2, q2, b2, t2, a, b = sum2_push(c2, q2, b2, t2, r, o, n2, bp, tr)
    if a != a:
        ready = False
    elif b != 0.0:
        total += 2.0 * (a / b)
    o += 2 * n2
    c3, q3, b3, t3, a, b = sum2_push(c3, q3, b3, t3, r, o, n3, bp, tr)
    if a != a:
        ready = False
    elif b != 0.0:
        total += 1.0 * (a / b)
    if ready:
        out[0, i] = 100.0 * (total / 7.0)
    return (cnt, c, c1, q1, b1, t1, c2, q2, b2, t2, c3, q3, b3, t3)


# ----------------------------------------------------------------------------- volatility


@njit(cache=True, inline="always", **_FLAGS)
def trange_nb(s, r, p, hi, lo, c, out, i):
    """s: [has_prev, prev_close]."""
    has_prev, pc = s
    out[0, i] = true_range(hi, lo, pc) if has_prev != 0.0 else NAN
    return (1.0, c)


@njit(cache=True, inline="always", **_FLAGS)
def atr_nb(s, r, p, hi, lo, c, out, i):
    cnt, pc, acc = s
    cnt, pc, acc, a = atr_push(cnt, pc, acc, p[0], hi, lo, c)
    out[0, i] = a
    return (cnt, pc, acc)


@njit(cache=True, inline="always", **_FLAGS)
def natr_nb(s, r, p, hi, lo, c, out, i):
    cnt, pc, acc = s
    cnt, pc, acc, a = atr_push(cnt, pc, acc, p[0], hi, lo, c)
    if a != a:
        out[0, i] = NAN
    elif c != 0.0:
        out[0, i] = (a / c) * 100.0
    else:
        out[0, i] = 0.0
    return (cnt, pc, acc)


@njit(cache=True, inline="always", **_FLAGS)
def bbands_nb(s, r, p, x, out, i):
    """p: [n, k]; middle = rolling mean, band = k * population standard deviation."""
    c, pos, k, s1, s2 = s
    c, pos, k, s1, s2, var, mid = var_push(c, pos, k, s1, s2, r, 0, int(p[0]), x)
    if var != var:
        out[0, i] = NAN
        out[1, i] = NAN
        out[2, i] = NAN
    else:
        band = p[1] * math.sqrt(var)
        out[0, i] = mid + band
        out[1, i] = mid
        out[2, i] = mid - band
    return (c, pos, k, s1, s2)


@njit(cache=True, inline="always", **_FLAGS)
def zscore_nb(s, r, p, x, out, i):
    c, pos, k, s1, s2 = s
    c, pos, k, s1, s2, var, mean = var_push(c, pos, k, s1, s2, r, 0, int(p[0]), x)
    if var != var:
        out[0, i] = NAN
    elif var > 0.0:
        out[0, i] = (x - mean) / math.sqrt(var)
    else:
        out[0, i] = 0.0
    return (c, pos, k, s1, s2)


@njit(cache=True, inline="always", **_FLAGS)
def keltner_nb(s, r, p, hi, lo, c, out, i):
    """p: [n, k_ema, atr_n, mult]; middle = EMA(close, n), bands = middle +- mult * ATR(atr_n)."""
    ec, ev, ac, apc, aacc = s
    ec, ev, mid = ema_push(ec, ev, p[0], p[1], c)
    ac, apc, aacc, a = atr_push(ac, apc, aacc, p[2], hi, lo, c)
    if mid != mid or a != a:
        out[0, i] = NAN
        out[1, i] = NAN
        out[2, i] = NAN
    else:
        out[0, i] = mid + p[3] * a
        out[1, i] = mid
        out[2, i] = mid - p[3] * a
    return (ec, ev, ac, apc, aacc)


@njit(cache=True, inline="always", **_FLAGS)
def donchian_nb(s, r, p, hi, lo, out, i):
    hc, hp, hv, hx, lv, lx = s
    hc, hp, hv, hx, lv, lx, up, dn = hilo_push(hc, hp, hv, hx, lv, lx, r, 0, int(p[0]), hi, lo)
    out[0, i] = up
    out[1, i] = (up + dn) / 2.0
    out[2, i] = dn
    return (hc, hp, hv, hx, lv, lx)


@njit(cache=True, inline="always", **_FLAGS)
def rvol_nb(s, r, p, x, out, i):
    """p: [n, periods_per_year]; sqrt(ppy * mean of the last n squared log returns).
    s: [has_prev, prev, rsum block]. A non-positive price is skipped like a NaN bar."""
    has_prev, prev, c, pos, sm = s
    if x <= 0.0:
        out[0, i] = NAN
        return s
    if has_prev == 0.0:
        out[0, i] = NAN
        return (1.0, x, c, pos, sm)
    lr = math.log(x / prev)
    n = int(p[0])
    c, pos, sm, v = rsum_push(c, pos, sm, r, 0, n, lr * lr)
    out[0, i] = math.sqrt(p[1] * (v / n)) if v == v else NAN
    return (has_prev, x, c, pos, sm)


# ----------------------------------------------------------------------------- trend


@njit(cache=True, inline="always", **_FLAGS)
def _dm(diff_p, diff_m):
    """(+DM, -DM) of one bar from the high's rise and the low's fall."""
    if diff_m > 0 and diff_p < diff_m:
        return 0.0, diff_m
    if diff_p > 0 and diff_p > diff_m:
        return diff_p, 0.0
    return 0.0, 0.0


@njit(cache=True, inline="always", **_FLAGS)
def _di_dx(dmp, dmm, ptr, out, i):
    """Writes +DI and -DI (0 when the smoothed TR is 0); returns DX (NaN when undefined)."""
    if ptr == 0.0:
        out[1, i] = 0.0
        out[2, i] = 0.0
        return NAN
    plus = 100.0 * (dmp / ptr)
    minus = 100.0 * (dmm / ptr)
    out[1, i] = plus
    out[2, i] = minus
    sm = minus + plus
    if sm != 0.0:
        return 100.0 * (abs(minus - plus) / sm)
    return NAN


@njit(cache=True, inline="always", **_FLAGS)
def adx_nb(s, r, p, hi, lo, c, out, i):
    """Wilder's directional movement as TA-Lib computes it. s: [count, prev_high, prev_low,
    prev_close, +DM sum, -DM sum, TR sum, DX sum / ADX]; outputs adx, +DI, -DI."""
    cnt, ph, pl, pc, dmp_s, dmm_s, tr_s, adx = s
    n = p[0]
    out[0, i] = NAN
    out[1, i] = NAN
    out[2, i] = NAN
    if cnt == 0.0:
        return (1.0, hi, lo, c, dmp_s, dmm_s, tr_s, adx)
    diff_p = hi - ph
    diff_m = pl - lo
    tr = true_range(hi, lo, pc)
    dm_p, dm_m = _dm(diff_p, diff_m)
    if cnt < n:
        return (cnt + 1.0, hi, lo, c, dmp_s + dm_p, dmm_s + dm_m, tr_s + tr, adx)
    dmp_s = dmp_s - (dmp_s / n) + dm_p
    dmm_s = dmm_s - (dmm_s / n) + dm_m
    tr_s = tr_s - (tr_s / n) + tr
    c0 = cnt
    if cnt < 2 * n:
        cnt = cnt + 1.0
    dx = _di_dx(dmp_s, dmm_s, tr_s, out, i)
    if c0 < 2 * n - 1:
        if dx == dx:
            adx += dx
        return (cnt, hi, lo, c, dmp_s, dmm_s, tr_s, adx)
    if c0 == 2 * n - 1:
        if dx == dx:
            adx += dx
        adx = adx / n
    elif dx == dx:
        adx = ((adx * (n - 1)) + dx) / n
    out[0, i] = adx
    return (cnt, hi, lo, c, dmp_s, dmm_s, tr_s, adx)


@njit(cache=True, inline="always", **_FLAGS)
def aroon_nb(s, r, p, hi, lo, out, i):
    """Windows of n + 1 bars; outputs aroon_down, aroon_up, oscillator (up - down)."""
    hc, hp, hv, hx, lv, lx = s
    n = int(p[0])
    cnt = hc  # the block's counter before this bar: the bar number
    hc, hp, hv, hx, lv, lx, hh, _ll = hilo_push(hc, hp, hv, hx, lv, lx, r, 0, n + 1, hi, lo)
    if hh != hh:
        out[0, i] = NAN
        out[1, i] = NAN
        out[2, i] = NAN
    else:
        factor = 100.0 / n
        out[0, i] = factor * (n - (cnt - lx))
        out[1, i] = factor * (n - (cnt - hx))
        out[2, i] = factor * (hx - lx)
    return (hc, hp, hv, hx, lv, lx)


@njit(cache=True, inline="always", **_FLAGS)
def _sar_long(sar, ep, af, p, prev_h, prev_l, hi, lo):
    """-> (is_long, sar, ep, af, value)."""
    is_long = 1.0
    if lo <= sar:  # reversal to short
        is_long = 0.0
        sar = ep
        if sar < prev_h:
            sar = prev_h
        if sar < hi:
            sar = hi
        value = sar
        af = p[0]
        ep = lo
        sar = sar + af * (ep - sar)
        if sar < prev_h:
            sar = prev_h
        if sar < hi:
            sar = hi
    else:
        value = sar
        new = hi > ep  # a new extreme: selected, not branched on (it is frequent and random)
        ep = hi if new else ep
        up = af + p[0]
        up = p[1] if up > p[1] else up
        af = up if new else af
        sar = sar + af * (ep - sar)
        if sar > prev_l:
            sar = prev_l
        if sar > lo:
            sar = lo
    return is_long, sar, ep, af, value


@njit(cache=True, inline="always", **_FLAGS)
def _sar_short(sar, ep, af, p, prev_h, prev_l, hi, lo):
    """-> (is_long, sar, ep, af, value)."""
    is_long = 0.0
    if hi >= sar:  # reversal to long
        is_long = 1.0
        sar = ep
        if sar > prev_l:
            sar = prev_l
        if sar > lo:
            sar = lo
        value = sar
        af = p[0]
        ep = hi
        sar = sar + af * (ep - sar)
        if sar > prev_l:
            sar = prev_l
        if sar > lo:
            sar = lo
    else:
        value = sar
        new = lo < ep
        ep = lo if new else ep
        up = af + p[0]
        up = p[1] if up > p[1] else up
        af = up if new else af
        sar = sar + af * (ep - sar)
        if sar < prev_h:
            sar = prev_h
        if sar < hi:
            sar = hi
    return is_long, sar, ep, af, value


@njit(cache=True, inline="always", **_FLAGS)
def sar_nb(s, r, p, hi, lo, out, i):
    """Parabolic SAR, started as TA-Lib starts it. s: [count, is_long, sar, ep, af, prev_high,
    prev_low]; p: [acceleration, maximum]."""
    cnt, is_long, sar, ep, af, ph, pl = s
    if cnt == 0.0:
        out[0, i] = NAN
        return (1.0, is_long, sar, ep, af, hi, lo)
    if cnt == 1.0:
        cnt = 2.0
        diff_p = hi - ph
        diff_m = pl - lo
        down = diff_m > 0 and diff_p < diff_m
        af = p[0]
        if down:
            is_long = 0.0
            ep = lo
            sar = ph
        else:
            is_long = 1.0
            ep = hi
            sar = pl
        prev_h = hi
        prev_l = lo
    else:
        prev_h = ph
        prev_l = pl
    if is_long != 0.0:
        is_long, sar, ep, af, value = _sar_long(sar, ep, af, p, prev_h, prev_l, hi, lo)
    else:
        is_long, sar, ep, af, value = _sar_short(sar, ep, af, p, prev_h, prev_l, hi, lo)
    out[0, i] = value
    return (cnt, is_long, sar, ep, af, hi, lo)


@njit(cache=True, inline="always", **_FLAGS)
def ichimoku_nb(s, r, p, hi, lo, out, i):
    """p: [tenkan, kijun, senkou_b, displacement]; outputs tenkan, kijun, span_a, span_b (the
    cloud at this bar: leading spans computed ``displacement`` bars ago), lead_a, lead_b.
    s: 3 hilo blocks, then [count, pos]; r: the 3 blocks' rings, then ring_a(d), ring_b(d)."""
    (ac, ap, ahv, ahx, alv, alx, bc, bp, bhv, bhx, blv, blx, cc, cp, chv, chx, clv, clx, cnt, pos) = s
    n1 = int(p[0])
    n2 = int(p[1])
    n3 = int(p[2])
    o2 = 2 * n1
    o3 = o2 + 2 * n2
    o = o3 + 2 * n3
    ac, ap, ahv, ahx, alv, alx, h1, l1 = hilo_push(ac, ap, ahv, ahx, alv, alx, r, 0, n1, hi, lo)
    bc, bp, bhv, bhx, blv, blx, h2, l2 = hilo_push(bc, bp, bhv, bhx, blv, blx, r, o2, n2, hi, lo)
    cc, cp, chv, chx, clv, clx, h3, l3 = hilo_push(cc, cp, chv, chx, clv, clx, r, o3, n3, hi, lo)
    tenkan = (h1 + l1) / 2.0
    kijun = (h2 + l2) / 2.0
    senkou = (h3 + l3) / 2.0
    lead_a = (tenkan + kijun) / 2.0
    lead_b = senkou
    d = int(p[3])
    ip = pos
    span_a = r[o + ip]
    span_b = r[o + d + ip]
    r[o + ip] = lead_a
    r[o + d + ip] = lead_b
    ip += 1
    if ip == d:
        ip = 0
    if cnt < d:
        cnt = cnt + 1.0
        span_a = NAN
        span_b = NAN
    out[0, i] = tenkan
    out[1, i] = kijun
    out[2, i] = span_a
    out[3, i] = span_b
    out[4, i] = lead_a
    out[5, i] = lead_b
    return (ac, ap, ahv, ahx, alv, alx, bc, bp, bhv, bhx, blv, blx, cc, cp, chv, chx, clv, clx, cnt, ip)


@njit(cache=True, inline="always", **_FLAGS)
def heikin_ashi_nb(s, r, p, o_, hi, lo, c, out, i):
    """s: [count, ha_open, ha_close]; outputs ha_open, ha_high, ha_low, ha_close."""
    cnt, ho, hc = s
    if cnt == 0.0:
        ha_open = (o_ + c) / 2.0
    else:
        ha_open = (ho + hc) / 2.0
    ha_close = (o_ + hi + lo + c) / 4.0
    out[0, i] = ha_open
    out[1, i] = max(hi, max(ha_open, ha_close))
    out[2, i] = min(lo, min(ha_open, ha_close))
    out[3, i] = ha_close
    return (1.0, ha_open, ha_close)


# ----------------------------------------------------------------------------- volume


@njit(cache=True, inline="always", **_FLAGS)
def obv_nb(s, r, p, c, v, out, i):
    """s: [count, prev_close, obv]; starts at the first bar's volume (as TA-Lib)."""
    cnt, pc, obv = s
    if cnt == 0.0:
        obv = v
    elif c > pc:
        obv += v
    elif c < pc:
        obv -= v
    out[0, i] = obv
    return (1.0, c, obv)


@njit(cache=True, inline="always", **_FLAGS)
def ad_nb(s, r, p, hi, lo, c, v, out, i):
    (ad,) = s
    ad += clv_volume(hi, lo, c, v)
    out[0, i] = ad
    return (ad,)


@njit(cache=True, inline="always", **_FLAGS)
def adosc_nb(s, r, p, hi, lo, c, v, out, i):
    """EMA(fast) - EMA(slow) of the A/D line, both seeded with the first A/D value (TA-Lib).
    s: [count, ad, fast, slow]; p: [fast, k_fast, slow, k_slow]."""
    cnt, ad, fe, se = s
    ad = ad + clv_volume(hi, lo, c, v)
    if cnt == 0.0:
        fe = ad
        se = ad
    else:
        fe = ema_next(fe, p[1], ad)
        se = ema_next(se, p[3], ad)
    if cnt < p[2] - 1:
        out[0, i] = NAN
        return (cnt + 1.0, ad, fe, se)
    out[0, i] = fe - se
    return (cnt, ad, fe, se)


@njit(cache=True, inline="always", **_FLAGS)
def mfi_nb(s, r, p, hi, lo, c, v, out, i):
    """A typical price within 1e-14 (relative) of the previous one is no change (no flow);
    after n bars without flow both sums are reset to exactly 0. s: [count, prev_tp, null_run],
    a pair of sums (positive flow, negative flow) sharing count and pos."""
    cnt, ptp, run, sc, sq, sp, sn = s
    n = int(p[0])
    tp = (hi + lo + c) / 3.0
    if cnt == 0.0:
        out[0, i] = NAN
        return (1.0, tp, run, sc, sq, sp, sn)
    d = tp - ptp
    flat = abs(d) <= 1e-14 * (abs(tp) + abs(ptp))
    mf = 0.0 if flat else tp * v
    pos_f = 0.0 if d < 0.0 else mf
    neg_f = mf if d < 0.0 else 0.0
    sc, sq, sp, sn, ps, ns = sum2_push(sc, sq, sp, sn, r, 0, n, pos_f, neg_f)
    run = run + 1.0 if mf == 0.0 else 0.0
    if run >= n:
        run = float(n)
        sp = 0.0
        sn = 0.0
        if ps == ps:
            ps = 0.0
            ns = 0.0
    if ps != ps:
        out[0, i] = NAN
    else:
        total = ps + ns
        if total <= 0.0:
            out[0, i] = 0.0
        else:
            clamped = 0.0 if ps < 0.0 else (total if ps > total else ps)
            out[0, i] = 100.0 * (clamped / total)
    return (cnt, tp, run, sc, sq, sp, sn)


@njit(cache=True, inline="always", **_FLAGS)
def vwap_nb(s, r, p, hi, lo, c, v, session, out, i):
    """Cumulative typical-price VWAP since the session started; restarts when ``session``
    changes. s: [started, session, sum(tp * v), sum(v)]."""
    started, sess, spv, sv = s
    if started == 0.0 or session != sess:
        sess = session
        spv = 0.0
        sv = 0.0
    tp = (hi + lo + c) / 3.0
    spv += tp * v
    sv += v
    out[0, i] = spv / sv if sv > 0.0 else NAN
    return (1.0, sess, spv, sv)
