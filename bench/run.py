"""End-to-end benchmarks of the Tape kernel against in-run baselines.

Every figure is measured in one process and reported with its ratio against a baseline
measured in the same run (machines are noisy; absolute numbers are for context only)::

    python bench/run.py [--bars 1000000] [--seed 7] [--skip-backtrader] [--json PATH]

Workloads (all on the same seeded one-symbol one-minute bars, 24x7 calendar):

1. kernel: ``run_backtest`` with SMA(10/30) crossover journaling to LMDB, then the SQLite
   ledger rebuilt from that journal (timed separately). Numba is warmed on a tiny data set.
2. bare loop: the same strategy as a pure-Python loop over lists, no journal (baseline).
3. dense: the same strategy with a small weight (1%), so that cash never limits a buy and it
   trades on every crossover; against the bare loop with the same weight. Both kernel rows
   also give the time per decision (per ``TargetsDecided``).
4. backtrader: the same strategy in backtrader 1.9 (``--skip-backtrader`` to leave out);
   its bars/s is the baseline of both kernel cases (the weight does not change its per-bar
   work).
5. journal append: the kernel's real event mix into fresh LMDB / SQLite journals versus
   raw ``lmdb`` ``putmulti`` of the same payload bytes.
6. replay: re-derive and verify the kernel's journal.
6b. queue source: the same bars pushed one at a time (``kernel.stream``), as paper and live get
   them: derived records checked equal to the data-set run's; then with every bar journaled
   (the live path) and that journal replayed.
7. cross-section: 500 symbols x 2,520 daily bars, momentum rotation.
8. peak memory: each of kernel, dense, replay, queue and the bare loop once more in a fresh
   subprocess, reporting its peak resident set (``VmHWM`` of ``/proc/self/status``).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import itertools
import json
import os
import pstats
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.wiring import make_strategy, replay_builder
from domain.events import INPUT_KINDS, OrderFilled, encode_event
from domain.riskrules import policy_from_mapping
from kernel.loop import Kernel
from kernel.replay import replay
from kernel.store import open_journal
from kernel.stream import QueueSource
from lake.store import dataset_ref, load_panel
from lake.synth import synth_dataset
from projections import rebuild
from sim.backtest import (
    BacktestConfig,
    BacktestResult,
    StrategyConfig,
    build_setup,
    journal_inputs,
    run_backtest,
)
from sim.fill_models import FillModel
from sim.queued import bars_at

FAST, SLOW, WEIGHT = 10, 30, 0.95
WEIGHT_E8 = 95_000_000
DENSE_WEIGHT, DENSE_WEIGHT_E8 = 0.01, 1_000_000
DECISION_KIND = "strategy.targets_decided.v1"
COMMISSION_E8 = 100_000  # 0.1%
RATE = 100_000_000
INITIAL_CASH = "1000000"
INITIAL_CASH_MINOR = 100_000_000
MINUTE_NS = 60_000_000_000
JOURNAL_EVENTS_CAP = 300_000
LMDB_TXN = 4096
TIE_WINDOW = SLOW  # bars before a differing trade searched for exact SMA ties

FILL_KIND = OrderFilled.__struct_config__.tag
TARGETS = {
    "kernel/bare": 0.25,
    "kernel/backtrader": 50.0,
    "journal/raw-lmdb": 0.33,
    "replay/kernel": 1.0,
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    workload: str
    metric: str
    value: float
    unit: str
    baseline: str = ""
    ratio: float | None = None
    target: float | None = None
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.ratio is None or self.target is None:
            return None
        return self.ratio >= self.target


@dataclass
class Report:
    bars: int
    seed: int
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row


def best_of(repeats: int, fn: Callable[[int], Any]) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls of ``fn(i)`` and the last result."""
    best = float("inf")
    result: Any = None
    for i in range(repeats):
        t0 = time.perf_counter()
        result = fn(i)
        best = min(best, time.perf_counter() - t0)
    return best, result


# --- configuration ----------------------------------------------------------------------------


