"""Paper broker fills against the bar model, on the same session.

The same seeded two-name daily market is played by the local exchange (a loopback Binance
through the real ccxt.pro client) to four ``tape paper`` sessions of the same strategy:

1. ``sim``: the bar simulator in the kernel (market orders at the next bar's open) — the
   baseline;
2. ``paper, bars``: the paper broker at the edge with no quotes and no latency (the first bar
   that opens after an order reaches it fills it at its open);
3. ``paper, quotes``: the paper broker filling at the local exchange's quotes (its
   ``bookTicker``: ``--spread-ticks`` ticks around each close), no latency;
4. ``paper, quotes + latency``: the same with ``--latency-ms`` fixed (default 30 hours: more
   than a daily bar, so the order meets the next close's quote) and a tenth of it as jitter.

With no quotes and no latency the broker's bar model fills as the kernel's bar simulator does
(row 2 equals row 1); the quotes cost half the local exchange's spread; a latency longer than a
bar moves the fill to a later book. A warm-up session is run first and not reported.

For each: fills, the mean fill slippage against the decision price (bps, positive = worse,
weighted by notional), commissions, the final NAV against the baseline's, and the session's
wall time against the baseline's (``uptime`` printed first: the machine is shared).

Run: ``.venv/bin/python bench/bench_paper_broker.py [--speed 300] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

from cli.main import main as tape  # noqa: E402
from domain.events import OrderFilled, OrderSubmitted, RunFinished  # noqa: E402
from kernel.store import open_journal  # noqa: E402
from lake.store import load_panel  # noqa: E402
from tests.factories import market_and_history, paper_config  # noqa: E402

HISTORY = 60


def _session(
    root: Path, name: str, history: Path, full: Path, span: tuple[int, int], extra: str, speed: float
) -> dict[str, float]:
    folder = root / name.replace(" ", "_").replace(",", "").replace("+", "and")
    folder.mkdir()
    config = paper_config(folder / "paper.toml", history, folder / "journal", *span)
    config.write_text(config.read_text() + extra)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = tape(["paper", str(config), "--local-exchange", str(full), "--speed", str(speed)])
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{name}: tape paper exited {code}")
    decided: dict[str, OrderSubmitted] = {}
    cost = notional = commission = fills = 0
    nav = 0
    with open_journal(folder / "journal") as journal:
        for _, event in journal.events():
            if isinstance(event, OrderSubmitted):
                decided[event.order_id] = event
            elif isinstance(event, OrderFilled):
                order = decided[event.order_id]
                fills += 1
                commission += event.commission_minor
                notional += event.notional_minor
                gap = event.side * (event.fill_px_raw - order.decision_px_raw) / order.decision_px_raw
                cost += gap * event.notional_minor
            elif isinstance(event, RunFinished):
                nav = event.nav_minor
    return {
        "fills": fills,
        "slippage_bps": 1e4 * cost / notional if notional else 0.0,
        "commission_minor": commission,
        "nav_minor": nav,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", type=float, default=300.0, help="bars the local exchange plays a second")
    parser.add_argument(
        "--latency-ms", type=int, default=30 * 3_600_000, help="fixed latency (the venue's clock: daily bars)"
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    print(f"uptime: {os.popen('uptime').read().strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        full, history = market_and_history(root / "data", seed=args.seed, bars=150, history=HISTORY)
        panel, _ = load_panel(full)
        span = (int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1]))
        paper = '\n[venue]\nkind = "paper"\n'
        cases = {
            "sim": "",
            "paper, bars": paper,
            "paper, quotes": "quotes = true\n" + paper,
            "paper, quotes + latency": (
                f"quotes = true\nlatency_ms = {args.latency_ms}\n"
                f"latency_jitter_ms = {args.latency_ms // 10}\n" + paper
            ),
        }
        _session(root, "warm-up", history, full, span, "", args.speed)  # imports, Numba: not timed
        rows = {
            name: _session(root, name, history, full, span, extra, args.speed)
            for name, extra in cases.items()
        }
    base = rows["sim"]
    print(
        f"{'session':<26}{'fills':>6}{'slip bps':>10}{'comm.':>10}{'NAV/base':>10}{'wall s':>8}{'x base':>8}"
    )
    for name, row in rows.items():
        nav, wall = row["nav_minor"] / base["nav_minor"], row["wall_s"] / base["wall_s"]
        print(
            f"{name:<26}{row['fills']:>6.0f}{row['slippage_bps']:>+10.2f}{row['commission_minor']:>10,.0f}"
            f"{nav:>10.5f}{row['wall_s']:>8.2f}{wall:>8.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
