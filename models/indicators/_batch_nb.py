"""Batch fast paths: whole-array loops for series without NaN, bit-identical to the step kernels.

Each ``*_fast`` takes the parameter tuple ``p``, the input arrays and ``out`` (outputs by row),
and returns True after writing every output, or False as soon as an input holds a NaN (then
``out`` is partly written and the caller runs the step driver over the whole series instead,
which applies the NaN-skipping rule). On a series without NaN the step kernels' state machine
reduces to plain array arithmetic: the previous close is ``close[i - 1]``, a window is a slice
of the input (or of an output already written), the warm-up is a bar count. Every value is
computed with the operations of the step kernel (``_kernels_nb.py``, ``_blocks_nb.py``) in the
same order, so the floats are the same bits; the tests compare the two paths bit for bit
(``tests/unit/models/test_indicator_fast_paths.py``), besides batch against the one-bar stream.

Why: the step loop carries its state from bar to bar and branches on warm-up counters and NaN
every bar. Here ``mom``, ``roc`` and ``trange`` have no loop-carried state at all (LLVM
vectorises them), and the rolling extremes of ``donchian``, ``willr``, ``stochf`` and ``stoch``
are built by vectorised passes over cache-sized chunks instead of a rescan when the extreme
leaves the window. Where a running chain (Wilder smoothing, EMAs, rolling sums) is the cost,
the fast path keeps the chain and moves the rest off it: divisions into vectorised passes over
small chunks (``natr``, ``ad``, ``adosc``, ``ultosc``, ``trima``), two chains into one loop
(``trima``), four (``atr``'s segments, ``bbands``' blocks between re-sums). Steady-state
loops index slices from 0: a loop index Numba cannot prove non-negative gets negative-index
wraparound code on every load.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from models.indicators._blocks_nb import cci_value, clv_volume, ema_next, kama_next, true_range, wilder_next
from models.indicators._kernels_nb import trix_nb

NAN = np.nan
_FLAGS = {"error_model": "numpy", "_nrt": False, "cache": True}


# ----------------------------------------------------------------------------- helpers


@njit(**_FLAGS)
def _has_nan(a):
    """Whether ``a`` holds a NaN: an OR of comparisons, which LLVM vectorises."""
    bad = False
    for i in range(a.shape[0]):
        bad |= a[i] != a[i]
    return bad


@njit(inline="always", **_FLAGS)
def _nan_rows(out, start, stop):
    for k in range(out.shape[0]):
        for i in range(start, stop):
            out[k, i] = NAN


@njit(inline="always", **_FLAGS)
def _tie(a, b):
    return abs(a - b) <= 1e-14 * (abs(a) + abs(b))


# ----------------------------------------------------------------------------- SMA, WMA
# The steps' one-addition-a-bar sums (``msum_push``, ``wma_nb``) without the ring, counter and
# state tuple: the oldest value is read from the input. The NaN test is folded into the loop.


@njit(**_FLAGS)
def sma_fast(p, x, out):
    size = x.shape[0]
    n = int(p[0])
    d = p[0]
    o = out[0]
    bad = False
    s = 0.0
    for i in range(min(n - 1, size)):
        v = x[i]
        bad |= v != v
        s = s + v
        o[i] = NAN
    if size < n:
        return not bad
    v = x[n - 1]
    bad |= v != v
    s = s + v
    o[n - 1] = s / d
    for i in range(n, size):
        v = x[i]
        bad |= v != v
        s = s + (v - x[i - n])
        o[i] = s / d
    return not bad


@njit(**_FLAGS)
def wma_fast(p, x, out):
    size = x.shape[0]
    n = int(p[0])
    nf = p[0]
    div = p[1]
    o = out[0]
    bad = False
    c = 0.0
    w = 0.0
    sm = 0.0
    for i in range(min(n, size)):
        v = x[i]
        bad |= v != v
        c = c + 1.0
        w = w + v * c
        sm = sm + v
        o[i] = NAN
    if size < n:
        return not bad
    o[n - 1] = w / div
    for i in range(n, size):
        v = x[i]
        bad |= v != v
        w = w + (v * nf - sm)
        sm = sm + (v - x[i - n])
        o[i] = w / div
    return not bad


# ----------------------------------------------------------------------------- momentum


@njit(**_FLAGS)
def mom_fast(p, x, out):
    size = x.shape[0]
    n = int(p[0])
    m = min(n, size)
    _nan_rows(out, 0, m)
    bad = False
    for i in range(m):
        bad |= x[i] != x[i]
    o = out[0, m:]
    a = x[m:]
    b = x[: size - m]
    for j in range(o.shape[0]):  # the NaN test is folded into the loop: one pass
        v = a[j]
        bad |= v != v
        o[j] = v - b[j]
    return not bad


@njit(**_FLAGS)
def roc_fast(p, x, out):
    if _has_nan(x):
        return False
    size = x.shape[0]
    n = int(p[0])
    m = min(n, size)
    _nan_rows(out, 0, m)
    o = out[0, m:]
    a = x[m:]
    b = x[: size - m]
    for j in range(o.shape[0]):
        old = b[j]
        o[j] = ((a[j] / old) - 1.0) * 100.0 if old != 0.0 else 0.0
    return True


# ----------------------------------------------------------------------------- true range family


@njit(**_FLAGS)
def trange_fast(p, h, lo, c, out):
    size = h.shape[0]
    if size == 0:
        return True
    out[0, 0] = NAN
    o = out[0, 1:]
    h1 = h[1:]
    l1 = lo[1:]
    c1 = c[1:]
    c0 = c[: size - 1]
    bad = h[0] != h[0] or lo[0] != lo[0] or c[0] != c[0]
    for j in range(o.shape[0]):  # the NaN test is folded into the loop: one pass
        hi = h1[j]
        lw = l1[j]
        bad |= (hi != hi) | (lw != lw) | (c1[j] != c1[j])
        o[j] = true_range(hi, lw, c0[j])
    return not bad


# ----------------------------------------------------------------------------- TRIX
# The step (``trix_nb``) until its three EMAs are seeded and it has a previous triple EMA, then
# the three steady-state EMA steps and the rate of change with no counters or NaN branches.


@njit(**_FLAGS)
def trix_fast(p, x, out):
    o = out[0]
    size = x.shape[0]
    k = p[1]
    s = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    bad = False
    i = 0
    while i < size and s[6] == 0.0:
        xi = x[i]
        bad |= xi != xi
        s = trix_nb(s, o, p, xi, out, i)  # trix has no ring (o stands in: never touched)
        i += 1
    e1 = s[1]
    e2 = s[3]
    e3 = s[5]
    prev = s[7]
    for j in range(i, size):
        xj = x[j]
        bad |= xj != xj
        e1 = ema_next(e1, k, xj)
        e2 = ema_next(e2, k, e1)
        e3 = ema_next(e3, k, e2)
        o[j] = ((e3 / prev) - 1.0) * 100.0 if prev != 0.0 else 0.0
        prev = e3
    return not bad


# ----------------------------------------------------------------------------- TRIMA
# ``trima_nb`` is two ``sum_push`` chains (the SMA of a, then the SMA of b of it), each two
# dependent additions a bar, and two divisions a bar, which a loop doing them one at a time
# issues no faster than the chains. Here, per chunk of ``_TRIMA_CHUNK`` bars, one loop runs the
# first chain over a chunk and the second chain over the chunk before it (so their latencies
# overlap), storing the raw window sums; the divisions are then vectorised passes over the two
# chunks. The same operations on the same values as the step, so the same bits.

_TRIMA_CHUNK = 64


@njit(inline="always", **_FLAGS)
def _sums_raw(x, acc, n, g, e, s):
    """``sum_push``'s steady state over bars g..e-1 (g >= n): the window sums into s[g:e]."""
    xs = x[g:e]
    old = x[g - n + 1 : e - n + 1]
    ss = s[g:e]
    for j in range(xs.shape[0]):
        t = acc + xs[j]
        acc = t - old[j]
        ss[j] = t
    return acc


