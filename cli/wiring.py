"""Composition: strategies by name, configs from TOML, kernel parts for replay."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from domain.events import DatasetReferenced, RunStarted
from kernel.replay import KernelParts
from kernel.strategy import Strategy
from models.strategies.cn_rules_probes import IntradayRoundTrip, LimitUpChase
from models.strategies.momentum import MomentumRotation
from models.strategies.sma_crossover import SmaCrossover
from sim.backtest import BacktestConfig, StrategyConfig, build_parts

__all__ = ["STRATEGIES", "ConfigError", "load_config", "make_strategy", "replay_builder"]

STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "sma_crossover": SmaCrossover,
    "momentum": MomentumRotation,
    "limit_up_chase": LimitUpChase,
    "intraday_round_trip": IntradayRoundTrip,
}


class ConfigError(ValueError):
    """A configuration file that cannot be used as written."""


def make_strategy(config: StrategyConfig) -> Strategy:
    factory = STRATEGIES.get(config.name)
    if factory is None:
        raise ConfigError(f"unknown strategy {config.name!r}; known: {', '.join(sorted(STRATEGIES))}")
    try:
        return factory(**config.params)
    except TypeError as error:
        raise ConfigError(f"strategy {config.name!r}: {error}") from None


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> BacktestConfig:
    """Read a backtest TOML; relative data set and journal paths resolve from the file's folder."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from None
    raw.update(overrides or {})
    for key in ("dataset", "journal"):
        if key in raw and not Path(raw[key]).is_absolute():
            raw[key] = str((Path(path).parent / raw[key]).resolve())
    try:
        return msgspec.convert(raw, BacktestConfig)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{path}: {error}") from None


def replay_builder(run: RunStarted, ref: DatasetReferenced) -> KernelParts:
    """Rebuild a run's kernel parts from its journaled configuration and data set hash."""
    config = BacktestConfig.from_json(run.config_json)
    return build_parts(config, make_strategy(config.strategy), expected_hash=ref.content_hash)
