"""A parameter sweep of SMA(fast, slow) crossovers: Tape's ``tape sweep`` against vectorbt's
``Portfolio.from_signals`` on the same bars and the same grid, measured in the same run.

    python bench/bench_sweep.py [--runs 1000] [--symbols 50] [--bars 2520] [--seed 7]
                                [--workers 0] [--check 3] [--chunk 200] [--json PATH] [--profile]

Data: ``lake.synth`` seeded daily bars (XNYS sessions from 2015-01-02; 2,520 bars = 10 years) of
``--symbols`` names. The grid is 20 fast windows (2..21) x ``runs / 20`` slow windows (30, 35,
...); every point is one backtest of the whole universe (``sma_crossover``: ``weight / N`` of
the book per name while its fast SMA is above its slow SMA), commission 0.1%.

1. Tape: the real ``tape sweep CONFIG.toml --workers W`` (``cli.main``): a process pool, every
   run a full backtest with its journal, every run recorded in ``experiments.sqlite``
   (configuration, seed, data-set hash, code version, chain head, metrics). Numba's cache is
   warmed by a one-point sweep first; the timed sweep still starts its worker processes.
2. vectorbt (the ``bench`` extra): ``vbt.MA.run`` for the windows, ``ma_crossed_above`` /
   ``ma_crossed_below`` for the signals, ``Portfolio.from_signals`` with one group per grid point
   (50 names sharing cash), then each point's total return, Sharpe and trade count. Compiled
   once on a small grid before timing; the grid runs in chunks of ``--chunk`` points (each a
   (bars x chunk*symbols) array) to keep memory bounded; the chunks run one after another in
   one process.
3. Agreement on ``--check`` grid points: both engines' orders as (bar, name, side) and the
   final values. Conventions: both decide on bar t's close and fill at bar t+1's open (vectorbt
   gets signals shifted one bar and ``price=open``), fee 0.1% of notional, whole shares. Tape
   sizes each buy at ``weight / N`` of the book's value at the decision (integer minor units);
   vectorbt's ``from_signals`` cannot target a share of the book, so each buy is a fixed value
   of ``initial cash x weight / N``: orders agree, final values differ by the sizing.

Prints one table: runs per second of each engine and the ratio Tape / vectorbt (target >= 0.5,
i.e. within 2x), by wall time and by CPU time (this process and its finished worker processes,
``os.times``): on a machine shared with other jobs, wall time measures the other jobs as much
as the engines, CPU time far less. ``--profile`` also cProfiles one Tape run in this process.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sqlite3
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from cli.main import main as tape_main
from cli.sweep_cmd import run_point
from cli.wiring import config_from_raw, make_strategies, read_raw_config
from domain.events import OrderFilled
from kernel.store import open_journal
from lake.store import load_panel
from lake.synth import synth_dataset
from sim.backtest import run_backtest

FAST = list(range(2, 22))  # 20 fast windows
SLOW_FIRST, SLOW_STEP = 30, 5
WEIGHT = 0.95
COMMISSION = 0.001
COMMISSION_E8 = 100_000
INITIAL_CASH = 1_000_000
TARGET_RATIO = 0.5  # Tape within 2x of vectorbt
FILL_KIND = OrderFilled.__struct_config__.tag

CONFIG = """
run_id = "vbt"
dataset = "{dataset}"
journal = "journals/base"
initial_cash = "{cash}"

[strategy]
name = "sma_crossover"
params = {{ fast = 10, slow = 50, weight = {weight} }}

[fill]
commission_e8 = {commission_e8}

[risk]  # 100% per name, as vectorbt (the default 10% would trim winners: orders vectorbt has not)
name = {{ limit_e8 = 100_000_000, action = "clip" }}

[sweep]
grid = {{ "strategy.params.fast" = {fast}, "strategy.params.slow" = {slow} }}
"""


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have finished (pool workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def log(message: str) -> None:
    print(f"[bench-sweep {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def grid(runs: int) -> tuple[list[int], list[int]]:
    if runs % len(FAST):
        raise SystemExit(f"--runs must be a multiple of {len(FAST)} (the fast windows), got {runs}")
    slow = [SLOW_FIRST + SLOW_STEP * k for k in range(runs // len(FAST))]
    return FAST, slow


def points(fast: list[int], slow: list[int]) -> list[tuple[int, int]]:
    """The grid in ``tape sweep``'s order: the product, the first key varying slowest."""
    return [(f, s) for f in fast for s in slow]


