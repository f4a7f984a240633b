"""Resampling bars to a coarser frequency along market sessions (Polars).

Input: contract bars (``lake.schema.BARS``; ``ts_ns`` = bar close, UTC) of one frequency,
any number of instruments, all on one calendar. Output: contract bars of the target
frequency plus ``vwap`` (float64, raw price units) and ``bar_count`` (input bars merged).

Buckets are cut per session *segment*: a session without a break is one segment, an A-share
session is two (09:30-11:30 and 13:00-15:00 Shanghai), so no output bar spans the lunch
break. Within a segment, bucket ``k`` closes at ``segment_open + k x frequency``, clipped to the
segment close (an early close or an odd-length segment ends a short bucket). ``1d`` buckets
are whole sessions (a crypto ``24x7`` session is a UTC day; XNYS is the regular session, so
extended-hours bars are rejected: they belong to no session). Every bucket is stamped at its
close; empty buckets produce no bar.

``session=`` picks another session set (``lake.sessions.segments_for``): XNYS ``extended``
cuts pre-market (04:00 ET, open], the regular session and post-market (close, 20:00 ET] as
three segments (``1d`` = all three, stamped 20:00 ET); XSHG ``auctions`` (with ``exchange``
SSE or SZSE) adds the opening call auction (09:15, 09:25] and, where ``cn_phase`` has one, the
closing call auction (14:57, 15:00] as segments that are one bucket each at any intraday
frequency, so an auction print never shares a bar with continuous trading (``1d`` includes
them).

``holidays=`` extends XSHG past the years ``exchange_calendars`` records (2026 in 4.13.x): the
operator's file, read with ``lake.holidays.read_holidays`` (the reader of ``tape export
--holidays``), or a data set's ``Panel.holidays``. Without it a bar past the coverage is refused
saying so (``RESAMPLE_HOLIDAYS``); bars of the last covered day resample without it.

open = first, high = max, low = min, close = last, volume = sum, turnover = sum (null if any
input turnover is null). ``vwap = turnover x 10**qty_digits / volume`` when turnover is known,
else ``sum(close x volume) / volume`` (the closes stand in for trade prices; exact for
one-price minute bars such as the hikyuu 分时 series); null when volume is 0.

``Resampler`` is the incremental form: feed chunks in time order, get the finished buckets,
``flush`` the last. Its output equals ``resample`` of the concatenated input exactly, because
it carries the rows of each instrument's unfinished bucket to the next chunk instead of
partial aggregates.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from domain.markets import CalendarNotCovered, holidays_hint
from lake._resample_nb import resample_nb
from lake.schema import BARS, frequency_ns
from lake.sessions import DAY_NS, NO_BREAK, Sessions, known_calendar, segments_around, yyyymmdd

if TYPE_CHECKING:
    from domain.markets import HolidayYears

__all__ = [
    "RESAMPLE_HOLIDAYS",
    "ResampleError",
    "Resampler",
    "assign_buckets",
    "resample",
    "sessions_covering",
]

IntArray = npt.NDArray[np.int64]


class ResampleError(ValueError):
    """Bars that cannot be placed in the calendar's sessions, or an impossible frequency."""


RESAMPLE_HOLIDAYS = holidays_hint('resample(..., holidays=lake.holidays.read_holidays(FILE, "XSHG"))')
"""What a past-the-calendar refusal of resampling says to do: the ``holidays`` argument, read
with the reader ``tape export --holidays`` uses (not export's option: no data set is written)."""


