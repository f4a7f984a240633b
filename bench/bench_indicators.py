"""Each indicator's batch form against TA-Lib's on the same bars, measured in the same run.

    python bench/bench_indicators.py [--bars 1000000] [--repeat 5] [--seed 7] [--only rsi,atr]
                                     [--clock cpu|wall]

Prints one row per indicator: Tape's and TA-Lib's best time of ``--repeat`` runs and the ratio
TA-Lib time / Tape time (>= 1 means Tape is at least as fast). For an indicator with a batch
fast path (``models/indicators/_batch_nb.py``) it also times the step driver that ``batch``
used before (``Indicator.batch_stepwise``, the same bits) and prints its ratio as ``step``.
Numba is compiled (or loaded from its cache) before timing. ``--clock cpu`` (the default)
times the process's CPU time, which a machine shared with other jobs disturbs far less than
wall time (every call is single-threaded, so on an idle machine the two agree); ``--clock wall``
times wall time. ``bench_indicators()`` returns the rows for other scripts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from models.indicators import indicator, indicator_names

Bars = dict[str, np.ndarray]


def make_bars(n: int, seed: int) -> Bars:
    """A seeded geometric random walk with plausible OHLCV (one-minute-like)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    wick = np.abs(rng.normal(0, 5e-4, (2, n))) * close
    return {
        "open": close * (1 + rng.normal(0, 3e-4, n)),
        "high": close + wick[0],
        "low": close - wick[1],
        "close": close,
        "volume": np.floor(rng.exponential(1_000.0, n)) + 1,
        "session": np.arange(n, dtype=np.float64) // 1_440,
    }