@njit(inline="always", **_FLAGS)
def _sums_raw2(x, s, o, acc1, a, g, acc2, b, pg, k):
    """``_sums_raw`` of x over bars g.. into s and of s over bars pg.. into o, k bars each, in
    one loop (two independent chains)."""
    xs = x[g : g + k]
    xo = x[g - a + 1 : g - a + 1 + k]
    ss = s[g : g + k]
    s2 = s[pg : pg + k]
    so = s[pg - b + 1 : pg - b + 1 + k]
    oo = o[pg : pg + k]
    for j in range(k):
        t = acc1 + xs[j]
        acc1 = t - xo[j]
        ss[j] = t
        u = acc2 + s2[j]
        acc2 = u - so[j]
        oo[j] = u
    return acc1, acc2


@njit(inline="always", **_FLAGS)
def _div_by(s, d):
    for j in range(s.shape[0]):
        s[j] = s[j] / d


@njit(**_FLAGS)
def trima_fast(p, x, out, rows):
    """rows: 1 row as long as the input (the first SMA)."""
    a = int(p[0])
    b = int(p[1])
    o = out[0]
    s = rows[0]
    size = x.shape[0]
    first = a + b - 2  # the first bar with a value
    start = min(first + 1, size)
    acc1 = 0.0
    acc2 = 0.0
    for i in range(start):  # the warm-ups, as the step does them
        xi = x[i]
        if i < a - 1:
            acc1 = acc1 + xi
            o[i] = NAN
            continue
        t = acc1 + xi
        acc1 = t - x[i - a + 1]
        v = t / a
        s[i] = v
        if i < first:
            acc2 = acc2 + v
            o[i] = NAN
        else:
            u = acc2 + v
            acc2 = u - s[i - b + 1]
            o[i] = u / b
    if start < size:
        pg = start
        pe = min(start + _TRIMA_CHUNK, size)
        acc1 = _sums_raw(x, acc1, a, pg, pe, s)
        _div_by(s[pg:pe], a)
        g = pe
        while g < size:
            e = min(g + _TRIMA_CHUNK, size)
            if e - g == pe - pg:
                acc1, acc2 = _sums_raw2(x, s, o, acc1, a, g, acc2, b, pg, e - g)
            else:
                acc2 = _sums_raw(s, acc2, b, pg, pe, o)
                acc1 = _sums_raw(x, acc1, a, g, e, s)
            _div_by(s[g:e], a)
            _div_by(o[pg:pe], b)
            pg = g
            pe = e
            g = e
        acc2 = _sums_raw(s, acc2, b, pg, pe, o)
        _div_by(o[pg:pe], b)
    return acc1 == acc1  # every x is added to acc1 once, and a NaN stays


# ----------------------------------------------------------------------------- KAMA
# ``kama_nb`` reading the window's ends from the input instead of its ring (x[i - n - 1] and
# x[i - n] are the ring's two oldest values), with no counter: the same additions in the same
# order, so the same bits.


_KAMA_CHUNK = 64


@njit(**_FLAGS)
def kama_fast(p, x, out, rows):
    n = int(p[0])
    o = out[0]
    size = x.shape[0]
    if size == 0:
        return True
    bad = x[0] != x[0]
    o[0] = NAN
    sumroc = 0.0
    for i in range(1, min(n, size)):
        xi = x[i]
        bad |= xi != xi
        sumroc += abs(xi - x[i - 1])
        o[i] = NAN
    if size <= n:
        return not bad
    slow_k = p[1]
    k_diff = p[2]
    xi = x[n]
    bad |= xi != xi
    sumroc += abs(xi - x[n - 1])
    kama = kama_next(x[n - 1], sumroc, xi - x[0], slow_k, k_diff, xi)
    o[n] = kama
    # The steady state over slices indexed from 0 (no negative-index wraparound code), chunk
    # by chunk: first the chunk's |x[i] - x[i - 1]| into ``rows`` 0 (vectorised), then the
    # chain reads the one entering the window and the one leaving it (|a - b| = |b - a|
    # exactly). A NaN in x makes sumroc NaN from there on, so the last sumroc tells.
    d = rows[0]
    for i in range(1, n + 1):
        d[i] = abs(x[i] - x[i - 1])
    for g in range(n + 1, size, _KAMA_CHUNK):
        e = min(g + _KAMA_CHUNK, size)
        xs = x[g:e]
        prev = x[g - 1 : e - 1]
        dn = d[g:e]
        for j in range(xs.shape[0]):
            dn[j] = abs(xs[j] - prev[j])
        dold = d[g - n : e - n]
        old1 = x[g - n : e - n]
        oo = o[g:e]
        for j in range(xs.shape[0]):
            xi = xs[j]
            sumroc -= dold[j]
            sumroc += dn[j]
            kama = kama_next(kama, sumroc, xi - old1[j], slow_k, k_diff, xi)
            oo[j] = kama
    return not (bad | (sumroc != sumroc))


# ----------------------------------------------------------------------------- ATR, NATR
# ``atr_push`` unrolled: the first bar only gives the previous close, the next n - 1 sum their
# true ranges, bar n is their mean, then Wilder's step (one fused multiply-add on the chain).
# The step's counter and branches are gone, and so is most of the NaN test: a NaN high or low
# makes that bar's true range NaN and with it every ATR after it (the chain carries it), so
# the last ATR tells; only a NaN close, which a true range does not carry (it enters as the
# previous close, through comparisons), is tested bar by bar. The steady state runs over
# slices indexed from 0 (no negative-index wraparound code), in chunks of ``_ATR_CHUNK`` bars:
# NATR's divisions by the close, off the chain, are a second, vectorised pass over the chunk
# while it is in the cache. A long series splits the chain in four segments run at once
# (``_atr_split``: the chain forgets its start, so a guessed start is corrected until it meets
# the exact chain), which the one-chain loop's fused multiply-add latency bounded.

_ATR_CHUNK = 64
_ATR_LANES = 4


