"""Twenty Alpha158-style features with Tape's feature code against Qlib's expression engine on
the same data, measured in the same run; then LightGBM training time on that panel.

    python bench/bench_alpha158.py [--symbols 500] [--days 2520] [--seed 7] [--repeat 3]
                                   [--qlib-python /tmp/venv-qlib/bin/python] [--rounds 100]
                                   [--qlib-kernels N] [--work DIR] [--no-train]

1. A seeded daily panel (geometric random walks with OHLCV, every symbol every session of the
   XNYS calendar) is committed to a lake and exported with ``models.qlib_bridge.export_qlib``
   to Qlib's binary layout — the one provider folder both engines read.
2. Tape: ``Lake.read`` of the daily bars, then ``models.features.alpha158.alpha_features`` (the
   twenty features, Polars, one pass per instrument). Best of ``--repeat`` runs in this process;
   nothing is cached between runs (the lake is re-read each time).
3. Qlib: ``D.features`` of the same twenty expressions (``QLIB_EXPRESSIONS``) over every
   instrument, in a fresh process per run (``--qlib-python``, a venv with pyqlib) with
   ``expression_cache=None, dataset_cache=None``, so nothing is cached either; its import and
   ``qlib.init`` are timed apart and not counted. Best of ``--repeat`` runs. ``--qlib-kernels``
   sets its worker processes (default: Qlib's own choice for the machine); Polars' threads are
   set by ``POLARS_MAX_THREADS`` (default: one per core).
4. The two results are joined and compared (where Tape's window is full: Qlib gives
   partial-window values at an instrument's start) — relative difference per feature.
5. LightGBM: ``models.ml.train.design_rows`` (the twenty features as ``FeatureSpec``s, each
   checked causal, and 20-bar forward returns at gap 1) and ``train_window`` (one thread,
   deterministic, ``--rounds`` rounds) on the whole panel.

Prints one table; the ratio is Qlib's time / Tape's (> 1: Tape is faster). Throughput is
symbol-days (cells of the panel) per second for all twenty features.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import polars as pl
import pyarrow as pa

from domain.instruments import Instrument
from lake.partitioned import Lake
from lake.schema import Kind
from lake.synth import bar_times, synth_instruments
from models.features.alpha158 import ALPHA158, QLIB_EXPRESSIONS, alpha_features
from models.qlib_bridge import export_qlib

QLIB_SCRIPT = """
import json, sys, time
began = time.perf_counter()
import qlib
from qlib.data import D
provider, out, start, end = sys.argv[1:5]
names = json.loads(sys.argv[5])
exprs = json.loads(sys.argv[6])
kernels = {} if sys.argv[7] == "0" else {"kernels": int(sys.argv[7])}
qlib.init(provider_uri=provider, region="us", expression_cache=None, dataset_cache=None, **kernels)
ready = time.perf_counter()
frame = D.features(D.instruments("all"), exprs, start_time=start, end_time=end, freq="day")
done = time.perf_counter()
if out != "-":
    frame.columns = names
    frame.reset_index().to_parquet(out)
from qlib.config import C
print(json.dumps({"init_s": ready - began, "features_s": done - ready, "rows": len(frame),
                  "kernels": C.kernels if not callable(C.kernels) else C.kernels("day"),
                  "version": qlib.__version__}))
