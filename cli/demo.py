"""``tape demo``: the whole loop on data the project generates itself."""

from __future__ import annotations

import argparse
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from cli.progress import console, progress_bar
from lake.synth import synth_dataset

__all__ = ["run_demo"]

_DATASETS = {
    # name: (symbols, bars, frequency, stagger listings)
    "daily": (50, 1260, "1d", True),
    "minute": (5, 39_000, "1m", False),
}
_CONFIGS = ("sma_minute.toml", "momentum_daily.toml", "two_strategies_daily.toml")


def run_demo(workdir: Path, *, fresh: bool = True) -> tuple[int, list[dict[str, Any]]]:
    """The demo's exit status (every step's or-ed) and, per config, what ``tape demo --json``
    writes: the backtest's summary, the ledger and the rebuild's, verify's and replay's exits."""
    from cli.main import backtest_and_report, cmd_rebuild, cmd_verify, replay_and_print

    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name, (symbols, bars, frequency, stagger) in _DATASETS.items():
        target = workdir / "data" / name
        if target.exists():
            continue
        with progress_bar(f"generate {name} bars ({symbols} x {bars:,})", symbols * bars) as update:
            synth_dataset(
                target,
                seed=7,
                symbols=symbols,
                bars=bars,
                frequency=frequency,
                calendar="XNYS",
                start="2019-01-02",
                listing_stagger=stagger,
                progress=update,
            )
    status = 0
    runs = []
    for config_name in _CONFIGS:
        config = workdir / config_name
        config.write_text(resources.files("cli.defaults").joinpath(config_name).read_text())
        console.rule(f"[bold]{config_name}")
        journal = workdir / "journals" / config_name.removesuffix(".toml")
        backtest = backtest_and_report(
            argparse.Namespace(config=str(config), journal=None, json=None, csv=None)
        )
        rebuilt = cmd_rebuild(argparse.Namespace(journal=str(journal), db=None, json=False, csv=None))
        verified = cmd_verify(argparse.Namespace(journal=str(journal), json=False))
        replayed, replay = replay_and_print(
            argparse.Namespace(journal=str(journal), day=None, json=None, csv=None)
        )
        run_status = rebuilt | verified | replayed
        status |= run_status
        runs.append({
            "config": config_name, "status": run_status, "backtest": backtest,
            "ledger": f"{journal}.ledger.sqlite", "rebuild_status": rebuilt, "verify_status": verified,
            "replay_status": replayed, "replay": replay,
        })  # fmt: skip
    return status, runs