def make_config(dataset: Path, journal: Path, strategy: str, params: dict[str, object]) -> BacktestConfig:
    return BacktestConfig(
        run_id=f"bench-{strategy}",
        dataset=str(dataset),
        journal=str(journal),
        strategy=StrategyConfig(name=strategy, params=params),
        initial_cash=INITIAL_CASH,
        fill=FillModel(slippage_e8=0, commission_e8=COMMISSION_E8, commission_min_minor=0),
        # 100% per name, like the bare loop and backtrader it is compared with
        risk=policy_from_mapping({"name": {"limit_e8": 100_000_000, "action": "clip"}}),
    )


SMA_PARAMS: dict[str, object] = {"fast": FAST, "slow": SLOW, "weight": WEIGHT}
DENSE_PARAMS: dict[str, object] = {"fast": FAST, "slow": SLOW, "weight": DENSE_WEIGHT}
MOMENTUM_PARAMS: dict[str, object] = {"lookback": 126, "skip": 21, "top": 50, "weight": 0.95}


def backtest(config: BacktestConfig) -> BacktestResult:
    return run_backtest(config, make_strategy(config.strategy))


def synth_1m(path: Path, seed: int, bars: int) -> Path:
    synth_dataset(path, seed=seed, symbols=1, bars=bars, frequency="1m", calendar="24x7", start="2020-01-01")
    return path


def warm_up(work: Path, seed: int) -> None:
    """Compile (or load from cache) every Numba kernel the workloads touch."""
    small = synth_1m(work / "warm-1m", seed, 3_000)
    config = make_config(small, work / "warm-journal", "sma_crossover", SMA_PARAMS)
    backtest(config)
    rebuild(config.journal, work / "warm-ledger.sqlite")
    with open_journal(config.journal) as journal:
        replay(journal, replay_builder)
    daily = work / "warm-1d"
    synth_dataset(daily, seed=seed, symbols=20, bars=300, frequency="1d", calendar="24x7", start="2020-01-01")
    mom = dict(MOMENTUM_PARAMS, top=5)
    backtest(make_config(daily, work / "warm-mom-journal", "momentum", mom))


# --- 1. kernel ------------------------------------------------------------------------------


def bench_kernel(
    report: Report, work: Path, dataset: Path, case: str = "kernel", params: dict[str, object] = SMA_PARAMS
) -> dict[str, Any]:
    bars = report.bars
    runs: list[tuple[float, BacktestResult]] = []
    for attempt in range(3):
        config = make_config(dataset, work / f"{case}-journal-{attempt}", "sma_crossover", params)
        t0 = time.perf_counter()
        result = backtest(config)
        runs.append((time.perf_counter() - t0, result))
        log(f"{case} run {attempt + 1}: {runs[-1][0]:.2f}s, {result.records} records")
        if sum(t for t, _ in runs) > 20.0:
            break
    seconds, result = min(runs, key=lambda item: item[0])
    journal_path = result.journal
    fills, decisions = kernel_fills(journal_path)
    note = f"best of {len(runs)}; numba warmed (compile excluded); {result.records:,} records"
    report.add(Row(case, "kernel + journal", bars / seconds, "bars/s", note=note))
    report.add(
        Row(
            case,
            "time per decision",
            seconds / decisions * 1e6 if decisions else 0.0,
            "us",
            note=f"{decisions:,} decisions, {len(fills):,} fills; whole run / decisions",
        )
    )
    info = {
        "seconds": seconds,
        "records": result.records,
        "nav_minor": result.nav_minor,
        "fills": len(fills),
        "decisions": decisions,
        "journal": str(journal_path),
        "bars_per_s": bars / seconds,
        "chain_head": result.last_hash,
    }
    report.details[case] = info
    if case != "kernel":
        return {"info": info, "fills": fills, "journal": journal_path}
    t0 = time.perf_counter()
    rebuilt = rebuild(journal_path, work / "ledger.sqlite")
    rebuild_s = time.perf_counter() - t0
    report.add(
        Row(
            "kernel",
            "ledger rebuild",
            rebuilt.records_applied / rebuild_s,
            "records/s",
            note=f"{rebuilt.records_applied:,} records in {rebuild_s:.2f}s (SQLite)",
        )
    )
    info["rebuild_seconds"] = rebuild_s
    info["rebuild_records"] = rebuilt.records_applied
    return {"info": info, "fills": fills, "journal": journal_path}


