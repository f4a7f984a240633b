"""Cockpit bench: time to open a large journal to the first full command-centre screen.

Builds (once, under var/bench_cockpit/) a seeded minute-bar backtest -- 5 symbols x 200,000
one-minute bars on the 24x7 calendar, SMA(3)/SMA(9) crossover -- whose journal holds about
1.3 million records, then opens the cockpit headless (Textual's ``run_test`` at 100x30) and
measures, from the app's construction:

* ``first screen``: the command centre shows the whole journal (NAV and drawdown curves over
  every day close, exposure and leverage against the policy, the kill switch, the latest risk
  verdicts, data staleness) -- the target is < 1 s;
* ``orders folded``: the funnel, blotter and why-chain index over every order event;
* ``report folds``: ``sim.metrics`` summary and ``sim.execution_report`` handed in by cli.

Run: ``.venv/bin/python bench/bench_cockpit.py [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli.cockpit_cmd import cockpit_sources  # noqa: E402
from kernel.store import open_journal  # noqa: E402
from tui import CockpitApp  # noqa: E402

WORK = ROOT / "var" / "bench_cockpit"
CONFIG = """\
run_id = "bench-cockpit"
seed = 7
dataset = "minute"
journal = "journal1m"
currency = "USD"
initial_cash = "1000000"

[strategy]
name = "sma_crossover"
params = { fast = 3, slow = 9, weight = 0.95 }

[risk]
gross_leverage = { limit_e8 = 150_000_000, action = "scale" }
name = { limit_e8 = 30_000_000, action = "clip" }

[fill]
slippage_e8 = 10_000
commission_e8 = 5_000
"""


def build_journal() -> Path:
    journal = WORK / "journal1m"
    if journal.exists():
        return journal
    WORK.mkdir(parents=True, exist_ok=True)
    tape = str(Path(sys.executable).with_name("tape"))
    if not (WORK / "minute").exists():
        subprocess.run(
            [
                tape,
                "synth",
                "minute",
                "--symbols",
                "5",
                "--bars",
                "200000",
                "--frequency",
                "1m",
                "--calendar",
                "24x7",
            ],
            cwd=WORK,
            check=True,
        )
    (WORK / "sma.toml").write_text(CONFIG)
    subprocess.run([tape, "backtest", "sma.toml"], cwd=WORK, check=True, stdout=subprocess.DEVNULL)
    return journal


class StampedApp(CockpitApp):
    """Stamps the moment the command centre has been refreshed with the folded overview
    (Textual's ``call_after_refresh`` of the app's own ``first_screen_painted``)."""

    painted_at = 0.0

    def first_screen_painted(self) -> None:
        self.painted_at = time.perf_counter()
        super().first_screen_painted()


async def one_round(journal: Path) -> dict[str, float]:
    started = time.perf_counter()
    app = StampedApp(cockpit_sources(journal, follow=False))
    marks: dict[str, float] = {}
    async with app.run_test(size=(100, 30)) as pilot:
        while len(marks) < 3:
            now = time.perf_counter() - started
            if app.first_screen_ready and "first screen" not in marks:
                marks["first screen"] = app.painted_at - started
            if app.detail_ready and "orders folded" not in marks:
                marks["orders folded"] = now
            folded = app.data.summary is not None and app.data.execution is not None
            if folded and "report folds" not in marks:
                marks["report folds"] = now
            if now > 300:
                raise RuntimeError("the cockpit did not load in 300 s")
            await pilot.pause(0.005)
        assert "NAV" in str(app.query_one("#cc-head").render())
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    journal = build_journal()
    with open_journal(journal) as handle:
        records = len(handle)
    print(f"journal {journal}: {records:,} records")
    results = [asyncio.run(one_round(journal)) for _ in range(args.rounds)]
    for name in ("first screen", "orders folded", "report folds"):
        values = [result[name] for result in results]
        print(
            f"{name:<15} median {statistics.median(values):6.3f} s  (rounds: "
            f"{', '.join(f'{v:.3f}' for v in values)})"
        )
    first = statistics.median(result["first screen"] for result in results)
    print(f"target: first full command-centre screen < 1 s -- {'met' if first < 1 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
