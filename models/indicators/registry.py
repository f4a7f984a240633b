"""Indicators by name: ``indicator("rsi", period=14)`` gives a validated, immutable spec whose
``batch`` computes whole arrays and whose ``stream()`` gives a one-bar-at-a-time state. Both run
the same Numba step kernel, so they return the same bits (docs/indicators.md); a few indicators'
``batch`` takes a fast path on series without NaN that computes the same bits with the step's
arithmetic over whole arrays (``_batch_nb.py``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from models.indicators import _batch_nb as fb
from models.indicators import _kernels_nb as kn

FloatArray = npt.NDArray[np.float64]
Params = dict[str, float]

_DRIVERS = {1: kn.run1_nb, 2: kn.run2_nb, 3: kn.run3_nb, 4: kn.run4_nb, 5: kn.run5_nb}


class IndicatorError(ValueError):
    """An unknown indicator name, a bad parameter, inputs of the wrong shape, or a state that is
    not this indicator's."""


# The largest window (every integer parameter: periods, lookbacks, displacement), in bars.
# TA-Lib's own limit (100,000), so every window TA-Lib accepts Tape accepts; a year of US-equity
# minute bars is ~98,000. It bounds the rings (at most 6 windows: 4.8 MB) and the fast paths'
# scratch, which are sized by the window, not by the series (docs/indicators.md).
MAX_WINDOW = 100_000


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # int or float
    default: float
    minimum: float
    maximum: float = float("inf")  # an int parameter is a window: at most MAX_WINDOW

    def allowed(self) -> str:
        """The accepted values, in words (every refusal states them)."""
        if self.kind is int:
            return f"a whole number from {self.minimum:g} to {self.maximum:g}"
        if math.isinf(self.maximum):
            return f"a finite number >= {self.minimum:g}"
        return f"a number from {self.minimum:g} to {self.maximum:g}"


@dataclass(frozen=True)
class _Def:
    name: str
    summary: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: tuple[Param, ...]
    step: Any  # a numba dispatcher: (s, r, p, *inputs, out, i) -> s
    scalars: str  # the scalar state tuple ``s``: "f" a float slot, "i" an integer (ring position)
    ring: Callable[[Params], int]  # length of the ring array ``r``
    pvec: Callable[[Params], list[float]]
    warmup: Callable[[Params], int]
    check: Callable[[Params], str | None] = field(default=lambda p: None)


def _none(p: Params) -> int:
    return 0


def _k(n: float) -> float:
    return 2.0 / (n + 1.0)


def _period(default: int, minimum: int = 1, name: str = "period") -> Param:
    return Param(name, int, default, minimum, MAX_WINDOW)


def _n(p: Params) -> tuple[int, ...]:
    return (int(p["period"]),)


def _ns(*names: str) -> Callable[[Params], tuple[int, ...]]:
    return lambda p: tuple(int(p[k]) for k in names)


def _fast_slow(p: Params) -> str | None:
    return None if p["fast"] < p["slow"] else "need fast < slow"


_HLC = ("high", "low", "close")
_HLCV = ("high", "low", "close", "volume")
_BANDS = ("upper", "middle", "lower")


