"""Shared by the indicator tests: small parameters for every indicator, and how to feed bars."""

from __future__ import annotations

import numpy as np

from models.indicators import Indicator, indicator, indicator_names

# Parameters small enough that short random series get past the warm-up.
SMALL: dict[str, dict[str, float]] = {
    "sma": {"period": 3}, "ema": {"period": 3}, "wma": {"period": 4}, "dema": {"period": 3},
    "tema": {"period": 3}, "trima": {"period": 4}, "kama": {"period": 4},
    "macd": {"fast": 3, "slow": 5, "signal": 2}, "ppo": {"fast": 2, "slow": 4},
    "trix": {"period": 2}, "mom": {"period": 2}, "roc": {"period": 2}, "rsi": {"period": 3},
    "stochf": {"fastk": 3, "fastd": 2}, "stoch": {"fastk": 3, "slowk": 2, "slowd": 2},
    "stochrsi": {"period": 3, "fastk": 3, "fastd": 2}, "willr": {"period": 3},
    "cci": {"period": 3}, "ultosc": {"period1": 2, "period2": 3, "period3": 5},
    "trange": {}, "atr": {"period": 3}, "natr": {"period": 3},
    "bbands": {"period": 4, "k": 1.5}, "keltner": {"period": 3, "atr_period": 2, "mult": 1.5},
    "donchian": {"period": 3}, "adx": {"period": 3}, "aroon": {"period": 3},
    "sar": {"acceleration": 0.05, "maximum": 0.3}, "obv": {}, "mfi": {"period": 3}, "ad": {},
    "adosc": {"fast": 2, "slow": 4}, "vwap": {},
    "ichimoku": {"tenkan": 2, "kijun": 3, "senkou": 5, "displacement": 3},
    "heikin_ashi": {}, "zscore": {"period": 4}, "rvol": {"period": 3, "periods_per_year": 252},
}
assert set(SMALL) == set(indicator_names())


def inputs_of(ind: Indicator, bars: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [bars[name] for name in ind.inputs]


def as_columns(result: np.ndarray | tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return (result,) if isinstance(result, np.ndarray) else result


def streamed(ind: Indicator, bars: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Every bar through ``stream().update``, collected into arrays."""
    cols = inputs_of(ind, bars)
    stream = ind.stream()
    rows = [stream.update(*bar) for bar in zip(*(c.tolist() for c in cols), strict=True)]
    arr = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
    return tuple(np.ascontiguousarray(arr[:, k]) for k in range(arr.shape[1]))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def default_and_small() -> list[Indicator]:
    return [indicator(name) for name in indicator_names()] + [
        indicator(name, **params) for name, params in SMALL.items()
    ]
