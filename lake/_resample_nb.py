"""Numba kernel for ``lake.resample``: one pass over (instrument, time)-sorted bars that
places each bar in its session segment's bucket and aggregates OHLCV in the same loop.
Arrays in, arrays out; no objects, no I/O."""

from __future__ import annotations

import numpy as np
from numba import njit

NO_BREAK = -1


@njit(cache=True, nogil=True)
def _segment(t, j, s_close):
    """The first segment row at or after ``j`` whose close is not before ``t``."""
    while j < len(s_close) and s_close[j] < t:
        j += 1
    return j


@njit(cache=True, nogil=True)
def _placed(t, j, s_open, s_close, s_break_start, s_break_end):
    """Whether bar close ``t`` lies in segment row ``j`` (and outside its break)."""
    if j >= len(s_close) or t <= s_open[j] or t > s_close[j]:
        return False
    return s_break_start[j] == NO_BREAK or t <= s_break_start[j] or t > s_break_end[j]


@njit(cache=True, nogil=True)
def resample_nb(  # noqa: C901 - one fused loop is the point (see the module doc)
    ids,
    ts,
    open_,
    high,
    low,
    close,
    volume,
    turnover,
    turnover_valid,
    has_mask,
    s_day,
    s_open,
    s_close,
    s_break_start,
    s_break_end,
    s_day_close,
    s_single,
    step,
):
    """Returns (groups, status, out arrays...). ``status`` is -1 when every bar was placed,
    ``-2`` when the input is not sorted by (instrument, time), else the first bad row index
    (a bar outside every session or inside a break). ``step == 0`` means whole days, stamped at
    ``s_day_close`` (a day may span several segment rows); a segment with ``s_single`` set is
    one bucket at its close whatever the step (a call auction)."""
    n = len(ts)
    g_id = np.empty(n, np.int32)
    g_ts = np.empty(n, np.int64)
    g_day = np.empty(n, np.int32)
    g_open = np.empty(n, np.int64)
    g_high = np.empty(n, np.int64)
    g_low = np.empty(n, np.int64)
    g_close = np.empty(n, np.int64)
    g_volume = np.empty(n, np.int64)
    g_turnover = np.empty(n, np.int64)
    g_nulls = np.empty(n, np.int32)
    g_pv = np.empty(n, np.float64)
    g_count = np.empty(n, np.int32)
    groups = 0
    status = -1
    sessions = len(s_close)
    j = 0
    current_id = -1
    i = 0
    while i < n:
        instrument = ids[i]
        t = ts[i]
        if i > 0 and (instrument < ids[i - 1] or (instrument == ids[i - 1] and t <= ts[i - 1])):
            status = -2
            break
        if instrument != current_id:
            j = np.searchsorted(s_close, t)
            current_id = instrument
        while j < sessions and s_close[j] < t:
            j += 1
        if j >= sessions or t <= s_open[j]:
            status = i
            break
        seg_open = s_open[j]
        seg_close = s_close[j]
        if s_break_start[j] != NO_BREAK:
            if t > s_break_end[j]:
                seg_open = s_break_end[j]
            elif t > s_break_start[j]:
                status = i
                break
            else:
                seg_close = s_break_start[j]
        if step == 0:
            bucket = s_day_close[j]
        elif s_single[j]:
            bucket = seg_close
        else:
            bucket = seg_open + ((t - seg_open + step - 1) // step) * step
            if bucket > seg_close:
                bucket = seg_close
        # The bucket's rows: same instrument, strictly later, not past its close. Intraday buckets
        # never leave their segment, so no session test is needed; a day spans segments and
        # breaks, so each of its rows is placed (``jj``) and a row between segments is an error.
        hi = high[i]
        lo = low[i]
        vol = volume[i]
        valid = (not has_mask) or turnover_valid[i]
        turn = turnover[i] if valid else 0
        nulls = 0 if valid else 1
        pv_sum = float(close[i]) * float(volume[i]) if has_mask else 0.0
        k = i + 1
        previous = t
        jj = j
        if has_mask:
            while k < n and ids[k] == instrument and previous < ts[k] <= bucket:
                if step == 0 and not _placed(ts[k], jj, s_open, s_close, s_break_start, s_break_end):
                    jj = _segment(ts[k], jj, s_close)
                    if not _placed(ts[k], jj, s_open, s_close, s_break_start, s_break_end):
                        status = k
                        break
                previous = ts[k]
                hi = max(hi, high[k])
                lo = min(lo, low[k])
                vol += volume[k]
                if turnover_valid[k]:
                    turn += turnover[k]
                else:
                    nulls += 1
                pv_sum += float(close[k]) * float(volume[k])
                k += 1
        else:
            while k < n and ids[k] == instrument and previous < ts[k] <= bucket:
                if step == 0 and not _placed(ts[k], jj, s_open, s_close, s_break_start, s_break_end):
                    jj = _segment(ts[k], jj, s_close)
                    if not _placed(ts[k], jj, s_open, s_close, s_break_start, s_break_end):
                        status = k
                        break
                previous = ts[k]
                hi = max(hi, high[k])
                lo = min(lo, low[k])
                vol += volume[k]
                turn += turnover[k]
                k += 1
        if status >= 0:
            break
        g = groups
        groups += 1
        g_id[g] = instrument
        g_ts[g] = bucket
        g_day[g] = s_day[j]
        g_open[g] = open_[i]
        g_high[g] = hi
        g_low[g] = lo
        g_close[g] = close[k - 1]
        g_volume[g] = vol
        g_turnover[g] = turn
        g_nulls[g] = nulls
        g_pv[g] = pv_sum
        g_count[g] = k - i
        i = k
    return (
        groups,
        status,
        g_id,
        g_ts,
        g_day,
        g_open,
        g_high,
        g_low,
        g_close,
        g_volume,
        g_turnover,
        g_nulls,
        g_pv,
        g_count,
    )
