"""The indicator registry: names, parameter errors, warm-ups, the stream's state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.indicators import IndicatorError, indicator, indicator_names
from models.indicators.registry import _POSITIONS, MAX_WINDOW
from tests.indicator_cases import SMALL, as_columns, inputs_of, same_bits, streamed


def _bars(n: int = 200, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = np.abs(rng.normal(0, 0.5, (2, n)))
    return {
        "open": close * (1 + rng.normal(0, 0.002, n)),
        "high": close + spread[0],
        "low": close - spread[1],
        "close": close,
        "volume": rng.integers(1, 10_000, n).astype(np.float64),
        "session": (np.arange(n) // 40).astype(np.float64),
    }


def test_every_required_indicator_is_registered() -> None:
    required = {
        "sma",
        "ema",
        "wma",
        "dema",
        "tema",
        "trima",
        "kama",
        "macd",
        "ppo",
        "rsi",
        "stoch",
        "stochf",
        "stochrsi",
        "willr",
        "cci",
        "roc",
        "mom",
        "trix",
        "ultosc",
        "trange",
        "atr",
        "natr",
        "bbands",
        "keltner",
        "donchian",
        "adx",
        "aroon",
        "sar",
        "obv",
        "mfi",
        "ad",
        "adosc",
        "vwap",
        "ichimoku",
        "heikin_ashi",
        "zscore",
        "rvol",
    }
    assert required <= set(indicator_names())


def test_unknown_name_suggests_and_lists() -> None:
    with pytest.raises(IndicatorError, match=r"unknown indicator 'rsii' \(did you mean rsi"):
        indicator("rsii")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("rsi", {"length": 14}, "unknown parameter.*length.*accepted: period"),
        ("rsi", {"period": 0}, "period must be a whole number from 1 to 100000, got 0"),
        ("rsi", {"period": 2.5}, "whole number"),
        ("rsi", {"period": True}, "period must be a whole number from 1 to 100000, got True"),
        ("rsi", {"period": "14"}, "period must be a whole number from 1 to 100000, got .14."),
        ("macd", {"fast": 26, "slow": 12}, "need fast < slow"),
        ("sar", {"acceleration": 0.5, "maximum": 0.2}, "acceleration <= maximum"),
        ("ultosc", {"period1": 14, "period2": 7}, "period1 <= period2"),
        ("obv", {"period": 3}, "accepted: none"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(name: str, params: dict, message: str) -> None:
    with pytest.raises(IndicatorError, match=message):
        indicator(name, **params)


_BAD_WINDOWS = [
    float("inf"),
    float("-inf"),
    float("nan"),
    2**63,
    10**400,
    MAX_WINDOW + 1,
    2.5,
    0,
    True,
    "14",
    None,
]


@pytest.mark.parametrize("name", indicator_names())
def test_every_window_has_a_maximum_and_every_bad_value_states_the_range(name: str) -> None:
    ind = indicator(name)
    for param, default in ind.params.items():
        if isinstance(default, int):  # a window
            bad, allowed = _BAD_WINDOWS, rf"{param} must be a whole number from \d+ to {MAX_WINDOW}, got "
        else:
            bad = [float("inf"), float("nan"), -1.0, True, "2"]
            allowed = rf"{param} must be a finite number >= 0, got "
        for value in bad:
            with pytest.raises(IndicatorError, match=allowed):
                indicator(name, **{**SMALL[name], param: value})


def test_the_largest_window_is_accepted_and_bounded_in_memory() -> None:
    x = np.linspace(1.0, 2.0, 50)
    for name in ("sma", "donchian", "willr", "cci", "kama", "stochrsi"):
        ind = indicator(name, period=MAX_WINDOW)
        cols = as_columns(ind.batch(*[x] * len(ind.inputs)))
        assert all(np.isnan(c).all() for c in cols), name  # 50 bars: still warming up


def _poke(state: np.ndarray, slot: int, value: float) -> np.ndarray:
    bad = state.copy()
    bad[1 + slot] = value
    return bad


def test_a_state_of_another_indicator_is_refused_not_a_crash() -> None:
    a = indicator("sma", period=3).stream()
    for p in (101.0, 102, 103, 104):
        a.update(p * 1e6)
    with pytest.raises(IndicatorError, match="not a state of this indicator"):
        indicator("wma", period=2).stream().restore(a.state)  # the same length: it segfaulted
    with pytest.raises(IndicatorError, match="not a state of this indicator"):
        indicator("sma", period=4).stream().restore(np.concatenate((a.state, [0.0])))
    with pytest.raises(IndicatorError, match="shape"):
        indicator("sma", period=3).stream().restore(a.state[1:])  # a state without fingerprint
    again = indicator("sma", period=3).stream().restore(a.state)
    assert again.update(105e6) == a.update(105e6)


@pytest.mark.parametrize("name", indicator_names())
def test_restore_refuses_every_ring_position_outside_its_ring(name: str) -> None:
    ind = indicator(name, **SMALL[name])
    stream = ind.stream()
    bars = _bars(40)
    for t in range(40):
        stream.update(*(c[t] for c in inputs_of(ind, bars)))
    state = stream.state
    slots = [j for j, kind in enumerate(ind._def.scalars) if kind == "i"]
    lengths = _POSITIONS[name](ind._params) if slots else ()
    assert len(lengths) == len(slots)
    for slot, length in zip(slots, lengths, strict=True):
        for bad in (float("nan"), float("inf"), -1.0, 0.5, float(length), 1e300):
            expect = rf"ring position \(scalar {slot}\).*from 0 to {length - 1}"
            with pytest.raises(IndicatorError, match=expect):
                stream.restore(_poke(state, slot, bad))
        stream.restore(_poke(state, slot, float(length - 1))).update(*(c[0] for c in inputs_of(ind, bars)))
    # any float in the other slots and the rings is accepted and cannot crash a kernel
    rng = np.random.default_rng(3)
    floats = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e308, 2.0**53, 5.0])
    for _ in range(20):
        junk = rng.choice(floats, state.shape[0])
        junk[0] = state[0]
        for slot in slots:
            junk[1 + slot] = state[1 + slot]
        s2 = stream.restore(junk)
        for t in range(5):
            s2.update(*(c[t] for c in inputs_of(ind, bars)))


def test_masked_values_are_missing_bars() -> None:
    x = np.ma.array([1.0, 2.0, 99.0, 4.0, 5.0, 6.0], mask=[0, 0, 1, 0, 0, 0])
    expect = indicator("sma", period=2).batch(np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0]))
    ind = indicator("sma", period=2)
    assert same_bits(ind.batch(x), expect)
    assert same_bits(ind.compute({"close": x})["sma"], expect)
    assert same_bits(ind.batch(np.ma.array(x.data.astype(np.int64), mask=x.mask)), expect)
    stream = ind.stream()
    assert same_bits(np.array([stream.update(v) for v in x]), expect)


def test_bad_inputs_are_refused() -> None:
    rsi = indicator("rsi")
    with pytest.raises(IndicatorError, match="takes 1 input"):
        rsi.batch([1.0], [2.0])
    with pytest.raises(IndicatorError, match="differ in length"):
        indicator("atr").batch([1.0, 2.0], [1.0], [1.0])
    with pytest.raises(IndicatorError, match="lacks input column"):
        indicator("atr").compute({"close": [1.0]})
    with pytest.raises(IndicatorError, match="per bar"):
        rsi.stream().update(1.0, 2.0)


def test_inputs_that_are_not_numbers_are_refused_by_name() -> None:
    """Text was numpy's ValueError ('could not convert string to float'), not an IndicatorError;
    an array of numeric strings or a boolean mask was silently read as prices (1.5, 1.0/0.0)."""
    for bad in (["a", "b"], np.array(["1.5", "2.0"]), np.array([True, False])):
        with pytest.raises(IndicatorError, match=r"^rsi: close must be numbers: got an array of"):
            indicator("rsi").batch(bad)
    with pytest.raises(IndicatorError, match=r"^atr: low must be numbers"):
        indicator("atr").batch([2.0, 3.0], ["a", "b"], [1.5, 2.5])
    stream = indicator("rsi", period=2).stream()
    for bad_bar in ("x", True):
        with pytest.raises(IndicatorError, match=r"^rsi: a bar's inputs must be numbers, got"):
            stream.update(bad_bar)
    assert np.isnan(stream.update(np.int64(3)))  # NumPy numbers are numbers
    fresh = indicator("rsi", period=2).stream()
    fresh.update(3.0)
    assert stream.state.tolist() == fresh.state.tolist()  # the refused bars changed nothing


def test_params_and_repr() -> None:
    ind = indicator("bbands", period=10)
    assert ind.params == {"period": 10, "k": 2.0}
    assert repr(ind) == "indicator('bbands', period=10, k=2.0)"
    assert ind.outputs == ("upper", "middle", "lower")


@pytest.mark.parametrize("name", indicator_names())
def test_declared_warmup_is_where_every_output_starts(name: str) -> None:
    bars = _bars()
    for ind in (indicator(name), indicator(name, **SMALL[name])):
        cols = as_columns(ind.batch(*inputs_of(ind, bars)))
        full = np.all(np.isfinite(np.vstack(cols)), axis=0)
        assert full[ind.warmup :].all(), ind
        if ind.warmup:
            assert not full[ind.warmup - 1], ind


@pytest.mark.parametrize("name", indicator_names())
def test_stream_equals_batch_and_restores_from_a_snapshot(name: str) -> None:
    bars = _bars(150)
    ind = indicator(name, **SMALL[name])
    batch = as_columns(ind.batch(*inputs_of(ind, bars)))
    assert all(same_bits(b, s) for b, s in zip(batch, streamed(ind, bars), strict=True))
    # snapshot after 70 bars, continue a restored copy: the same bits as the batch
    cols = [c.tolist() for c in inputs_of(ind, bars)]
    stream = ind.stream()
    for t in range(70):
        stream.update(*(c[t] for c in cols))
    again = stream.restore(stream.state)
    rest = [again.update(*(c[t] for c in cols)) for t in range(70, 150)]
    rest_arr = np.array(rest, dtype=np.float64).reshape(80, -1)
    for k, col in enumerate(batch):
        assert same_bits(np.ascontiguousarray(rest_arr[:, k]), col[70:])


def test_a_nan_bar_is_skipped_and_changes_nothing() -> None:
    rsi = indicator("rsi", period=3)
    x = np.array([1.0, 2.0, 1.5, np.nan, 3.0, 2.5])
    with_gap = rsi.batch(x)
    without = rsi.batch(x[~np.isnan(x)])
    assert np.isnan(with_gap[3])
    assert same_bits(np.delete(with_gap, 3), without)


def test_known_values_on_a_tiny_series() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(indicator("sma", period=3).batch(x), [np.nan, np.nan, 2, 3, 4])
    np.testing.assert_array_equal(indicator("ema", period=3).batch(x), [np.nan, np.nan, 2, 3, 4])
    np.testing.assert_array_equal(indicator("mom", period=2).batch(x), [np.nan, np.nan, 2, 2, 2])
    wma = indicator("wma", period=3).batch(x)
    np.testing.assert_allclose(wma[2:], [14 / 6, 20 / 6, 26 / 6], rtol=1e-15)
    # a flat window has a variance of exactly 0: z-score 0, bands on the mean
    flat = np.array([5.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    assert indicator("zscore", period=4).batch(flat)[-1] == 0.0
    upper, middle, lower = indicator("bbands", period=4).batch(flat)
    assert upper[-1] == middle[-1] == lower[-1] == 2.0


def test_ema_and_wilder_steps_are_one_fused_multiply_add() -> None:
    """The EMA and Wilder steps round once (``llvm.fma``, exact on every CPU), so their bits
    are Tape's own definition and the same on any machine. Checked against the exact value
    rounded once (``Fraction``), on seeded values and on one where rounding twice differs."""
    from fractions import Fraction

    from numba import njit

    from models.indicators._blocks_nb import ema_next, fma, wilder_next

    fused = njit(lambda a, b, c: fma(a, b, c))
    ema = njit(lambda v, k, x: ema_next(v, k, x))
    wilder = njit(lambda v, keep, share, x: wilder_next(v, keep, share, x))

    def once(a: float, b: float, c: float) -> float:
        return float(Fraction(a) * Fraction(b) + Fraction(c))

    assert fused(0.1, 10.0, -1.0) == once(0.1, 10.0, -1.0) == 5.551115123125783e-17
    assert 0.1 * 10.0 - 1.0 == 0.0  # rounded twice
    rng = np.random.default_rng(5)
    for v, x, n in zip(
        rng.lognormal(4, 1, 200), rng.lognormal(4, 1, 200), rng.integers(2, 300, 200), strict=True
    ):
        v, x, n = float(v), float(x), float(n)
        assert fused(v, x, -n) == once(v, x, -n)
        k = 2.0 / (n + 1.0)
        assert ema(v, k, x) == once(v, 1.0 - k, k * x)
        keep, share = (n - 1.0) / n, 1.0 / n
        assert wilder(v, keep, share, x) == once(v, keep, x * share)


def test_vwap_over_a_lake_frame_takes_its_day_as_the_session(tmp_path: Path) -> None:
    """``indicator("vwap").compute(frame)`` over the lake's bars (``Lake.read``: a pyarrow Table
    with ``day``, no ``session``) said "data lacks input column(s) high, low, close, volume,
    session" (``in`` on a pyarrow Table is no column test), and "lacks session" over its pandas
    or Polars form. The lake's ``day`` (the exchange-local session date) is the session: the
    same bits as ``batch``/``stream`` given it, restarting at each day's first bar."""
    import polars as pl
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lake.synth import synth_dataset

    synth_dataset(tmp_path / "m", seed=3, symbols=2, bars=1_000, frequency="1m")
    table = pq.read_table(tmp_path / "m" / "bars.parquet")
    one = table.filter(pc.equal(table.column("instrument_id"), 1))
    vwap = indicator("vwap")
    columns = {k: one.column(k).to_numpy().astype(np.float64) for k in ("high", "low", "close", "volume")}
    columns["session"] = one.column("day").to_numpy().astype(np.float64)
    want = vwap.batch(*(columns[k] for k in vwap.inputs))
    assert same_bits(streamed(vwap, columns)[0], want)
    for frame in (one, one.to_pandas(), pl.from_arrow(one)):
        assert same_bits(vwap.compute(frame)["vwap"], want)  # type: ignore[arg-type]
    day = columns["session"]
    firsts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    assert len(firsts) == 3  # 1,000 minutes: three sessions
    typical = (columns["high"] + columns["low"] + columns["close"]) / 3
    assert np.allclose(want[firsts], typical[firsts])
    with pytest.raises(IndicatorError, match=r"data holds 2 instruments \(instrument_id 1, 2, \.\.\.\)"):
        vwap.compute(table)
    with pytest.raises(
        IndicatorError, match=r"lacks input column\(s\) session \(session: a number that changes"
    ):
        vwap.compute({k: columns[k] for k in ("high", "low", "close", "volume")})
