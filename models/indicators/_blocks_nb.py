"""Building blocks of the indicator kernels: small state machines whose scalars are passed in
and returned (so a batch loop keeps them in registers) and whose rings live in a float64 array
``r`` at an offset ``o``. Each ``*_push`` takes one finite value and returns its new scalars and
the block's output (NaN while it warms up). Counters are floats (exact below 2**53), ring
positions integers. All arithmetic is written out in one order so a batch loop and a one-bar
update that call the same block produce the same bits.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

NAN = np.nan
_FLAGS = {"error_model": "numpy", "_nrt": False}


@intrinsic
def fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """``a * b + c`` with one rounding (IEEE 754 fusedMultiplyAdd), float64: LLVM's
    ``llvm.fma``, which is the exact fused operation on every target (a CPU without the
    instruction computes it in software, slower, to the same bits), unlike ``fmuladd`` or
    fast-math contraction, which fuse or not by machine."""
    if not all(isinstance(t, types.Float) for t in (a, b, c)):
        return None
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        args = [context.cast(builder, v, t, types.float64) for v, t in zip(args, signature.args, strict=True)]
        double = ir.DoubleType()
        fnty = ir.FunctionType(double, [double, double, double])
        fn = builder.module.declare_intrinsic("llvm.fma", [double], fnty)
        return builder.call(fn, args)

    return sig, codegen


# --- the two recursions most indicators are chains of ----------------------------------------
# An EMA step and a Wilder step are each one fused multiply-add on the loop-carried value (the
# rest is off the chain), so a batch loop runs at the FMA's latency, not at a subtract, a
# multiply and an add (EMA) or a multiply, an add and a division (Wilder) a bar.


@njit(cache=True, inline="always", **_FLAGS)
def ema_next(v, k, x):
    """The EMA after ``v`` with weight ``k`` on ``x``: ``v * (1 - k) + k * x``."""
    return fma(v, 1.0 - k, k * x)


@njit(cache=True, inline="always", **_FLAGS)
def wilder_next(v, keep, share, x):
    """Wilder's smoothing ``(v * (n - 1) + x) / n`` as ``v * keep + x * share`` with
    ``keep = (n - 1) / n`` and ``share = 1 / n`` (computed once by the caller)."""
    return fma(v, keep, x * share)


# --- rolling sum (TA-Lib's order: keep the sum of the last n-1 values, add the new one) ------
# scalars: count (saturates at n-1), acc, pos; ring(n)


@njit(cache=True, inline="always", **_FLAGS)
def sum_push(c, acc, pos, r, o, n, x):
    """-> (count, acc, pos, sum of the last n values or NaN)."""
    ip = pos
    a = acc + x
    r[o + ip] = x
    ip += 1
    if ip == n:
        ip = 0
    if c < n - 1:
        return c + 1.0, a, ip, NAN
    return c, a - r[o + ip], ip, a


@njit(cache=True, inline="always", **_FLAGS)
def sum2_push(c, pos, acc_a, acc_b, r, o, n, xa, xb):
    """Two rolling sums pushed together (rings at o and o + n): -> (count, pos, acc_a, acc_b,
    sum_a, sum_b); the same arithmetic as two ``sum_push`` blocks."""
    ip = pos
    a = acc_a + xa
    b = acc_b + xb
    r[o + ip] = xa
    r[o + n + ip] = xb
    ip += 1
    if ip == n:
        ip = 0
    if c < n - 1:
        return c + 1.0, ip, a, b, NAN, NAN
    return c, ip, a - r[o + ip], b - r[o + n + ip], a, b


# --- moving sum, one addition a bar on the carried value: s + (x - x[n ago]) -------------------
# (``sum_push``'s order carries two: the newest value added, the oldest subtracted, a bar.) The
# difference is off the chain, so a loop of it runs at one addition's latency a bar.
# scalars: count (saturates at n), s, pos; ring(n)


@njit(cache=True, inline="always", **_FLAGS)
def msum_push(c, s, pos, r, o, n, x):
    """-> (count, s, pos, sum of the last n values or NaN)."""
    ip = pos
    if c < n:
        s = s + x
        c = c + 1.0
    else:
        s = s + (x - r[o + ip])
    r[o + ip] = x
    ip += 1
    if ip == n:
        ip = 0
    if c < n:
        return c, s, ip, NAN
    return c, s, ip, s


# --- EMA seeded with the SMA of its first n values; k = 2 / (n + 1) ---------------------------
# scalars: count (saturates at n), acc / ema


@njit(cache=True, inline="always", **_FLAGS)
def ema_push(c, v, n, k, x):
    """-> (count, acc / ema, ema or NaN)."""
    if c >= n:
        e = ema_next(v, k, x)
        return c, e, e
    acc = v + x
    if c < n - 1:
        return c + 1.0, acc, NAN
    e = acc / n
    return c + 1.0, e, e


# --- KAMA's step (Kaufman): an EMA whose weight follows the window's efficiency ratio ---------


@njit(cache=True, inline="always", **_FLAGS)
def kama_next(kama, sumroc, roc, slow_k, k_diff, x):
    """KAMA's step: the efficiency ratio ``|roc| / sumroc`` (1 when the window's path is no
    longer than its change, or flat) sets the smoothing constant ``(er * k_diff + slow_k)**2``."""
    if sumroc <= roc or sumroc == 0.0:
        er = 1.0
    else:
        er = abs(roc / sumroc)
    sc = (er * k_diff) + slow_k
    sc *= sc
    return ema_next(kama, sc, x)


# --- rolling max and min over the last n values (ties: the latest index) ----------------------
# scalars: count (the absolute bar number, not capped), pos, high, high index, low, low index;
# rings: highs(n) at o, lows(n) at o + n


@njit(cache=True, inline="always", **_FLAGS)
def _ring_max(r, o, n):
    """The highest value in r[o:o+n], four independent comparison chains (order-free)."""
    m0 = r[o]
    m1 = m0
    m2 = m0
    m3 = m0
    j = 0
    while j + 4 <= n:
        v0 = r[o + j]
        v1 = r[o + j + 1]
        v2 = r[o + j + 2]
        v3 = r[o + j + 3]
        m0 = v0 if v0 > m0 else m0
        m1 = v1 if v1 > m1 else m1
        m2 = v2 if v2 > m2 else m2
        m3 = v3 if v3 > m3 else m3
        j += 4
    while j < n:
        v0 = r[o + j]
        m0 = v0 if v0 > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return m2 if m2 > m0 else m0


@njit(cache=True, inline="always", **_FLAGS)
def _ring_min(r, o, n):
    """The lowest value in r[o:o+n] (as ``_ring_max``)."""
    m0 = r[o]
    m1 = m0
    m2 = m0
    m3 = m0
    j = 0
    while j + 4 <= n:
        v0 = r[o + j]
        v1 = r[o + j + 1]
        v2 = r[o + j + 2]
        v3 = r[o + j + 3]
        m0 = v0 if v0 < m0 else m0
        m1 = v1 if v1 < m1 else m1
        m2 = v2 if v2 < m2 else m2
        m3 = v3 if v3 < m3 else m3
        j += 4
    while j < n:
        v0 = r[o + j]
        m0 = v0 if v0 < m0 else m0
        j += 1
    m0 = m1 if m1 < m0 else m0
    m2 = m3 if m3 < m2 else m2
    return m2 if m2 < m0 else m0


@njit(cache=True, inline="always", **_FLAGS)
def _latest_equal(r, o, n, ip, m):
    """Chronological offset (0 = oldest, at slot ip) of the newest value equal to m."""
    for slot in range(ip - 1, -1, -1):
        if r[o + slot] == m:
            return n - ip + slot
    for slot in range(n - 1, ip - 1, -1):
        if r[o + slot] == m:
            return slot - ip
    return 0


@njit(cache=True, inline="always", **_FLAGS)
def _max_scan(r, o, n, ip, trailing):
    """The highest of the ring and its bar index, ties to the latest: the same value and index
    as one oldest-to-newest pass with ``>=`` (the newest value equal to the maximum), found as
    the maximum first and then the newest slot holding it."""
    k = _latest_equal(r, o, n, ip, _ring_max(r, o, n))
    return r[o + (ip + k) % n], trailing + k


@njit(cache=True, inline="always", **_FLAGS)
def _min_scan(r, o, n, ip, trailing):
    """The lowest of the ring and its bar index (as ``_max_scan``)."""
    k = _latest_equal(r, o, n, ip, _ring_min(r, o, n))
    return r[o + (ip + k) % n], trailing + k


@njit(cache=True, inline="always", **_FLAGS)
def hilo_push(c, pos, hv, hidx, lv, lidx, r, o, n, hi, lo):
    """-> (count, pos, high, high index, low, low index, highest or NaN, lowest or NaN)."""
    ip = pos
    r[o + ip] = hi
    r[o + n + ip] = lo
    ip += 1
    if ip == n:
        ip = 0
    trailing = c - n + 1
    if c == 0 or hi >= hv:
        hv = hi
        hidx = c
    elif hidx < trailing:
        hv, hidx = _max_scan(r, o, n, ip, trailing)
    if c == 0 or lo <= lv:
        lv = lo
        lidx = c
    elif lidx < trailing:
        lv, lidx = _min_scan(r, o + n, n, ip, trailing)
    if c < n - 1:
        return c + 1.0, ip, hv, hidx, lv, lidx, NAN, NAN
    return c + 1.0, ip, hv, hidx, lv, lidx, hv, lv


# --- rolling mean and population variance ------------------------------------------------------
# Sums of (x - K) with a shift K reset to the newest value every n bars (then re-summed exactly
# from the ring), so running sums cannot drift; when the variance is lost in cancellation
# (var < 1e-4 of the shifted second moment) it is recomputed two-pass from the ring, which makes
# a flat window's variance exactly 0.
# scalars: count (saturates at n), pos, K, s1, s2; ring(n)


@njit(cache=True, inline="always", **_FLAGS)
def var_push(c, pos, k, s1, s2, r, o, n, x):
    """-> (count, pos, K, s1, s2, variance, mean); variance and mean NaN in warm-up."""
    ip = pos
    if c == 0:
        k = x
    d = x - k
    c0 = c
    if c >= n:
        od = r[o + ip] - k
        s1 = s1 + d - od
        s2 = s2 + d * d - od * od
    else:
        s1 = s1 + d
        s2 = s2 + d * d
        c = c + 1.0
    r[o + ip] = x
    ip += 1
    if ip == n:
        ip = 0
    if c0 >= n - 1 and ip == 0:
        k = x
        s1 = 0.0
        s2 = 0.0
        for j in range(n):
            dj = r[o + j] - k
            s1 += dj
            s2 += dj * dj
    if c0 < n - 1:
        return c, ip, k, s1, s2, NAN, NAN
    m1 = s1 / n
    m2 = s2 / n
    var = m2 - m1 * m1
    mean = k + m1
    if var < 1e-4 * m2:
        total = 0.0
        for j in range(n):
            total += r[o + j]
        mean = total / n
        var = 0.0
        for j in range(n):
            dj = r[o + j] - mean
            var += dj * dj
        var = var / n
    return c, ip, k, s1, s2, var, mean


# --- rolling sum re-summed exactly every n bars (for sums of squares that must not drift) ------
# scalars: count (saturates at n), pos, s; ring(n)


@njit(cache=True, inline="always", **_FLAGS)
def rsum_push(c, pos, s, r, o, n, x):
    """-> (count, pos, s, sum or NaN)."""
    ip = pos
    c0 = c
    if c >= n:
        s = s + x - r[o + ip]
    else:
        s = s + x
        c = c + 1.0
    r[o + ip] = x
    ip += 1
    if ip == n:
        ip = 0
    if c0 >= n - 1 and ip == 0:
        s = 0.0
        for j in range(n):
            s += r[o + j]
    if c0 < n - 1:
        return c, ip, s, NAN
    return c, ip, s, s


# --- Wilder's RSI: seeded with the simple means of the first n gains and losses -----------------
# scalars: count (saturates at n+1), prev, gain, loss


@njit(cache=True, inline="always", **_FLAGS)
def rsi_push(c, prev, gain, loss, n, x):
    """-> (count, prev, gain, loss, rsi or NaN)."""
    if c == 0:
        return 1.0, x, gain, loss, NAN
    diff = x - prev
    if c <= n:
        if diff < 0:
            loss -= diff
        else:
            gain += diff
        if c < n:
            return c + 1.0, x, gain, loss, NAN
        c = c + 1.0
        loss /= n
        gain /= n
    else:
        keep = (n - 1.0) / n
        share = 1.0 / n
        up = diff if diff > 0.0 else 0.0
        down = -diff if diff < 0.0 else 0.0
        gain = wilder_next(gain, keep, share, up)
        loss = wilder_next(loss, keep, share, down)
    total = gain + loss
    if total != 0.0:
        return c, x, gain, loss, 100.0 * (gain / total)
    return c, x, gain, loss, 0.0


@njit(cache=True, inline="always", **_FLAGS)
def true_range(high, low, prev_close):
    tr = high - low
    t = abs(prev_close - high)
    if t > tr:
        tr = t
    t = abs(prev_close - low)
    if t > tr:
        tr = t
    return tr


# --- commodity channel index: the value from a window's mean and summed absolute deviation ------
# A window whose typical prices are equal in decimal can hold them one or two ulps apart
# ((8.55 + 8.19 + 8.31) / 3 is not (8.58 + 8.14 + 8.33) / 3 in binary), and the exact formula turns
# that rounding into a full-scale reading (+-133 at n = 2). Like TA-Lib 0.6 the value is 0 when
# the close's distance from the mean, or the mean deviation, is within 1e-14 of the mean's size.

CCI_DEAD_ZONE = 1e-14


@njit(cache=True, inline="always", **_FLAGS)
def cci_value(tp, avg, dev, n):
    num = tp - avg
    zone = CCI_DEAD_ZONE * abs(avg)
    mean_dev = dev / n
    if abs(num) <= zone or mean_dev <= zone:
        return 0.0
    return num / (0.015 * mean_dev)


# --- accumulation/distribution: the close's location in the bar's range times the volume --------


@njit(cache=True, inline="always", **_FLAGS)
def clv_volume(hi, lo, c, v):
    """((c - lo) - (hi - c)) / (hi - lo) * v; 0 for a bar without range."""
    rng = hi - lo
    if rng > 0.0:
        return (((c - lo) - (hi - c)) / rng) * v
    return 0.0


# --- Wilder ATR seeded with the SMA of the first n true ranges --------------------------------
# scalars: count (saturates at n+1), prev_close, acc / atr


@njit(cache=True, inline="always", **_FLAGS)
def atr_push(cnt, pc, acc, n, hi, lo, c):
    """-> (count, prev_close, acc / atr, atr or NaN)."""
    if cnt == 0.0:
        return 1.0, c, acc, NAN
    tr = true_range(hi, lo, pc)
    if cnt <= n:
        a = acc + tr
        if cnt < n:
            return cnt + 1.0, c, a, NAN
        v = a / n
        return cnt + 1.0, c, v, v
    v = wilder_next(acc, (n - 1.0) / n, 1.0 / n, tr)
    return cnt, c, v, v