@njit(inline="always", **_FLAGS)
def _same_bits(a, b):
    """Whether two floats are the same value with the same sign (NaN is never the same)."""
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@njit(inline="always", **_FLAGS)
def _atr_split(h, lo, c, o, s0, size, v, keep, share):
    """The Wilder chain over bars s0..size-1 from its exact value ``v`` at bar s0 - 1, split in
    four segments whose chains run interleaved (four fused multiply-adds in flight where the
    step has one); -> whether a close was NaN.

    Segments 1-3 start from a guess (the true range before them), so their first values are
    wrong. The chain forgets its start geometrically (by (n - 1) / n a bar): from the exact
    value at the end of the segment before, the exact chain is run again over the start of the
    segment until it gives the very bits the guessed chain stored at the same bar; from there
    on the two are the same recurrence over the same inputs, so every value after it is exact
    too. Where they never meet (a window long against the segment, a NaN) the exact chain
    simply runs to the segment's end: slower, never different."""
    m = (size - s0) // _ATR_LANES
    b1 = s0 + m
    b2 = s0 + 2 * m
    b3 = s0 + 3 * m
    v0 = v
    v1 = true_range(h[b1 - 1], lo[b1 - 1], c[b1 - 2])
    v2 = true_range(h[b2 - 1], lo[b2 - 1], c[b2 - 2])
    v3 = true_range(h[b3 - 1], lo[b3 - 1], c[b3 - 2])
    h0 = h[s0 : s0 + m]
    h1 = h[b1 : b1 + m]
    h2 = h[b2 : b2 + m]
    h3 = h[b3 : b3 + m]
    l0 = lo[s0 : s0 + m]
    l1 = lo[b1 : b1 + m]
    l2 = lo[b2 : b2 + m]
    l3 = lo[b3 : b3 + m]
    c0 = c[s0 - 1 : s0 - 1 + m]  # the previous closes
    c1 = c[b1 - 1 : b1 - 1 + m]
    c2 = c[b2 - 1 : b2 - 1 + m]
    c3 = c[b3 - 1 : b3 - 1 + m]
    o0 = o[s0 : s0 + m]
    o1 = o[b1 : b1 + m]
    o2 = o[b2 : b2 + m]
    o3 = o[b3 : b3 + m]
    bad = False
    for j in range(m):
        p0 = c0[j]
        p1 = c1[j]
        p2 = c2[j]
        p3 = c3[j]
        bad |= (p0 != p0) | (p1 != p1) | (p2 != p2) | (p3 != p3)
        v0 = wilder_next(v0, keep, share, true_range(h0[j], l0[j], p0))
        v1 = wilder_next(v1, keep, share, true_range(h1[j], l1[j], p1))
        v2 = wilder_next(v2, keep, share, true_range(h2[j], l2[j], p2))
        v3 = wilder_next(v3, keep, share, true_range(h3[j], l3[j], p3))
        o0[j] = v0
        o1[j] = v1
        o2[j] = v2
        o3[j] = v3
    e = s0 + 4 * m - 1  # the lanes' true ranges read closes up to the one before e
    bad |= c[e] != c[e]
    for i in range(e + 1, size):  # the last few bars: segment 3 goes on
        cl = c[i]
        bad |= cl != cl
        v3 = wilder_next(v3, keep, share, true_range(h[i], lo[i], c[i - 1]))
        o[i] = v3
    v = v0  # exact: the chain of segment 0 started from the exact value
    for start, stop in ((b1, b2), (b2, b3), (b3, size)):
        i = start
        while i < stop:
            v = wilder_next(v, keep, share, true_range(h[i], lo[i], c[i - 1]))
            if _same_bits(v, o[i]):
                break
            o[i] = v
            i += 1
        v = o[stop - 1]
    return bad


@njit(inline="always", **_FLAGS)
def _atr_long(n, h, lo, c, o, natr, v, keep, share):
    """Bars n.. of a long series from the seed ``v`` at bar n: the split chain, then NATR's
    divisions (a vectorised pass); False on a NaN."""
    size = h.shape[0]
    o[n] = v
    bad = _atr_split(h, lo, c, o, n + 1, size, v, keep, share)
    last = o[size - 1]
    if natr:
        for g in range(n, size, _ATR_CHUNK):
            k = min(_ATR_CHUNK, size - g)
            cc = c[g : g + k]
            oo = o[g : g + k]
            for j in range(k):
                cl = cc[j]
                oo[j] = (oo[j] / cl) * 100.0 if cl != 0.0 else 0.0
    return not (bad | (last != last))


@njit(inline="always", **_FLAGS)
def _atr_into(n, h, lo, c, o, natr):
    """ATR (``natr``: 100 * ATR / close, 0 at a zero close) into o; False on a NaN."""
    size = h.shape[0]
    if size == 0:
        return True
    bad = (h[0] != h[0]) | (lo[0] != lo[0]) | (c[0] != c[0])
    o[0] = NAN
    seed = min(n, size - 1)
    acc = 0.0
    for i in range(1, seed + 1):
        hi = h[i]
        lw = lo[i]
        cl = c[i]
        bad |= (hi != hi) | (lw != lw) | (cl != cl)
        acc = acc + true_range(hi, lw, c[i - 1])
        o[i] = NAN
    if seed < n:
        return not bad
    v = acc / n
    keep = (n - 1.0) / n
    share = 1.0 / n
    if (size - n - 1) // _ATR_LANES >= max(4096, 128 * n):
        return _atr_long(n, h, lo, c, o, natr, v, keep, share) and not bad
    o[n] = v if not natr else ((v / c[n]) * 100.0 if c[n] != 0.0 else 0.0)
    pc = c[n]
    for g in range(n + 1, size, _ATR_CHUNK):
        k = min(_ATR_CHUNK, size - g)
        hh = h[g : g + k]
        ll = lo[g : g + k]
        cc = c[g : g + k]
        oo = o[g : g + k]
        for j in range(k):
            cl = cc[j]
            bad |= cl != cl
            v = wilder_next(v, keep, share, true_range(hh[j], ll[j], pc))
            pc = cl
            oo[j] = v
        if natr:
            for j in range(k):
                cl = cc[j]
                oo[j] = (oo[j] / cl) * 100.0 if cl != 0.0 else 0.0
    return not (bad | (v != v))


@njit(**_FLAGS)
def atr_fast(p, h, lo, c, out):
    return _atr_into(int(p[0]), h, lo, c, out[0], False)


@njit(**_FLAGS)
def natr_fast(p, h, lo, c, out):
    return _atr_into(int(p[0]), h, lo, c, out[0], True)


# ----------------------------------------------------------------------------- rolling extremes
# Rolling extremes for the indicators that need only the value (not its bar): a window of n
# is built by doubling, as the extreme of 4 (or 2) adjacent windows of a quarter (half) of
# its length, then of two overlapping windows covering n. Each pass compares arrays shifted
# against each other, no state from bar to bar, so LLVM vectorises it. ``hilo_push``'s rule
# (ties: the newest of the equal values, which only shows between 0.0 and -0.0) is kept by
# combining every pair as (earlier, later) -> later if later >= earlier else earlier: that
# picks the newest of the equal extremes of the union also for overlapping windows. It is
# written ``earlier if earlier > later else later`` (the same choice without NaN), the form of
# the x86 max instruction (which returns its second operand on a tie), so LLVM emits one.


@njit(inline="always", **_FLAGS)
def _passes(n):
    """The passes that build a window of n from windows of 1: (count, last partial offset)."""
    count = 0
    w = 1
    while 4 * w <= n:
        w *= 4
        count += 1
    if 2 * w <= n:
        w *= 2
        count += 1
    if w < n:
        count += 1
    return count


@njit(inline="always", **_FLAGS)
def _roll_hilo(h, lo, n, hb0, hb1, lb0, lb1):
    """The highest of h and the lowest of lo over [i-n+1, i] into hb0[i] and lb0[i] for
    i >= n-1 (below: scratch); hb1, lb1 are scratch. Both sides run in the same passes (one
    loop each). The last pass writes hb0 and lb0."""
    size = h.shape[0]
    left = _passes(n)
    if left == 0:
        for i in range(size):
            hb0[i] = h[i]
            lb0[i] = lo[i]
        return
    w = 1
    first = True
    while w < n:
        # source and destination of this pass; the last one (left == 1) writes hb0 / lb0
        if first:
            hs = h
            ls = lo
        elif left % 2 == 0:
            hs = hb0
            ls = lb0
        else:
            hs = hb1
            ls = lb1
        if left % 2 == 1:
            hd = hb0
            ld = lb0
        else:
            hd = hb1
            ld = lb1
        if 4 * w <= n:
            _pass4(hs, hd, ls, ld, w, size)
            w *= 4
        elif 2 * w <= n:
            _pass2(hs, hd, ls, ld, w, size)
            w *= 2
        else:
            _pass2(hs, hd, ls, ld, n - w, size)
            w = n
        first = False
        left -= 1


@njit(inline="always", **_FLAGS)
def _max4(a, b, c, d):
    """The largest of four window extremes, oldest first: each pair (earlier, later) gives the
    later unless the earlier is greater (the tie rule every rolling-extreme pass shares)."""
    u = a if a > b else b
    u = u if u > c else c
    return u if u > d else d