"""


def panel_table(symbols: int, days: int, seed: int) -> tuple[pa.Table, list[Instrument]]:
    """Seeded daily bars, every symbol every session: raw integer prices (2 digits)."""
    ts, day = bar_times("XNYS", "1d", "2010-01-04", days)
    rng = np.random.default_rng(seed)
    vol = rng.uniform(0.15, 0.60, symbols) / np.sqrt(252)
    steps = vol * rng.standard_normal((days, symbols))
    close = rng.uniform(20.0, 200.0, symbols) * np.exp(np.cumsum(steps, axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(0.2 * vol * rng.standard_normal((days, symbols)))
    wick = np.abs(0.5 * vol * rng.standard_normal((2, days, symbols)))
    raw = {
        "open": open_,
        "high": np.maximum(open_, close) * np.exp(wick[0]),
        "low": np.minimum(open_, close) * np.exp(-wick[1]),
        "close": close,
    }
    ints = {k: np.maximum(np.rint(v * 100), 1).astype(np.int64) for k, v in raw.items()}
    ints["high"] = np.maximum.reduce([ints["high"], ints["open"], ints["close"]])
    ints["low"] = np.minimum.reduce([ints["low"], ints["open"], ints["close"]])
    volume = rng.lognormal(np.log(1_000_000.0), 0.5, (days, symbols)).astype(np.int64) + 1
    table = pa.table({
        "ts_ns": np.repeat(ts, symbols).astype(np.int64),
        "day": np.repeat(day, symbols).astype(np.int32),
        "instrument_id": np.tile(np.arange(1, symbols + 1), days).astype(np.int32),
        **{k: v.reshape(-1) for k, v in ints.items()},
        "volume": volume.reshape(-1),
        "turnover": pa.nulls(days * symbols, pa.int64()),
    })  # fmt: skip
    return table, synth_instruments(symbols)


def tape_features(lake: Lake) -> pl.DataFrame:
    bars = pl.from_arrow(lake.read(Kind.BARS, "1d"))
    assert isinstance(bars, pl.DataFrame)
    return alpha_features(bars)


def run_qlib(python: str, provider: Path, out: str, start: str, end: str, kernels: int) -> dict[str, object]:
    names = list(QLIB_EXPRESSIONS)
    result = subprocess.run(
        [python, "-c", QLIB_SCRIPT, str(provider), out, start, end, json.dumps(names),
         json.dumps([QLIB_EXPRESSIONS[n] for n in names]), str(kernels)],
        capture_output=True, text=True, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"the Qlib run failed:\n{result.stderr[-3000:]}")
    line = [text for text in result.stdout.splitlines() if text.startswith("{")][-1]
    return dict(json.loads(line))


def compare(tape: pl.DataFrame, qlib_file: Path, lake: Lake) -> dict[str, tuple[float, int]]:
    """Per feature: the largest |tape - qlib| / max(|qlib|, 1e-3) and the cells compared (where
    both are finite and Tape's window is full)."""
    qlib = pl.read_parquet(qlib_file)
    ids = {inst.symbol.upper(): inst.instrument_id for inst in lake.instruments()}
    bars = pl.from_arrow(lake.read(Kind.BARS, "1d"))
    assert isinstance(bars, pl.DataFrame)
    stamps = bars.select("day", "ts_ns").unique()
    qlib = qlib.with_columns(
        pl.col("datetime").dt.strftime("%Y%m%d").cast(pl.Int32).alias("day"),
        pl.col("instrument").replace_strict(ids, return_dtype=pl.Int64).alias("instrument_id"),
    ).join(stamps, on="day")
    joined = tape.with_columns(pl.col("instrument_id").cast(pl.Int64)).join(
        qlib, on=["ts_ns", "instrument_id"], suffix="_qlib"
    )
    out = {}
    for name in ALPHA158:
        a, b = pl.col(name).cast(pl.Float64), pl.col(f"{name}_qlib").cast(pl.Float64)
        both = joined.filter(a.is_not_null() & a.is_finite() & b.is_not_null() & b.is_finite())
        worst = both.select(((a - b).abs() / pl.max_horizontal(b.abs(), pl.lit(1e-3))).max()).item()
        out[name] = (float(worst or 0.0), both.height)
    return out


def train_rows(lake: Lake, tape: pl.DataFrame, rounds: int, how: str) -> list[tuple[str, str]]:
    """LightGBM on the panel: the design rows (twenty features, 20-bar forward returns at gap 1),
    then ``train_window`` (one thread, deterministic, ``rounds`` rounds) on all of them."""
    from models.features.cross_section import FeatureSpec, check_causal
    from models.ml.features import feature_name
    from models.ml.labels import LabelSpec, check_labels, forward_returns
    from models.ml.train import design_rows, train_window

    bars = pl.from_arrow(lake.read(Kind.BARS, "1d"))
    assert isinstance(bars, pl.DataFrame)
    specs = [FeatureSpec("alpha158", {"name": name}) for name in ALPHA158]
    names = [feature_name(spec) for spec in specs]
    label = LabelSpec(horizon=20, gap=1)
    t0 = time.perf_counter()
    if how == "design":
        design = design_rows(bars, specs, label)
    else:  # the features computed above (the same expressions), checked causal on a slice
        some = bars.filter(pl.col("instrument_id") <= 50)
        for spec in specs:
            check_causal(spec.compute, some)
        labels = forward_returns(bars, label)
        check_labels(labels, bars, label)
        features = tape.rename(dict(zip(ALPHA158, names, strict=True))).with_columns(
            pl.col("instrument_id").cast(pl.Int64)
        )
        design = features.join(labels.with_columns(pl.col("instrument_id").cast(pl.Int64)),
                               on=["ts_ns", "instrument_id"], how="inner")  # fmt: skip
        finite = pl.all_horizontal([pl.col(n).is_not_null() & pl.col(n).is_finite() for n in names])
        design = design.filter(finite).sort(["ts_ns", "instrument_id"])
        del labels, features
    t1 = time.perf_counter()
    stamps = design.get_column("ts_ns")
    model = train_window(design, names, int(stamps.min()), int(stamps.max()),  # type: ignore[arg-type]
                         num_boost_round=rounds)  # fmt: skip
    t2 = time.perf_counter()
    what = "20 features checked causal" if how == "design" else "Tape features, causal check on 50 names"
    return [
        (f"design rows ({what} + labels)", f"{t1 - t0:.1f} s, {design.height:,} rows"),
        (f"LightGBM train_window ({rounds} rounds, 1 thread)",
         f"{t2 - t1:.1f} s ({design.height / (t2 - t1):,.0f} rows/s), in-sample rank IC "
         f"{model.metrics['train_ic']:.3f}"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--qlib-python", default="/tmp/venv-qlib/bin/python")
    parser.add_argument("--qlib-kernels", type=int, default=0, help="Qlib's processes (0: its default)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument(
        "--train-rows",
        choices=("design", "features"),
        default="design",
        help="design: models.ml.train.design_rows (every feature checked causal on the whole panel, "
        "~2 GB a 500 symbols); features: the Tape features timed above joined with the labels "
        "(causality checked on the first 50 symbols only): what fits 5,000 symbols in memory",
    )
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-alpha158-"))
    cells = args.symbols * args.days
    rows: list[tuple[str, str]] = [("panel", f"{args.symbols} symbols x {args.days} days = {cells:,} bars")]
    try:
        began = time.perf_counter()
        table, instruments = panel_table(args.symbols, args.days, args.seed)
        lake = Lake(work / "lake")
        lake.commit([(Kind.BARS, "1d", table)], instruments=instruments)
        export = export_qlib(lake, work / "qlib")
        rows.append(("lake + Qlib export", f"{time.perf_counter() - began:.1f} s"))
        first, last = export.calendar[0], export.calendar[-1]
        start, end = (f"{d // 10000}-{d // 100 % 100:02d}-{d % 100:02d}" for d in (first, last))

        tape_times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            tape = tape_features(lake)
            tape_times.append(time.perf_counter() - t0)
        tape_s = min(tape_times)
        keep = [str(work / "qlib.parquet")] + ["-"] * (args.repeat - 1)  # the first run's values are compared
        qlib_runs = [
            run_qlib(args.qlib_python, work / "qlib", out, start, end, args.qlib_kernels) for out in keep
        ]
        qlib_times = [float(r["features_s"]) for r in qlib_runs]  # type: ignore[arg-type]
        qlib_s = min(qlib_times)
        threads = pl.thread_pool_size()
        rows += [
            ("Tape: Lake.read + alpha_features", f"{tape_s:.2f} s  {cells / tape_s:,.0f} symbol-days/s "
             f"(polars {threads} threads; runs {', '.join(f'{t:.2f}' for t in tape_times)})"),
            (f"Qlib {qlib_runs[0]['version']}: D.features",
             f"{qlib_s:.2f} s  {cells / qlib_s:,.0f} symbol-days/s "
             f"(kernels {qlib_runs[0]['kernels']}; runs "
             f"{', '.join(f'{t:.2f}' for t in qlib_times)}; "
             f"import+init {float(qlib_runs[0]['init_s']):.1f} s not counted)"),  # type: ignore[arg-type]
            ("ratio Qlib / Tape", f"{qlib_s / tape_s:.2f}x"),
        ]  # fmt: skip
        diffs = compare(tape, work / "qlib.parquet", lake)
        worst = max(diffs.items(), key=lambda item: item[1][0])
        counts = [n for _, n in diffs.values()]
        each = " ".join(f"{k} {v:.0e}" for k, (v, _) in diffs.items())
        rows.append(("relative difference per feature", each))
        rows.append(("agreement", f"max relative difference {worst[1][0]:.2e} ({worst[0]}); "
                     f"{min(counts):,}..{max(counts):,} cells a feature"))  # fmt: skip

        if not args.no_train:
            rows += train_rows(lake, tape, args.rounds, args.train_rows)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
