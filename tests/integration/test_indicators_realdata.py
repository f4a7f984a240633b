"""Indicators on real bars from ../shared/data: batch == one-bar-at-a-time bit for bit, values
against TA-Lib where the definitions match, and Tape's own definitions against independent
NumPy references (docs/indicators.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.indicators import indicator, indicator_names
from tests.indicator_cases import as_columns, default_and_small, inputs_of, same_bits, streamed

talib = pytest.importorskip("talib", reason="ta-lib is a dev dependency (pip install -e '.[dev]')")

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}")
pytestmark = pytest.mark.needs_shared_data

Bars = dict[str, np.ndarray]


def _orcl() -> Bars:
    """Yahoo daily ORCL 1995-2014 (5036 bars)."""
    d = np.genfromtxt(SHARED / "us" / "orcl-1995-2014.txt", delimiter=",", skip_header=1,
                      usecols=(1, 2, 3, 4, 6))
    days = np.genfromtxt(SHARED / "us" / "orcl-1995-2014.txt", delimiter=",", skip_header=1,
                         usecols=(0,), dtype=str)
    session = np.array([int(s.replace("-", "")[:6]) for s in days], dtype=np.float64)  # monthly
    return _bars(d, session)


def _futures_minute() -> Bars:
    """1-minute futures bars, 2006-01-02..02-27 (30889 bars, sessions 09:01 to 22:00)."""
    path = SHARED / "us" / "2006-01-02-volume-min-001.txt"
    d = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=(2, 3, 4, 5, 6))
    days = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=(0,), dtype=str)
    return _bars(d, np.array([int(s.replace("-", "")) for s in days], dtype=np.float64))


def _crypto_minute() -> Bars:
    """freqtrade's real 1-minute candles (prices 0.0016 to 0.0027 BTC, 13681 bars)."""
    path = SHARED / "crypto" / "freqtrade" / "csv" / "UNITTEST_BTC-1m.csv"
    d = np.genfromtxt(path, delimiter=",", skip_header=1)
    return _bars(d[:, 1:6], np.floor(d[:, 0] / 86_400_000))


def _bars(ohlcv: np.ndarray, session: np.ndarray) -> Bars:
    names = ("open", "high", "low", "close", "volume")
    bars = {k: np.ascontiguousarray(ohlcv[:, j], dtype=np.float64) for j, k in enumerate(names)}
    bars["session"] = session
    return bars


SERIES = {"orcl_daily": _orcl, "futures_1m": _futures_minute, "crypto_1m": _crypto_minute}


@pytest.fixture(scope="module")
def data() -> dict[str, Bars]:
    if not SHARED.exists():
        pytest.skip(f"real market data not present at {SHARED}")
    return {name: load() for name, load in SERIES.items()}


# --- (a) batch == incremental, bit for bit ------------------------------------------------------


@needs_shared
@pytest.mark.parametrize("series", list(SERIES))
def test_batch_equals_incremental_bit_for_bit(data: dict[str, Bars], series: str) -> None:
    bars = data[series]
    if series == "futures_1m":
        bars = {k: v[:12_000] for k, v in bars.items()}
    differing = []
    for ind in default_and_small():
        batch = as_columns(ind.batch(*inputs_of(ind, bars)))
        stream = streamed(ind, bars)
        for name, b, s in zip(ind.outputs, batch, stream, strict=True):
            if not same_bits(b, s):
                differing.append(f"{ind!r}.{name}")
        assert np.isfinite(np.vstack(batch)[:, -1]).all(), ind
    assert differing == []


# --- (b) against TA-Lib -------------------------------------------------------------------------


