"""Hypothesis: for random bars with NaN gaps, every indicator's batch form equals its one-bar
form bit for bit, and a bar with a NaN input is skipped (NaN out, state unchanged): the batch
over the gappy series equals the batch over the series with those bars removed."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from models.indicators import indicator, indicator_names
from tests.indicator_cases import SMALL, as_columns, inputs_of, same_bits, streamed

INDICATORS = [indicator(name, **SMALL[name]) for name in indicator_names()]


@st.composite
def gappy_bars(draw: st.DrawFn) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    flat = draw(st.booleans())  # runs of equal prices exercise the tie rules
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 1, n)
    if flat:
        steps[rng.random(n) < 0.6] = 0.0
    close = 50 + np.cumsum(steps)
    close = np.where(close > 1, close, 1 + np.abs(close))
    up, down = np.abs(rng.normal(0, 0.5, (2, n))) * (not flat)
    bars = {
        "open": np.round(close + rng.normal(0, 0.2, n), 2),
        "high": close + up,
        "low": close - down,
        "close": close,
        "volume": np.floor(rng.exponential(100, n)),
        "session": np.cumsum(rng.random(n) < 0.1).astype(np.float64),
    }
    gaps = rng.random(n) < draw(st.sampled_from([0.0, 0.1, 0.4]))
    which = rng.integers(0, 6, n)
    for k, name in enumerate(("open", "high", "low", "close", "volume", "session")):
        bars[name] = np.where(gaps & (which == k), np.nan, bars[name])
    return bars, gaps


@settings(max_examples=60, deadline=None)
@given(gappy_bars())
def test_batch_equals_stream_and_nan_bars_are_skipped(case: tuple[dict[str, np.ndarray], np.ndarray]) -> None:
    bars, _ = case
    for ind in INDICATORS:
        cols = inputs_of(ind, bars)
        batch = as_columns(ind.batch(*cols))
        for b, s in zip(batch, streamed(ind, bars), strict=True):
            assert same_bits(b, s), ind
        skipped = np.any(np.isnan(np.vstack(cols)), axis=0)
        for b in batch:
            assert np.isnan(b[skipped]).all(), ind
        compact = as_columns(ind.batch(*(c[~skipped] for c in cols)))
        for b, k in zip(batch, compact, strict=True):
            assert same_bits(np.ascontiguousarray(b[~skipped]), k), ind


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.sampled_from([-1.0, -0.0, 0.0, 1.0, 2.0, 2.5]), min_size=1, max_size=80), st.integers(1, 9)
)
def test_rolling_extremes_and_their_latest_index_match_a_brute_force_window(
    values: list[float], n: int
) -> None:
    """Many ties (and both zeros): the rescanned highest/lowest and Aroon's bar index of the
    newest extreme equal a plain window scan, bit for bit."""
    x = np.array(values)
    upper, _mid, lower = indicator("donchian", period=n).batch(x, x)
    down, up, _osc = indicator("aroon", period=n).batch(x, x)
    for t in range(len(x)):
        if t < n - 1:
            assert np.isnan(upper[t]) and np.isnan(lower[t])
        else:
            w = x[t - n + 1 : t + 1]
            hi = int(np.flatnonzero(w == w.max())[-1])
            lo = int(np.flatnonzero(w == w.min())[-1])
            assert same_bits(upper[t : t + 1], w[hi : hi + 1])
            assert same_bits(lower[t : t + 1], w[lo : lo + 1])
        if t >= n:  # Aroon: windows of n + 1 bars
            w = x[t - n : t + 1]
            hi = int(np.flatnonzero(w == w.max())[-1])
            lo = int(np.flatnonzero(w == w.min())[-1])
            assert up[t] == 100.0 / n * (n - (n - hi))
            assert down[t] == 100.0 / n * (n - (n - lo))