def sessions_covering(
    calendar: str,
    ts_ns: IntArray,
    session: str = "regular",
    exchange: str | None = None,
    holidays: HolidayYears | None = None,
) -> Sessions:
    """The calendar's sessions (``session="regular"``) or segments under another session set
    (``lake.sessions.segments_around``) around the span of ``ts_ns`` (one day of margin each
    side, the day after only where the calendar knows it). ``holidays``: XSHG's years past
    exchange_calendars' (``lake.holidays.read_holidays``, or a data set's ``Panel.holidays``);
    a bar past the coverage is refused saying to supply them (``RESAMPLE_HOLIDAYS``)."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    first, last = yyyymmdd(np.array([ts.min() // DAY_NS, ts.max() // DAY_NS]))
    try:
        return segments_around(calendar, int(first), int(last), session, exchange, holidays)
    except CalendarNotCovered as error:  # its hint named tape export's option
        raise ResampleError(str(error.pointing(RESAMPLE_HOLIDAYS))) from error
    except ValueError as error:
        raise ResampleError(str(error)) from error


def assign_buckets(ts_ns: IntArray, sessions: Sessions, frequency: str) -> tuple[IntArray, IntArray]:
    """For bar-close timestamps: the close of the target bucket each falls in, and its
    session day. Raises ``ResampleError`` for a bar outside every session."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    step = frequency_ns(frequency)
    position = np.searchsorted(sessions.close_ns, ts, side="left")
    clipped = np.minimum(position, len(sessions.day) - 1)
    open_ns, close_ns = sessions.open_ns[clipped], sessions.close_ns[clipped]
    inside = (position < len(sessions.day)) & (ts > open_ns) & (ts <= close_ns)
    break_start, break_end = sessions.break_start_ns[clipped], sessions.break_end_ns[clipped]
    has_break = break_start != NO_BREAK
    in_break = has_break & (ts > break_start) & (ts <= break_end)
    bad = ~inside | in_break
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise ResampleError(
            f"{int(bad.sum())} bars close outside {sessions.name} sessions "
            f"(first at ts_ns={int(ts[where])}); validate them at ingest"
        )
    day = sessions.day[clipped]
    if frequency == "1d":
        return (close_ns if sessions.day_close_ns is None else sessions.day_close_ns[clipped]), day
    afternoon = has_break & (ts > break_end)
    seg_open = np.where(afternoon, break_end, open_ns)
    seg_close = np.where(has_break & ~afternoon, break_start, close_ns)
    k = (ts - seg_open + step - 1) // step
    bucket = np.minimum(seg_open + k * step, seg_close)
    if sessions.single is not None:
        bucket = np.where(sessions.single[clipped], seg_close, bucket)
    return bucket, day


def _column(table: pa.Table, name: str, dtype: type) -> npt.NDArray:  # type: ignore[type-arg]
    return np.ascontiguousarray(table.column(name).to_numpy(), dtype=dtype)


PARALLEL_MIN_ROWS = 500_000
"""Inputs at least this long are cut into one slice per CPU, run on threads (the kernel
releases the GIL) and stitched where a bucket straddles a cut."""
WORKERS = min(os.cpu_count() or 1, 8)


def _inputs(table: pa.Table, sessions: Sessions, step: int) -> list[object]:
    turnover = table.column("turnover")
    if turnover.null_count == 0:
        turnover_values = _column(table, "turnover", np.int64)
        valid, has_mask = np.ones(1, dtype=np.bool_), False
    else:
        turnover_values = np.ascontiguousarray(pc.fill_null(turnover, 0).to_numpy(), dtype=np.int64)
        valid = np.asarray(pc.is_valid(turnover).to_numpy(zero_copy_only=False), dtype=np.bool_)
        has_mask = True
    return [
        _column(table, "instrument_id", np.int32),
        _column(table, "ts_ns", np.int64),
        *(_column(table, name, np.int64) for name in ("open", "high", "low", "close", "volume")),
        turnover_values,
        valid,
        has_mask,
        sessions.day.astype(np.int32),
        sessions.open_ns,
        sessions.close_ns,
        sessions.break_start_ns,
        sessions.break_end_ns,
        sessions.close_ns if sessions.day_close_ns is None else sessions.day_close_ns,
        np.zeros(len(sessions.day), np.bool_) if sessions.single is None else sessions.single,
        step,
    ]


def _slice(inputs: list[object], begin: int, stop: int) -> list[object]:
    out = [array[begin:stop] for array in inputs[:8]]  # type: ignore[index]
    valid = inputs[8]
    out.append(valid[begin:stop] if inputs[9] else valid)  # type: ignore[index]
    return out + inputs[9:]