def _talib_cases(b: Bars) -> dict[str, tuple[object, tuple[np.ndarray, ...], int]]:
    """name -> (Tape indicator, TA-Lib outputs in the same order, first bar compared)."""
    h, lo, c, v = b["high"], b["low"], b["close"], b["volume"]
    return {
        "sma": (indicator("sma", period=20), (talib.SMA(c, 20),), 0),
        "ema": (indicator("ema", period=20), (talib.EMA(c, 20),), 0),
        "wma": (indicator("wma", period=20), (talib.WMA(c, 20),), 0),
        "dema": (indicator("dema", period=20), (talib.DEMA(c, 20),), 0),
        "tema": (indicator("tema", period=20), (talib.TEMA(c, 20),), 0),
        "trima_even": (indicator("trima", period=20), (talib.TRIMA(c, 20),), 0),
        "trima_odd": (indicator("trima", period=21), (talib.TRIMA(c, 21),), 0),
        "kama": (indicator("kama", period=30), (talib.KAMA(c, 30),), 0),
        "macd": (indicator("macd"), talib.MACD(c, 12, 26, 9), 0),
        "ppo": (indicator("ppo"), (talib.PPO(c, 12, 26, matype=1),), 0),
        "trix": (indicator("trix", period=15), (talib.TRIX(c, 15),), 0),
        "mom": (indicator("mom", period=10), (talib.MOM(c, 10),), 0),
        "roc": (indicator("roc", period=10), (talib.ROC(c, 10),), 0),
        "rsi": (indicator("rsi", period=14), (talib.RSI(c, 14),), 0),
        "stochf": (indicator("stochf"), talib.STOCHF(h, lo, c, 5, 3, 0), 0),
        "stoch": (indicator("stoch"), talib.STOCH(h, lo, c, 5, 3, 0, 3, 0), 0),
        "stochrsi": (indicator("stochrsi"), talib.STOCHRSI(c, 14, 5, 3, 0), 0),
        "willr": (indicator("willr"), (talib.WILLR(h, lo, c, 14),), 0),
        "cci": (indicator("cci"), (talib.CCI(h, lo, c, 20),), 0),
        "ultosc": (indicator("ultosc"), (talib.ULTOSC(h, lo, c, 7, 14, 28),), 0),
        "trange": (indicator("trange"), (talib.TRANGE(h, lo, c),), 0),
        "atr": (indicator("atr"), (talib.ATR(h, lo, c, 14),), 0),
        "natr": (indicator("natr"), (talib.NATR(h, lo, c, 14),), 0),
        "bbands": (indicator("bbands"), talib.BBANDS(c, 20, 2, 2, 0), 0),
        "keltner_mid": (indicator("keltner"), (None, talib.EMA(c, 20), None), 0),
        "donchian": (indicator("donchian"),
                     (talib.MAX(h, 20), None, talib.MIN(lo, 20)), 0),
        "adx": (indicator("adx"), (talib.ADX(h, lo, c, 14), talib.PLUS_DI(h, lo, c, 14),
                                   talib.MINUS_DI(h, lo, c, 14)), 0),
        "aroon": (indicator("aroon"), (*talib.AROON(h, lo, 14), talib.AROONOSC(h, lo, 14)), 0),
        "sar": (indicator("sar"), (talib.SAR(h, lo, 0.02, 0.2),), 0),
        "obv": (indicator("obv"), (talib.OBV(c, v),), 0),
        "mfi": (indicator("mfi"), (talib.MFI(h, lo, c, v, 14),), 0),
        "ad": (indicator("ad"), (talib.AD(h, lo, c, v),), 0),
        "adosc": (indicator("adosc"), (talib.ADOSC(h, lo, c, v, 3, 10),), 0),
    }


def _close(ours: np.ndarray, ref: np.ndarray, start: int) -> tuple[bool, str]:
    """Equal to 1e-9 relative (plus 1e-9 of the series' scale, for values crossing 0) wherever
    TA-Lib is defined; NaN in Tape exactly where TA-Lib is NaN, except outputs that Tape defines
    earlier (docs/indicators.md) - those are pinned separately."""
    both = np.isfinite(ref)
    both[:start] = False
    if not np.isfinite(ours[both]).all():
        return False, "Tape is NaN where TA-Lib has a value"
    a, b = ours[both], ref[both]
    scale = np.max(np.abs(b)) if b.size else 0.0
    bad = np.abs(a - b) > 1e-9 * np.abs(b) + 1e-9 * scale
    return (not bad.any(), f"{int(bad.sum())} bars differ, first at {np.flatnonzero(both)[bad][:3]}")


