"""The twenty Alpha158-style features (models.features.alpha158) against direct NumPy
computations of their definitions on a seeded panel with a missing bar, their causality as
``FeatureSpec``s, and the names Qlib's expression language gives them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from models.features.alpha158 import ALPHA158, QLIB_EXPRESSIONS, alpha_features
from models.features.cross_section import FeatureSpec, check_causal


def _frame(steps: int = 60, names: int = 3, seed: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = np.rint(1000 * np.exp(np.cumsum(rng.normal(0, 0.02, (steps, names)), 0))).astype(np.int64)
    open_ = close + rng.integers(-10, 10, (steps, names))
    high = np.maximum(open_, close) + rng.integers(0, 10, (steps, names))
    low = np.minimum(open_, close) - rng.integers(0, 10, (steps, names))
    volume = rng.integers(1, 10_000, (steps, names))
    frame = pl.DataFrame({
        "ts_ns": np.repeat(np.arange(steps, dtype=np.int64) * 86_400_000_000_000, names),
        "instrument_id": np.tile(np.arange(1, names + 1, dtype=np.int64), steps),
        "open": open_.reshape(-1), "high": high.reshape(-1), "low": low.reshape(-1),
        "close": close.reshape(-1), "volume": volume.reshape(-1),
    })  # fmt: skip
    # instrument 2 misses a bar: windows count its bars, not the calendar
    return frame.filter(~((pl.col("instrument_id") == 2) & (pl.col("ts_ns") == 30 * 86_400_000_000_000)))


def _window(x: np.ndarray, d: int, fn: object) -> np.ndarray:
    out = np.full(x.size, np.nan)
    for t in range(d - 1, x.size):
        out[t] = fn(x[t - d + 1 : t + 1])  # type: ignore[operator]
    return out


def _expected(bars: pl.DataFrame) -> dict[str, np.ndarray]:
    fields = ("open", "high", "low", "close", "volume")
    o, h, l, c, v = (bars.get_column(k).to_numpy().astype(np.float64) for k in fields)  # noqa: E741
    ref = lambda x, d: np.concatenate([np.full(d, np.nan), x[:-d]])  # noqa: E731
    mean = lambda x, d: _window(x, d, np.mean)  # noqa: E731
    std = lambda x, d: _window(x, d, lambda w: np.std(w, ddof=1))  # noqa: E731
    hi = lambda d: _window(h, d, np.max)  # noqa: E731
    lo = lambda d: _window(l, d, np.min)  # noqa: E731
    up = np.concatenate([[np.nan], (c[1:] > c[:-1]).astype(float)])
    up[0] = 0.0  # the first bar has no bar before: not a rise
    return {
        "KMID": (c - o) / o, "KLEN": (h - l) / o, "KUP": (h - np.maximum(o, c)) / o,
        "KLOW": (np.minimum(o, c) - l) / o, "KSFT": (2 * c - h - l) / o,
        "ROC5": ref(c, 5) / c, "ROC20": ref(c, 20) / c, "MA5": mean(c, 5) / c, "MA20": mean(c, 20) / c,
        "STD5": std(c, 5) / c, "STD20": std(c, 20) / c, "MAX5": hi(5) / c, "MAX20": hi(20) / c,
        "MIN5": lo(5) / c, "MIN20": lo(20) / c,
        "RSV5": (c - lo(5)) / (hi(5) - lo(5) + 1e-12), "RSV20": (c - lo(20)) / (hi(20) - lo(20) + 1e-12),
        "VMA5": mean(v, 5) / (v + 1e-12), "VSTD5": std(v, 5) / (v + 1e-12), "CNTP20": mean(up, 20),
    }  # fmt: skip


def test_each_feature_is_its_definition_per_instrument() -> None:
    frame = _frame()
    out = alpha_features(frame)
    assert out.columns == ["ts_ns", "instrument_id", *ALPHA158] and out.height == frame.height
    assert set(ALPHA158) == set(QLIB_EXPRESSIONS) and len(ALPHA158) == 20
    for iid in (1, 2, 3):
        bars = frame.filter(pl.col("instrument_id") == iid).sort("ts_ns")
        got = out.filter(pl.col("instrument_id") == iid).sort("ts_ns")
        for name, want in _expected(bars).items():
            values = got.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy()
            if name == "CNTP20":  # the first bar's comparison is null in Polars: compare full windows
                values, want = values[20:], want[20:]
            np.testing.assert_allclose(values, want, rtol=1e-12, atol=1e-15, err_msg=f"{name} of {iid}")


def test_as_feature_specs_they_are_causal_and_unknown_names_are_refused() -> None:
    frame = _frame()
    cut = int(frame.get_column("ts_ns").unique().sort()[40])
    for name in ALPHA158:
        check_causal(FeatureSpec("alpha158", {"name": name}).compute, frame, cut)
    with pytest.raises(ValueError, match="unknown Alpha158 feature"):
        FeatureSpec("alpha158", {"name": "KMIDX"}).compute(frame)
    with pytest.raises(ValueError, match="unknown Alpha158"):
        alpha_features(frame, ["ROC5", "NOPE"])