@njit(inline="always", **_FLAGS)
def _min4(a, b, c, d):
    """The smallest of four window extremes, oldest first, with ``_max4``'s tie rule."""
    x = a if a < b else b
    x = x if x < c else c
    return x if x < d else d


@njit(inline="always", **_FLAGS)
def _pass2(hs, hd, ls, ld, d, size):
    """hd[i] = later-max(hs[i-d], hs[i]), ld[i] = later-min(ls[i-d], ls[i]) for i >= d;
    below d a copy."""
    m = min(d, size)
    for i in range(m):
        hd[i] = hs[i]
        ld[i] = ls[i]
    if size <= d:
        return
    he = hs[: size - d]
    hx = hs[d:]
    ho = hd[d:size]
    le = ls[: size - d]
    lx = ls[d:]
    lo_ = ld[d:size]
    for j in range(ho.shape[0]):
        u = he[j]
        v = hx[j]
        ho[j] = u if u > v else v
        u = le[j]
        v = lx[j]
        lo_[j] = u if u < v else v


@njit(inline="always", **_FLAGS)
def _pass4(hs, hd, ls, ld, w, size):
    """hd[i] = the later-max of hs[i-3w], hs[i-2w], hs[i-w], hs[i] (oldest first), ld[i] the
    later-min of ls at the same bars."""
    d = 3 * w
    m = min(d, size)
    for i in range(m):
        hd[i] = hs[i]
        ld[i] = ls[i]
    if size <= d:
        return
    h0 = hs[: size - d]
    h1 = hs[w : size - 2 * w]
    h2 = hs[2 * w : size - w]
    h3 = hs[d:]
    ho = hd[d:size]
    l0 = ls[: size - d]
    l1 = ls[w : size - 2 * w]
    l2 = ls[2 * w : size - w]
    l3 = ls[d:]
    lo_ = ld[d:size]
    for j in range(ho.shape[0]):
        ho[j] = _max4(h0[j], h1[j], h2[j], h3[j])
        lo_[j] = _min4(l0[j], l1[j], l2[j], l3[j])


@njit(inline="always", **_FLAGS)
def _chunk_hilo(h, lo, n, c0, c1, scratch):
    """The window extremes at bars c0..c1-1 into scratch rows 0 (highest) and 2 (lowest), from
    bars c0-n+1 .. c1-1; returns the offset of bar c0 in those rows. Working chunk by chunk
    keeps the passes in the CPU cache."""
    start = c0 - n + 1
    if start < 0:
        start = 0
    _roll_hilo(h[start:c1], lo[start:c1], n, scratch[0], scratch[1], scratch[2], scratch[3])
    return c0 - start


@njit(inline="always", **_FLAGS)
def _chunk(scratch, n):
    """Bars per chunk: the scratch rows hold a chunk and the n-1 bars before it."""
    return scratch.shape[1] - n + 1


@njit(inline="always", **_FLAGS)
def _last_pass(n):
    """The last pass that builds a window of n: (window before it, 2 or 4 windows, stride)."""
    w = 1
    prev = 1
    kind = 0
    while 4 * w <= n:
        prev = w
        w *= 4
        kind = 4
    if 2 * w <= n:
        prev = w
        w *= 2
        kind = 2
    if w < n:
        return w, 2, n - w
    if kind == 0:  # n == 1: the window of 1 itself, as two windows at the same bar
        return 1, 2, 0
    return prev, kind, prev


@njit(inline="always", **_FLAGS)
def _spread(t, span, parts):
    """The t-th of parts + 1 offsets spread evenly over 0..span (rounded down; 0 and span at
    the ends; consecutive offsets at most ceil(span / parts) apart)."""
    return (t * span) // parts


@njit(inline="always", **_FLAGS)
def _bands_of_four(g0, g1, g2, g3, e0, e1, e2, e3, out, start, stop):
    """Donchian's outputs at bars start..stop-1: upper the max of four windows' highs g0..g3
    (oldest first), lower the min of their lows e0..e3, middle the midpoint."""
    up = out[0, start:stop]
    mid = out[1, start:stop]
    dn = out[2, start:stop]
    for j in range(stop - start):
        u = _max4(g0[j], g1[j], g2[j], g3[j])
        x = _min4(e0[j], e1[j], e2[j], e3[j])
        up[j] = u
        mid[j] = (u + x) / 2.0
        dn[j] = x


@njit(inline="always", **_FLAGS)
def _donchian_short(n, h, lo, out, hb, lb, step):
    """``donchian_fast`` for 2 <= n <= 20 in two passes per chunk: the extremes over a = ceil(n/4)
    bars straight from the inputs (five loads a side, at offsets spread over 0..a-1, repeats
    allowed) into hb / lb, with the NaN test on the newest load (no separate pass over the
    inputs); then the extremes over n as those of four windows of a at offsets spread over
    0..n-a (oldest first; they cover the window, overlapping where 4a > n), written with the
    midpoint into the three outputs. Returns whether an input held a NaN."""
    size = h.shape[0]
    a = (n + 3) // 4
    o1 = _spread(1, a - 1, 4)
    o2 = _spread(2, a - 1, 4)
    o3 = _spread(3, a - 1, 4)
    o4 = a - 1
    d1 = _spread(1, n - a, 3)
    d2 = _spread(2, n - a, 3)
    d3 = n - a
    bad = False
    for i in range(min(o4, size)):  # the bars never the newest of a window of a
        bad |= (h[i] != h[i]) | (lo[i] != lo[i])
    for c0 in range(0, size, step):
        c1 = min(c0 + step, size)
        k = c1 - c0
        js = max(0, n - 1 - c0)  # the chunk's first bar with a full window
        if js >= k:  # no full window in the series: test its bars
            for i in range(c0, c1):
                bad |= (h[i] != h[i]) | (lo[i] != lo[i])
            continue
        s = c0 + js - (n - 1)  # the oldest bar of the first window of n
        ma = c1 - s - o4  # windows of a ending at bars s + a - 1 .. c1 - 1
        h0 = h[s : s + ma]
        h1 = h[s + o1 : s + o1 + ma]
        h2 = h[s + o2 : s + o2 + ma]
        h3 = h[s + o3 : s + o3 + ma]
        h4 = h[s + o4 : s + o4 + ma]
        l0 = lo[s : s + ma]
        l1 = lo[s + o1 : s + o1 + ma]
        l2 = lo[s + o2 : s + o2 + ma]
        l3 = lo[s + o3 : s + o3 + ma]
        l4 = lo[s + o4 : s + o4 + ma]
        ha = hb[:ma]
        la = lb[:ma]
        for j in range(ma):
            w = h4[j]
            z = l4[j]
            bad |= (w != w) | (z != z)
            u = _max4(h0[j], h1[j], h2[j], h3[j])
            ha[j] = u if u > w else w
            x = _min4(l0[j], l1[j], l2[j], l3[j])
            la[j] = x if x < z else z
        m = k - js
        g0 = hb[0:m]
        g1 = hb[d1 : d1 + m]
        g2 = hb[d2 : d2 + m]
        g3 = hb[d3 : d3 + m]
        e0 = lb[0:m]
        e1 = lb[d1 : d1 + m]
        e2 = lb[d2 : d2 + m]
        e3 = lb[d3 : d3 + m]
        _bands_of_four(g0, g1, g2, g3, e0, e1, e2, e3, out, c0 + js, c1)
    return bad