def write_config(path: Path, dataset: Path, fast: list[int], slow: list[int]) -> Path:
    path.write_text(CONFIG.format(dataset=dataset, cash=INITIAL_CASH, weight=WEIGHT,
                                  commission_e8=COMMISSION_E8, fast=fast, slow=slow))  # fmt: skip
    return path


# --- Tape --------------------------------------------------------------------------------------


def run_tape(work: Path, dataset: Path, fast: list[int], slow: list[int], workers: int) -> dict[str, Any]:
    warm = write_config(work / "warm.toml", dataset, fast[:1], slow[:1])
    with redirect_stdout(io.StringIO()):
        tape_main(["sweep", str(warm), "--workers", "1", "--out", str(work / "warm-out")])
    config = write_config(work / "sweep.toml", dataset, fast, slow)
    out = work / "sweep-out"
    captured = io.StringIO()
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    with redirect_stdout(captured):
        code = tape_main(["sweep", str(config), "--workers", str(workers), "--out", str(out), "--top", "3"])
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    assert code == 0, captured.getvalue()
    with sqlite3.connect(out / "experiments.sqlite") as db:
        rows = db.execute("SELECT params_json, metrics_json FROM experiments ORDER BY point").fetchall()
    runs = len(fast) * len(slow)
    assert len(rows) == runs, f"{len(rows)} runs recorded, {runs} expected"
    metrics = [json.loads(m) for _, m in rows]
    return {
        "seconds": seconds,
        "runs": runs,
        "runs_per_s": runs / seconds,
        "workers": workers,
        "cpu_s": cpu,
        "runs_per_cpu_s": runs / cpu,
        "trades": [m.get("trades") for m in metrics],
        "final_nav": [m.get("final_nav") for m in metrics],
    }


def point_config(work: Path, config_path: Path, fast: int, slow: int, tag: str) -> Any:
    """One grid point's configuration, as ``tape sweep`` builds it, with a journal of its own."""
    raw = read_raw_config(config_path)
    raw.pop("sweep")
    raw["strategy"]["params"].update(fast=fast, slow=slow)
    raw["run_id"] = f"{tag}-{fast}-{slow}"
    raw["journal"] = str(work / tag / raw["run_id"])
    return config_from_raw(raw, config_path)


def tape_orders(work: Path, config_path: Path, fast: int, slow: int, steps: np.ndarray) -> dict[str, Any]:
    """One grid point as a plain backtest with its journal kept: fills as (step, column, side)."""
    config = point_config(work, config_path, fast, slow, "check")
    result = run_backtest(config, make_strategies(config))
    fills: list[tuple[int, int, int]] = []
    with open_journal(result.journal) as journal:
        for record in journal.records(0):
            if record.kind == FILL_KIND:
                event = record.event()
                assert isinstance(event, OrderFilled)
                step = int(np.searchsorted(steps, event.ts_ns))
                fills.append((step, event.instrument_id - 1, 1 if event.side > 0 else -1))
    return {"orders": sorted(fills), "final_nav_minor": result.nav_minor}


def profile_tape(work: Path, config_path: Path, fast: int, slow: int, top: int = 30) -> str:
    """cProfile of one sweep point in this process, through ``run_point`` as a worker runs it."""
    config = point_config(work, config_path, fast, slow, "profile")
    profiler = cProfile.Profile()
    profiler.enable()
    run_point((config.canonical_json(), False))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --- vectorbt ----------------------------------------------------------------------------------


def frames(dataset: Path) -> tuple[Any, Any, np.ndarray]:
    import pandas as pd

    panel, _ = load_panel(dataset)
    assert bool(panel.valid.all()), "the bench data set has no missing bars"
    scale = np.array([10.0**i.price_digits for i in panel.instruments])
    index = pd.to_datetime(panel.ts_ns, unit="ns")
    names = [i.symbol for i in panel.instruments]
    close = pd.DataFrame(panel.close / scale, index=index, columns=names)
    opens = pd.DataFrame(panel.open / scale, index=index, columns=names)
    return close, opens, panel.ts_ns