def _kernel(table: pa.Table, sessions: Sessions, step: int) -> tuple:  # type: ignore[type-arg]
    """(groups, status, 12 group arrays) over the whole table, in parallel slices when long."""
    inputs = _inputs(table, sessions, step)
    rows = table.num_rows
    workers = WORKERS
    if rows < PARALLEL_MIN_ROWS or workers < 2:
        return resample_nb(*inputs)
    cuts = [rows * k // workers for k in range(workers + 1)]
    ids, ts = inputs[0], inputs[1]
    for cut in cuts[1:-1]:  # order across the cuts (the kernel checks inside each slice)
        if ids[cut] < ids[cut - 1] or (ids[cut] == ids[cut - 1] and ts[cut] <= ts[cut - 1]):  # type: ignore[index]
            return (0, -2, *([np.zeros(0)] * 12))
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda bounds: resample_nb(*_slice(inputs, *bounds)), itertools.pairwise(cuts)))
    for begin, part in zip(cuts, parts, strict=False):
        if part[1] != -1:
            return (0, part[1] if part[1] == -2 else part[1] + begin, *([np.zeros(0)] * 12))
    arrays = [np.concatenate([part[2 + k][: part[0]] for part in parts]) for k in range(12)]
    g_id, g_ts, _, _, g_high, g_low, g_close, g_volume, g_turnover, g_nulls, g_pv, g_count = arrays
    ends = np.cumsum([part[0] for part in parts])[:-1]
    joins = [
        e
        for e in sorted(set(ends.tolist()))
        if 0 < e < len(g_id) and g_id[e] == g_id[e - 1] and g_ts[e] == g_ts[e - 1]
    ]
    for e in reversed(joins):  # a bucket cut apart: fold each later piece into the one before
        g_high[e - 1] = max(g_high[e - 1], g_high[e])
        g_low[e - 1] = min(g_low[e - 1], g_low[e])
        g_close[e - 1] = g_close[e]
        for total in (g_volume, g_turnover, g_nulls, g_pv, g_count):
            total[e - 1] += total[e]
    if joins:
        arrays = [np.delete(array, joins) for array in arrays]
    return (len(arrays[0]), -1, *arrays)


def _table(bars: pa.Table | pl.DataFrame) -> pa.Table:
    table = bars.to_arrow() if isinstance(bars, pl.DataFrame) else bars
    return table.select(BARS.names)


_OUT = [*BARS.names, "vwap", "bar_count"]


