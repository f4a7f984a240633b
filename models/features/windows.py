"""Rolling standard deviations whose value at a bar is a function of that bar's window alone.

Polars' ``rolling_std`` updates running sums as the window slides, so its value at a bar
depends, in the last bits, on how many bars came before the window (on real prices, ~1e-16
absolute, up to 6e-14 relative): a feature computed on a lake's whole history and on a data
set exported from a later day differed at the same bar, so a model did not see in a backtest
exactly the floats it was trained on. These compute each window from its own values:

- ``int_window_std`` for an integer column (raw prices, volumes): the window's sum and sum of
  squares in 128-bit integers (exact), ``(n·Σx² - (Σx)²) / (n·(n-1))`` rounded once to a float;
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


def int_window_std(column: str, window: int) -> pl.Expr:
    """The sample standard deviation (ddof 1) of the integer ``column`` over the last
    ``window`` rows, exact to one rounding; use it per instrument like ``rolling_std``."""
    _check(window)
    x = pl.col(column).cast(pl.Int128)
    total, squares = x.rolling_sum(window), (x * x).rolling_sum(window)
    spread = squares * pl.lit(window, dtype=pl.Int128) - total * total  # n · Σ(x - mean)², exact
    return (spread.cast(pl.Float64) / float(window * (window - 1))).sqrt()


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
