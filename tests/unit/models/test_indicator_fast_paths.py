"""The batch fast paths (models/indicators/_batch_nb.py) against the step driver they replace
on series without NaN: the same bits for every indicator, at many parameters and lengths
(shorter than the window, exactly the window, many chunks), with ties and signed zeros; and
a NaN anywhere sends the batch to the step driver (the NaN-skipping rule)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from models.indicators import indicator, indicator_names
from tests.indicator_cases import SMALL, as_columns, inputs_of, same_bits


def _bars(n: int, seed: int, rounded: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    wick = np.abs(rng.normal(0, 0.3, (2, n)))
    bars = {
        "open": close + rng.normal(0, 0.1, n),
        "high": close + wick[0],
        "low": close - wick[1],
        "close": close,
        "volume": rng.integers(0, 1_000, n).astype(np.float64),
        "session": (np.arange(n) // 50).astype(np.float64),
    }
    if rounded:  # flat runs and equal extremes exercise the tie rules
        bars = {k: np.round(v, 0) for k, v in bars.items()}
    return bars


def _same(ind, bars: dict[str, np.ndarray]) -> None:
    cols = inputs_of(ind, bars)
    fast = as_columns(ind.batch(*cols))
    step = as_columns(ind.batch_stepwise(*cols))
    for f, s in zip(fast, step, strict=True):
        assert same_bits(f, s), (ind, len(cols[0]))


PERIODS = (1, 2, 3, 4, 5, 7, 14, 20, 33, 64, 65, 300)


@pytest.mark.parametrize("name", indicator_names())
def test_batch_equals_the_step_driver_bit_for_bit(name: str) -> None:
    inds = [indicator(name), indicator(name, **SMALL[name])]
    d = indicator(name)
    ints = [p for p, v in d.params.items() if isinstance(v, int)]
    for period in PERIODS:
        with contextlib.suppress(ValueError):  # e.g. macd needs fast < slow
            inds.append(indicator(name, **dict.fromkeys(ints, period)))
    for seed, size in enumerate((0, 1, 2, 5, 19, 20, 21, 64, 1_000, 7_001)):
        for rounded in (False, True):
            bars = _bars(size, seed, rounded)
            for ind in inds:
                _same(ind, bars)


def test_signed_zeros_and_ties_in_the_rolling_extremes() -> None:
    rng = np.random.default_rng(3)
    x = rng.choice(np.array([-1.0, -0.0, 0.0, 1.0, 2.0]), 5_000)
    c = rng.choice(np.array([-1.0, 0.0, 1.0]), 5_000)
    bars = {"high": x, "low": x[::-1].copy(), "close": c}
    for name in ("donchian", "willr", "stochf", "stoch"):
        for period in (1, 2, 3, 4, 5, 8, 9, 16, 17, 50, 3_000):
            params = {"period": period} if name in ("donchian", "willr") else {"fastk": period}
            _same(indicator(name, **params), bars)


def test_donchian_two_pass_path_at_every_short_period() -> None:
    """``donchian``'s fast path for 2 <= n <= 20 spreads five loads over ceil(n/4) bars and
    four windows over n: every n there (and 21, past it), with ties, signed zeros, a NaN at
    either end or inside, series shorter than the window and several 256-bar chunks."""
    rng = np.random.default_rng(8)
    x = rng.choice(np.array([-1.0, -0.0, 0.0, 1.0, 2.0]), 3_000)
    walk = np.round(100 + np.cumsum(rng.normal(0, 1, 3_000)))
    for period in range(1, 22):
        ind = indicator("donchian", period=period)
        _same(ind, {"high": x, "low": x[::-1].copy()})
        _same(ind, {"high": walk + 1, "low": walk - 1})
        for size in (period - 1, period, period + 3):
            _same(ind, {"high": walk[:size] + 1, "low": walk[:size] - 1})
        for where in (0, period // 2, 1_500, 2_999):
            gappy = walk + 1
            gappy[where] = np.nan
            _same(ind, {"high": gappy, "low": walk - 1})
            _same(ind, {"high": walk + 1, "low": gappy - 2})


@pytest.mark.parametrize("name", indicator_names())
def test_a_nan_anywhere_falls_back_to_the_step_driver(name: str) -> None:
    bars = _bars(3_000, 11, False)
    ind = indicator(name, **SMALL[name])
    for where in (0, 1, 1_500, 2_999):
        for col in ind.inputs:
            gappy = {k: v.copy() for k, v in bars.items()}
            gappy[col][where] = np.nan
            out = as_columns(ind.batch(*inputs_of(ind, gappy)))
            assert all(np.isnan(o[where]) for o in out), (ind, col, where)
            _same(ind, gappy)


def test_signed_zero_volumes_and_flat_closes_in_the_running_sums() -> None:
    """obv's fast path adds -0.0 on an unchanged close where the step leaves the sum alone:
    the same bits only if that holds for a sum of -0.0 too."""
    rng = np.random.default_rng(5)
    c = rng.choice(np.array([1.0, 2.0]), 2_000)
    v = rng.choice(np.array([-0.0, 0.0, 1.0]), 2_000)
    v[0] = -0.0
    h = np.maximum(c, rng.choice(np.array([1.0, 2.0]), 2_000))
    bars = {"high": h, "low": c.copy(), "close": c, "volume": v}
    for name in ("obv", "ad", "adosc", "mfi"):
        _same(indicator(name), bars)
    assert np.signbit(indicator("obv").batch(c[:3] * 0 + 1.0, np.array([-0.0, 0.0, -0.0]))[-1])


def test_bbands_plateaus_take_the_two_pass_variance() -> None:
    """Flat runs after a jump leave the shifted sums far from the window (the variance lost in
    cancellation), which sends both paths to the two-pass variance, summed in the ring's slot
    order; it makes most flat windows' band exactly 0 (not all: where the running sums keep a
    residue of rounding but no cancellation, the step keeps the tiny variance it computed)."""
    rng = np.random.default_rng(9)
    levels = np.repeat(rng.normal(100, 30, 400).round(3), rng.integers(1, 40, 400))
    x = levels + np.where(rng.random(levels.size) < 0.05, 0.001, 0.0)
    for period in (2, 3, 5, 20, 21):
        ind = indicator("bbands", period=period)
        _same(ind, {"close": x})
        upper, middle, _lower = ind.batch(x)
        w = period
        flat = np.array([t >= w - 1 and np.all(x[t + 1 - w : t + 1] == x[t]) for t in range(x.size)])
        assert np.mean(upper[flat] == middle[flat]) > 0.4, period


def test_read_only_inputs_take_the_fast_path_too() -> None:
    """Arrays from a DataFrame or a memory map may be read-only; Numba types them apart."""
    bars = _bars(3_000, 4, False)
    for v in bars.values():
        v.setflags(write=False)
    for name in indicator_names():
        _same(indicator(name), bars)


@pytest.mark.parametrize("name", ["atr", "natr"])
def test_atr_split_chains_meet_the_exact_chain(name: str) -> None:
    """Long series run ATR's Wilder chain as four interleaved segments, three of them started
    from a guess and corrected from the exact chain until the two meet: the same bits as the
    one-chain step, at lengths around the split's threshold, with flat stretches (true ranges
    of 0) and a spike at a segment's start, and with a NaN at each segment's edges (the fast
    path must hand those to the step driver)."""
    for period, size in ((1, 16_390), (2, 16_392), (2, 16_393), (14, 16_400), (14, 70_001), (100, 60_000)):
        for rounded in (False, True):
            bars = _bars(size, period + size, rounded)
            ind = indicator(name, period=period)
            m = (size - period - 1) // 4
            edges = [period + 1 + q * m + d for q in range(1, 4) for d in (-2, -1, 0, 1)]
            bars["high"][edges[4]] += 1e6  # a spike at the second guessed segment's start
            _same(ind, bars)
            flat = {k: v.copy() for k, v in bars.items()}
            for k in ("high", "low"):
                flat[k][edges[0] - 500 : edges[0] + 500] = flat["close"][edges[0] - 500 : edges[0] + 500]
            _same(ind, flat)
    bars = _bars(20_003, 5, False)
    ind = indicator(name, period=3)
    m = (20_003 - 4) // 4
    for where in [4, 5, *(4 + q * m + d for q in range(1, 5) for d in (-2, -1, 0, 1)), 20_002]:
        for col in ind.inputs:
            gappy = {k: v.copy() for k, v in bars.items()}
            gappy[col][where] = np.nan
            _same(ind, gappy)


def test_bbands_blocks_across_chunks_at_every_window_length() -> None:
    """bbands' fast path runs chunks of whole n-bar blocks, four blocks' running sums at once:
    the same bits as the step at windows below, at and above the chunk's length and at series
    lengths that end mid-block, mid-group of four and on a chunk's edge."""
    for period in (2, 3, 4, 7, 20, 64, 1_000, 2_047, 2_048, 2_049, 3_000):
        chunk = period * max(1, (2_048 + period) // period)
        for size in sorted(
            {period - 1, period, 4 * period + 3, 9 * period - 1, chunk, chunk + 1, 2 * chunk + period + 5}
        ):
            for rounded in (False, True):
                _same(indicator("bbands", period=period), _bars(max(size, 0), period + size, rounded))
