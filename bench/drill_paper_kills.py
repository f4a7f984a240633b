"""Crash drill for paper sessions: SIGKILL ``tape paper`` at seeded random points, carry it on
with ``--resume`` each time, and check that the finished session is the backtest over the same
bars, byte for byte (no bar applied twice or lost, every crash's cut-off step completed).

The session trades two seeded daily names on the local exchange (a loopback Binance through the
real ccxt.pro client). A trial is one kill followed by one resume; the kill lands after a random
number of the session's bar inputs (including none since the last resume, which kills a session
while it re-derives its journal).

Run: ``.venv/bin/python bench/drill_paper_kills.py [--trials 50] [--seed 7]``; prints a line per
trial and a summary, and exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

from cli.main import main as tape  # noqa: E402
from domain.events import INPUT_KINDS, BarsReceived  # noqa: E402
from kernel.store import open_journal  # noqa: E402
from lake.store import load_panel, write_dataset  # noqa: E402
from lake.synth import synth_dataset  # noqa: E402
from tests.factories import count_events  # noqa: E402

HISTORY = 60


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def _derived(path: Path) -> list[bytes]:
    with open_journal(path) as journal:
        return [record.payload for record in journal.records() if record.kind not in INPUT_KINDS]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--bars", type=int, default=400, help="daily bars of the market (the first 60 are history)"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="tape-kill-drill-") as tmp:
        root = Path(tmp)
        full = root / "market"
        synth_dataset(
            full,
            seed=args.seed,
            symbols=2,
            bars=args.bars,
            frequency="1d",
            calendar="24x7",
            start="2021-01-01",
        )
        panel, _ = load_panel(full)
        bars = pq.read_table(full / "bars.parquet")
        history = root / "history"
        cut = int(panel.ts_ns[HISTORY - 1])
        write_dataset(
            history,
            name="history",
            frequency="1d",
            calendar="24x7",
            instruments=list(panel.instruments),
            bars=bars.filter(pc.less_equal(bars["ts_ns"], cut)),
        )
        journal = root / "journal"
        base = f"""run_id = "kill-drill"
dataset = "{history}"
journal = "{journal}"
initial_cash = "1000000"

[strategy]
name = "sma_crossover"
params = {{ fast = 3, slow = 8, weight = 0.5 }}
"""
        config = root / "paper.toml"
        config.write_text(
            base + f'\n[paper]\nexchange = "binance"\nstart = "{_iso(int(panel.ts_ns[HISTORY]))}"\n'
            f'end = "{_iso(int(panel.ts_ns[-1]))}"\ngrace_s = {5 * 86_400}\nclock = "venue"\n'
        )
        live = panel.steps - HISTORY
        command = [sys.executable, "-m", "cli.main", "paper", str(config), "--local-exchange", str(full)]
        started = time.perf_counter()
        done = 0
        for trial in range(args.trials):
            before = count_events(journal, BarsReceived)
            if before >= live - 2:
                break
            target = rng.randint(before, min(live - 2, before + 12))
            argv = command + ["--speed", "60"] + (["--resume"] if trial else [])
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            deadline = time.monotonic() + 60
            while count_events(journal, BarsReceived) < target and time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                time.sleep(0.01)
            process.kill()
            output, _ = process.communicate(timeout=30)
            if process.returncode not in (-9, 0, 130):
                print(output)
                print(f"trial {trial}: exit {process.returncode}")
                return 1
            after = count_events(journal, BarsReceived)
            done += 1
            print(f"trial {trial + 1:3d}: killed at {after:4d} of {live} live steps (target {target})")
        status = tape(["paper", str(config), "--local-exchange", str(full), "--speed", "200", "--resume"])
        seconds = time.perf_counter() - started
        steps = []
        with open_journal(journal) as store:
            steps = [event.ts_ns for _, event in store.events() if isinstance(event, BarsReceived)]
        backtest = root / "backtest.toml"
        day = str(int(panel.day[HISTORY]))
        backtest.write_text(
            base.replace(str(history), str(full)).replace(str(journal), str(root / "bt"))
            + f'\n[window]\nstart = "{day[:4]}-{day[4:6]}-{day[6:]}"\n'
        )
        backtest_status = tape(["backtest", str(backtest)])
        replay_status = tape(["replay", str(journal)])
        same = _derived(journal) == _derived(root / "bt")
        unique = steps == sorted(set(steps)) and len(steps) == live
        if not unique:
            grid = panel.ts_ns[HISTORY:].tolist()
            missing = sorted(set(grid) - set(steps))
            repeated = sorted({ts for ts in steps if steps.count(ts) > 1})
            print(
                f"steps: {len(steps)} journaled of {live}; missing {[grid.index(t) for t in missing]}; "
                f"repeated {[grid.index(t) for t in repeated]}"
            )
    print(
        f"{done} kills and resumes in {seconds:.1f}s; final resume exit {status}; every live step once: "
        f"{unique}; replay exit {replay_status}; derived events equal to the backtest's: {same}"
    )
    return 0 if status == 0 and backtest_status == 0 and replay_status == 0 and same and unique else 1


if __name__ == "__main__":
    raise SystemExit(main())
