"""Wire a data set, a strategy, the simulated venue and the kernel into a journaled run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from domain.events import DatasetReferenced, RunStarted
from domain.fixed import Rounding, from_decimal_text, minor_digits
from domain.risk import RiskLimits
from kernel.journal import JournalError
from kernel.loop import Kernel, ProgressFn
from kernel.replay import KernelParts
from kernel.router import ExecutionConfig
from kernel.store import open_journal
from kernel.strategy import Strategy
from lake.store import dataset_ref, load_panel
from sim.fill_models import FillModel
from sim.venue import SimVenue

__all__ = [
    "ENGINE_VERSION",
    "BacktestConfig",
    "BacktestResult",
    "StrategyConfig",
    "build_parts",
    "run_backtest",
]

ENGINE_VERSION = "tape-kernel/1"


class StrategyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    params: dict[str, Any] = {}


class BacktestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One backtest, as read from TOML. Money is decimal text, rates are 1e-8 integers."""

    run_id: str
    dataset: str
    journal: str
    strategy: StrategyConfig
    seed: int = 0
    currency: str = "USD"
    initial_cash: str = "1000000"
    journal_backend: str | None = None
    risk: RiskLimits = RiskLimits()
    fill: FillModel = FillModel()
    execution: ExecutionConfig = ExecutionConfig()

    def initial_cash_minor(self) -> int:
        return from_decimal_text(self.initial_cash, minor_digits(self.currency), Rounding.HALF_EVEN)

    def canonical_json(self) -> str:
        data = msgspec.to_builtins(self)
        if self.execution == ExecutionConfig():
            del data["execution"]  # the default router (market orders): configs journal as before
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> BacktestConfig:
        return msgspec.json.decode(text, type=cls)


@dataclass(frozen=True)
class BacktestResult:
    journal: Path
    records: int
    last_hash: str
    nav_minor: int
    steps: int


def build_parts(
    config: BacktestConfig, strategy: Strategy, *, expected_hash: str | None = None
) -> KernelParts:
    """Load the data set (checking its hash) and build what a kernel needs."""
    panel, _ = load_panel(Path(config.dataset), expected_hash=expected_hash)
    parts = KernelParts(
        panel=panel,
        strategy=strategy,
        venue=SimVenue(panel, config.fill),
        limits=config.risk,
        currency=config.currency,
        initial_cash_minor=config.initial_cash_minor(),
        execution=config.execution,
    )
    return parts


def run_backtest(
    config: BacktestConfig, strategy: Strategy, *, progress: ProgressFn | None = None
) -> BacktestResult:
    """Run one backtest into a new journal. An existing, non-empty journal is never overwritten."""
    ref = dataset_ref(Path(config.dataset))
    parts = build_parts(config, strategy, expected_hash=ref.content_hash)
    panel = parts.panel
    journal = open_journal(config.journal, backend=config.journal_backend, writable=True)
    try:
        if len(journal):
            raise JournalError(
                f"{config.journal} already holds {len(journal)} records; choose a new journal path"
            )
        ts0 = int(panel.ts_ns[0])
        journal.append(
            RunStarted(
                ts_ns=ts0,
                run_id=config.run_id,
                seed=config.seed,
                engine_version=ENGINE_VERSION,
                config_json=config.canonical_json(),
            )
        )
        journal.append(
            DatasetReferenced(
                ts_ns=ts0,
                uri=config.dataset,
                content_hash=ref.content_hash,
                frequency=ref.frequency,
                calendar=ref.calendar,
                steps=panel.steps,
                instruments=len(panel.instruments),
                first_ts_ns=ts0,
                last_ts_ns=int(panel.ts_ns[-1]),
            )
        )
        kernel = Kernel(
            panel=panel,
            strategy=strategy,
            venue=parts.venue,
            limits=parts.limits,
            sink=journal,
            currency=parts.currency,
            execution=parts.execution,
        )
        kernel.begin(parts.initial_cash_minor)
        kernel.run(progress=progress)
        kernel.finish()
        journal.commit()
        nav = kernel.nav_minor(panel.steps - 1)
        return BacktestResult(Path(config.journal), len(journal), journal.last_hash.hex(), nav, panel.steps)
    finally:
        journal.close()
