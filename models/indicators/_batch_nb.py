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
leaves the window. Indicators whose cost is a running chain (Wilder smoothing, EMAs) gain
nothing this way and have no fast path.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from models.indicators._blocks_nb import true_range

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


# ----------------------------------------------------------------------------- rolling extremes
# Rolling extremes for the indicators that need only the value (not its bar): a window of n
# is built by doubling, as the extreme of 4 (or 2) adjacent windows of a quarter (half) of
# its length, then of two overlapping windows covering n. Each pass compares arrays shifted
# against each other, no state from bar to bar, so LLVM vectorises it. ``hilo_push``'s rule
# (ties: the newest of the equal values, which only shows between 0.0 and -0.0) is kept by
# combining every pair as (earlier, later) -> later if later >= earlier else earlier: that
# picks the newest of the equal extremes of the union also for overlapping windows.


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
def _roll_ext(a, n, b0, b1, is_max):
    """The extreme of a[i-n+1 .. i] into b0[i] for i >= n-1 (b0[:n-1] is scratch); b1 is
    scratch. The last pass writes b0."""
    size = a.shape[0]
    left = _passes(n)
    if left == 0:
        for i in range(size):
            b0[i] = a[i]
        return
    w = 1
    first = True
    while w < n:
        # source and destination of this pass; the last one (left == 1) writes b0
        if first:
            src = a
        elif left % 2 == 0:
            src = b0
        else:
            src = b1
        dst = b0 if left % 2 == 1 else b1
        if 4 * w <= n:
            _pass4(src, dst, w, size, is_max)
            w *= 4
        elif 2 * w <= n:
            _pass2(src, dst, w, size, is_max)
            w *= 2
        else:
            _pass2(src, dst, n - w, size, is_max)
            w = n
        first = False
        left -= 1


@njit(inline="always", **_FLAGS)
def _pass2(src, dst, d, size, is_max):
    """dst[i] = later-extreme(src[i-d], src[i]) for i >= d; dst[:d] = src[:d]."""
    m = min(d, size)
    for i in range(m):
        dst[i] = src[i]
    if size <= d:
        return
    e = src[: size - d]
    x = src[d:]
    o = dst[d:size]
    if is_max:
        for j in range(o.shape[0]):
            u = e[j]
            v = x[j]
            o[j] = v if v >= u else u
    else:
        for j in range(o.shape[0]):
            u = e[j]
            v = x[j]
            o[j] = v if v <= u else u


@njit(inline="always", **_FLAGS)
def _pass4(src, dst, w, size, is_max):
    """dst[i] = the later-extreme of src[i-3w], src[i-2w], src[i-w], src[i], oldest first."""
    d = 3 * w
    m = min(d, size)
    for i in range(m):
        dst[i] = src[i]
    if size <= d:
        return
    e0 = src[: size - d]
    e1 = src[w : size - 2 * w]
    e2 = src[2 * w : size - w]
    x = src[d:]
    o = dst[d:size]
    if is_max:
        for j in range(o.shape[0]):
            u = e0[j]
            v = e1[j]
            u = v if v >= u else u
            v = e2[j]
            u = v if v >= u else u
            v = x[j]
            o[j] = v if v >= u else u
    else:
        for j in range(o.shape[0]):
            u = e0[j]
            v = e1[j]
            u = v if v <= u else u
            v = e2[j]
            u = v if v <= u else u
            v = x[j]
            o[j] = v if v <= u else u


@njit(inline="always", **_FLAGS)
def _chunk_ext(a, n, c0, c1, b0, b1, is_max):
    """The window extremes at bars c0..c1-1 into b0, from a[c0-n+1 .. c1-1]; returns the offset
    of bar c0 in b0. Working chunk by chunk keeps the passes in the CPU cache."""
    start = c0 - n + 1
    if start < 0:
        start = 0
    _roll_ext(a[start:c1], n, b0, b1, is_max)
    return c0 - start


@njit(inline="always", **_FLAGS)
def _chunk(scratch, n):
    """Bars per chunk: the scratch rows hold a chunk and the n-1 bars before it."""
    return scratch.shape[1] - n + 1


@njit(**_FLAGS)
def donchian_fast(p, h, lo, out, scratch):
    """scratch: 4 rows of at least n (chunk + n - 1)."""
    if _has_nan(h) or _has_nan(lo):
        return False
    size = h.shape[0]
    n = int(p[0])
    step = _chunk(scratch, n)
    for c0 in range(0, size, step):
        c1 = min(c0 + step, size)
        k = c1 - c0
        oh = _chunk_ext(h, n, c0, c1, scratch[0], scratch[1], True)
        ol = _chunk_ext(lo, n, c0, c1, scratch[2], scratch[3], False)
        hh = scratch[0, oh : oh + k]
        ll = scratch[2, ol : ol + k]
        up = out[0, c0:c1]
        mid = out[1, c0:c1]
        dn = out[2, c0:c1]
        for j in range(k):
            u = hh[j]
            d = ll[j]
            up[j] = u
            mid[j] = (u + d) / 2.0
            dn[j] = d
    _nan_rows(out, 0, min(n - 1, size))
    return True


@njit(inline="always", **_FLAGS)
def _hl_ratio_into(p_n, h, lo, c, o, scratch, willr):
    """Williams %R (willr) or fast %K over ``p_n`` bars into ``o``, chunk by chunk."""
    size = h.shape[0]
    n = p_n
    step = _chunk(scratch, n)
    for c0 in range(0, size, step):
        c1 = min(c0 + step, size)
        k = c1 - c0
        oh = _chunk_ext(h, n, c0, c1, scratch[0], scratch[1], True)
        ol = _chunk_ext(lo, n, c0, c1, scratch[2], scratch[3], False)
        hh = scratch[0, oh : oh + k]
        ll = scratch[2, ol : ol + k]
        cc = c[c0:c1]
        ok = o[c0:c1]
        if willr:
            for j in range(k):
                hv = hh[j]
                lv = ll[j]
                ok[j] = 0.0 if _tie(hv, lv) else (hv - cc[j]) / ((hv - lv) / (-100.0))
        else:
            for j in range(k):
                hv = hh[j]
                lv = ll[j]
                ok[j] = 0.0 if _tie(hv, lv) else (cc[j] - lv) / ((hv - lv) / 100.0)
    for i in range(min(n - 1, size)):
        o[i] = NAN


@njit(**_FLAGS)
def willr_fast(p, h, lo, c, out, scratch):
    """scratch: 4 rows of at least n."""
    if _has_nan(h) or _has_nan(lo) or _has_nan(c):
        return False
    _hl_ratio_into(int(p[0]), h, lo, c, out[0], scratch, True)
    return True


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
    if _has_nan(h) or _has_nan(lo) or _has_nan(c):
        return False
    k_n = int(p[0])
    d_n = int(p[1])
    fk = out[0]
    _hl_ratio_into(k_n, h, lo, c, fk, scratch, False)
    start = min(k_n - 1, h.shape[0])
    for i in range(start):
        out[1, i] = NAN
    _sma_into(fk, start, d_n, out[1])
    return True


@njit(**_FLAGS)
def stoch_fast(p, h, lo, c, out, scratch):
    """scratch: 4 rows of at least fastk."""
    if _has_nan(h) or _has_nan(lo) or _has_nan(c):
        return False
    k_n = int(p[0])
    sk_n = int(p[1])
    sd_n = int(p[2])
    size = h.shape[0]
    fk = out[1]  # the fast %K, overwritten by slow %D once slow %K is summed from it
    _hl_ratio_into(k_n, h, lo, c, fk, scratch, False)
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