@njit(**_FLAGS)
def donchian_fast(p, h, lo, out, scratch):
    """scratch: 4 rows of at least n (chunk + n - 1). 2 <= n <= 20: ``_donchian_short``.
    Otherwise the passes up to the last one into the scratch rows, then the last one straight
    into the three outputs (no scratch round trip)."""
    size = h.shape[0]
    n = int(p[0])
    if 2 <= n <= 20:
        step = min(_chunk(scratch, n), 256)  # 256: 1.49 ms, 2,048: 1.65-1.72 (L1-sized)
        bad = _donchian_short(n, h, lo, out, scratch[0], scratch[1], step)
        _nan_rows(out, 0, min(n - 1, size))
        return not bad
    step = _chunk(scratch, n)
    prev, kind, d = _last_pass(n)
    bad = False
    for c0 in range(0, size, step):
        c1 = min(c0 + step, size)
        k = c1 - c0
        bad |= _has_nan(h[c0:c1]) | _has_nan(lo[c0:c1])  # per chunk: brings it into the cache
        js = max(0, n - 1 - c0)  # the chunk's first bar with a full window
        if js >= k:
            continue
        up = out[0, c0 + js : c1]
        mid = out[1, c0 + js : c1]
        dn = out[2, c0 + js : c1]
        if n == 1:
            hh = h[c0:c1]
            ll = lo[c0:c1]
            for j in range(k):
                u = hh[j]
                v = ll[j]
                up[j] = u
                mid[j] = (u + v) / 2.0
                dn[j] = v
            continue
        cs = c0 + js - (n - prev)  # the oldest bar whose window of prev the last pass reads
        off = _chunk_hilo(h, lo, prev, cs, c1, scratch) + (n - prev)
        hb = scratch[0]
        lb = scratch[2]
        m = k - js
        if kind == 2:
            h0 = hb[off - d : off - d + m]
            h1 = hb[off : off + m]
            l0 = lb[off - d : off - d + m]
            l1 = lb[off : off + m]
            for j in range(m):
                u = h0[j]
                v = h1[j]
                u = u if u > v else v
                x = l0[j]
                y = l1[j]
                x = x if x < y else y
                up[j] = u
                mid[j] = (u + x) / 2.0
                dn[j] = x
        else:
            h0 = hb[off - 3 * d : off - 3 * d + m]
            h1 = hb[off - 2 * d : off - 2 * d + m]
            h2 = hb[off - d : off - d + m]
            h3 = hb[off : off + m]
            l0 = lb[off - 3 * d : off - 3 * d + m]
            l1 = lb[off - 2 * d : off - 2 * d + m]
            l2 = lb[off - d : off - d + m]
            l3 = lb[off : off + m]
            _bands_of_four(h0, h1, h2, h3, l0, l1, l2, l3, out, c0 + js, c1)
    _nan_rows(out, 0, min(n - 1, size))
    return not bad


@njit(inline="always", **_FLAGS)
def _hl_ratio(hv, lv, cv, willr):
    if willr:
        return 0.0 if _tie(hv, lv) else (hv - cv) / ((hv - lv) / (-100.0))
    return 0.0 if _tie(hv, lv) else (cv - lv) / ((hv - lv) / 100.0)


@njit(inline="always", **_FLAGS)
def _hl_ratio_into(p_n, h, lo, c, o, scratch, willr):
    """Williams %R (willr) or fast %K over ``p_n`` bars into ``o``, chunk by chunk; returns
    whether an input held a NaN (tested per chunk, which brings the chunk into the cache). As
    ``donchian_fast``: the passes up to the last one into the scratch rows, the last one in the
    loop that computes the ratio."""
    size = h.shape[0]
    n = p_n
    step = _chunk(scratch, n)
    prev, kind, d = _last_pass(n)
    bad = False
    for c0 in range(0, size, step):
        c1 = min(c0 + step, size)
        k = c1 - c0
        bad |= _has_nan(h[c0:c1]) | _has_nan(lo[c0:c1]) | _has_nan(c[c0:c1])  # now in cache
        js = max(0, n - 1 - c0)  # the chunk's first bar with a full window
        if js >= k:
            continue
        cs = c0 + js - (n - prev)  # the oldest bar whose window of prev the last pass reads
        off = _chunk_hilo(h, lo, prev, cs, c1, scratch) + (n - prev)
        hb = scratch[0]
        lb = scratch[2]
        m = k - js
        cc = c[c0 + js : c1]
        ok = o[c0 + js : c1]
        if kind == 2:
            h0 = hb[off - d : off - d + m]
            h1 = hb[off : off + m]
            l0 = lb[off - d : off - d + m]
            l1 = lb[off : off + m]
            for j in range(m):
                u = h0[j]
                v = h1[j]
                u = u if u > v else v
                x = l0[j]
                y = l1[j]
                x = x if x < y else y
                ok[j] = _hl_ratio(u, x, cc[j], willr)
        else:
            h0 = hb[off - 3 * d : off - 3 * d + m]
            h1 = hb[off - 2 * d : off - 2 * d + m]
            h2 = hb[off - d : off - d + m]
            h3 = hb[off : off + m]
            l0 = lb[off - 3 * d : off - 3 * d + m]
            l1 = lb[off - 2 * d : off - 2 * d + m]
            l2 = lb[off - d : off - d + m]
            l3 = lb[off : off + m]
            for j in range(m):
                u = _max4(h0[j], h1[j], h2[j], h3[j])
                x = _min4(l0[j], l1[j], l2[j], l3[j])
                ok[j] = _hl_ratio(u, x, cc[j], willr)
    for i in range(min(n - 1, size)):
        o[i] = NAN
    return bad


@njit(**_FLAGS)
def willr_fast(p, h, lo, c, out, scratch):
    """scratch: 4 rows of at least n."""
    return not _hl_ratio_into(int(p[0]), h, lo, c, out[0], scratch, True)


@njit(inline="always", **_FLAGS)
def _sma_into(x, start, n, o):
    """``sum_push`` over x[start:] divided by n, into o[start:] (NaN while it warms up).
    ``x`` and ``o`` may be the same array only if ``o`` is written no earlier than read."""
    size = x.shape[0]
    acc = 0.0
    warm = min(start + n - 1, size)
    for i in range(start, warm):
        acc = acc + x[i]
        o[i] = NAN
    for i in range(warm, size):
        a = acc + x[i]
        acc = a - x[i - n + 1]
        o[i] = a / n


@njit(**_FLAGS)
def stochf_fast(p, h, lo, c, out, scratch):
    """scratch: 4 rows of at least fastk."""
    k_n = int(p[0])
    d_n = int(p[1])
    fk = out[0]
    if _hl_ratio_into(k_n, h, lo, c, fk, scratch, False):
        return False
    start = min(k_n - 1, h.shape[0])
    for i in range(start):
        out[1, i] = NAN
    _sma_into(fk, start, d_n, out[1])
    return True


@njit(**_FLAGS)
def stoch_fast(p, h, lo, c, out, scratch):
    """scratch: 4 rows of at least fastk."""
    k_n = int(p[0])
    sk_n = int(p[1])
    sd_n = int(p[2])
    size = h.shape[0]
    fk = out[1]  # the fast %K, overwritten by slow %D once slow %K is summed from it
    if _hl_ratio_into(k_n, h, lo, c, fk, scratch, False):
        return False
    start = min(k_n - 1, size)
    sk = out[0]
    for i in range(start):
        sk[i] = NAN
    _sma_into(fk, start, sk_n, sk)
    start2 = min(start + sk_n - 1, size)
    for i in range(start2):
        out[1, i] = NAN
    _sma_into(sk, start2, sd_n, out[1])
    return True


