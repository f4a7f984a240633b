"""Rolling standard deviations whose value at a bar is a function of that bar's window alone.

Polars' ``rolling_std`` updates running sums as the window slides, so its value at a bar
depends, in the last bits, on how many bars came before the window (on real prices, ~1e-16
absolute, up to 6e-14 relative): a feature computed on a lake's whole history and on a data
set exported from a later day differed at the same bar, so a model did not see in a backtest
exactly the floats it was trained on. These compute each window from its own values:

- ``int_window_std`` for an integer column (raw prices, volumes): each deviation from the
  window's mean exact in integers (``n·x - Σx``), squared and summed in a fixed order (a
  compiled loop over the column, restarting at each instrument);
- ``window_std`` for any float expression (log returns): a compiled loop over each window,
  the mean then the squared deviations, in a fixed order.

Both are null until the window is full and where it holds a null, as ``rolling_std`` is.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
from numba import njit

__all__ = ["int_window_std", "window_std"]


def _check(window: int) -> None:
    if window < 2:
        raise ValueError(f"a standard deviation needs a window of at least 2 bars, got {window}")


@njit(cache=True)
def _int_window_std_nb(
    values: npt.NDArray[np.int64], groups: npt.NDArray[np.int64], window: int
) -> npt.NDArray[np.float64]:
    """Per row, the std of the last ``window`` values of its group (rows of a group adjacent, in
    time order); NaN until the group has a full window. Each deviation from the window's mean is
    exact in integers (``n·x - Σx``), then squared and summed in a fixed order."""
    out = np.full(values.shape[0], np.nan)
    start = 0
    for end in range(values.shape[0]):
        if end > 0 and groups[end] != groups[end - 1]:
            start = end
        if end - start + 1 < window:
            continue
        total = np.int64(0)
        for k in range(end - window + 1, end + 1):
            total += values[k]
        squares = 0.0
        for k in range(end - window + 1, end + 1):
            deviation = float(window * values[k] - total)
            squares += deviation * deviation
        out[end] = np.sqrt(squares / (window * window * (window - 1)))
    return out


def _int_std_batch(batch: pl.Series, column: str, window: int) -> pl.Series:
    groups = batch.struct.field("instrument_id").cast(pl.Int64)
    values = batch.struct.field(column)
    if values.dtype not in (pl.Int64, pl.Int32, pl.UInt32, pl.Int16, pl.UInt16, pl.Int8, pl.UInt8):
        raise TypeError(f"int_window_std needs an integer column, {column!r} is {values.dtype}")
    missing = values.is_null().to_numpy()
    result = pl.Series(
        column, _int_window_std_nb(values.fill_null(0).cast(pl.Int64).to_numpy(), groups.to_numpy(), window)
    )
    result = result.fill_nan(None)
    if missing.any():  # a window holding a missing value is null, as rolling_std gives
        holds = np.convolve(missing.astype(np.int64), np.ones(window, dtype=np.int64))[: missing.size] > 0
        result = result.scatter(np.flatnonzero(holds), None)
    return result


def int_window_std(column: str, window: int) -> pl.Expr:
    """The sample standard deviation (ddof 1) of the integer ``column`` over the last
    ``window`` rows of each instrument (frame sorted by ``instrument_id`` then time: the
    windows restart where ``instrument_id`` changes, so the expression needs no
    ``.over``, and gives the same values under one). Null until a window is full."""
    _check(window)
    return pl.struct("instrument_id", column).map_batches(
        lambda batch: _int_std_batch(batch, column, window), return_dtype=pl.Float64
    )


@njit(cache=True)
def _window_std_nb(x: npt.NDArray[np.float64], window: int) -> npt.NDArray[np.float64]:
    out = np.full(x.shape[0], np.nan)
    for end in range(window - 1, x.shape[0]):
        total = 0.0
        for k in range(end - window + 1, end + 1):
            total += x[k]
        mean = total / window
        squares = 0.0
        for k in range(end - window + 1, end + 1):
            squares += (x[k] - mean) * (x[k] - mean)
        out[end] = np.sqrt(squares / (window - 1))
    return out


def _series_std(series: pl.Series, window: int) -> pl.Series:
    values = series.cast(pl.Float64)
    result = pl.Series(series.name, _window_std_nb(values.fill_null(np.nan).to_numpy(), window))
    missing = values.is_null().to_numpy().astype(np.int64)
    holds = np.convolve(missing, np.ones(window, dtype=np.int64))[: missing.size] > 0
    holds[: window - 1] = True  # the first rows have no full window
    return result.scatter(np.flatnonzero(holds), None)


def window_std(x: pl.Expr, window: int) -> pl.Expr:
    """The sample standard deviation (ddof 1) of the float expression ``x`` over the last
    ``window`` rows, computed from the window alone; use it per instrument
    (``.over("instrument_id")``) like any time-series expression."""
    _check(window)
    return x.map_batches(lambda s: _series_std(s, window), return_dtype=pl.Float64)
