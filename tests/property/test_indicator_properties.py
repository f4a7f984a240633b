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