@njit(inline="always", **_FLAGS)
def _rsi_into(n, x, o):
    """``rsi_push`` over x into o; False on a NaN."""
    size = x.shape[0]
    keep = (n - 1.0) / n
    share = 1.0 / n
    gain = 0.0
    loss = 0.0
    if size == 0:
        return True
    prev = x[0]
    if prev != prev:
        return False
    o[0] = NAN
    for i in range(1, size):
        v = x[i]
        if v != v:
            return False
        diff = v - prev
        prev = v
        if i <= n:
            if diff < 0:
                loss -= diff
            else:
                gain += diff
            if i < n:
                o[i] = NAN
                continue
            loss /= n
            gain /= n
        else:
            gain = wilder_next(gain, keep, share, diff if diff > 0.0 else 0.0)
            loss = wilder_next(loss, keep, share, -diff if diff < 0.0 else 0.0)
        total = gain + loss
        o[i] = 100.0 * (gain / total) if total != 0.0 else 0.0
    return True


@njit(**_FLAGS)
def stochrsi_fast(p, x, out, scratch):
    """The fast stochastic of RSI: RSI into out[1], its %K into out[0], then %D over it into
    out[1]. scratch: 4 rows of at least fastk."""
    n = int(p[0])
    k_n = int(p[1])
    d_n = int(p[2])
    size = x.shape[0]
    rsi = out[1]
    if not _rsi_into(n, x, rsi):
        return False
    first = min(n, size)  # the first bar with an RSI
    fk = out[0]
    for i in range(first):
        fk[i] = NAN
    v = rsi[first:]
    _hl_ratio_into(k_n, v, v, v, fk[first:], scratch, False)  # RSI has no NaN here
    start = min(first + k_n - 1, size)
    for i in range(start):
        out[1, i] = NAN
    _sma_into(fk, start, d_n, out[1])
    return True


# ----------------------------------------------------------------------------- sums of two series


_ULTOSC_CHUNK = 64


@njit(inline="always", **_FLAGS)
def _bp_tr_into(h, lo, c, pc, bp, tr):
    """Buying pressure and true range of every bar (``pc``: the previous closes) into bp, tr
    (no state: vectorised); whether an input held a NaN."""
    bad = False
    for j in range(h.shape[0]):
        hi = h[j]
        lw = lo[j]
        ci = c[j]
        p = pc[j]
        bad |= (hi != hi) | (lw != lw) | (ci != ci)
        true_low = lw if lw < p else p
        bp[j] = ci - true_low
        tr[j] = true_range(hi, lw, p)
    return bad


@njit(**_FLAGS)
def ultosc_fast(p, h, lo, c, out, rows, work):
    """Chunk by chunk of ``_ULTOSC_CHUNK`` bars: their buying pressures and true ranges into
    ``rows`` 0 and 1 (no state: vectorised), the three pairs of rolling sums (``sum2_push``)
    into the 6 ``work`` rows, then the ratios and weighted average (vectorised, the divisions
    included) into out. Small chunks keep it all in the cache and let the CPU overlap one
    chunk's divisions with the next one's sums."""
    size = h.shape[0]
    if size == 0:
        return True
    bps = rows[0]
    trs = rows[1]
    bad = h[0] != h[0] or lo[0] != lo[0] or c[0] != c[0]
    n1 = int(p[0])
    n2 = int(p[1])
    n3 = int(p[2])
    o = out[0]
    o[0] = NAN
    a1 = 0.0
    b1 = 0.0
    a2 = 0.0
    b2 = 0.0
    a3 = 0.0
    b3 = 0.0
    warm = min(n3, size)
    bad |= _bp_tr_into(h[1:warm], lo[1:warm], c[1:warm], c[: warm - 1], bps[1:warm], trs[1:warm])
    for i in range(1, warm):  # some sums still warming up (n1 <= n2 <= n3): no value yet
        bp = bps[i]
        tr = trs[i]
        if i < n1:
            a1 = a1 + bp
            b1 = b1 + tr
        else:
            a = a1 + bp
            b = b1 + tr
            a1 = a - bps[i - n1 + 1]
            b1 = b - trs[i - n1 + 1]
        if i < n2:
            a2 = a2 + bp
            b2 = b2 + tr
        else:
            a = a2 + bp
            b = b2 + tr
            a2 = a - bps[i - n2 + 1]
            b2 = b - trs[i - n2 + 1]
        a3 = a3 + bp
        b3 = b3 + tr
        o[i] = NAN
    step = min(work.shape[1], _ULTOSC_CHUNK)
    for g in range(warm, size, step):
        k = min(step, size - g)
        e = g + k
        bp_ = bps[g:e]
        tr_ = trs[g:e]
        bad |= _bp_tr_into(h[g:e], lo[g:e], c[g:e], c[g - 1 : e - 1], bp_, tr_)
        # the values leaving each window (bars i - n + 1), as slices indexed from 0
        bo1 = bps[g - n1 + 1 : e - n1 + 1]
        to1 = trs[g - n1 + 1 : e - n1 + 1]
        bo2 = bps[g - n2 + 1 : e - n2 + 1]
        to2 = trs[g - n2 + 1 : e - n2 + 1]
        bo3 = bps[g - n3 + 1 : e - n3 + 1]
        to3 = trs[g - n3 + 1 : e - n3 + 1]
        for j in range(k):
            bp = bp_[j]
            tr = tr_[j]
            sa = a1 + bp
            sb = b1 + tr
            a1 = sa - bo1[j]
            b1 = sb - to1[j]
            work[0, j] = sa
            work[1, j] = sb
            sa = a2 + bp
            sb = b2 + tr
            a2 = sa - bo2[j]
            b2 = sb - to2[j]
            work[2, j] = sa
            work[3, j] = sb
            sa = a3 + bp
            sb = b3 + tr
            a3 = sa - bo3[j]
            b3 = sb - to3[j]
            work[4, j] = sa
            work[5, j] = sb
        w0 = work[0, :k]
        w1 = work[1, :k]
        w2 = work[2, :k]
        w3 = work[3, :k]
        w4 = work[4, :k]
        w5 = work[5, :k]
        og = o[g:e]
        for j in range(k):
            total = 0.0
            sb = w1[j]
            total = total + 4.0 * (w0[j] / sb) if sb != 0.0 else total
            sb = w3[j]
            total = total + 2.0 * (w2[j] / sb) if sb != 0.0 else total
            sb = w5[j]
            total = total + 1.0 * (w4[j] / sb) if sb != 0.0 else total
            og[j] = 100.0 * (total / 7.0)
    return not bad


# ----------------------------------------------------------------------------- volume


@njit(**_FLAGS)
def obv_fast(p, c, v, out):
    """The step's branch on the sign of the close change, as an addend chosen off the running
    sum: obv + v, obv - v = obv + (-v) and obv = obv + (-0.0) are the same bits (IEEE 754),
    so the sum's chain is one addition and no mispredicted branch."""
    size = c.shape[0]
    if size == 0:
        return True
    o = out[0]
    obv = v[0]
    bad = obv != obv or c[0] != c[0]
    o[0] = obv
    c1 = c[1:]
    c0 = c[: size - 1]
    v1 = v[1:]
    o1 = o[1:]
    for j in range(c1.shape[0]):  # the addends: no state, vectorised
        ci = c1[j]
        pc = c0[j]
        vi = v1[j]
        bad |= (ci != ci) | (vi != vi)
        o1[j] = vi if ci > pc else (-vi if ci < pc else -0.0)
    if bad:
        return False
    for j in range(o1.shape[0]):
        obv = obv + o1[j]
        o1[j] = obv
    return True


# The A/D line's addend (``clv_volume``) has a division, which bounds a loop doing one a bar
# (a scalar division issues every few cycles); the running sum and the EMAs are chains of one
# addition or fused multiply-add. So, per chunk of ``_AD_CHUNK`` bars: the addends first
# (no state: vectorised, the divisions included, the NaN test folded in), into the output
# row, then the chains over them while they are in the cache. The same operations as the step
# (``ad_nb``, ``adosc_nb``), so the same bits.

_AD_CHUNK = 64