def vbt_chunk(vbt: Any, close: Any, opens: Any, chunk: list[tuple[int, int]]) -> Any:
    """One ``from_signals`` over the chunk's points: (bars x points*symbols), one cash-sharing
    group per point."""
    fast_ma = vbt.MA.run(close, window=[f for f, _ in chunk], short_name="fast")
    slow_ma = vbt.MA.run(close, window=[s for _, s in chunk], short_name="slow")
    entries = fast_ma.ma_crossed_above(slow_ma)
    exits = fast_ma.ma_crossed_below(slow_ma)
    names = close.shape[1]
    # decide on bar t's close, fill at bar t+1's open (as Tape's simulated venue)
    entries = entries.shift(1, fill_value=False)
    exits = exits.shift(1, fill_value=False)
    return vbt.Portfolio.from_signals(
        close, entries, exits, price=opens, fees=COMMISSION, size=INITIAL_CASH * WEIGHT / names,
        size_type="value", size_granularity=1, init_cash=INITIAL_CASH, cash_sharing=True,
        group_by=["fast_window", "slow_window"], freq="1D",
    )  # fmt: skip


def vbt_sweep(
    vbt: Any, close: Any, opens: Any, grid_points: list[tuple[int, int]], chunk: int
) -> dict[str, Any]:
    trades: list[int] = []
    final: list[float] = []
    sharpe: list[float] = []
    for start in range(0, len(grid_points), chunk):
        pf = vbt_chunk(vbt, close, opens, grid_points[start : start + chunk])
        final.extend(np.atleast_1d(pf.final_value()).tolist())
        sharpe.extend(np.atleast_1d(pf.sharpe_ratio()).tolist())
        pf.total_return()
        trades.extend(closing_trades(pf, close.shape[1], len(grid_points[start : start + chunk])))
    return {"trades": trades, "final_value": final, "sharpe": sharpe}