def resample(
    bars: pa.Table | pl.DataFrame,
    frequency: str,
    *,
    calendar: str | None = None,
    sessions: Sessions | None = None,
    qty_digits: int = 0,
    session: str = "regular",
    exchange: str | None = None,
    holidays: HolidayYears | None = None,
) -> pl.DataFrame:
    """Bars -> ``frequency`` bars (sorted by instrument, time). Give ``calendar`` (an
    exchange_calendars name or ``24x7``) or precomputed ``sessions``. ``session`` picks the
    session set: ``regular``, XNYS ``extended`` (pre/regular/post as separate segments) or XSHG
    ``auctions`` (call auctions as their own single-bucket phases; needs ``exchange``).
    ``holidays`` extends XSHG past exchange_calendars' last year (``sessions_covering``)."""
    table = _table(bars)
    step = 0 if frequency == "1d" else frequency_ns(frequency)
    if table.num_rows == 0:
        return _empty()
    if sessions is None:
        if calendar is None:
            raise ResampleError("resample needs a calendar or sessions")
        if not known_calendar(calendar):  # was exchange_calendars' InvalidCalendarName
            raise ResampleError(f"unknown calendar {calendar!r} (an exchange_calendars code, or 24x7)")
        sessions = sessions_covering(calendar, table.column("ts_ns").to_numpy(), session, exchange, holidays)
    result = _kernel(table, sessions, step)
    if result[1] == -2:  # not sorted by (instrument, time): sort once and run again
        table = table.sort_by([("instrument_id", "ascending"), ("ts_ns", "ascending")])
        result = _kernel(table, sessions, step)
        if result[1] == -2:
            raise ResampleError("bars repeat a (instrument, ts_ns) key; validate them at ingest")
    groups, status = int(result[0]), int(result[1])
    if status >= 0:
        stamp = int(table.column("ts_ns")[status].as_py())
        raise ResampleError(
            f"bars close outside {sessions.name} sessions (first at row {status}, ts_ns={stamp}); "
            "validate them at ingest"
        )
    g_id, g_ts, g_day, g_open, g_high, g_low, g_close, g_volume, g_turnover, g_nulls, g_pv, g_count = (
        array[:groups] for array in result[2:]
    )
    known = g_nulls == 0
    volume = g_volume.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = np.where(known, g_turnover * float(10**qty_digits), g_pv) / volume
    out = pa.table(
        {
            "ts_ns": g_ts,
            "day": g_day,
            "instrument_id": g_id,
            "open": g_open,
            "high": g_high,
            "low": g_low,
            "close": g_close,
            "volume": g_volume,
            "turnover": pa.array(g_turnover, mask=~known),
            "vwap": pa.array(vwap, mask=g_volume == 0),
            "bar_count": g_count,
        }
    )
    frame = pl.from_arrow(out)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _empty() -> pl.DataFrame:
    schema = pa.schema([*BARS, pa.field("vwap", pa.float64()), pa.field("bar_count", pa.int32())])
    frame = pl.from_arrow(schema.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


class Resampler:
    """Incremental resampling: ``update(chunk)`` returns the buckets the chunk finished,
    ``flush()`` the rest. Chunks must arrive in time order per instrument. ``holidays`` as for
    ``resample``."""

    def __init__(
        self,
        frequency: str,
        *,
        calendar: str,
        qty_digits: int = 0,
        session: str = "regular",
        exchange: str | None = None,
        holidays: HolidayYears | None = None,
    ) -> None:
        frequency_ns(frequency)
        self.frequency = frequency
        self.calendar = calendar
        self.qty_digits = qty_digits
        self.session = session
        self.exchange = exchange
        self.holidays = holidays
        self._carry: pa.Table | None = None

    def update(self, chunk: pa.Table | pl.DataFrame) -> pl.DataFrame:
        table = _table(chunk)
        if self._carry is not None:
            table = pa.concat_tables([self._carry, table.cast(self._carry.schema)])
        if table.num_rows == 0:
            return _empty()
        table = table.sort_by([("instrument_id", "ascending"), ("ts_ns", "ascending")])
        ts = table.column("ts_ns").to_numpy()
        sessions = sessions_covering(self.calendar, ts, self.session, self.exchange, self.holidays)
        bucket, _ = assign_buckets(ts, sessions, self.frequency)
        ids = table.column("instrument_id").to_numpy()
        last = np.flatnonzero(np.r_[ids[1:] != ids[:-1], True])  # each instrument's last row
        sizes = np.diff(np.r_[0, last + 1])
        last_bucket, last_ts = np.repeat(bucket[last], sizes), np.repeat(ts[last], sizes)
        # A bucket is finished once the bar at its close arrived; otherwise more may come.
        unfinished = (bucket == last_bucket) & (last_ts < last_bucket)
        self._carry = table.filter(pa.array(unfinished))
        done = table.filter(pa.array(~unfinished))
        if done.num_rows == 0:
            return _empty()
        return resample(done, self.frequency, sessions=sessions, qty_digits=self.qty_digits)

    def flush(self) -> pl.DataFrame:
        carry, self._carry = self._carry, None
        if carry is None or carry.num_rows == 0:
            return _empty()
        return resample(
            carry,
            self.frequency,
            calendar=self.calendar,
            qty_digits=self.qty_digits,
            session=self.session,
            exchange=self.exchange,
            holidays=self.holidays,
        )
