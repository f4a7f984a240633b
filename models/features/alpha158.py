"""Twenty Alpha158-style price and volume features as Polars expressions over one instrument's
bars in time order (the ``models.features.cross_section`` frame: raw integer ``open high low
close volume``; every feature is a ratio, so the integer scale cancels).

Each is the formula Qlib's Alpha158 handler names it by, written here from its definition in
Qlib's expression language (``$close``, ``Ref``, ``Mean``, ``Std``, ``Max``, ``Min``) — one
difference: a rolling window here yields a value only once it is full (Qlib's rolling operators
use ``min_periods=1`` and give partial-window values in an instrument's first bars):

| name | definition |
|---|---|
| KMID | (close - open) / open |
| KLEN | (high - low) / open |
| KUP | (high - max(open, close)) / open |
| KLOW | (min(open, close) - low) / open |
| KSFT | (2 close - high - low) / open |
| ROC5, ROC20 | close[t-d] / close |
| MA5, MA20 | mean(close, d) / close |
| STD5, STD20 | std(close, d) (ddof 1) / close |
| MAX5, MAX20 | max(high, d) / close |
| MIN5, MIN20 | min(low, d) / close |
| RSV5, RSV20 | (close - min(low, d)) / (max(high, d) - min(low, d) + 1e-12) |
| VMA5 | mean(volume, d) / (volume + 1e-12) |
| VSTD5 | std(volume, d) / (volume + 1e-12) |
| CNTP20 | the share of the last d bars whose close rose from the bar before |

``ALPHA158`` maps each name to its expression builder; ``QLIB_EXPRESSIONS`` gives the same
feature in Qlib's expression language (the bench computes both on one data set);
``alpha_features`` computes any of them for every row in one pass. As time-series features
they are ``FeatureSpec("alpha158", {"name": "KMID"})`` (``cross_section.TIME_SERIES``), so a
model can train on them and ``check_causal`` checks them like the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import polars as pl

from models.features.windows import int_window_std

__all__ = ["ALPHA158", "ALPHA158_V1", "ALPHA158_VERSIONS", "QLIB_EXPRESSIONS", "alpha_features"]

_EPS = 1e-12


def _f(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.Float64)


def _rsv(d: int) -> pl.Expr:
    low = _f("low").rolling_min(d)
    return (_f("close") - low) / (_f("high").rolling_max(d) - low + _EPS)


ALPHA158: dict[str, Callable[[], pl.Expr]] = {
    "KMID": lambda: (_f("close") - _f("open")) / _f("open"),
    "KLEN": lambda: (_f("high") - _f("low")) / _f("open"),
    "KUP": lambda: (_f("high") - pl.max_horizontal(_f("open"), _f("close"))) / _f("open"),
    "KLOW": lambda: (pl.min_horizontal(_f("open"), _f("close")) - _f("low")) / _f("open"),
    "KSFT": lambda: (2.0 * _f("close") - _f("high") - _f("low")) / _f("open"),
    "ROC5": lambda: _f("close").shift(5) / _f("close"),
    "ROC20": lambda: _f("close").shift(20) / _f("close"),
    "MA5": lambda: _f("close").rolling_mean(5) / _f("close"),
    "MA20": lambda: _f("close").rolling_mean(20) / _f("close"),
    "STD5": lambda: int_window_std("close", 5) / _f("close"),
    "STD20": lambda: int_window_std("close", 20) / _f("close"),
    "MAX5": lambda: _f("high").rolling_max(5) / _f("close"),
    "MAX20": lambda: _f("high").rolling_max(20) / _f("close"),
    "MIN5": lambda: _f("low").rolling_min(5) / _f("close"),
    "MIN20": lambda: _f("low").rolling_min(20) / _f("close"),
    "RSV5": lambda: _rsv(5),
    "RSV20": lambda: _rsv(20),
    "VMA5": lambda: _f("volume").rolling_mean(5) / (_f("volume") + _EPS),
    "VSTD5": lambda: int_window_std("volume", 5) / (_f("volume") + _EPS),
    "CNTP20": lambda: (_f("close") > _f("close").shift(1)).cast(pl.Float64).rolling_mean(20),
}

_GROUPED = frozenset({"STD5", "STD20", "VSTD5"})  # per-instrument windows without .over (int_window_std)

# Each feature's definition version: 2 where the computation changed (the standard deviations
# from their windows alone, models.features.windows). A model artifact records the version it
# was trained with; the version-1 standard deviations (Polars' rolling_std, whose last bits
# depend on the history before the window) stay in ``ALPHA158_V1`` so an artifact trained
# with them is scored with them.
ALPHA158_VERSIONS: dict[str, int] = {name: 2 if name in _GROUPED else 1 for name in ALPHA158}
ALPHA158_V1: dict[str, Callable[[], pl.Expr]] = {
    "STD5": lambda: _f("close").rolling_std(5) / _f("close"),
    "STD20": lambda: _f("close").rolling_std(20) / _f("close"),
    "VSTD5": lambda: _f("volume").rolling_std(5) / (_f("volume") + _EPS),
}

QLIB_EXPRESSIONS: dict[str, str] = {
    "KMID": "($close-$open)/$open",
    "KLEN": "($high-$low)/$open",
    "KUP": "($high-Greater($open, $close))/$open",
    "KLOW": "(Less($open, $close)-$low)/$open",
    "KSFT": "(2*$close-$high-$low)/$open",
    "ROC5": "Ref($close, 5)/$close",
    "ROC20": "Ref($close, 20)/$close",
    "MA5": "Mean($close, 5)/$close",
    "MA20": "Mean($close, 20)/$close",
    "STD5": "Std($close, 5)/$close",
    "STD20": "Std($close, 20)/$close",
    "MAX5": "Max($high, 5)/$close",
    "MAX20": "Max($high, 20)/$close",
    "MIN5": "Min($low, 5)/$close",
    "MIN20": "Min($low, 20)/$close",
    "RSV5": "($close-Min($low, 5))/(Max($high, 5)-Min($low, 5)+1e-12)",
    "RSV20": "($close-Min($low, 20))/(Max($high, 20)-Min($low, 20)+1e-12)",
    "VMA5": "Mean($volume, 5)/($volume+1e-12)",
    "VSTD5": "Std($volume, 5)/($volume+1e-12)",
    "CNTP20": "Mean($close>Ref($close, 1), 20)",
}


def alpha_features(frame: pl.DataFrame, names: Sequence[str] | None = None) -> pl.DataFrame:
    """``ts_ns, instrument_id`` and one float column per named feature (all twenty by default),
    for every row of ``frame``, sorted by (ts_ns, instrument_id); null or NaN while a window
    fills. The frame is sorted by (instrument_id, ts_ns) once and every feature computed in one
    ``with_columns`` per instrument."""
    chosen = list(ALPHA158) if names is None else list(names)
    unknown = sorted(set(chosen) - set(ALPHA158))
    if unknown:
        raise ValueError(f"unknown Alpha158 feature(s) {unknown}; known: {', '.join(ALPHA158)}")
    ordered = frame.sort(["instrument_id", "ts_ns"])
    # the standard deviations restart their windows at each instrument by themselves (on the frame
    # sorted by instrument): evaluated once over the column, not once per instrument
    out = ordered.select(
        "ts_ns",
        "instrument_id",
        *(
            (ALPHA158[name]() if name in _GROUPED else ALPHA158[name]().over("instrument_id")).alias(name)
            for name in chosen
        ),
    )
    return out.sort(["ts_ns", "instrument_id"])
