"""The block bootstrap (``sim.montecarlo``): seeded, made of whole wrapped blocks of the input,
and its per-path statistics equal ``sim.performance`` (held to empyrical) path by path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.montecarlo import block_bootstrap, path_stats, summarise
from sim.performance import return_stats


@given(st.integers(2, 300), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_paths_are_wrapped_blocks_of_the_returns_and_the_seed_fixes_them(
    n: int, block: int, seed: int
) -> None:
    block = min(block, n)
    returns = np.arange(n, dtype=np.float64)  # the value is its own index
    paths = block_bootstrap(returns, 7, block, seed)
    assert paths.shape == (7, n)
    assert np.array_equal(paths, block_bootstrap(returns, 7, block, seed))
    for path in paths.astype(np.int64):
        for start in range(0, n, block):  # each block continues its first index, wrapping
            chunk = path[start : start + block]
            assert np.array_equal(chunk, (chunk[0] + np.arange(chunk.size)) % n)


def test_path_statistics_equal_the_reports() -> None:
    rng = np.random.default_rng(3)
    paths = rng.normal(0.0004, 0.01, size=(5, 500))
    stats = path_stats(paths, 252)
    for row, path in enumerate(paths):
        expected = return_stats(path, 252)
        assert stats.total_return[row] == pytest.approx(expected.total_return, rel=1e-12)
        assert stats.annual_return[row] == pytest.approx(expected.annual_return, rel=1e-12)
        assert stats.sharpe[row] == pytest.approx(expected.sharpe, rel=1e-12)
        assert stats.max_drawdown[row] == pytest.approx(expected.max_drawdown, rel=1e-12)
    summary = summarise(stats)
    assert summary["sharpe"]["p5"] <= summary["sharpe"]["p50"] <= summary["sharpe"]["p95"]
    assert 0.0 <= summary["probability"]["loss"] <= 1.0


@pytest.mark.parametrize(("n", "samples", "block", "message"), [
    (1, 10, 1, "at least two"), (10, 10, 11, "block must be"), (10, 0, 2, "samples must be"),
])  # fmt: skip
def test_bad_arguments_are_refused(n: int, samples: int, block: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        block_bootstrap(np.zeros(n), samples, block, 0)
