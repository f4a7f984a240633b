"""Crash drill for live sessions: SIGKILL ``tape live`` at seeded random points while it trades a
local exchange that runs in its own process (``python -m venues.local_exchange``, a loopback
Binance through the real ccxt.pro client, 0.1% fees, taken by default in the asset received as
Binance does without BNB; ``--fee-in quote`` for the quote asset), carry it on with
``--resume`` each time, and check what a crash must not break:

* no order sent twice: every client order id appears once among the exchange's orders, and
  each belongs to an order the journal holds;
* every execution booked exactly once: per order, the quantity the journal's fills book equals
  what the exchange executed;
* reconciliation converges: the last one (at the session's end) finds the exchange's balances
  equal to the book's to the last 1e-8;
* the journal replays bit for bit (``tape replay``).

The exchange plays a bar only while the session watches both markets, so a dead session misses
no bar: the market waits for it. A trial kills the session after a random number (0-8) of bars
since it started, which includes kills while it re-derives its journal or reconciles.

Run: ``.venv/bin/python bench/drill_live_kills.py [--trials 50] [--seed 11]``; prints a line per
trial and a summary, and exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

from domain.events import (  # noqa: E402
    BarsReceived,
    OrderFilled,
    OrderSubmitted,
    VenueReconciled,
)
from domain.fixed import to_decimal  # noqa: E402
from kernel.store import open_journal  # noqa: E402
from lake.store import load_panel  # noqa: E402
from tests.factories import count_events, market_and_history  # noqa: E402

HISTORY = 60
KEYS = {"TAPE_DRILL_API_KEY": "drill-key", "TAPE_DRILL_SECRET": "drill-secret"}


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def _market(root: Path, seed: int, bars: int) -> tuple[Path, Path, object]:
    full, history = market_and_history(root, seed=seed, bars=bars, history=HISTORY)
    panel, _ = load_panel(full)
    return full, history, panel


def _config(root: Path, history: Path, journal: Path, panel: object) -> Path:
    ts = panel.ts_ns  # type: ignore[attr-defined]
    config = root / "live.toml"
    config.write_text(
        f"""run_id = "live-kill-drill"
dataset = "{history}"
journal = "{journal}"
initial_cash = "1000000"

[strategy]
name = "sma_crossover"
params = {{ fast = 3, slow = 8, weight = 0.5 }}

[paper]
exchange = "binance"
start = "{_iso(int(ts[HISTORY]))}"
end = "{_iso(int(ts[-1]))}"
grace_s = {5 * 86_400}
clock = "venue"

[venue]
kind = "live"

[account]
type = "cash"

