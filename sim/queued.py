"""A backtest fed through the queue source: the data set's rows arrive one step at a time, as
paper and live trading get them (``kernel.stream``).

It is the paper/live path of the kernel run on history: the same configuration, the same
kernel, the same journal. With ``journal_bars`` off the journal is byte-identical to
``run_backtest``'s (the data set stays referenced by its content hash); with it on, every step's
bars are journaled as ``BarsReceived`` inputs before they are applied, as a live source does,
and the derived events are still the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domain.events import BarsReceived
from domain.market import Panel
from kernel.loop import Kernel, ProgressFn
from kernel.store import open_journal
from kernel.strategy import Strategy
from kernel.stream import QueueSource, SourceCounts
from lake.store import dataset_ref, load_panel
from sim.backtest import (
    BacktestConfig,
    BacktestResult,
    build_setup,
    journal_inputs,
    refuse_used_journal,
    windowed,
)

__all__ = ["QueuedResult", "bars_at", "run_queued"]


@dataclass(frozen=True)
class QueuedResult:
    result: BacktestResult
    counts: SourceCounts


def bars_at(panel: Panel, row: int, received_ns: int = 0) -> BarsReceived | None:
    """The bars of one row of a data set's panel as a live source would deliver them (None:
    no instrument has a bar at that step)."""
    columns = np.flatnonzero(panel.valid[row])
    if columns.size == 0:
        return None
    ids = [panel.instruments[col].instrument_id for col in columns.tolist()]
    return BarsReceived(
        ts_ns=int(panel.ts_ns[row]),
        received_ns=received_ns,
        instrument_ids=ids,
        open_raw=panel.open[row, columns].tolist(),
        high_raw=panel.high[row, columns].tolist(),
        low_raw=panel.low[row, columns].tolist(),
        close_raw=panel.close[row, columns].tolist(),
        volume_raw=panel.volume[row, columns].tolist(),
    )


def run_queued(
    config: BacktestConfig,
    strategy: Strategy | Sequence[Strategy],
    *,
    journal_bars: bool = False,
    progress: ProgressFn | None = None,
) -> QueuedResult:
    """Run ``config`` with its data set's rows pushed one step at a time into a new journal."""
    ref = dataset_ref(Path(config.dataset))
    full, _ = load_panel(Path(config.dataset), expected_hash=ref.content_hash)
    full, start_step = windowed(config, full)
    setup = build_setup(config, strategy, expected_hash=ref.content_hash, queued=True)
    journal = open_journal(config.journal, backend=config.journal_backend, writable=True)
    try:
        refuse_used_journal(journal, config.journal)
        kernel = Kernel(setup, journal, arrived=start_step)  # its refusals before any record
        journal_inputs(journal, config, ref, setup.panel)
        kernel.begin()
        source = QueueSource(kernel, journal=journal if journal_bars else None, name="dataset-rows")
        for row in range(start_step, full.steps):
            bars = bars_at(full, row)
            if bars is None:
                source.pass_time(int(full.ts_ns[row]), progress)
            else:
                source.push(bars, progress)
        kernel.finish()
        journal.commit()
        nav = kernel.nav_minor(full.steps - 1)
        result = BacktestResult(Path(config.journal), len(journal), journal.last_hash.hex(), nav, full.steps)
        return QueuedResult(result, source.counts)
    finally:
        journal.close()