def kernel_fills(journal_path: Path) -> tuple[list[tuple[int, int, int]], int]:
    """(ts_ns, side, qty_raw) of every fill in the journal, and the number of decisions."""
    fills = []
    decisions = 0
    with open_journal(journal_path) as journal:
        for record in journal.records():
            if record.kind == DECISION_KIND:
                decisions += 1
            elif record.kind == FILL_KIND:
                event = record.event()
                assert isinstance(event, OrderFilled)
                fills.append((event.ts_ns, event.side, event.fill_qty_raw))
    return fills, decisions


def profile_kernel(work: Path, dataset: Path, top: int = 18) -> str:
    config = make_config(dataset, work / "kernel-journal-profile", "sma_crossover", SMA_PARAMS)
    profiler = cProfile.Profile()
    profiler.enable()
    backtest(config)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --- 2. bare loop -----------------------------------------------------------------------------


def bare_loop(opens: list[int], closes: list[int], weight_e8: int = WEIGHT_E8) -> dict[str, Any]:  # noqa: C901
    """SMA(10/30) long-only crossover in pure Python; integers throughout, as the kernel."""
    fast, slow = FAST, SLOW
    ring = [0] * slow
    count = sum_fast = sum_slow = 0
    last = prev = 0
    cash = INITIAL_CASH_MINOR
    position = 0
    pending = 0  # signed quantity to fill at the next bar's open
    trades: list[tuple[int, int]] = []
    for step, px in enumerate(closes):
        if pending:
            notional = abs(pending) * opens[step]
            commission = (notional * COMMISSION_E8 + RATE // 2) // RATE
            cash -= (notional if pending > 0 else -notional) + commission
            position += pending
            trades.append((step, 1 if pending > 0 else -1))
            pending = 0
        slot = count % slow
        sum_slow += px - ring[slot]
        sum_fast += px
        if count >= fast:
            sum_fast -= ring[(count - fast) % slow]
        ring[slot] = px
        count += 1  # noqa: SIM113 - window fill count, as sma_cross_state_nb
        if count >= slow:
            diff = sum_fast * slow - sum_slow * fast
            if diff > 0:
                last = 1
            elif diff < 0:
                last = -1
        if prev and last != prev:
            if last > 0 and position == 0:
                qty = (cash * weight_e8 // RATE) // px
                if qty:
                    pending = qty
            elif last < 0 and position > 0:
                pending = -position
        prev = last
    nav = cash + position * closes[-1]
    return {"trades": trades, "nav_minor": nav}


def bench_bare(
    report: Report,
    panel_lists: tuple[list[int], list[int]],
    kernel: dict[str, Any],
    case: str = "kernel",
    weight_e8: int = WEIGHT_E8,
) -> dict:
    opens, closes = panel_lists
    seconds, result = best_of(3, lambda _: bare_loop(opens, closes, weight_e8))
    kernel_bps = kernel["info"]["bars_per_s"]
    bare_bps = report.bars / seconds
    kernel_trades = len(kernel["fills"])
    bare_trades = len(result["trades"])
    label = "bare loop" if case == "kernel" else f"bare loop ({case})"
    report.add(
        Row(
            label,
            "pure-Python loop",
            bare_bps,
            "bars/s",
            note=f"best of 3; no journal; weight {weight_e8}e-8",
        )
    )
    report.add(
        Row(
            case,
            f"{case} vs bare loop",
            kernel_bps,
            "bars/s",
            baseline=label,
            ratio=kernel_bps / bare_bps,
            target=TARGETS["kernel/bare"] if case == "kernel" else None,
            note=f"trades: kernel {kernel_trades:,}, bare {bare_trades:,}",
        )
    )
    ts0 = first_ts(kernel)
    kernel_steps = [((ts - ts0) // MINUTE_NS, side) for ts, side, _ in kernel["fills"]]
    agree = kernel_steps == result["trades"]
    print(
        f"trade counts: kernel fills {kernel_trades:,}, bare loop trades {bare_trades:,}; "
        f"identical (step, side) lists: {agree}; NAV kernel {kernel['info']['nav_minor']:,} "
        f"bare {result['nav_minor']:,} (minor units)"
    )
    report.details["bare" if case == "kernel" else f"bare_{case}"] = {
        "seconds": seconds,
        "bars_per_s": bare_bps,
        "trades": bare_trades,
        "kernel_trades": kernel_trades,
        "same_trade_list": agree,
        "nav_minor": result["nav_minor"],
        "kernel_nav_minor": kernel["info"]["nav_minor"],
    }
    assert kernel_trades == bare_trades, f"trade counts differ: kernel {kernel_trades}, bare {bare_trades}"
    return report.details["bare" if case == "kernel" else f"bare_{case}"]


def first_ts(kernel: dict[str, Any]) -> int:
    return int(kernel["ts0"])


# --- 3. backtrader ----------------------------------------------------------------------------


def bench_backtrader(report: Report, panel: Any, kernel: dict[str, Any]) -> None:
    import backtrader as bt
    import numpy as np
    import pandas as pd

    ts = panel.ts_ns
    frame = pd.DataFrame(
        {
            "open": panel.open[:, 0] / 100.0,
            "high": panel.high[:, 0] / 100.0,
            "low": panel.low[:, 0] / 100.0,
            "close": panel.close[:, 0] / 100.0,
            "volume": panel.volume[:, 0].astype(np.float64),
        },
        index=pd.to_datetime(ts, unit="ns"),
    )
    executed: list[tuple[Any, int, float]] = []
    refused: list[str] = []
    total = len(frame)

    class SmaCross(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            fast = bt.indicators.SMA(self.data.close, period=FAST)
            slow = bt.indicators.SMA(self.data.close, period=SLOW)
            self.cross = bt.indicators.CrossOver(fast, slow)

        def notify_order(self, order: Any) -> None:
            if order.status in (order.Margin, order.Rejected):
                refused.append(order.getstatusname())
            if order.status == order.Completed:
                executed.append((order.executed.dt, 1 if order.isbuy() else -1, abs(order.executed.size)))

        def next(self) -> None:
            done = len(self)
            if done % 100_000 == 0:
                log(f"backtrader: {done:,}/{total:,} bars")
            if self.cross[0] > 0 and not self.position:
                self.order_target_percent(target=WEIGHT)
            elif self.cross[0] < 0 and self.position:
                self.close()

    cerebro = bt.Cerebro()
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcommission(commission=0.001)
    cerebro.broker.set_cash(1_000_000)
    log("backtrader: running (several minutes on 1M bars)")
    t0 = time.perf_counter()
    cerebro.run(runonce=True, preload=True, stdstats=False)
    seconds = time.perf_counter() - t0
    bt_bps = report.bars / seconds
    kernel_bps = kernel["info"]["bars_per_s"]
    report.add(Row("backtrader", "backtrader 1.9 run", bt_bps, "bars/s", note=f"{seconds:.1f}s, one run"))
    ts0 = int(ts[0])
    bt_trades = [(_bt_step(bt, dt, ts0), side) for dt, side, _ in executed]
    kernel_trades = [((t - ts0) // MINUTE_NS, side) for t, side, _ in kernel["fills"]]
    sizes = {
        "kernel": {(t - ts0) // MINUTE_NS: qty for t, _, qty in kernel["fills"]},
        "backtrader": {_bt_step(bt, dt, ts0): size for dt, _, size in executed},
    }
    diff = compare_trades(kernel_trades, bt_trades, panel.close[:, 0], sizes)
    report.add(
        Row(
            "kernel",
            "kernel vs backtrader",
            kernel_bps,
            "bars/s",
            baseline="backtrader",
            ratio=kernel_bps / bt_bps,
            target=TARGETS["kernel/backtrader"],
            note=(
                f"orders: kernel {len(kernel_trades):,}, bt {len(bt_trades):,}; "
                f"{diff['differences']} differ, {diff['explained_by_ties']} by exact ties"
            ),
        )
    )
    dense = report.details.get("dense")
    if dense is not None:
        report.add(
            Row(
                "dense",
                "dense vs backtrader",
                dense["bars_per_s"],
                "bars/s",
                baseline="backtrader",
                ratio=dense["bars_per_s"] / bt_bps,
                note="backtrader's SMA run as the baseline (same bars, same per-bar work)",
            )
        )
    print(f"backtrader orders refused (margin/rejected): {len(refused)}")
    report.details["backtrader"] = {"seconds": seconds, "bars_per_s": bt_bps, "refused": len(refused), **diff}


def _bt_step(bt: Any, dt: float, ts0: int) -> int:
    stamp = bt.num2date(dt)
    ns = round((stamp.replace(tzinfo=None) - _EPOCH).total_seconds() / 60.0) * MINUTE_NS
    return (ns - ts0) // MINUTE_NS


def _epoch() -> Any:
    import datetime as dt

    return dt.datetime(1970, 1, 1)  # noqa: DTZ001 - naive UTC, as backtrader's dates


_EPOCH = _epoch()


def exact_ties(close: Any) -> Any:
    """Steps where sum_fast * slow == sum_slow * fast exactly (both averages exist)."""
    import numpy as np

    csum = np.concatenate([[0], np.cumsum(close.astype(np.int64))])
    steps = np.arange(SLOW - 1, len(close))
    sum_fast = csum[steps + 1] - csum[steps + 1 - FAST]
    sum_slow = csum[steps + 1] - csum[steps + 1 - SLOW]
    return steps[sum_fast * SLOW == sum_slow * FAST]


def compare_trades(
    kernel: list[tuple[int, int]],
    other: list[tuple[int, int]],
    close: Any,
    sizes: dict[str, dict[int, float]] | None = None,
) -> dict[str, Any]:
    """Multiset difference of (step, side) trades; each difference is 'explained' when an
    exact integer tie of the two averages lies within TIE_WINDOW bars before it."""
    import numpy as np

    ties = exact_ties(close)
    only_kernel = sorted(_multiset_minus(kernel, other))
    only_other = sorted(_multiset_minus(other, kernel))
    explained = 0
    examples: list[dict[str, Any]] = []
    unexplained: list[dict[str, Any]] = []
    for source, trades in (("kernel", only_kernel), ("backtrader", only_other)):
        for step, side in trades:
            lo = np.searchsorted(ties, step - TIE_WINDOW)
            hi = np.searchsorted(ties, step, side="right")
            near = ties[lo:hi].tolist()
            explained += bool(near)
            item = {"only_in": source, "step": step, "side": side, "ties_before": near}
            if sizes is not None:
                item["qty"] = sizes[source].get(step)
            if near and len(examples) < 6:
                examples.append(item)
            if not near:
                unexplained.append(item)
    differences = len(only_kernel) + len(only_other)
    print(
        f"backtrader vs kernel: orders kernel {len(kernel):,}, backtrader {len(other):,}; "
        f"{differences} differing trades ({len(only_kernel)} only in kernel, {len(only_other)} only in "
        f"backtrader); {explained} explained by an exact SMA tie within {TIE_WINDOW} bars before; "
        f"{len(ties):,} exact ties in the series"
    )
    for example in examples:
        print(f"  explained: {example}")
    for item in unexplained[:40]:
        print(f"  unexplained: {item}")
    return {
        "kernel_orders": len(kernel),
        "backtrader_orders": len(other),
        "differences": differences,
        "only_kernel": len(only_kernel),
        "only_backtrader": len(only_other),
        "explained_by_ties": explained,
        "exact_ties_total": len(ties),
        "tie_window_bars": TIE_WINDOW,
        "examples": examples,
        "unexplained": unexplained,
    }


def _multiset_minus(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    from collections import Counter

    return list((Counter(a) - Counter(b)).elements())


# --- 4. journal append ------------------------------------------------------------------------


def bench_journal(report: Report, work: Path, journal_path: Path) -> None:
    import lmdb

    with open_journal(journal_path) as journal:
        events = [r.event() for r in itertools.islice(journal.records(), JOURNAL_EVENTS_CAP)]
    count = len(events)

    def append(kind: str, i: int) -> None:
        path = work / (f"append-{kind}-{i}" + (".sqlite" if kind == "sqlite" else ""))
        sink = open_journal(path, writable=True)
        try:
            for event in events:
                sink.append(event)
            sink.commit()
        finally:
            sink.close()

    lmdb_s, _ = best_of(3, lambda i: append("lmdb", i))
    sqlite_s, _ = best_of(3, lambda i: append("sqlite", i))
    payloads = [encode_event(event) for event in events]
    key = struct.Struct(">Q").pack

    def raw(i: int) -> None:
        env = lmdb.open(str(work / f"raw-lmdb-{i}"), map_size=1 << 40, max_dbs=2, subdir=True)
        db = env.open_db(b"records")
        try:
            for start in range(0, count, LMDB_TXN):
                items = [(key(seq), payloads[seq]) for seq in range(start, min(start + LMDB_TXN, count))]
                with env.begin(write=True, db=db) as txn:
                    txn.cursor().putmulti(items, append=True)
        finally:
            env.close()

    raw_s, _ = best_of(3, raw)
    raw_ps = count / raw_s
    note = f"{count:,} events of the kernel's mix; best of 3"
    report.add(Row("journal", "raw lmdb putmulti", raw_ps, "puts/s", note=f"baseline; txn {LMDB_TXN}"))
    for name, seconds in (("LMDB", lmdb_s), ("SQLite", sqlite_s)):
        rate = count / seconds
        report.add(
            Row(
                "journal",
                f"append+commit ({name})",
                rate,
                "events/s",
                baseline="raw lmdb",
                ratio=rate / raw_ps,
                target=TARGETS["journal/raw-lmdb"] if name == "LMDB" else None,
                note=note,
            )
        )
    report.details["journal"] = {
        "events": count,
        "lmdb_seconds": lmdb_s,
        "sqlite_seconds": sqlite_s,
        "raw_lmdb_seconds": raw_s,
        "payload_bytes": sum(map(len, payloads)),
    }


# --- 5. replay --------------------------------------------------------------------------------


def bench_replay(report: Report, journal_path: Path, kernel: dict[str, Any]) -> None:
    timings = []
    for _ in range(3):  # best of 3, as the kernel run
        t0 = time.perf_counter()
        with open_journal(journal_path) as journal:
            result = replay(journal, replay_builder)
        timings.append(time.perf_counter() - t0)
        assert result.ok, f"replay diverged: {result.divergence}"
    seconds = min(timings)
    rate = report.bars / seconds
    kernel_bps = kernel["info"]["bars_per_s"]
    report.add(
        Row(
            "replay",
            "replay (re-derive + rehash)",
            rate,
            "bars/s",
            baseline="kernel run",
            ratio=rate / kernel_bps,
            target=TARGETS["replay/kernel"],
            note=f"{result.records_compared:,} records compared, ok={result.ok}",
        )
    )
    report.details["replay"] = {
        "seconds": seconds,
        "records_compared": result.records_compared,
        "segments_rehashed": result.segments_rehashed,
        "ok": result.ok,
    }


# --- 6b. queue source ---------------------------------------------------------------------------


def derived_digest(journal_path: Path) -> tuple[str, int]:
    """A digest of a journal's derived records (inputs left out) and their count."""
    digest = hashlib.blake2b(digest_size=16)
    count = 0
    with open_journal(journal_path) as journal:
        for record in journal.records():
            if record.kind not in INPUT_KINDS:
                digest.update(record.payload)
                count += 1
    return digest.hexdigest(), count


def queued_run(dataset: Path, journal_path: Path, feed: list[Any], journal_bars: bool) -> tuple[float, float]:
    """The kernel fed through a queue source one ``BarsReceived`` at a time: the push loop's
    seconds, and the whole run's (setup to commit, as a replay is timed). The feed is built
    before, as a network client would hand it over."""
    start = time.perf_counter()
    config = make_config(dataset, journal_path, "sma_crossover", SMA_PARAMS)
    setup = build_setup(config, [make_strategy(config.strategy)], queued=True)
    journal = open_journal(journal_path, writable=True)
    try:
        journal_inputs(journal, config, dataset_ref(dataset), setup.panel)
        kernel = Kernel(setup, journal, arrived=0)
        kernel.begin()
        source = QueueSource(kernel, journal=journal if journal_bars else None, name="bench")
        t0 = time.perf_counter()
        for bars in feed:
            source.push(bars)
        seconds = time.perf_counter() - t0
        kernel.finish()
        journal.commit()
        assert source.counts.balanced and source.counts.accepted == len(feed)
    finally:
        journal.close()
    return seconds, time.perf_counter() - start


def bench_queue(report: Report, work: Path, dataset: Path, kernel: dict[str, Any]) -> None:
    """The same bars through the queue source, one push per bar: with the data set referenced
    (journal as the data-set run's, derived records compared) and with every bar journaled as
    a live source does (then replayed)."""
    panel, _ = load_panel(dataset)
    t0 = time.perf_counter()
    feed = [bars_at(panel, row) for row in range(panel.steps)]
    feed_s = time.perf_counter() - t0
    kernel_bps = kernel["info"]["bars_per_s"]
    reference = derived_digest(kernel["journal"])
    timings = []
    for attempt in range(3):
        path = work / f"queue-journal-{attempt}"
        seconds, _ = queued_run(dataset, path, feed, journal_bars=False)
        timings.append(seconds)
        log(f"queue run {attempt + 1}: {seconds:.2f}s")
    same = derived_digest(path) == reference
    assert same, "the queue source derived other events than the data-set run"
    rate = report.bars / min(timings)
    report.add(
        Row(
            "queue", "queue source, one push per bar", rate, "bars/s", baseline="kernel run",
            ratio=rate / kernel_bps,
            note=f"target 100,000 bars/s; derived records = data-set run's ({reference[1]:,}); "
            f"feed built before: {feed_s:.1f}s",
        )
    )  # fmt: skip
    live = work / "queue-live-journal"
    live_s, live_whole_s = queued_run(dataset, live, feed, journal_bars=True)
    live_rate = report.bars / live_s
    report.add(
        Row(
            "queue", "queue + every bar journaled", live_rate, "bars/s", baseline="kernel run",
            ratio=live_rate / kernel_bps, note="the paper/live path: BarsReceived before each step",
        )
    )  # fmt: skip
    t0 = time.perf_counter()
    with open_journal(live) as journal:
        outcome = replay(journal, replay_builder)
    replay_s = time.perf_counter() - t0
    assert outcome.ok, f"queued replay diverged: {outcome.divergence}"
    report.add(
        Row(
            "queue", "replay of the journaled bars", report.bars / replay_s, "bars/s",
            baseline="its run", ratio=live_whole_s / replay_s, target=TARGETS["replay/kernel"],
            note=f"{outcome.records_compared:,} records compared; both timed setup to end",
        )
    )  # fmt: skip
    report.details["queue"] = {
        "seconds": min(timings), "bars_per_s": rate, "live_seconds": live_s, "replay_seconds": replay_s,
        "feed_seconds": feed_s, "derived_records": reference[1], "same_as_dataset_run": same,
    }  # fmt: skip


# --- 6. cross-section -------------------------------------------------------------------------


def bench_cross_section(report: Report, work: Path, seed: int) -> None:
    symbols, bars = 500, 2520
    dataset = work / "xs-1d"
    synth_dataset(
        dataset, seed=seed, symbols=symbols, bars=bars, frequency="1d", calendar="24x7", start="2020-01-01"
    )

    def run(i: int) -> BacktestResult:
        return backtest(make_config(dataset, work / f"xs-journal-{i}", "momentum", MOMENTUM_PARAMS))

    seconds, result = best_of(2, run)
    report.add(
        Row(
            "cross-section",
            "momentum 500 x 2,520 1d",
            symbols * bars / seconds,
            "bar-values/s",
            note=f"{bars / seconds:,.0f} steps/s; {result.records:,} records; best of 2",
        )
    )
    report.details["cross_section"] = {
        "seconds": seconds,
        "symbols": symbols,
        "bars": bars,
        "steps_per_s": bars / seconds,
        "bar_values_per_s": symbols * bars / seconds,
        "records": result.records,
    }


# --- 8. peak memory ---------------------------------------------------------------------------

PEAK_CASES = ("kernel", "dense", "replay", "queue", "bare")


def vm_hwm_kib() -> int:
    """This process's peak resident set (``VmHWM``), KiB; 0 where /proc is not there."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_case(case: str, dataset: Path, work: Path, journal: Path) -> int:
    """Run one case once in this (fresh) process; its peak resident set, KiB."""
    if case == "replay":
        with open_journal(journal) as source:
            assert replay(source, replay_builder).ok
    elif case == "queue":  # every bar journaled, the live path
        panel, _ = load_panel(dataset)
        feed = [bars_at(panel, row) for row in range(panel.steps)]
        queued_run(dataset, work / "peak-queue-journal", feed, journal_bars=True)
    elif case == "bare":
        panel, _ = load_panel(dataset)
        bare_loop(panel.open[:, 0].tolist(), panel.close[:, 0].tolist())
    else:
        params = SMA_PARAMS if case == "kernel" else DENSE_PARAMS
        backtest(make_config(dataset, work / f"peak-{case}-journal", "sma_crossover", params))
    return vm_hwm_kib()


def bench_peak_memory(report: Report, work: Path, dataset: Path, journal: Path) -> None:
    import subprocess

    peaks = {}
    for case in PEAK_CASES:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--peak-case",
            case,
            "--peak-dataset",
            str(dataset),
            "--peak-work",
            str(work),
            "--peak-journal",
            str(journal),
        ]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        peaks[case] = int(out.strip().splitlines()[-1]) / 1024
        report.add(
            Row(
                "peak memory",
                f"{case} (fresh process)",
                peaks[case],
                "MiB",
                note="VmHWM: peak resident set incl. interpreter, numba and data",
            )
        )
    report.details["peak_mib"] = peaks


# --- output -----------------------------------------------------------------------------------


def print_table(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Tape benchmarks: {report.bars:,} x 1m bars, seed {report.seed}")
    for column, justify in (
        ("workload", "left"),
        ("metric", "left"),
        ("value", "right"),
        ("unit", "left"),
        ("vs", "left"),
        ("ratio", "right"),
        ("target", "right"),
        ("", "center"),
        ("note", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in report.rows:
        passed = row.passed
        mark = "" if passed is None else ("[green]ok[/]" if passed else "[red]MISS[/]")
        table.add_row(
            row.workload,
            row.metric,
            f"{row.value:,.0f}",
            row.unit,
            row.baseline,
            "" if row.ratio is None else f"{row.ratio:.3g}",
            "" if row.target is None else f">= {row.target:g}",
            mark,
            row.note,
        )
    Console(width=200).print(table)


def to_json(report: Report) -> dict[str, Any]:
    return {
        "bars": report.bars,
        "seed": report.seed,
        "python": sys.version.split()[0],
        "rows": [
            {
                "workload": r.workload,
                "metric": r.metric,
                "value": r.value,
                "unit": r.unit,
                "baseline": r.baseline or None,
                "ratio": r.ratio,
                "target": r.target,
                "passed": r.passed,
                "note": r.note,
            }
            for r in report.rows
        ],
        "details": report.details,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-backtrader", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    parser.add_argument("--profile", action="store_true", help="always cProfile the kernel run")
    parser.add_argument("--peak-case", choices=PEAK_CASES, help=argparse.SUPPRESS)
    parser.add_argument("--peak-dataset", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--peak-work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--peak-journal", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_case:  # a child of bench_peak_memory
        print(peak_case(args.peak_case, args.peak_dataset, args.peak_work, args.peak_journal))
        return 0
    report = Report(bars=args.bars, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="tape-bench-") as tmp:
        run_all(report, Path(tmp), args)
    print_table(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(report), indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


def run_all(report: Report, work: Path, args: argparse.Namespace) -> None:
    log("warming numba on a tiny data set")
    warm_up(work, args.seed)
    log(f"generating {args.bars:,} 1m bars")
    dataset = synth_1m(work / "bars-1m", args.seed, args.bars)
    panel, _ = load_panel(dataset)
    lists = (panel.open[:, 0].tolist(), panel.close[:, 0].tolist())
    log("kernel")
    kernel = bench_kernel(report, work, dataset)
    kernel["ts0"] = int(panel.ts_ns[0])
    log("bare loop")
    bench_bare(report, lists, kernel)
    missed = report.rows[-1].passed is False
    log("dense")
    dense = bench_kernel(report, work, dataset, "dense", DENSE_PARAMS)
    dense["ts0"] = kernel["ts0"]
    bench_bare(report, lists, dense, "dense", DENSE_WEIGHT_E8)
    if missed or args.profile:
        log("cProfile of the kernel run")
        profile = profile_kernel(work, dataset)
        print(profile)
        report.details["kernel_profile"] = profile
    log("journal append")
    bench_journal(report, work, kernel["journal"])
    log("replay")
    bench_replay(report, kernel["journal"], kernel)
    log("queue source")
    bench_queue(report, work, dataset, kernel)
    log("cross-section")
    bench_cross_section(report, work, args.seed)
    log("peak memory (fresh processes)")
    bench_peak_memory(report, work, dataset, kernel["journal"])
    if not args.skip_backtrader:
        log("backtrader")
        bench_backtrader(report, panel, kernel)


if __name__ == "__main__":
    raise SystemExit(main())