[live]
keys_env = "TAPE_DRILL"
"""
    )
    return config


def _checks(journal: Path, state: dict[str, object]) -> tuple[list[str], dict[str, int]]:
    """What the drill checks (module docstring), as failures and counts."""
    failures: list[str] = []
    with open_journal(journal) as store:
        events = [event for _, event in store.events()]
    submitted = {e.order_id: e for e in events if isinstance(e, OrderSubmitted)}
    booked: Counter[str] = Counter()
    for e in events:
        if isinstance(e, OrderFilled):
            booked[e.order_id] += e.fill_qty_raw
    orders = state["orders"]
    assert isinstance(orders, list)
    ids = Counter(order["client_order_id"] for order in orders)
    twice = [cid for cid, n in ids.items() if n > 1]
    if twice:
        failures.append(f"client ids sent twice: {twice}")
    by_number = {oid.rsplit("-", 1)[-1]: oid for oid in submitted}
    for order in orders:
        number = order["client_order_id"].rsplit("-", 1)[-1]
        oid = by_number.get(number)
        if oid is None:
            failures.append(f"exchange order {order['client_order_id']} is not in the journal")
            continue
        digits = 0  # the drill's synthetic names trade whole units
        executed = Decimal(order["executed"])
        if to_decimal(booked[oid], digits) != executed:
            failures.append(f"{oid}: booked {booked[oid]}, the exchange executed {executed}")
    reconciled = [e for e in events if isinstance(e, VenueReconciled)]
    last = reconciled[-1] if reconciled else None
    if last is None or last.when != "stop" or last.differences:
        failures.append(f"last reconciliation: {last}")
    counts = {
        "orders at the exchange": len(orders),
        "orders journaled": len(submitted),
        "fills booked": sum(1 for e in events if isinstance(e, OrderFilled)),
        "reconciliations": len(reconciled),
        "with differences": sum(1 for e in reconciled if e.differences),
        "orders rejected as never sent": sum(
            1 for e in reconciled for d in e.differences if "never reached the venue" in d
        ),
    }
    return failures, counts


def _trials(
    trials: int, rng: random.Random, command: list[str], journal: Path, live: int, env: dict[str, str]
) -> int:
    """Start, kill after 0-8 bars, carry on: ``trials`` times (fewer once the end is near).
    Returns the kills done, or -1 when a session exited with an error."""
    kills = 0
    for trial in range(trials):
        before = count_events(journal, BarsReceived)
        if before >= live - 3:
            break
        resume = journal.exists() and _records(journal) > 0
        if journal.exists() and not resume:
            _remove(journal)  # killed before its first commit: nothing to carry on
        target = before + rng.randint(0, 8)
        process = subprocess.Popen(
            command + (["--resume"] if resume else []),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while count_events(journal, BarsReceived) < target and time.monotonic() < deadline:
            if process.poll() is not None:
                break
            time.sleep(0.005)
        process.kill()
        output, _ = process.communicate(timeout=30)
        if process.returncode == 4:  # the venue did not answer (a loaded machine): carry on
            print(f"trial {trial + 1:3d}: the venue did not answer in time (exit 4); carrying on")
        elif process.returncode not in (-9, 0):
            print(output)
            print(f"trial {trial + 1}: exit {process.returncode}")
            return -1
        kills += 1
        after = count_events(journal, BarsReceived)
        print(f"trial {trial + 1:3d}: killed after {after:4d} of {live} live steps (target {target})")
    return kills


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--bars", type=int, default=400, help="daily bars (the first 60 are history)")
    parser.add_argument(
        "--fee-in", choices=("received", "quote"), default="received",
        help="where the exchange takes its fee: the asset received (Binance without BNB: a buy's fee in the "
        "asset bought, which the book takes out of the position) or always the quote asset",
    )  # fmt: skip
    args = parser.parse_args()
    rng = random.Random(args.seed)
    env = {**os.environ, **KEYS, "LOCAL_EXCHANGE_API_KEY": KEYS["TAPE_DRILL_API_KEY"]}
    env["LOCAL_EXCHANGE_SECRET"] = KEYS["TAPE_DRILL_SECRET"]
    with tempfile.TemporaryDirectory(prefix="tape-live-drill-") as tmp:
        root = Path(tmp)
        full, history, panel = _market(root, args.seed, args.bars)
        journal = root / "journal"
        config = _config(root, history, journal, panel)
        live = panel.steps - HISTORY  # type: ignore[attr-defined]
        first_open = int(panel.ts_ns[HISTORY]) - 86_400 * 10**9  # type: ignore[attr-defined]
        port_file, state_file = root / "port", root / "state.json"
        exchange = subprocess.Popen(
            [sys.executable, "-m", "venues.local_exchange", str(full), "--port-file", str(port_file),
             "--state-file", str(state_file), "--start", _iso(first_open), "--speed", "25",
             "--when-watched", "2", "--fee", "0.001", "--fee-in", args.fee_in, "--linger", "900"],
            env=env, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        command = [
            sys.executable,
            "-m",
            "cli.main",
            "live",
            str(config),
            "--venue-port",
            port_file.read_text(),
        ]
        started = time.perf_counter()
        kills = _trials(args.trials, rng, command, journal, live, env)
        if kills < 0:
            exchange.terminate()
            return 1
        for _ in range(5):  # to the end; a venue that did not answer in time (exit 4): again
            final = subprocess.run(
                [*command, "--resume"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
            )
            if final.returncode != 4:
                break
        exchange.terminate()  # it writes its orders and balances, then exits
        exchange.wait(timeout=60)
        seconds = time.perf_counter() - started
        replayed = subprocess.run(
            [sys.executable, "-m", "cli.main", "replay", str(journal)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        state = json.loads(state_file.read_text())
        failures, counts = _checks(journal, state)
        if final.returncode != 0:
            failures.append(f"final resume exit {final.returncode}: {final.stdout[-2000:]}")
        if replayed.returncode != 0:
            failures.append(f"replay exit {replayed.returncode}: {replayed.stdout[-1000:]}")
    print(f"{kills} kills and resumes in {seconds:.1f}s; " + "; ".join(f"{k} {v}" for k, v in counts.items()))
    for failure in failures:
        print(f"FAILED: {failure}")
    print("all checks passed" if not failures else f"{len(failures)} checks failed")
    return 0 if not failures else 1


def _records(journal: Path) -> int:
    try:
        with open_journal(journal) as store:
            return len(store)
    except Exception:
        return 0


def _remove(journal: Path) -> None:
    import shutil

    if journal.is_dir():
        shutil.rmtree(journal)
    else:
        journal.unlink()


if __name__ == "__main__":
    raise SystemExit(main())