def _defs() -> list[_Def]:
    n = "period"
    return [
        _Def(
            "sma",
            "simple moving average",
            ("close",),
            ("sma",),
            (_period(30),),
            kn.sma_nb,
            "ffi",
            lambda p: int(p[n]),
            lambda p: [p[n]],
            lambda p: int(p[n]) - 1,
        ),
        _Def(
            "ema",
            "exponential moving average, k = 2/(n+1), seeded with the SMA of n values",
            ("close",),
            ("ema",),
            (_period(30),),
            kn.ema_nb,
            "ff",
            _none,
            lambda p: [p[n], _k(p[n])],
            lambda p: int(p[n]) - 1,
        ),
        _Def(
            "wma",
            "linearly weighted moving average",
            ("close",),
            ("wma",),
            (_period(30),),
            kn.wma_nb,
            "fiff",
            lambda p: int(p[n]),
            lambda p: [p[n], p[n] * (p[n] + 1) / 2],
            lambda p: int(p[n]) - 1,
        ),
        _Def(
            "dema",
            "double EMA: 2*EMA - EMA(EMA)",
            ("close",),
            ("dema",),
            (_period(30),),
            kn.dema_nb,
            "ffff",
            _none,
            lambda p: [p[n], _k(p[n])],
            lambda p: 2 * (int(p[n]) - 1),
        ),
        _Def(
            "tema",
            "triple EMA: 3*EMA - 3*EMA(EMA) + EMA(EMA(EMA))",
            ("close",),
            ("tema",),
            (_period(30),),
            kn.tema_nb,
            "ffffff",
            _none,
            lambda p: [p[n], _k(p[n])],
            lambda p: 3 * (int(p[n]) - 1),
        ),
        _Def(
            "trima",
            "triangular moving average: SMA((n+1)//2) of SMA(n//2+1)",
            ("close",),
            ("trima",),
            (_period(30),),
            kn.trima_nb,
            "ffiffi",
            lambda p: int(p[n]) // 2 + 1 + (int(p[n]) + 1) // 2,
            lambda p: [int(p[n]) // 2 + 1, (int(p[n]) + 1) // 2],
            lambda p: int(p[n]) - 1,
        ),
        _Def(
            "kama",
            "Kaufman adaptive moving average",
            ("close",),
            ("kama",),
            (_period(10), _period(2, name="fast"), _period(30, name="slow")),
            kn.kama_nb,
            "fifff",
            lambda p: int(p[n]) + 1,
            lambda p: [p[n], _k(p["slow"]), _k(p["fast"]) - _k(p["slow"])],
            lambda p: int(p[n]),
            _fast_slow,
        ),
        _Def(
            "macd",
            "EMA(fast) - EMA(slow), its EMA(signal) and the histogram",
            ("close",),
            ("macd", "signal", "hist"),
            (_period(12, name="fast"), _period(26, 2, "slow"), _period(9, name="signal")),
            kn.macd_nb,
            "fffffff",
            _none,
            lambda p: [p["fast"], _k(p["fast"]), p["slow"], _k(p["slow"]), p["signal"], _k(p["signal"])],
            lambda p: int(p["slow"]) + int(p["signal"]) - 2,
            _fast_slow,
        ),
        _Def(
            "ppo",
            "percentage price oscillator: 100*(EMA(fast) - EMA(slow))/EMA(slow)",
            ("close",),
            ("ppo",),
            (_period(12, name="fast"), _period(26, 2, "slow")),
            kn.ppo_nb,
            "ffff",
            _none,
            lambda p: [p["fast"], _k(p["fast"]), p["slow"], _k(p["slow"])],
            lambda p: int(p["slow"]) - 1,
            _fast_slow,
        ),
        _Def(
            "trix",
            "1-bar percent rate of change of a triple EMA",
            ("close",),
            ("trix",),
            (_period(30),),
            kn.trix_nb,
            "ffffffff",
            _none,
            lambda p: [p[n], _k(p[n])],
            lambda p: 3 * (int(p[n]) - 1) + 1,
        ),
        _Def(
            "mom",
            "momentum: close - close n bars ago",
            ("close",),
            ("mom",),
            (_period(10),),
            kn.mom_nb,
            "fi",
            lambda p: int(p[n]),
            lambda p: [p[n]],
            lambda p: int(p[n]),
        ),
        _Def(
            "roc",
            "rate of change in percent: 100*(close/close[n ago] - 1)",
            ("close",),
            ("roc",),
            (_period(10),),
            kn.roc_nb,
            "fi",
            lambda p: int(p[n]),
            lambda p: [p[n]],
            lambda p: int(p[n]),
        ),
        _Def(
            "rsi",
            "Wilder's relative strength index",
            ("close",),
            ("rsi",),
            (_period(14),),
            kn.rsi_nb,
            "ffff",
            _none,
            lambda p: [p[n]],
            lambda p: int(p[n]),
        ),
        _Def(
            "stochf",
            "fast stochastic: %K over fastk bars, %D = SMA(fastd) of %K",
            _HLC,
            ("fastk", "fastd"),
            (_period(5, name="fastk"), _period(3, name="fastd")),
            kn.stochf_nb,
            "fiffffffi",
            lambda p: 2 * int(p["fastk"]) + int(p["fastd"]),
            lambda p: [p["fastk"], p["fastd"]],
            lambda p: int(p["fastk"]) + int(p["fastd"]) - 2,
        ),
        _Def(
            "stoch",
            "slow stochastic: %K = SMA(slowk) of fast %K, %D = SMA(slowd) of %K",
            _HLC,
            ("slowk", "slowd"),
            (_period(5, name="fastk"), _period(3, name="slowk"), _period(3, name="slowd")),
            kn.stoch_nb,
            "fiffffffiffi",
            lambda p: 2 * int(p["fastk"]) + int(p["slowk"]) + int(p["slowd"]),
            lambda p: [p["fastk"], p["slowk"], p["slowd"]],
            lambda p: int(p["fastk"]) + int(p["slowk"]) + int(p["slowd"]) - 3,
        ),
        _Def(
            "stochrsi",
            "fast stochastic of RSI(period)",
            ("close",),
            ("fastk", "fastd"),
            (_period(14), _period(5, name="fastk"), _period(3, name="fastd")),
            kn.stochrsi_nb,
            "fffffiffffffi",
            lambda p: 2 * int(p["fastk"]) + int(p["fastd"]),
            lambda p: [p[n], p["fastk"], p["fastd"]],
            lambda p: int(p[n]) + int(p["fastk"]) + int(p["fastd"]) - 2,
        ),
        _Def(
            "willr",
            "Williams %R",
            _HLC,
            ("willr",),
            (_period(14),),
            kn.willr_nb,
            "fiffff",
            lambda p: 2 * int(p[n]),
            lambda p: [p[n]],
            lambda p: int(p[n]) - 1,
        ),
        _Def(
            "cci",
            "commodity channel index (0.015 x mean deviation)",
            _HLC,
            ("cci",),
            (_period(20),),
            kn.cci_nb,
            "fi",
            lambda p: int(p[n]),
            lambda p: [p[n]],
            lambda p: int(p[n]) - 1,
        ),
        _Def(
            "ultosc",
            "Williams' ultimate oscillator (weights 4, 2, 1)",
            _HLC,
            ("ultosc",),
            (_period(7, name="period1"), _period(14, name="period2"), _period(28, name="period3")),
            kn.ultosc_nb,
            "fffifffifffiff",
            lambda p: 2 * sum(int(p[f"period{j}"]) for j in (1, 2, 3)),
            lambda p: [p["period1"], p["period2"], p["period3"]],
            lambda p: int(p["period3"]),
            lambda p: (
                None if p["period1"] <= p["period2"] <= p["period3"] else "need period1 <= period2 <= period3"
            ),
        ),
        _Def(
            "trange",
            "true range",
            _HLC,
            ("trange",),
            (),
            kn.trange_nb,
            "ff",
            _none,
            lambda p: [0.0],
            lambda p: 1,
        ),
        _Def(
            "atr",
            "Wilder's average true range",
            _HLC,
            ("atr",),
            (_period(14),),
            kn.atr_nb,
            "fff",
            _none,
            lambda p: [p[n]],
            lambda p: int(p[n]),
        ),
        _Def(
            "natr",
            "ATR as a percent of close",
            _HLC,
            ("natr",),
            (_period(14),),
            kn.natr_nb,
            "fff",
            _none,
            lambda p: [p[n]],
            lambda p: int(p[n]),
        ),
        _Def(
            "bbands",
            "Bollinger bands: mean +- k population standard deviations",
            ("close",),
            _BANDS,
            (_period(20), Param("k", float, 2.0, 0.0)),
            kn.bbands_nb,
            "fifff",
            lambda p: int(p[n]),
            lambda p: [p[n], p["k"]],
            lambda p: int(p[n]) - 1,
        ),
        _Def(
            "keltner",
            "Keltner channel: EMA(close, period) +- mult * ATR(atr_period)",
            _HLC,
            _BANDS,
            (_period(20), _period(10, name="atr_period"), Param("mult", float, 2.0, 0.0)),
            kn.keltner_nb,
            "fffff",
            _none,
            lambda p: [p[n], _k(p[n]), p["atr_period"], p["mult"]],
            lambda p: max(int(p[n]) - 1, int(p["atr_period"])),
        ),
        _Def(
            "donchian",
            "Donchian channel: highest high, midpoint, lowest low",
            ("high", "low"),
            _BANDS,
            (_period(20),),
            kn.donchian_nb,
            "fiffff",
            lambda p: 2 * int(p[n]),
            lambda p: [p[n]],
            lambda p: int(p[n]) - 1,
        ),
        _Def(
            "adx",
            "Wilder's ADX with +DI and -DI",
            _HLC,
            ("adx", "plus_di", "minus_di"),
            (_period(14, 2),),
            kn.adx_nb,
            "ffffffff",
            _none,
            lambda p: [p[n]],
            lambda p: 2 * int(p[n]) - 1,
        ),
        _Def(
            "aroon",
            "Aroon down, up (over n+1 bars) and oscillator (up - down)",
            ("high", "low"),
            ("aroon_down", "aroon_up", "aroonosc"),
            (_period(14),),
            kn.aroon_nb,
            "fiffff",
            lambda p: 2 * (int(p[n]) + 1),
            lambda p: [p[n]],
            lambda p: int(p[n]),
        ),
        _Def(
            "sar",
            "Parabolic SAR",
            ("high", "low"),
            ("sar",),
            (Param("acceleration", float, 0.02, 0.0), Param("maximum", float, 0.2, 0.0)),
            kn.sar_nb,
            "fffffff",
            _none,
            lambda p: [p["acceleration"], p["maximum"]],
            lambda p: 1,
            lambda p: None if 0 < p["acceleration"] <= p["maximum"] else "need 0 < acceleration <= maximum",
        ),
        _Def(
            "obv",
            "on-balance volume",
            ("close", "volume"),
            ("obv",),
            (),
            kn.obv_nb,
            "fff",
            _none,
            lambda p: [0.0],
            lambda p: 0,
        ),
        _Def(
            "mfi",
            "money flow index",
            _HLCV,
            ("mfi",),
            (_period(14),),
            kn.mfi_nb,
            "ffffiff",
            lambda p: 2 * int(p[n]),
            lambda p: [p[n]],
            lambda p: int(p[n]),
        ),
        _Def(
            "ad",
            "Chaikin accumulation/distribution line",
            _HLCV,
            ("ad",),
            (),
            kn.ad_nb,
            "f",
            _none,
            lambda p: [0.0],
            lambda p: 0,
        ),
        _Def(
            "adosc",
            "Chaikin A/D oscillator: EMA(fast) - EMA(slow) of the A/D line",
            _HLCV,
            ("adosc",),
            (_period(3, name="fast"), _period(10, name="slow")),
            kn.adosc_nb,
            "ffff",
            _none,
            lambda p: [p["fast"], _k(p["fast"]), p["slow"], _k(p["slow"])],
            lambda p: int(p["slow"]) - 1,
            _fast_slow,
        ),
        _Def(
            "vwap",
            "session-anchored VWAP of the typical price (restarts when session changes)",
            (*_HLCV, "session"),
            ("vwap",),
            (),
            kn.vwap_nb,
            "ffff",
            _none,
            lambda p: [0.0],
            lambda p: 0,
        ),
        _Def(
            "ichimoku",
            "Ichimoku: tenkan, kijun, the cloud now (span_a, span_b) and the spans "
            "projected forward (lead_a, lead_b)",
            ("high", "low"),
            ("tenkan", "kijun", "span_a", "span_b", "lead_a", "lead_b"),
            (
                _period(9, name="tenkan"),
                _period(26, name="kijun"),
                _period(52, name="senkou"),
                _period(26, name="displacement"),
            ),
            kn.ichimoku_nb,
            "fifffffifffffifffffi",
            lambda p: sum(2 * int(p[f]) for f in ("tenkan", "kijun", "senkou")) + 2 * int(p["displacement"]),
            lambda p: [p["tenkan"], p["kijun"], p["senkou"], p["displacement"]],
            lambda p: max(int(p["tenkan"]), int(p["kijun"]), int(p["senkou"])) - 1 + int(p["displacement"]),
        ),
        _Def(
            "heikin_ashi",
            "Heikin-Ashi candles",
            ("open", "high", "low", "close"),
            ("ha_open", "ha_high", "ha_low", "ha_close"),
            (),
            kn.heikin_ashi_nb,
            "fff",
            _none,
            lambda p: [0.0],
            lambda p: 0,
        ),
        _Def(
            "zscore",
            "rolling z-score: (close - mean) / population std over n bars",
            ("close",),
            ("zscore",),
            (_period(20, 2),),
            kn.zscore_nb,
            "fifff",
            lambda p: int(p[n]),
            lambda p: [p[n]],
            lambda p: int(p[n]) - 1,
        ),
        _Def(
            "rvol",
            "realised volatility: sqrt(periods_per_year * mean of n squared log returns)",
            ("close",),
            ("rvol",),
            (_period(20), Param("periods_per_year", float, 252.0, 0.0)),
            kn.rvol_nb,
            "fffif",
            lambda p: int(p[n]),
            lambda p: [p[n], p["periods_per_year"]],
            lambda p: int(p[n]),
        ),
    ]


_REGISTRY: dict[str, _Def] = {d.name: d for d in _defs()}

# The ring each "i" slot of an indicator's scalar state indexes, as the length of that ring, in
# slot order (read from the kernels in _kernels_nb.py: a block at an offset keeps its own
# position, ``r[o + pos]`` with 0 <= pos < its n). ``restore`` refuses a position outside
# [0, length), so no state can make a kernel index out of its ring.
_POSITIONS: dict[str, Callable[[Params], tuple[int, ...]]] = {
    "sma": _n,
    "wma": _n,
    "trima": lambda p: (int(p["period"]) // 2 + 1, (int(p["period"]) + 1) // 2),
    "kama": lambda p: (int(p["period"]) + 1,),
    "mom": _n,
    "roc": _n,
    "stochf": _ns("fastk", "fastd"),
    "stoch": _ns("fastk", "slowk", "slowd"),
    "stochrsi": _ns("fastk", "fastd"),
    "willr": _n,
    "cci": _n,
    "ultosc": _ns("period1", "period2", "period3"),
    "bbands": _n,
    "donchian": _n,
    "aroon": lambda p: (int(p["period"]) + 1,),
    "mfi": _n,
    "ichimoku": _ns("tenkan", "kijun", "senkou", "displacement"),
    "zscore": _n,
    "rvol": _n,
}
assert set(_POSITIONS) <= set(_REGISTRY)
for _d in _REGISTRY.values():
    _defaults = {q.name: float(q.default) for q in _d.params}
    assert len(_POSITIONS.get(_d.name, lambda p: ())(_defaults)) == _d.scalars.count("i"), _d.name
    assert all(q.kind is float or q.maximum <= MAX_WINDOW for q in _d.params), _d.name

# Batch fast paths (``_batch_nb.py``): ``fast(p, *inputs, out[, rows][, work]) -> bool``
# computes the same bits as the step driver on a series without NaN and returns False (having
# stopped) at the first NaN, after which ``batch`` runs the step driver. The two numbers are how
# many scratch rows it takes as long as the inputs (``rows``), and how many of _CHUNK bars plus
# the ring length (``work``: a chunk of bars and its window's history, kept in the CPU cache;
# the ring covers the longest window); 0: no such argument.
_FAST: dict[str, tuple[Any, int, int]] = {
    "sma": (fb.sma_fast, 0, 0),
    "wma": (fb.wma_fast, 0, 0),
    "mom": (fb.mom_fast, 0, 0),
    "roc": (fb.roc_fast, 0, 0),
    "trange": (fb.trange_fast, 0, 0),
    "trima": (fb.trima_fast, 1, 0),
    "kama": (fb.kama_fast, 1, 0),
    "trix": (fb.trix_fast, 0, 0),
    "atr": (fb.atr_fast, 0, 0),
    "natr": (fb.natr_fast, 0, 0),
    "adosc": (fb.adosc_fast, 0, 0),
    "donchian": (fb.donchian_fast, 0, 4),
    "willr": (fb.willr_fast, 0, 4),
    "stochf": (fb.stochf_fast, 0, 4),
    "stoch": (fb.stoch_fast, 0, 4),
    "stochrsi": (fb.stochrsi_fast, 0, 4),
    "ultosc": (fb.ultosc_fast, 2, 6),
    "obv": (fb.obv_fast, 0, 0),
    "ad": (fb.ad_fast, 0, 0),
    "cci": (fb.cci_fast, 1, 0),
    "bbands": (fb.bbands_fast, 0, 3),
}
assert set(_FAST) <= set(_REGISTRY)
_CHUNK = 2048


def indicator_names() -> tuple[str, ...]:
    """Every registered indicator name, sorted."""
    return tuple(sorted(_REGISTRY))


def _validate(d: _Def, given: Mapping[str, Any]) -> Params:
    allowed = {p.name: p for p in d.params}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        names = ", ".join(allowed) or "none"
        raise IndicatorError(f"{d.name}: unknown parameter(s) {', '.join(unknown)}; accepted: {names}")
    out: Params = {}
    for p in d.params:
        value = given.get(p.name, p.default)
        bad = IndicatorError(f"{d.name}: {p.name} must be {p.allowed()}, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise bad
        try:
            v = float(value)
        except OverflowError:  # an int beyond float's range
            raise bad from None
        if not math.isfinite(v) or not p.minimum <= v <= p.maximum:
            raise bad
        if p.kind is int and v != int(v):
            raise bad
        out[p.name] = v
    reason = d.check(out)
    if reason:
        raise IndicatorError(f"{d.name}: {reason} (got {out})")
    return out


def indicator(name: str, **params: float) -> Indicator:
    """The indicator ``name`` with ``params`` (defaults for the rest), validated."""
    d = _REGISTRY.get(name)
    if d is None:
        near = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise IndicatorError(f"unknown indicator {name!r}{hint}; known: {', '.join(indicator_names())}")
    return Indicator(d, _validate(d, params))


def _fingerprint(d: _Def, params: Params, ring: int) -> float:
    """The state vector's first slot: a 48-bit hash of the indicator's name, parameters and
    state layout (scalar kinds, ring length), as a float (exact: below 2**53), so a state is
    refused by another indicator, other parameters or another layout of the same one."""
    text = json.dumps({"name": d.name, "params": params, "scalars": d.scalars, "ring": ring}, sort_keys=True)
    return float(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "big"))


class Indicator:
    """A named indicator with fixed parameters. ``batch`` over whole arrays, ``stream()`` for
    one bar at a time; both give the same bits."""

    def __init__(self, d: _Def, params: Params) -> None:
        self._def = d
        self._params = params
        # Parameters and scalar state are tuples, not arrays: Numba passes them by value, so
        # the batch loop keeps them in registers instead of storing and reloading them through
        # memory every bar (docs/indicators.md, Speed).
        self._p = tuple(float(v) for v in d.pvec(params))
        self._s0 = tuple(0 if k == "i" else 0.0 for k in d.scalars)
        self._ring = d.ring(params)
        self._fingerprint = _fingerprint(d, params, self._ring)

    @property
    def name(self) -> str:
        return self._def.name

    @property
    def params(self) -> dict[str, float | int]:
        kinds = {p.name: p.kind for p in self._def.params}
        return {k: (int(v) if kinds[k] is int else v) for k, v in self._params.items()}

    @property
    def inputs(self) -> tuple[str, ...]:
        return self._def.inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        return self._def.outputs

    @property
    def warmup(self) -> int:
        """Bars (without NaN) before every output is defined: index of the first full row."""
        return self._def.warmup(self._params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"indicator({self.name!r}{', ' if args else ''}{args})"

    def batch(self, *inputs: npt.ArrayLike) -> FloatArray | tuple[FloatArray, ...]:
        """Whole arrays in (in ``inputs`` order), arrays out: one array, or a tuple in
        ``outputs`` order. NaN during warm-up and at bars with a NaN input (a masked value of a
        masked array counts as NaN)."""
        arrays = self._arrays(inputs)
        size = arrays[0].shape[0]
        out = np.empty((len(self._def.outputs), size), dtype=np.float64)
        if not self._fast_batch(arrays, out):
            self._step_batch(arrays, out)
        if out.shape[0] == 1:
            return out[0]
        return tuple(out[k] for k in range(out.shape[0]))

    def _step_batch(self, arrays: list[FloatArray], out: FloatArray) -> None:
        """The step kernel over every bar (the general path; NaN bars skipped)."""
        ring = np.zeros(self._ring, dtype=np.float64)
        _DRIVERS[len(arrays)](self._def.step, self._s0, ring, self._p, *arrays, out)

    def _fast_batch(self, arrays: list[FloatArray], out: FloatArray) -> bool:
        """The indicator's fast path, if it has one: False when it has none or met a NaN."""
        fast = _FAST.get(self._def.name)
        if fast is None:
            return False
        fn, rows, work = fast
        size = arrays[0].shape[0]
        extra = []
        if rows:
            extra.append(np.empty((rows, size), dtype=np.float64))
        if work:
            extra.append(np.empty((work, _CHUNK + self._ring), dtype=np.float64))
        return bool(fn(self._p, *arrays, out, *extra))

    @property
    def has_fast_batch(self) -> bool:
        """Whether ``batch`` has a fast path for series without NaN (``_batch_nb.py``)."""
        return self._def.name in _FAST

    def batch_stepwise(self, *inputs: npt.ArrayLike) -> FloatArray | tuple[FloatArray, ...]:
        """``batch`` through the step driver even where a fast path exists: the same bits,
        slower (for the tests and the bench that compare the two)."""
        arrays = self._arrays(inputs)
        out = np.empty((len(self._def.outputs), arrays[0].shape[0]), dtype=np.float64)
        self._step_batch(arrays, out)
        if out.shape[0] == 1:
            return out[0]
        return tuple(out[k] for k in range(out.shape[0]))

    def compute(self, data: Mapping[str, Any]) -> dict[str, FloatArray]:
        """Inputs taken by name from ``data`` (a dict of arrays, a pandas/Polars DataFrame, a
        pyarrow Table such as ``Lake.read``'s); outputs by name. ``session`` (``vwap``) is the
        lake's ``day`` column (the exchange-local trading day) where ``data`` has no ``session``
        column. One instrument's bars: a frame whose ``instrument_id`` holds several is refused."""
        names = _column_names(data)
        taken = {k: k for k in self._def.inputs}
        if "session" in taken and "session" not in names and "day" in names:
            taken["session"] = "day"  # lake bars: the session date YYYYMMDD, exchange-local
        missing = [k for k, column in taken.items() if column not in names]
        if missing:
            hint = (
                " (session: a number that changes when a session starts, such as the exchange-local"
                " trading day YYYYMMDD; a lake frame's 'day' column is taken when there is no 'session')"
                if "session" in missing
                else ""
            )
            raise IndicatorError(f"{self.name}: data lacks input column(s) {', '.join(missing)}{hint}")
        if "instrument_id" in names:
            ids = np.unique(np.asarray(data["instrument_id"]))
            if len(ids) > 1:
                raise IndicatorError(
                    f"{self.name}: data holds {len(ids)} instruments (instrument_id {ids[0]}, {ids[1]}, "
                    "...): an indicator runs over one instrument's bars; select one"
                )
        res = self.batch(*(data[column] for column in taken.values()))
        cols = (res,) if isinstance(res, np.ndarray) else res
        return dict(zip(self._def.outputs, cols, strict=True))

    def stream(self) -> IndicatorStream:
        """A fresh one-bar-at-a-time state."""
        return IndicatorStream(self, self._s0, np.zeros(self._ring, dtype=np.float64))

    def _arrays(self, inputs: tuple[npt.ArrayLike, ...]) -> list[FloatArray]:
        want = self._def.inputs
        if len(inputs) != len(want):
            raise IndicatorError(
                f"{self.name} takes {len(want)} input(s) ({', '.join(want)}), got {len(inputs)}"
            )
        arrays = []
        for name, given in zip(want, inputs, strict=True):
            try:
                arrays.append(_float_array(given))
            except (TypeError, ValueError) as error:  # not numpy's "could not convert string to float"
                reason = " ".join(str(error).split())
                raise IndicatorError(f"{self.name}: {name} must be numbers: {reason}") from None
        if any(a.ndim != 1 for a in arrays):
            raise IndicatorError(f"{self.name}: inputs must be 1-D arrays")
        if len({a.shape[0] for a in arrays}) != 1:
            raise IndicatorError(
                f"{self.name}: inputs differ in length ({', '.join(str(a.shape[0]) for a in arrays)})"
            )
        return arrays


def _column_names(data: Any) -> set[str]:
    """The column names of a mapping, a pandas/Polars DataFrame or a pyarrow Table (``in`` on a
    pyarrow Table is no column test: every column was "lacking")."""
    if isinstance(data, Mapping):
        return {str(k) for k in data}
    names = getattr(data, "column_names", None)  # pyarrow
    if names is None:
        names = getattr(data, "columns", ())
    return {str(k) for k in names}


def _float_array(a: npt.ArrayLike) -> FloatArray:
    """An input as contiguous float64; a masked array's masked values become NaN (a missing
    bar, skipped like any NaN bar), not the numbers under the mask."""
    if np.ma.isMaskedArray(a):
        return np.ascontiguousarray(np.ma.filled(np.ma.asarray(a).astype(np.float64), np.nan))
    array = np.asarray(a)
    if array.dtype.kind in "USb":  # text ("1.5" would be read as 1.5) or a mask
        raise ValueError(f"got an array of {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float64)


def _number(value: object) -> float:
    """One bar's input as a float: a number (not text, not a bool)."""
    if isinstance(value, str | bytes | bool | np.bool_):
        raise ValueError(f"got {value!r}")
    return float(value)  # type: ignore[arg-type]


class IndicatorStream:
    """The incremental form: ``update(*bar)`` advances one bar and returns its value(s). The
    state is a plain float64 vector (``state``: a fingerprint of the indicator, the scalars,
    then the rings), so it can be snapshotted and restored."""

    def __init__(self, ind: Indicator, scalars: tuple[float, ...], ring: FloatArray) -> None:
        self._ind = ind
        self._step = ind._def.step
        self._p = ind._p
        self._s = scalars
        self._ring = ring
        self._n_in = len(ind.inputs)
        self._out = np.empty((len(ind.outputs), 1), dtype=np.float64)

    @property
    def indicator(self) -> Indicator:
        return self._ind

    @property
    def state(self) -> FloatArray:
        """A copy of the state vector: the indicator's fingerprint (name, parameters, layout),
        the scalar state, then the rings."""
        head = np.array((self._ind._fingerprint, *self._s), dtype=np.float64)
        return np.concatenate((head, self._ring))

    def restore(self, state: npt.ArrayLike) -> IndicatorStream:
        """A stream of the same indicator continuing from ``state`` (from ``.state``). Refused
        (``IndicatorError``, with the reason) unless it is a state of this indicator with these
        parameters whose ring positions are whole numbers inside their rings."""
        ind = self._ind
        try:
            st = np.array(state, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise IndicatorError(f"{ind!r}: a state is a float64 vector ({exc})") from None
        k = len(self._s)
        shape = (1 + k + self._ring.shape[0],)
        if st.shape != shape:
            raise IndicatorError(f"{ind!r}: a state of shape {shape} is needed, got {st.shape}")
        if st[0] != ind._fingerprint:
            raise IndicatorError(
                f"{ind!r}: not a state of this indicator (its fingerprint {float(st[0])!r} "
                "is another indicator's, other parameters' or another layout's)"
            )
        d = ind._def
        bounds = iter(_POSITIONS.get(d.name, lambda p: ())(ind._params))
        scalars: list[float | int] = []
        for slot, (kind, v) in enumerate(zip(d.scalars, st[1 : 1 + k].tolist(), strict=True)):
            if kind != "i":
                scalars.append(v)
                continue
            length = next(bounds)
            if not math.isfinite(v) or v != int(v) or not 0 <= v < length:
                raise IndicatorError(
                    f"{ind!r}: the state's ring position (scalar {slot}) is {v!r}; "
                    f"it must be a whole number from 0 to {length - 1}"
                )
            scalars.append(int(v))
        return IndicatorStream(ind, tuple(scalars), st[1 + k :].copy())

    def update(self, *bar: float) -> float | tuple[float, ...]:
        """One bar's inputs (``indicator.inputs`` order) in, this bar's output(s) out. A bar with
        a NaN (or ``np.ma.masked``) input changes nothing and returns NaN."""
        if len(bar) != self._n_in:
            raise IndicatorError(f"{self._ind.name} takes {self._n_in} input(s) per bar, got {len(bar)}")
        try:
            values = [np.nan if v is np.ma.masked else _number(v) for v in bar]
        except (TypeError, ValueError) as error:
            raise IndicatorError(f"{self._ind.name}: a bar's inputs must be numbers, {error}") from None
        out = self._out
        if any(v != v for v in values):
            out.fill(np.nan)
        else:
            self._s = self._step(self._s, self._ring, self._p, *values, out, 0)
        if out.shape[0] == 1:
            return float(out[0, 0])
        return tuple(float(v) for v in out[:, 0])
