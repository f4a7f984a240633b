"""Plain factory functions shared by tests (no fixture towers)."""

from __future__ import annotations

from pathlib import Path

from cli.wiring import make_strategy
from domain.riskrules import RiskPolicy, policy_from_mapping
from lake.synth import synth_dataset
from sim.backtest import BacktestConfig, BacktestResult, StrategyConfig, run_backtest


def make_dataset(
    path: Path, *, seed: int = 3, symbols: int = 4, bars: int = 300, frequency: str = "1d"
) -> Path:
    """A small seeded data set on the 24x7 calendar (no exchange_calendars start-up cost)."""
    synth_dataset(
        path,
        seed=seed,
        symbols=symbols,
        bars=bars,
        frequency=frequency,
        calendar="24x7",
        start="2020-01-01",
        listing_stagger=symbols > 2,
    )
    return path


def make_config(
    dataset: Path,
    journal: Path,
    *,
    strategy: str = "sma_crossover",
    params: dict[str, object] | None = None,
    backend: str | None = None,
    **fields: object,
) -> BacktestConfig:
    defaults: dict[str, dict[str, object]] = {
        "sma_crossover": {"fast": 5, "slow": 20, "weight": 0.95},
        "momentum": {"lookback": 60, "skip": 5, "top": 2, "weight": 0.95},
    }
    return BacktestConfig(
        run_id=f"test-{strategy}",
        dataset=str(dataset),
        journal=str(journal),
        journal_backend=backend,
        strategy=StrategyConfig(name=strategy, params=params if params is not None else defaults[strategy]),
        **fields,  # type: ignore[arg-type]
    )


def run(config: BacktestConfig) -> BacktestResult:
    return run_backtest(config, make_strategy(config.strategy))


def one_name_policy() -> RiskPolicy:
    """The default policy but 100% NAV per name (single-name test strategies)."""
    return policy_from_mapping({"name": {"limit_e8": 100_000_000, "action": "clip"}})
