"""The edge's latencies (issue 11, "Measure"), each against a baseline measured in the same run.

1. journal before send: an ``OrderSubmitted`` appended and committed (LMDB: one transaction,
   synced) before an order could leave, per order, against a bare ``write`` + ``fsync`` of the
   same bytes to a file in the same folder. Target: p99 <= 2x the bare fsync's p99.
2. market data to order, in two legs on the local exchange (a loopback Binance, the real
   ccxt.pro client):
   * venue leg: the exchange publishes a closed kline -> ``CcxtVenue.watch_bars`` returns it;
   * kernel leg: ``QueueSource.push`` of a step's bars -> the kernel has decided and its order
     is submitted (the steps where SMA(10/30) at a small weight trades), against the pushes
     where it does not decide (the per-bar floor).
   Target: p99 of the two legs together <= 5 ms.
3. order out (``tape live``): ``LiveBridge.send`` of one market order (ccxt ``create_order`` on
   the local exchange, its answer turned into the kernel's ack), against a bare REST round trip
   of the same client to the same server (``fetch_time``) in the same run.

Run: ``.venv/bin/python bench/bench_edge.py [--orders 2000] [--bars 20000]``; prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

from cli.wiring import make_strategies  # noqa: E402
from domain.events import OrderSubmitted, encode_event  # noqa: E402
from domain.orders import Order  # noqa: E402
from kernel.loop import Kernel  # noqa: E402
from kernel.store import open_journal  # noqa: E402
from kernel.stream import QueueSource  # noqa: E402
from lake.store import dataset_ref, load_panel  # noqa: E402
from lake.synth import synth_dataset  # noqa: E402
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, journal_inputs  # noqa: E402
from sim.queued import bars_at  # noqa: E402


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


def journal_before_send(work: Path, orders: int) -> dict[str, float]:
    journal = open_journal(work / "orders-journal", writable=True)
    bare = os.open(work / "bare.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    events = [
        OrderSubmitted(
            ts_ns=1_700_000_000_000_000_000 + i,
            order_id=f"live-20261205-{i:06d}",
            strategy_id="live",
            instrument_id=1,
            side=1 if i % 2 else -1,
            order_type="limit",
            qty_raw=100 + i,
            limit_px_raw=12_345,
            decision_px_raw=12_340,
        )
        for i in range(orders)
    ]
    journaled, synced = [], []
    try:
        for event in events:  # interleaved, so both see the same disk at the same moments
            t0 = time.perf_counter()
            journal.append(event)
            journal.commit()
            journaled.append(time.perf_counter() - t0)
            data = encode_event(event)
            t0 = time.perf_counter()
            os.write(bare, data)
            os.fsync(bare)
            synced.append(time.perf_counter() - t0)
    finally:
        journal.close()
        os.close(bare)
    return {
        "journal_p50_ms": pct(journaled, 50) * 1e3,
        "journal_p99_ms": pct(journaled, 99) * 1e3,
        "fsync_p50_ms": pct(synced, 50) * 1e3,
        "fsync_p99_ms": pct(synced, 99) * 1e3,
    }


def kernel_leg(work: Path, bars: int) -> dict[str, float]:
    data = work / "bars"
    synth_dataset(data, seed=7, symbols=1, bars=bars, frequency="1m", calendar="24x7", start="2020-01-01")
    config = BacktestConfig(
        run_id="bench-edge",
        dataset=str(data),
        journal=str(work / "edge-journal"),
        strategy=StrategyConfig(name="sma_crossover", params={"fast": 10, "slow": 30, "weight": 0.01}),
    )
    setup = build_setup(config, make_strategies(config), queued=True)
    full, _ = load_panel(data)
    feed = [bars_at(full, row) for row in range(full.steps)]
    journal = open_journal(config.journal, writable=True)
    deciding, quiet = [], []
    try:
        journal_inputs(journal, config, dataset_ref(data), setup.panel)
        kernel = Kernel(setup, journal, arrived=0)
        kernel.begin()
        source = QueueSource(kernel, journal=journal, name="bench")
        for step in feed:
            assert step is not None
            before = kernel.desk.state.order_counter
            t0 = time.perf_counter()
            source.push(step)
            elapsed = time.perf_counter() - t0
            (deciding if kernel.desk.state.order_counter != before else quiet).append(elapsed)
        journal.commit()
    finally:
        journal.close()
    return {
        "orders": len(deciding),
        "order_p50_ms": pct(deciding, 50) * 1e3,
        "order_p99_ms": pct(deciding, 99) * 1e3,
        "quiet_p50_ms": pct(quiet, 50) * 1e3,
        "quiet_p99_ms": pct(quiet, 99) * 1e3,
    }


async def venue_leg(work: Path, count: int) -> dict[str, float]:
    import ccxt.pro

    from venues.ccxt_venue import CcxtVenue
    from venues.local_exchange import LocalExchange, markets_from_dataset

    data = work / "venue-bars"
    synth_dataset(
        data, seed=9, symbols=1, bars=count + 5, frequency="1m", calendar="24x7", start="2020-01-01"
    )
    panel, _ = load_panel(data)
    inst = panel.instruments[0]
    instrument = msgspec.structs.replace(inst, symbol=f"{inst.symbol}/{inst.currency}")
    async with LocalExchange(markets_from_dataset(data), {"USD": "1000000"}) as exchange:
        client = ccxt.pro.binance(exchange.ccxt_config(rate_limit_ms=1))
        try:
            venue = CcxtVenue(client, [instrument])
            await venue.load_markets()
            watching = asyncio.create_task(venue.watch_bars(instrument.instrument_id, "1m"))
            await exchange.wait_for_kline_subscriptions(1)
            samples = []
            for _ in range(count):
                t0 = time.perf_counter()
                await exchange.step()
                await watching
                samples.append(time.perf_counter() - t0)
                watching = asyncio.create_task(venue.watch_bars(instrument.instrument_id, "1m"))
            watching.cancel()
        finally:
            await client.close()
    return {"venue_p50_ms": pct(samples, 50) * 1e3, "venue_p99_ms": pct(samples, 99) * 1e3}


async def order_leg(work: Path, count: int) -> dict[str, float]:
    import ccxt.pro

    from kernel.outbox import OutboxVenue, VenueRequest
    from venues.ccxt_venue import CcxtVenue
    from venues.live_bridge import LiveBridge
    from venues.local_exchange import LocalExchange, markets_from_dataset

    data = work / "order-bars"
    synth_dataset(data, seed=4, symbols=1, bars=10, frequency="1m", calendar="24x7", start="2020-01-01")
    panel, _ = load_panel(data)
    inst = panel.instruments[0]
    instrument = msgspec.structs.replace(inst, symbol=f"{inst.symbol}/{inst.currency}")
    async with LocalExchange(markets_from_dataset(data), {"USD": "100000000000"}) as exchange:
        await exchange.step()  # a price for market orders
        client = ccxt.pro.binance(exchange.ccxt_config(rate_limit_ms=0))
        try:
            venue = CcxtVenue(client, [instrument])
            await venue.load_markets()
            outbox = OutboxVenue()
            bridge = LiveBridge(venue, outbox, [instrument], tag="tbench", clock=time.time_ns)
            sends, trips = [], []
            for i in range(count):
                order = Order(
                    order_id=f"bench-20200101-{i:06d}", strategy_id="bench",
                    instrument_id=instrument.instrument_id, side=1, order_type="market",
                    qty_raw=instrument.lot_raw, limit_px_raw=0,
                )  # fmt: skip
                t0 = time.perf_counter()
                await bridge.send([VenueRequest("place", order)])
                sends.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await client.fetch_time()
                trips.append(time.perf_counter() - t0)
            assert outbox.waiting >= count, "every order acknowledged"
        finally:
            await client.close()
    return {
        "send_p50_ms": pct(sends, 50) * 1e3,
        "send_p99_ms": pct(sends, 99) * 1e3,
        "trip_p50_ms": pct(trips, 50) * 1e3,
        "trip_p99_ms": pct(trips, 99) * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--bars", type=int, default=20000)
    parser.add_argument("--klines", type=int, default=500)
    parser.add_argument("--sends", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tape-edge-") as tmp:
        work = Path(tmp)
        durable = journal_before_send(work, args.orders)
        kernel = kernel_leg(work, args.bars)
        venue = asyncio.run(venue_leg(work, args.klines))
        out = asyncio.run(order_leg(work, args.sends))
    ratio = durable["journal_p99_ms"] / durable["fsync_p99_ms"]
    total_p99 = venue["venue_p99_ms"] + kernel["order_p99_ms"]
    rows = [
        (
            "journal before send",
            f"p50 {durable['journal_p50_ms']:.3f} ms, p99 {durable['journal_p99_ms']:.3f} ms",
            f"bare fsync p50 {durable['fsync_p50_ms']:.3f}, p99 {durable['fsync_p99_ms']:.3f} ms; "
            f"p99 ratio {ratio:.2f} (target <= 2)",
        ),
        (
            "venue leg (kline -> watch)",
            f"p50 {venue['venue_p50_ms']:.3f} ms, p99 {venue['venue_p99_ms']:.3f} ms",
            f"{args.klines} klines through ccxt.pro on the local exchange",
        ),
        (
            "kernel leg (push -> order)",
            f"p50 {kernel['order_p50_ms']:.3f} ms, p99 {kernel['order_p99_ms']:.3f} ms",
            f"{kernel['orders']} pushes that sent an order; pushes without: "
            f"p50 {kernel['quiet_p50_ms']:.3f}, p99 {kernel['quiet_p99_ms']:.3f} ms",
        ),
        ("market data to order", f"p99 <= {total_p99:.3f} ms", "sum of the two legs' p99 (target <= 5 ms)"),
        (
            "order out (send -> answer)",
            f"p50 {out['send_p50_ms']:.3f} ms, p99 {out['send_p99_ms']:.3f} ms",
            f"bare REST round trip p50 {out['trip_p50_ms']:.3f}, p99 {out['trip_p99_ms']:.3f} ms; "
            f"p99 ratio {out['send_p99_ms'] / out['trip_p99_ms']:.2f}",
        ),
    ]
    for name, value, note in rows:
        print(f"{name:28} {value:36} {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
