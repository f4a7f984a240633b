"""Seeded synthetic market data: geometric Brownian motion bars on a real calendar.

Used by the demo and the benchmarks, so every run generates the same bytes from the
same seed. Daily and minute bars follow ``exchange_calendars`` sessions (XNYS by default)
or a 24x7 UTC calendar for crypto-like data; each bar is stamped at its close, UTC ns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from domain.instruments import Instrument
from lake.store import DatasetError, DatasetRef, write_dataset

__all__ = ["MAX_SYNTH_BARS", "bar_times", "synth_dataset", "synth_instruments"]

_NS = 1_000_000_000

MAX_SYNTH_BARS = 50_000_000
"""The most bars (symbols x bars) one data set is made with: it is made in memory, about 175
bytes a bar at its peak (measured: 10 symbols x 1M minute bars peak at 2.1 GB), so about 9 GB
at this limit; a larger request is refused before anything is allocated (it was a MemoryError,
or the machine swapping)."""
_MINUTE_NS = 60 * _NS


def synth_instruments(count: int, *, asset_class: str = "equity", venue: str = "SYNTH") -> list[Instrument]:
    return [
        Instrument(
            instrument_id=index + 1,
            symbol=f"SYN{index + 1:04d}",
            venue=venue,
            asset_class=asset_class,
            currency="USD",
            price_digits=2,
            tick_raw=1,
            qty_digits=0,
            lot_raw=1,
        )
        for index in range(count)
    ]


def bar_times(calendar: str, frequency: str, start: str, bars: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """``bars`` bar-close timestamps (UTC ns) and their session days (YYYYMMDD) from ``start``."""
    if calendar == "24x7":
        step_ns = _MINUTE_NS if frequency == "1m" else 86_400 * _NS
        first = np.datetime64(start, "ns").astype(np.int64)
        ts = first + step_ns * (np.arange(bars, dtype=np.int64) + 1)
        day = _yyyymmdd(ts - 1)
        return ts, day
    cal, sessions = _sessions_from(calendar, frequency, start, bars)
    if frequency == "1d":
        if len(sessions) < bars:
            raise DatasetError(
                f"{calendar} has only {len(sessions):,} sessions after {start}; asked for {bars:,}"
            )
        chosen = sessions[:bars]
        closes = _utc_ns(cal.schedule.loc[chosen, "close"])
        return closes, _session_days(chosen)
    minutes: list[np.ndarray] = []  # type: ignore[type-arg]
    days: list[np.ndarray] = []  # type: ignore[type-arg]
    total = 0
    for session in sessions:
        opens = _utc_ns(cal.session_minutes(session))
        minutes.append(opens + _MINUTE_NS)
        days.append(np.full(len(opens), int(session.strftime("%Y%m%d")), dtype=np.int64))
        total += len(opens)
        if total >= bars:
            break
    if not minutes:  # a start past the calendar's last session
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(minutes)[:bars], np.concatenate(days)[:bars]


SPAN_LAST_DAY = 20991231
"""The last day a synthetic data set's calendar is built to: the bars asked for past it are
refused, as bars past a calendar's last covered day are (XSHG's holidays end with 2026)."""


def _sessions_from(calendar: str, frequency: str, start: str, bars: int) -> tuple[Any, Any]:
    """The calendar built from ``start`` over a span long enough for ``bars`` bars, and its
    sessions from ``start``. The span comes from the request alone, never from today's date
    (``exchange_calendars``' default span is 20 years back to a year ahead of today: a
    ``--start`` before it was moved to it, and a request past it refused, depending on the
    day the command ran). The span starts at two calendar days a bar wanted (a daily bar, or a
    session of 60 minute bars) and doubles until the bars fit, the calendar's last covered day
    or ``SPAN_LAST_DAY``; a longer span than needed gives the same sessions."""
    from domain.markets import CALENDARS, date_to_day, day_to_date, exchange_calendar, last_covered_day
    from lake.sessions import known_calendar

    if not known_calendar(calendar):
        raise DatasetError(
            f"unknown calendar {calendar!r} (an exchange_calendars code such as XNYS, or 24x7)"
        )
    first = date_to_day(dt.date.fromisoformat(str(np.datetime64(start, "D"))))
    covered = last_covered_day(calendar) if calendar in CALENDARS else None
    last_allowed = min(SPAN_LAST_DAY, covered or SPAN_LAST_DAY)
    if first > last_allowed:
        raise DatasetError(f"{calendar} has only 0 sessions after {start} (it is known up to {last_allowed})")
    wanted = bars if frequency == "1d" else -(-bars // 60)
    span = 2 * wanted + 14
    while True:
        last = min(last_allowed, date_to_day(day_to_date(first) + dt.timedelta(days=span)))
        cal = exchange_calendar(calendar, first, max(first, last))
        sessions = cal.sessions[cal.sessions >= np.datetime64(start)]
        if last >= last_allowed or _enough(cal, sessions, frequency, bars):
            return cal, sessions
        span *= 2


def _enough(cal: Any, sessions: Any, frequency: str, bars: int) -> bool:
    """Whether the calendar (built from the data set's start) holds ``bars`` bars."""
    if frequency == "1d":
        return len(sessions) >= bars
    return len(cal.minutes) >= bars


def _utc_ns(stamps: object) -> np.ndarray:  # type: ignore[type-arg]
    """Timezone-aware pandas stamps -> int64 UTC nanoseconds."""
    import pandas as pd

    index = pd.DatetimeIndex(stamps).tz_convert("UTC").tz_localize(None)
    return index.to_numpy().astype("datetime64[ns]").astype(np.int64)


def _yyyymmdd(ts_ns: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    dates = ts_ns.astype("datetime64[ns]").astype("datetime64[D]").astype(str)
    return np.char.replace(dates, "-", "").astype(np.int64)


def _session_days(sessions: object) -> np.ndarray:  # type: ignore[type-arg]
    return np.array([int(s.strftime("%Y%m%d")) for s in sessions], dtype=np.int64)  # type: ignore[attr-defined]


def _gbm_bars(rng: np.random.Generator, steps: int, names: int, frequency: str) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    periods = 252 if frequency == "1d" else 252 * 390
    drift = rng.normal(0.05, 0.10, names) / periods
    vol = rng.uniform(0.15, 0.60, names) / np.sqrt(periods)
    start = rng.uniform(20.0, 200.0, names)
    returns = drift + vol * rng.standard_normal((steps, names))
    close = start * np.exp(np.cumsum(returns, axis=0))
    gap = vol * 0.2 * rng.standard_normal((steps, names))
    open_ = np.vstack([start[None, :], close[:-1]]) * np.exp(gap)
    wick = np.abs(vol * 0.5 * rng.standard_normal((2, steps, names)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(np.log(5_000.0 if frequency == "1m" else 1_000_000.0), 0.5, (steps, names))
    raw = {
        k: np.maximum(np.rint(v * 100), 1).astype(np.int64)
        for k, v in {"open": open_, "high": high, "low": low, "close": close}.items()
    }
    raw["high"] = np.maximum.reduce([raw["high"], raw["open"], raw["close"]])
    raw["low"] = np.minimum.reduce([raw["low"], raw["open"], raw["close"]])
    raw["volume"] = volume.astype(np.int64) + 1
    return raw


def synth_dataset(
    path: Path,
    *,
    seed: int,
    symbols: int,
    bars: int,
    frequency: str = "1d",
    calendar: str = "XNYS",
    start: str = "2015-01-02",
    listing_stagger: bool = False,
    progress: Callable[[int], None] | None = None,
) -> DatasetRef:
    """Write a seeded data set of ``symbols`` x ``bars`` bars. With ``listing_stagger`` some
    names list later (no bars before their first day), as real universes do."""
    if frequency not in ("1d", "1m"):
        raise DatasetError(f"frequency must be 1d or 1m, got {frequency!r}")
    for name, value, least in (("symbols", symbols, 1), ("bars", bars, 1), ("seed", seed, 0)):
        if value < least:  # --bars -5 wrote 3,246 sessions (sessions[:-5]); --seed -1 was a numpy error
            raise DatasetError(f"synth: {name} must be at least {least}, not {value}")
    if symbols * bars > MAX_SYNTH_BARS:
        raise DatasetError(
            f"synth: {symbols:,} symbols x {bars:,} bars = {symbols * bars:,} bars is more than "
            f"{MAX_SYNTH_BARS:,}, the most one data set is made with (it is made in memory, about "
            f"175 bytes a bar: {MAX_SYNTH_BARS * 175 / 1e9:.0f} GB at the limit); make fewer symbols or bars"
        )
    try:
        np.datetime64(start, "D")
    except ValueError:
        raise DatasetError(f"synth: start is not a date (YYYY-MM-DD): {start!r}") from None
    rng = np.random.default_rng(seed)
    ts, day = bar_times(calendar, frequency, start, bars)
    if len(ts) < bars:
        raise DatasetError(f"{calendar} has only {len(ts):,} minute bars after {start}; asked for {bars:,}")
    fields = _gbm_bars(rng, len(ts), symbols, frequency)
    valid = np.ones((len(ts), symbols), dtype=np.bool_)
    if listing_stagger:
        first = rng.integers(0, max(1, len(ts) // 3), symbols) * (rng.random(symbols) < 0.2)
        valid &= np.arange(len(ts))[:, None] >= first[None, :]
    rows, cols = np.nonzero(valid)
    if progress is not None:
        progress(len(rows))
    table = pa.table(
        {
            "ts_ns": ts[rows],
            "day": day[rows].astype(np.int32),
            "instrument_id": (cols + 1).astype(np.int32),
            **{k: v[rows, cols] for k, v in fields.items()},
        }
    )
    name = f"synth-{frequency}-{symbols}x{bars}-seed{seed}"
    instruments = synth_instruments(symbols, asset_class="crypto_spot" if calendar == "24x7" else "equity")
    return write_dataset(
        path, name=name, frequency=frequency, calendar=calendar, instruments=instruments, bars=table
    )