def _cases(b: Bars) -> list[tuple[str, Any, Callable[[], object] | None]]:
    import talib

    h, lo, c, v = b["high"], b["low"], b["close"], b["volume"]
    return [
        ("sma(30)", indicator("sma", period=30), lambda: talib.SMA(c, 30)),
        ("ema(30)", indicator("ema", period=30), lambda: talib.EMA(c, 30)),
        ("wma(30)", indicator("wma", period=30), lambda: talib.WMA(c, 30)),
        ("dema(30)", indicator("dema", period=30), lambda: talib.DEMA(c, 30)),
        ("tema(30)", indicator("tema", period=30), lambda: talib.TEMA(c, 30)),
        ("trima(30)", indicator("trima", period=30), lambda: talib.TRIMA(c, 30)),
        ("kama(30)", indicator("kama", period=30), lambda: talib.KAMA(c, 30)),
        ("macd(12,26,9)", indicator("macd"), lambda: talib.MACD(c, 12, 26, 9)),
        ("ppo(12,26)", indicator("ppo"), lambda: talib.PPO(c, 12, 26, matype=1)),
        ("trix(30)", indicator("trix", period=30), lambda: talib.TRIX(c, 30)),
        ("mom(10)", indicator("mom", period=10), lambda: talib.MOM(c, 10)),
        ("roc(10)", indicator("roc", period=10), lambda: talib.ROC(c, 10)),
        ("rsi(14)", indicator("rsi", period=14), lambda: talib.RSI(c, 14)),
        ("stochf(5,3)", indicator("stochf"), lambda: talib.STOCHF(h, lo, c, 5, 3, 0)),
        ("stoch(5,3,3)", indicator("stoch"), lambda: talib.STOCH(h, lo, c, 5, 3, 0, 3, 0)),
        ("stochrsi(14,5,3)", indicator("stochrsi"), lambda: talib.STOCHRSI(c, 14, 5, 3, 0)),
        ("willr(14)", indicator("willr"), lambda: talib.WILLR(h, lo, c, 14)),
        ("cci(20)", indicator("cci"), lambda: talib.CCI(h, lo, c, 20)),
        ("ultosc(7,14,28)", indicator("ultosc"), lambda: talib.ULTOSC(h, lo, c, 7, 14, 28)),
        ("trange", indicator("trange"), lambda: talib.TRANGE(h, lo, c)),
        ("atr(14)", indicator("atr"), lambda: talib.ATR(h, lo, c, 14)),
        ("natr(14)", indicator("natr"), lambda: talib.NATR(h, lo, c, 14)),
        ("bbands(20,2)", indicator("bbands"), lambda: talib.BBANDS(c, 20, 2, 2, 0)),
        ("keltner(20,10,2)", indicator("keltner"), lambda: (talib.EMA(c, 20), talib.ATR(h, lo, c, 10))),
        ("donchian(20)", indicator("donchian"), lambda: (talib.MAX(h, 20), talib.MIN(lo, 20))),
        (
            "adx(14) +DI -DI",
            indicator("adx"),
            lambda: (talib.ADX(h, lo, c, 14), talib.PLUS_DI(h, lo, c, 14), talib.MINUS_DI(h, lo, c, 14)),
        ),
        ("aroon(14) + osc", indicator("aroon"), lambda: (talib.AROON(h, lo, 14), talib.AROONOSC(h, lo, 14))),
        ("sar(0.02,0.2)", indicator("sar"), lambda: talib.SAR(h, lo, 0.02, 0.2)),
        ("obv", indicator("obv"), lambda: talib.OBV(c, v)),
        ("mfi(14)", indicator("mfi"), lambda: talib.MFI(h, lo, c, v, 14)),
        ("ad", indicator("ad"), lambda: talib.AD(h, lo, c, v)),
        ("adosc(3,10)", indicator("adosc"), lambda: talib.ADOSC(h, lo, c, v, 3, 10)),
        ("vwap(session)", indicator("vwap"), None),
        ("ichimoku(9,26,52)", indicator("ichimoku"), None),
        ("heikin_ashi", indicator("heikin_ashi"), None),
        ("zscore(20)", indicator("zscore"), None),
        ("rvol(20)", indicator("rvol"), None),
    ]


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def _best(fn: Callable[[], object], repeat: int, clock: Callable[[], float]) -> float:
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def bench_indicators(
    bars: int = 1_000_000, repeat: int = 5, seed: int = 7, only: set[str] | None = None, clock: str = "cpu"
) -> list[dict[str, Any]]:
    """Rows of {name, bars, tape_s, talib_s (None when TA-Lib has no such function), ratio,
    step_s and step_ratio (the step driver; None without a fast path)}."""
    tick = CLOCKS[clock]
    b = make_bars(bars, seed)
    cases = _cases(b)
    missing = sorted(set(indicator_names()) - {ind.name for _, ind, _ in cases})
    if missing:  # a registry indicator without a row: add it to _cases
        raise SystemExit(f"bench_indicators: no case for {', '.join(missing)}")
    rows = []
    for label, ind, ref in cases:
        if only and ind.name not in only:
            continue
        args = [b[k] for k in ind.inputs]
        ind.batch(*(a[:100] for a in args))  # compile or load from the cache
        tape_s = _best(lambda ind=ind, args=args: ind.batch(*args), repeat, tick)
        talib_s = _best(ref, repeat, tick) if ref is not None else None
        step_s = None
        if ind.has_fast_batch:
            ind.batch_stepwise(*(a[:100] for a in args))
            step_s = _best(lambda ind=ind, args=args: ind.batch_stepwise(*args), repeat, tick)
        rows.append(
            {
                "name": label,
                "bars": bars,
                "tape_s": tape_s,
                "talib_s": talib_s,
                "ratio": (talib_s / tape_s) if talib_s else None,
                "step_s": step_s,
                "step_ratio": (talib_s / step_s) if talib_s and step_s else None,
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'indicator':<18} {'Tape ms':>8} {'TA-Lib ms':>9} {'TA-Lib/Tape':>11} {'step ms':>8} {'step':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        tl = f"{r['talib_s'] * 1e3:9.2f}" if r["talib_s"] else f"{'-':>9}"
        ratio = f"{r['ratio']:10.2f}x" if r["ratio"] else f"{'-':>11}"
        st = f"{r['step_s'] * 1e3:8.2f}" if r.get("step_s") else f"{'-':>8}"
        sr = f"{r['step_ratio']:5.2f}x" if r.get("step_ratio") else f"{'-':>6}"
        lines.append(f"{r['name']:<18} {r['tape_s'] * 1e3:8.2f} {tl} {ratio} {st} {sr}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", default="", help="comma-separated indicator names")
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: process CPU time (default); wall: wall-clock time",
    )
    args = ap.parse_args(argv)
    only = {s for s in args.only.split(",") if s} or None
    rows = bench_indicators(args.bars, args.repeat, args.seed, only, args.clock)
    print(f"{args.bars:,} bars, best of {args.repeat}, {args.clock} time, same run")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