@needs_shared
@pytest.mark.parametrize("series", ["orcl_daily", "futures_1m"])
def test_values_match_talib(data: dict[str, Bars], series: str) -> None:
    bars = data[series]
    failures = []
    for key, (ind, refs, start) in _talib_cases(bars).items():
        ours = as_columns(ind.batch(*inputs_of(ind, bars)))  # type: ignore[attr-defined]
        for name, a, b in zip(ind.outputs, ours, refs, strict=True):  # type: ignore[attr-defined]
            if b is None:
                continue
            ok, why = _close(a, b, start)
            if not ok:
                failures.append(f"{key}.{name}: {why}")
            # Tape is never defined later than TA-Lib
            assert int(np.argmax(np.isfinite(a))) <= int(np.argmax(np.isfinite(b))), key
    assert failures == []


@needs_shared
def test_where_tape_defines_an_output_earlier_than_talib(data: dict[str, Bars]) -> None:
    """TA-Lib reports MACD's line, fast %K and slow %K only once the last output of the group is
    defined; Tape reports each as soon as it is defined. Pinned on ORCL's first bars."""
    b = data["orcl_daily"]
    macd, _, _ = indicator("macd").batch(b["close"])
    assert int(np.argmax(np.isfinite(macd))) == 25
    assert np.isnan(talib.MACD(b["close"], 12, 26, 9)[0][32])
    c = b["close"]
    # both EMAs start at bar 25: the fast one from the mean of bars 14..25 (TA-Lib's seeding)
    np.testing.assert_allclose(macd[25], c[14:26].mean() - c[:26].mean(), rtol=1e-12)
    fastk, _ = indicator("stochf").batch(b["high"], b["low"], c)
    slowk, _ = indicator("stoch").batch(b["high"], b["low"], c)
    assert int(np.argmax(np.isfinite(fastk))) == 4
    assert int(np.argmax(np.isfinite(slowk))) == 6
    hh, ll = b["high"][:5].max(), b["low"][:5].min()
    np.testing.assert_allclose(fastk[4], 100.0 * (c[4] - ll) / (hh - ll), rtol=1e-12)
    np.testing.assert_allclose(slowk[6], fastk[4:7].mean(), rtol=1e-12)


# --- Tape's own definitions against independent NumPy references -------------------------------


