"""Account checks benchmark (issue 15, second round): the same backtest with and without the
new checks, measured in the same process.

    python bench/bench_accounts.py [--repeats 3]

* ``per_market``: real SPDB (CNY) and AAPL (USD) daily bars with the CONSTRUCTED FX table of
  ``tests/integration/test_fx_three_markets``, a decision at every step: one margin account
  (no buying-power check) against A-shares in a cash account and US on margin
  (``[account] venues = {XSHG = "cash"}``: the check on every SPDB order, per currency), at
  weights the CNY cash always pays (the journals' record counts are printed to compare).
* ``intraday``: the SSE Composite 1-minute proxy future of 2015-07-06..10 with CONSTRUCTED
  12% / 10% margin rows, a 2x long that no check calls (so both runs trade the same and the
  difference is the checks' cost; the journals' record counts are printed to show it):
  maintenance checked at each close against at every bar (``maintenance_check = "bar"``).

Reports the median CPU time of this process for each run (``time.process_time``: on a shared
2-core box wall time swings with the other users' load), the ratio, and the load (``uptime``).
Needs ``../shared/data``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.market import Panel
from kernel.account import AccountConfig
from kernel.strategy import MarketView
from sim.backtest import StrategyConfig, run_backtest


class EveryBar:
    """SPDB and AAPL at alternating weights at every step; SPDB small enough that its CNY cash
    always pays, so a cash account trades what the margin account does and the difference in
    time is the check's."""

    strategy_id = "every_bar"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.arange(1, panel.steps, dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        heavy = view.step % 2 == 0
        return np.array([0.12 if heavy else 0.06, 1.0 if heavy else 0.7, 0.0])


RECORDS: dict[str, int] = {}


def timed(repeats: int, work: Callable[[Path], object], name: str = "") -> float:
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.process_time()  # CPU time of this process: the box is shared
            result = work(Path(tmp))
            times.append(time.process_time() - start)
            RECORDS[name] = int(getattr(result, "records", 0))
    return statistics.median(times)


def per_market(repeats: int, root: Path) -> tuple[float, float]:
    from tests.integration import test_fx_three_markets as three

    dataset = three.build_dataset(root / "three")
    strategy = StrategyConfig(entry="bench.bench_accounts:EveryBar")

    def run(account: AccountConfig) -> Callable[[Path], object]:
        return lambda tmp: run_backtest(
            three.config(tmp, dataset, "j", account=account, strategy=strategy), EveryBar()
        )

    timed(1, run(AccountConfig()))  # warm-up: imports, first data set load
    base = timed(repeats, run(AccountConfig()), "margin")
    checked = timed(repeats, run(AccountConfig(venues={"XSHG": "cash"})), "split")
    return base, checked


def intraday(repeats: int) -> tuple[float, float]:
    from tests.integration import test_margin_accounts as proxy

    plan = {("2015-07-06", "10:00"): 2.0}

    def run(check: str) -> Callable[[Path], object]:
        account = AccountConfig(futures_margin=proxy.PROXY_ROWS, maintenance_check=check)
        return lambda tmp: run_backtest(proxy._proxy_config(tmp, "j", account), proxy.Plan(plan))

    timed(1, run("close"))  # warm-up
    return timed(repeats, run("close"), "close"), timed(repeats, run("bar"), "bar")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load = os.popen("uptime").read().strip()
    with tempfile.TemporaryDirectory() as root:
        rows = [
            ("per_market: margin vs XSHG cash", *per_market(args.repeats, Path(root))),
            ("intraday: close vs bar", *intraday(args.repeats)),
        ]
    print(f"load: {load}")
    for name, base, checked in rows:
        print(
            f"{name:34s} without {base:7.3f} s CPU  with {checked:7.3f} s CPU  ratio {checked / base:5.2f}x"
        )
    print(f"per_market journal records: margin {RECORDS['margin']}, XSHG cash {RECORDS['split']}")
    print(f"intraday journal records: close {RECORDS['close']}, bar {RECORDS['bar']}")


if __name__ == "__main__":
    main()
