"""pytest-benchmark micro-benchmarks (timings are recorded, never asserted).

Run with ``pytest bench/`` (the main suite collects ``tests/`` only)::

    NUMBA_CACHE_DIR=.cache/numba .venv/bin/pytest bench/ --benchmark-only
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.events import DayClosed, LedgerPosted, OrderFilled, OrderSubmitted, PostingRecord
from domain.ledger import Position, fill_postings
from kernel.store import open_journal
from sim._match_nb import LIMIT, MARKET, match_step_nb

pytest.importorskip("pytest_benchmark")

TS0 = 1_577_836_800_000_000_000


def _event_mix(count: int) -> list[object]:
    """A kernel-like mix: submit, fill, ledger posting, day close."""
    events: list[object] = []
    for i in range(count // 4):
        ts = TS0 + i * 60_000_000_000
        order_id = f"sma-20200101-{i:06d}"
        side = 1 if i % 2 == 0 else -1
        events.append(
            OrderSubmitted(
                ts_ns=ts,
                order_id=order_id,
                strategy_id="sma",
                instrument_id=1,
                side=side,
                order_type="market",
                qty_raw=1000 + i,
                limit_px_raw=0,
                decision_px_raw=10_000 + i,
            )
        )
        events.append(
            OrderFilled(
                ts_ns=ts,
                order_id=order_id,
                instrument_id=1,
                side=side,
                fill_qty_raw=1000 + i,
                fill_px_raw=10_001 + i,
                leaves_qty_raw=0,
                notional_minor=(1000 + i) * (10_001 + i),
                commission_minor=(1000 + i) * (10_001 + i) // 1000,
                currency="USD",
            )
        )
        events.append(
            LedgerPosted(
                ts_ns=ts,
                txn_id=f"T{i:09d}",
                memo=f"fill {order_id}",
                postings=[
                    PostingRecord("assets:cash:USD", "USD", -10_000),
                    PostingRecord("assets:inventory:1", "USD", 9_990),
                    PostingRecord("expenses:commission:USD", "USD", 10),
                ],
            )
        )
        events.append(
            DayClosed(
                ts_ns=ts,
                day=20200101,
                step=i,
                nav_minor=100_000_000 + i,
                cash_minor=5_000_000,
                gross_exposure_minor=95_000_000,
                currency="USD",
            )
        )
    return events


def test_journal_append_10k_lmdb(benchmark, tmp_path: Path) -> None:
    events = _event_mix(10_000)
    counter = itertools.count()

    def setup() -> tuple[tuple[Path], dict[str, object]]:
        return (tmp_path / f"journal-{next(counter)}",), {}

    def append_all(path: Path) -> int:
        journal = open_journal(path, writable=True)
        try:
            for event in events:
                journal.append(event)  # type: ignore[arg-type]
            journal.commit()
            return len(journal)
        finally:
            journal.close()

    records = benchmark.pedantic(append_all, setup=setup, rounds=10, iterations=1)
    assert records == len(events)


def test_fill_postings(benchmark) -> None:
    position = Position(1_000, 10_000_000)
    fill = OrderFilled(
        ts_ns=TS0,
        order_id="sma-20200101-000001",
        instrument_id=1,
        side=-1,
        fill_qty_raw=1_500,
        fill_px_raw=10_250,
        leaves_qty_raw=0,
        notional_minor=15_375_000,
        commission_minor=15_375,
        currency="USD",
    )
    postings, after = benchmark(fill_postings, position, fill)
    assert after.qty_raw == -500
    assert sum(p.amount_minor for p in postings) == 0


def test_match_step_nb_1000_orders(benchmark) -> None:
    rng = np.random.default_rng(7)
    orders, names = 1_000, 1_000
    sides = np.where(rng.random(orders) < 0.5, 1, -1).astype(np.int64)
    types = np.where(rng.random(orders) < 0.7, MARKET, LIMIT).astype(np.int64)
    bar_open = rng.integers(1_000, 100_000, names).astype(np.int64)
    limits = (bar_open[rng.integers(0, names, orders)] * rng.uniform(0.98, 1.02, orders)).astype(np.int64)
    qty = rng.integers(1, 10_000, orders).astype(np.int64)
    columns = rng.integers(0, names, orders).astype(np.int64)
    lots = np.ones(orders, dtype=np.int64)
    ticks = np.ones(orders, dtype=np.int64)
    high = bar_open + rng.integers(0, 500, names)
    low = np.maximum(bar_open - rng.integers(0, 500, names), 1)
    volume = rng.integers(1_000, 1_000_000, names).astype(np.int64)
    valid = np.ones(names, dtype=np.bool_)
    out_px = np.zeros(orders, dtype=np.int64)
    out_qty = np.zeros(orders, dtype=np.int64)
    args = (sides, types, limits, qty, columns, lots, ticks, bar_open, high, low, volume, valid)
    match_step_nb(*args, 5_000, 0, out_px, out_qty)  # compile / load from cache outside timing
    benchmark(match_step_nb, *args, 5_000, 0, out_px, out_qty)
    assert np.count_nonzero(out_qty) >= int(np.count_nonzero(types == MARKET))


def test_sweep_point_50_names_2520_days(benchmark, tmp_path: Path) -> None:
    """One ``tape sweep`` point (``run_point``: backtest, journal, metrics) on the sweep bench's
    data (bench/bench_sweep.py), for the per-run cost behind its runs per second."""
    import bench.bench_sweep as sweep

    dataset = tmp_path / "data"
    sweep.synth_dataset(dataset, seed=7, symbols=50, bars=2520, frequency="1d", calendar="XNYS",
                        start="2015-01-02")  # fmt: skip
    config = sweep.write_config(tmp_path / "sweep.toml", dataset, [10], [50])
    counter = itertools.count()

    def setup() -> tuple[tuple[str], dict[str, object]]:
        point = sweep.point_config(tmp_path, config, 10, 50, f"micro{next(counter)}")
        return (point.canonical_json(),), {}

    result = benchmark.pedantic(lambda text: sweep.run_point((text, False)), setup=setup, rounds=3)
    assert result["metrics"]["trades"] > 0


def test_vectorbt_20_points_50_names_2520_days(benchmark, tmp_path: Path) -> None:
    """The vectorbt side of bench/bench_sweep.py for 20 grid points (one from_signals call)."""
    vbt = pytest.importorskip("vectorbt", reason="needs vectorbt: pip install 'tape[bench]'")
    import bench.bench_sweep as sweep

    dataset = tmp_path / "data"
    sweep.synth_dataset(dataset, seed=7, symbols=50, bars=2520, frequency="1d", calendar="XNYS",
                        start="2015-01-02")  # fmt: skip
    close, opens, _ = sweep.frames(dataset)
    grid_points = sweep.points(*sweep.grid(20))
    sweep.vbt_sweep(vbt, close, opens, grid_points[:2], 200)  # compile / load from cache outside timing
    result = benchmark.pedantic(sweep.vbt_sweep, args=(vbt, close, opens, grid_points, 200), rounds=3)
    assert len(result["trades"]) == 20