def _rolling(x: np.ndarray, n: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(x, n)


@needs_shared
def test_cci_is_zero_where_the_typical_prices_differ_only_by_rounding(data: dict[str, Bars]) -> None:
    """ORCL's bars 1952-1953 have typical prices equal in decimal, 1 ulp apart in binary: the
    exact formula reads that as -133 at n = 2. Tape, like TA-Lib, gives 0 inside a dead-zone of
    1e-14 of the mean (docs/indicators.md), so at short periods it equals TA-Lib bit for bit."""
    b = data["orcl_daily"]
    h, lo, c = b["high"], b["low"], b["close"]
    tp = (h + lo + c) / 3.0
    assert tp[1952] != tp[1953] and abs(tp[1953] - tp[1952]) < 1e-14 * tp[1953]
    for n in (2, 3, 5, 20):
        ind = indicator("cci", period=n)
        ours = ind.batch(h, lo, c)
        ref = talib.CCI(h, lo, c, n)
        assert same_bits(ours[n - 1 :], ref[n - 1 :]), n
        assert same_bits(ours, streamed(ind, b)[0]), n
    assert indicator("cci", period=2).batch(h, lo, c)[1953] == 0.0


@needs_shared
@pytest.mark.parametrize("series", list(SERIES))
def test_tape_only_indicators_against_numpy(data: dict[str, Bars], series: str) -> None:
    b = data[series]
    h, lo, o, c, v = b["high"], b["low"], b["open"], b["close"], b["volume"]
    # z-score and realised volatility
    w = _rolling(c, 20)
    mean, std = w.mean(axis=1), w.std(axis=1)
    z = indicator("zscore", period=20).batch(c)[19:]
    ok = std > 1e-12 * np.abs(mean)
    np.testing.assert_allclose(z[ok], ((c[19:] - mean) / std)[ok], rtol=1e-6, atol=1e-6)
    r2 = np.diff(np.log(c)) ** 2
    rv = indicator("rvol", period=20, periods_per_year=252).batch(c)[20:]
    np.testing.assert_allclose(rv, np.sqrt(252 * _rolling(r2, 20).mean(axis=1)), rtol=1e-9, atol=1e-15)
    # Heikin-Ashi
    ha_o, ha_h, ha_l, ha_c = indicator("heikin_ashi").batch(o, h, lo, c)
    ref_c = (o + h + lo + c) / 4
    ref_o = np.empty_like(c)
    ref_o[0] = (o[0] + c[0]) / 2
    for t in range(1, c.size):
        ref_o[t] = (ref_o[t - 1] + ref_c[t - 1]) / 2
    np.testing.assert_array_equal(ha_o, ref_o)
    np.testing.assert_array_equal(ha_c, ref_c)
    np.testing.assert_array_equal(ha_h, np.maximum(h, np.maximum(ref_o, ref_c)))
    np.testing.assert_array_equal(ha_l, np.minimum(lo, np.minimum(ref_o, ref_c)))
    # session VWAP
    sess = b["session"]
    vwap = indicator("vwap").batch(h, lo, c, v, sess)
    tp = (h + lo + c) / 3
    for day in np.unique(sess)[:20]:
        m = sess == day
        cum_v = np.cumsum(v[m])
        with np.errstate(invalid="ignore", divide="ignore"):
            ref = np.where(cum_v > 0, np.cumsum(tp[m] * v[m]) / cum_v, np.nan)
        np.testing.assert_allclose(vwap[m], ref, rtol=1e-12)
    # Ichimoku, displacement 26
    tenkan, kijun, span_a, span_b, lead_a, lead_b = indicator("ichimoku").batch(h, lo)

    def mid(n: int) -> np.ndarray:
        out = np.full(c.size, np.nan)
        out[n - 1:] = (_rolling(h, n).max(axis=1) + _rolling(lo, n).min(axis=1)) / 2
        return out

    np.testing.assert_array_equal(tenkan, mid(9))
    np.testing.assert_array_equal(kijun, mid(26))
    np.testing.assert_array_equal(lead_a, (mid(9) + mid(26)) / 2)
    np.testing.assert_array_equal(lead_b, mid(52))
    np.testing.assert_array_equal(span_a[26:], lead_a[:-26])
    np.testing.assert_array_equal(span_b[26:], lead_b[:-26])
    # Keltner bands = EMA(20) +- 2 * ATR(10)
    up, mid_k, dn = indicator("keltner").batch(h, lo, c)
    atr10 = indicator("atr", period=10).batch(h, lo, c)
    np.testing.assert_array_equal(up[19:], mid_k[19:] + 2.0 * atr10[19:])
    np.testing.assert_array_equal(dn[19:], mid_k[19:] - 2.0 * atr10[19:])


def test_every_indicator_is_covered_here() -> None:
    talib_covered = {
        "sma", "ema", "wma", "dema", "tema", "trima", "kama", "macd", "ppo", "trix", "mom", "roc",
        "rsi", "stochf", "stoch", "stochrsi", "willr", "cci", "ultosc", "trange", "atr", "natr",
        "bbands", "keltner", "donchian", "adx", "aroon", "sar", "obv", "mfi", "ad", "adosc",
    }
    numpy_covered = {"zscore", "rvol", "heikin_ashi", "vwap", "ichimoku", "keltner"}
    assert talib_covered | numpy_covered == set(indicator_names())