@njit(inline="always", **_FLAGS)
def _ad_addends(h, lo, c, v, a):
    """``clv_volume`` of every bar into a; whether an input held a NaN."""
    bad = False
    for j in range(a.shape[0]):
        hi = h[j]
        lw = lo[j]
        ci = c[j]
        vi = v[j]
        bad |= (hi != hi) | (lw != lw) | (ci != ci) | (vi != vi)
        a[j] = clv_volume(hi, lw, ci, vi)
    return bad


@njit(**_FLAGS)
def ad_fast(p, h, lo, c, v, out):
    """The step without its NaN branch and call per bar: the addends, then one running sum."""
    o = out[0]
    size = h.shape[0]
    ad = 0.0
    bad = False
    for g in range(0, size, _AD_CHUNK):
        k = min(_AD_CHUNK, size - g)
        oo = o[g : g + k]
        bad |= _ad_addends(h[g : g + k], lo[g : g + k], c[g : g + k], v[g : g + k], oo)
        for j in range(k):
            ad = ad + oo[j]
            oo[j] = ad
    return not bad


@njit(**_FLAGS)
def adosc_fast(p, h, lo, c, v, out):
    """``adosc_nb`` without its counter and NaN branch: the A/D sum and its two EMAs."""
    o = out[0]
    size = h.shape[0]
    if size == 0:
        return True
    k_fast = p[1]
    k_slow = p[3]
    warm = min(int(p[2]) - 1, size)
    bad = _ad_addends(h[:1], lo[:1], c[:1], v[:1], o[:1])
    ad = 0.0 + o[0]
    fe = ad
    se = ad
    o[0] = fe - se
    for g in range(1, size, _AD_CHUNK):
        k = min(_AD_CHUNK, size - g)
        oo = o[g : g + k]
        bad |= _ad_addends(h[g : g + k], lo[g : g + k], c[g : g + k], v[g : g + k], oo)
        for j in range(k):
            ad = ad + oo[j]
            fe = ema_next(fe, k_fast, ad)
            se = ema_next(se, k_slow, ad)
            oo[j] = fe - se
    for i in range(warm):
        o[i] = NAN
    return not bad


# ----------------------------------------------------------------------------- CCI
# The step keeps the typical prices in a ring and sums it slot by slot (slot 0 first), so the
# order of the additions rotates with the bar: at bar i (the i-th bar without NaN) slot j holds
# the price of bar i - ((i - j) mod n), i.e. bars base..i, then i-n+1..base-1, base = i - i mod n.
# The fast path adds in that order for four bars n apart at a time (the same rotation, so one
# index walk serves them): four independent chains of additions instead of one, which is what
# bounds the step (two chains of n dependent additions a bar).


@njit(**_FLAGS)
def cci_fast(p, h, lo, c, out, rows):
    """rows: 1 row as long as the inputs (the typical prices)."""
    size = h.shape[0]
    n = int(p[0])
    tp = rows[0]
    bad = False
    for i in range(size):
        hi = h[i]
        lw = lo[i]
        ci = c[i]
        bad |= (hi != hi) | (lw != lw) | (ci != ci)
        tp[i] = (hi + lw + ci) / 3.0
    if bad:
        return False
    o = out[0]
    first = min(n - 1, size)
    for i in range(first):
        o[i] = NAN
    for g in range(first, size, 4 * n):
        for r in range(n):
            i0 = g + r
            if i0 + 3 * n < size:
                _cci4(tp, o, i0, n)
            else:
                for i in range(i0, size, n):
                    _cci1(tp, o, i, n)
    return True


@njit(inline="always", **_FLAGS)
def _cci1(tp, o, i, n):
    k = i - i % n
    s = 0.0
    for _ in range(n):
        s += tp[k]
        k = k + 1 if k != i else i - n + 1
    s /= n
    k = i - i % n
    d = 0.0
    for _ in range(n):
        d += abs(tp[k] - s)
        k = k + 1 if k != i else i - n + 1
    o[i] = cci_value(tp[i], s, d, n)


@njit(inline="always", **_FLAGS)
def _cci4(tp, o, i, n):
    """Bars i, i+n, i+2n, i+3n: the same slot rotation, so one index walk serves the four."""
    n2 = 2 * n
    n3 = 3 * n
    k = i - i % n
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for _ in range(n):
        s0 += tp[k]
        s1 += tp[k + n]
        s2 += tp[k + n2]
        s3 += tp[k + n3]
        k = k + 1 if k != i else i - n + 1
    s0 /= n
    s1 /= n
    s2 /= n
    s3 /= n
    k = i - i % n
    d0 = 0.0
    d1 = 0.0
    d2 = 0.0
    d3 = 0.0
    for _ in range(n):
        d0 += abs(tp[k] - s0)
        d1 += abs(tp[k + n] - s1)
        d2 += abs(tp[k + n2] - s2)
        d3 += abs(tp[k + n3] - s3)
        k = k + 1 if k != i else i - n + 1
    o[i] = cci_value(tp[i], s0, d0, n)
    o[i + n] = cci_value(tp[i + n], s1, d1, n)
    o[i + n2] = cci_value(tp[i + n2], s2, d2, n)
    o[i + n3] = cci_value(tp[i + n3], s3, d3, n)


# ----------------------------------------------------------------------------- Bollinger bands
# ``var_push`` keeps shifted running sums s1, s2 of (x - K), resets K to the newest value and
# re-sums the window every n bars, and recomputes mean and variance two-pass from its ring when
# cancellation would lose the variance. Per chunk of whole n-bar blocks the fast path runs the
# running sums (the only state; each block after a re-sum its own chain, four run at once) and
# stores s1, s2 and K per bar, then turns them into bands in a vectorised pass (the divisions
# and square roots), then redoes the rare bars that need the two-pass variance, summing in the
# ring's slot order (as ``cci``).


@njit(inline="always", **_FLAGS)
def _two_pass(x, i, n):
    """``var_push``'s fallback at bar i: (variance, mean) from the ring in slot order."""
    k = i - i % n
    total = 0.0
    for _ in range(n):
        total += x[k]
        k = k + 1 if k != i else i - n + 1
    mean = total / n
    k = i - i % n
    var = 0.0
    for _ in range(n):
        dj = x[k] - mean
        var += dj * dj
        k = k + 1 if k != i else i - n + 1
    return var / n, mean


@njit(inline="always", **_FLAGS)
def _bb_resum(x, e, n):
    """``var_push``'s re-sum at a wrap bar e: K = x[e], the window's (x - K) summed in order."""
    kv = x[e]
    s1 = 0.0
    s2 = 0.0
    for t in range(e - n + 1, e + 1):
        dj = x[t] - kv
        s1 += dj
        s2 += dj * dj
    return s1, s2, kv


@njit(inline="always", **_FLAGS)
def _bb_resum4(x, e, n, g, ws1, ws2, wk):
    """Four re-sums, at wrap bars e, e + n, e + 2n and e + 3n, interleaved: four independent
    chains of additions in one loop instead of one after another (over slices indexed from 0)."""
    t0 = e - n + 1
    x0 = x[t0 : t0 + n]
    x1 = x[t0 + n : t0 + 2 * n]
    x2 = x[t0 + 2 * n : t0 + 3 * n]
    x3 = x[t0 + 3 * n : t0 + 4 * n]
    k0 = x0[n - 1]
    k1 = x1[n - 1]
    k2 = x2[n - 1]
    k3 = x3[n - 1]
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    b0 = 0.0
    b1 = 0.0
    b2 = 0.0
    b3 = 0.0
    for t in range(n):
        d0 = x0[t] - k0
        d1 = x1[t] - k1
        d2 = x2[t] - k2
        d3 = x3[t] - k3
        a0 += d0
        a1 += d1
        a2 += d2
        a3 += d3
        b0 += d0 * d0
        b1 += d1 * d1
        b2 += d2 * d2
        b3 += d3 * d3
    o = e - g
    ws1[o] = a0
    ws2[o] = b0
    wk[o] = k0
    ws1[o + n] = a1
    ws2[o + n] = b1
    wk[o + n] = k1
    ws1[o + 2 * n] = a2
    ws2[o + 2 * n] = b2
    wk[o + 2 * n] = k2
    ws1[o + 3 * n] = a3
    ws2[o + 3 * n] = b3
    wk[o + 3 * n] = k3