def closing_trades(pf: Any, names: int, groups: int) -> list[int]:
    """Closed trades per grid point, counted as Tape's ``trades`` metric counts them: every
    closing fill, a round trip sold at exactly its buying price included (``ClosingFills``)."""
    records = pf.trades.closed.values
    return np.bincount(records["col"] // names, minlength=groups).tolist()


def run_vbt(close: Any, opens: Any, grid_points: list[tuple[int, int]], chunk: int) -> dict[str, Any] | None:
    try:
        import vectorbt as vbt
    except ImportError:
        log("vectorbt is not installed (pip install 'tape[bench]'): its rows are left out")
        return None
    vbt_sweep(vbt, close, opens, grid_points[:4], chunk)  # compile (or load Numba's cache)
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    result = vbt_sweep(vbt, close, opens, grid_points, chunk)
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    return {**result, "seconds": seconds, "runs": len(grid_points), "runs_per_s": len(grid_points) / seconds,
            "cpu_s": cpu, "runs_per_cpu_s": len(grid_points) / cpu, "version": vbt.__version__}  # fmt: skip


def vbt_orders(close: Any, opens: Any, fast: int, slow: int) -> dict[str, Any]:
    import vectorbt as vbt

    pf = vbt_chunk(vbt, close, opens, [(fast, slow)])
    records = pf.orders.values  # the structured record array
    names = close.shape[1]
    orders = sorted((int(r["idx"]), int(r["col"]) % names, 1 if int(r["side"]) == 0 else -1) for r in records)
    return {"orders": orders, "final_value": float(np.asarray(pf.final_value()).ravel()[0])}


# --- agreement and output ----------------------------------------------------------------------


def check_points(grid_points: list[tuple[int, int]], count: int) -> list[tuple[int, int]]:
    if count <= 0:
        return []
    picks = np.linspace(0, len(grid_points) - 1, count).round().astype(int)
    return [grid_points[i] for i in sorted(set(picks.tolist()))]


def agreement(work: Path, config: Path, close: Any, opens: Any, ts: np.ndarray,
              picks: list[tuple[int, int]]) -> list[dict[str, Any]]:  # fmt: skip
    rows = []
    for fast, slow in picks:
        tape = tape_orders(work, config, fast, slow, ts)
        vbt = vbt_orders(close, opens, fast, slow)
        same = len(set(tape["orders"]) & set(vbt["orders"]))
        tape_value = tape["final_nav_minor"] / 100.0
        rows.append({
            "fast": fast, "slow": slow, "tape_orders": len(tape["orders"]), "vbt_orders": len(vbt["orders"]),
            "same_orders": same, "identical": tape["orders"] == vbt["orders"],
            "tape_final": tape_value, "vbt_final": vbt["final_value"],
            "final_rel_diff": vbt["final_value"] / tape_value - 1.0,
        })  # fmt: skip
    return rows


def print_report(report: dict[str, Any]) -> None:
    tape, vbt = report["tape"], report.get("vectorbt")
    print(f"\nSMA(fast, slow) sweep: {tape['runs']:,} backtests x {report['symbols']} names x "
          f"{report['bars']:,} daily bars (lake.synth seed {report['seed']}), same run")  # fmt: skip
    print(f"{'engine':<34} {'seconds':>9} {'runs/s':>9} {'vs':>10} {'ratio':>8} {'target':>8}")
    print("-" * 84)
    note = f"tape sweep --workers {tape['workers']}, every run recorded"
    print(f"{note:<34} {tape['seconds']:9.2f} {tape['runs_per_s']:9.2f}", end="")
    if vbt:
        ratio = tape["runs_per_s"] / vbt["runs_per_s"]
        mark = "ok" if ratio >= TARGET_RATIO else "MISS"
        print(f" {'vectorbt':>10} {ratio:8.4f} {'>= ' + str(TARGET_RATIO):>8} {mark}")
        label = f"vectorbt {vbt['version']} from_signals"
        print(f"{label:<34} {vbt['seconds']:9.2f} {vbt['runs_per_s']:9.2f}")
    else:
        print()
    for row in report.get("agreement", []):
        print(
            f"  fast={row['fast']:>2} slow={row['slow']:>3}: orders Tape {row['tape_orders']:,} vectorbt "
            f"{row['vbt_orders']:,}, same (bar, name, side) {row['same_orders']:,}; identical lists: "
            f"{row['identical']}; final value Tape {row['tape_final']:,.2f} vectorbt "
            f"{row['vbt_final']:,.2f} ({row['final_rel_diff']:+.2%}, sizing differs: see the docstring)"
        )
    if vbt:
        cpu_ratio = tape["runs_per_cpu_s"] / vbt["runs_per_cpu_s"]
        print(
            f"by CPU time: Tape {tape['cpu_s']:.2f} s ({tape['runs_per_cpu_s']:.3f} runs per CPU s), "
            f"vectorbt {vbt['cpu_s']:.2f} s ({vbt['runs_per_cpu_s']:.3f}); ratio {cpu_ratio:.4f} "
            f"per CPU s, {cpu_ratio * tape['workers']:.4f} with Tape on its {tape['workers']} worker(s)"
        )
        pairs = [(a, b) for a, b in zip(tape["trades"], vbt["trades"], strict=True) if a is not None]
        equal = sum(1 for a, b in pairs if a == b)
        print(f"  closing-trade counts equal on {equal:,} of {len(pairs):,} grid points")
        differ = [(p, a, b) for p, (a, b) in zip(report["points"], pairs, strict=True) if a != b]
        if differ:
            print("  first differences (point, Tape, vectorbt):", differ[:5])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--bars", type=int, default=2520)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=0, help="tape sweep processes (0: every core)")
    parser.add_argument("--check", type=int, default=3, help="grid points whose orders are compared")
    parser.add_argument("--chunk", type=int, default=200, help="vectorbt grid points per from_signals call")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile one Tape run")
    args = parser.parse_args(argv)
    fast, slow = grid(args.runs)
    grid_points = points(fast, slow)
    workers = args.workers or os.cpu_count() or 1
    report: dict[str, Any] = {
        "runs": args.runs, "symbols": args.symbols, "bars": args.bars, "seed": args.seed,
        "cpus": os.cpu_count(), "python": sys.version.split()[0], "points": grid_points,
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tape-bench-sweep-") as tmp:
        work = Path(tmp)
        dataset = work / "data"
        log(f"synth: {args.symbols} names x {args.bars:,} daily bars, seed {args.seed}")
        synth_dataset(dataset, seed=args.seed, symbols=args.symbols, bars=args.bars, frequency="1d",
                      calendar="XNYS", start="2015-01-02")  # fmt: skip
        close, opens, ts = frames(dataset)
        log(f"vectorbt: {len(grid_points):,} points")
        report["vectorbt"] = run_vbt(close, opens, grid_points, args.chunk)
        log(f"tape sweep: {len(grid_points):,} points on {workers} worker(s)")
        report["tape"] = run_tape(work, dataset, fast, slow, workers)
        if report["vectorbt"] is not None and args.check:
            log("agreement")
            picks = check_points(grid_points, args.check)
            report["agreement"] = agreement(work, work / "sweep.toml", close, opens, ts, picks)
        if args.profile:
            print(profile_tape(work, work / "sweep.toml", *grid_points[0]))
    print_report(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