@njit(inline="always", **_FLAGS)
def _bb_chain(x, b, r1, n, s1, s2, kv, g, ws1, ws2, wk):
    """The running sums of bars b..b+r1-1 of one block from its start state."""
    xn = x[b : b + r1]
    xo = x[b - n : b - n + r1]
    o1 = ws1[b - g : b - g + r1]
    o2 = ws2[b - g : b - g + r1]
    ok = wk[b - g : b - g + r1]
    for r in range(r1):
        d = xn[r] - kv
        od = xo[r] - kv
        s1 = s1 + d - od
        s2 = s2 + d * d - od * od
        o1[r] = s1
        o2[r] = s2
        ok[r] = kv


@njit(inline="always", **_FLAGS)
def _bb_chain4(x, b, n, g, ws1, ws2, wk):
    """The running sums of four whole blocks from b (bars b + q n .. b + q n + n - 2, q < 4),
    interleaved; each starts from the re-sum stored at the bar before it."""
    m = n - 1
    o = b - 1 - g
    a0 = ws1[o]
    a1 = ws1[o + n]
    a2 = ws1[o + 2 * n]
    a3 = ws1[o + 3 * n]
    c0 = ws2[o]
    c1 = ws2[o + n]
    c2 = ws2[o + 2 * n]
    c3 = ws2[o + 3 * n]
    k0 = wk[o]
    k1 = wk[o + n]
    k2 = wk[o + 2 * n]
    k3 = wk[o + 3 * n]
    xp = x[b - n : b - n + m]
    x0 = x[b : b + m]
    x1 = x[b + n : b + n + m]
    x2 = x[b + 2 * n : b + 2 * n + m]
    x3 = x[b + 3 * n : b + 3 * n + m]
    j = b - g
    p0 = ws1[j : j + m]
    p1 = ws1[j + n : j + n + m]
    p2 = ws1[j + 2 * n : j + 2 * n + m]
    p3 = ws1[j + 3 * n : j + 3 * n + m]
    q0 = ws2[j : j + m]
    q1 = ws2[j + n : j + n + m]
    q2 = ws2[j + 2 * n : j + 2 * n + m]
    q3 = ws2[j + 3 * n : j + 3 * n + m]
    r0 = wk[j : j + m]
    r1 = wk[j + n : j + n + m]
    r2 = wk[j + 2 * n : j + 2 * n + m]
    r3 = wk[j + 3 * n : j + 3 * n + m]
    for r in range(m):
        d0 = x0[r] - k0
        d1 = x1[r] - k1
        d2 = x2[r] - k2
        d3 = x3[r] - k3
        e0 = xp[r] - k0
        e1 = x0[r] - k1
        e2 = x1[r] - k2
        e3 = x2[r] - k3
        a0 = a0 + d0 - e0
        a1 = a1 + d1 - e1
        a2 = a2 + d2 - e2
        a3 = a3 + d3 - e3
        c0 = c0 + d0 * d0 - e0 * e0
        c1 = c1 + d1 * d1 - e1 * e1
        c2 = c2 + d2 * d2 - e2 * e2
        c3 = c3 + d3 * d3 - e3 * e3
        p0[r] = a0
        p1[r] = a1
        p2[r] = a2
        p3[r] = a3
        q0[r] = c0
        q1[r] = c1
        q2[r] = c2
        q3[r] = c3
        r0[r] = k0
        r1[r] = k1
        r2[r] = k2
        r3[r] = k3


@njit(inline="always", **_FLAGS)
def _bb_sums(x, g, g1, n, s1, s2, kv, ws1, ws2, wk):
    """``var_push``'s running sums over bars g..g1-1 (g a multiple of n), stored per bar, from
    the state after bar g - 1 (s1, s2, K); -> the state after bar g1 - 1 where that is a wrap.

    The ring position wraps after every bar e with (e + 1) % n == 0, where the sums are summed
    again from the window alone, so each block of n bars after a wrap is its own chain: the
    re-sums first (four at a time), then the blocks' running sums (four at a time), which
    gives the CPU four independent chains where the step has one. Bars before n - 1 are not
    stored (their bands are NaN)."""
    e = g + n - 1  # the chunk's first wrap
    while e + 3 * n < g1:
        _bb_resum4(x, e, n, g, ws1, ws2, wk)
        e += 4 * n
    while e < g1:
        t1, t2, tk = _bb_resum(x, e, n)
        ws1[e - g] = t1
        ws2[e - g] = t2
        wk[e - g] = tk
        e += n
    b = n if g == 0 else g  # the first block with a chain
    if b == g and g < g1:  # its start state is the previous chunk's last wrap
        r1 = min(n - 1, g1 - b)
        _bb_chain(x, b, r1, n, s1, s2, kv, g, ws1, ws2, wk)
        b += n
    while b + 4 * n - 1 <= g1:
        _bb_chain4(x, b, n, g, ws1, ws2, wk)
        b += 4 * n
    while b < g1:
        o = b - 1 - g
        _bb_chain(x, b, min(n - 1, g1 - b), n, ws1[o], ws2[o], wk[o], g, ws1, ws2, wk)
        b += n
    last = g1 - 1 - g
    return ws1[last], ws2[last], wk[last]


@njit(inline="always", **_FLAGS)
def _bb_bands(x, n, mult, first, a1, a2, ak, up, mid, dn):
    """The bands of bars first.. from their sums (vectorised), then the two-pass fallback."""
    for j in range(up.shape[0]):
        m1 = a1[j] / n
        m2 = a2[j] / n
        var = m2 - m1 * m1
        mean = ak[j] + m1
        band = mult * math.sqrt(var)
        nan = var != var
        up[j] = NAN if nan else mean + band
        mid[j] = NAN if nan else mean
        dn[j] = NAN if nan else mean - band
        ak[j] = 1.0 if var < 1e-4 * m2 else 0.0  # K is used: now the fallback's flag
    for j in range(up.shape[0]):
        if ak[j] != 0.0:
            var, mean = _two_pass(x, first + j, n)
            if var != var:
                up[j] = NAN
                mid[j] = NAN
                dn[j] = NAN
            else:
                band = mult * math.sqrt(var)
                up[j] = mean + band
                mid[j] = mean
                dn[j] = mean - band


@njit(**_FLAGS)
def bbands_fast(p, x, out, work):
    """work: 3 rows of at least n (s1, s2, K of a chunk's bars; a chunk is whole blocks)."""
    if _has_nan(x):
        return False
    size = x.shape[0]
    n = int(p[0])
    step = n * max(1, work.shape[1] // n)
    s1 = 0.0
    s2 = 0.0
    kv = 0.0
    for g in range(0, size, step):
        g1 = min(g + step, size)
        s1, s2, kv = _bb_sums(x, g, g1, n, s1, s2, kv, work[0], work[1], work[2])
        first = max(g, min(n - 1, g1))  # the chunk's first bar with a full window
        _nan_rows(out, g, first)
        f = first - g
        m = g1 - g
        up = out[0, first:g1]
        mid = out[1, first:g1]
        dn = out[2, first:g1]
        _bb_bands(x, n, p[1], first, work[0, f:m], work[1, f:m], work[2, f:m], up, mid, dn)
    return True
