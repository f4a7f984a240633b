"""Composition: strategies through the plug-in loader, configs from TOML, run setups for replay."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec

from domain.events import DatasetReferenced, RunStarted
from domain.fixed import minor_digits, to_decimal
from domain.riskrules import PolicyError, policy_from_mapping, policy_to_mapping
from kernel.margin import MONEY_MINOR_MAX, checked_money_minor
from kernel.setup import RunSetup
from kernel.strategy import Strategy
from models.plugins import PluginError, load_strategy
from sim.backtest import ENGINE_VERSION, BacktestConfig, StrategyConfig, build_setup, run_panel

__all__ = [
    "ConfigError",
    "check_models_out_of_sample",
    "config_from_raw",
    "load_config",
    "make_strategies",
    "new_run_strategies",
    "make_strategy",
    "read_raw_config",
    "replay_builder",
]


class ConfigError(ValueError):
    """A configuration file that cannot be used as written."""


def make_strategy(config: StrategyConfig, installed: Mapping[str, str] | None = None) -> Strategy:
    """One configured strategy, built through the plug-in loader (``models.plugins``;
    ``installed``: the installed strategies, when already read)."""
    try:
        return load_strategy(name=config.name, entry=config.entry, params=config.params, installed=installed)
    except PluginError as error:
        raise ConfigError(str(error)) from None


def make_strategies(config: BacktestConfig, installed: Mapping[str, str] | None = None) -> list[Strategy]:
    """The run's strategies, in the configuration's order (``BacktestConfig.strategy_configs``)."""
    return [make_strategy(strategy, installed) for strategy in config.strategy_configs()]


def new_run_strategies(config: BacktestConfig, installed: Mapping[str, str] | None = None) -> list[Strategy]:
    """The strategies of a new run (``make_strategies``), checked as every verb that starts one
    checks them before its journal opens (``check_models_out_of_sample``): ``tape backtest``,
    each point of ``tape sweep``, each window of ``tape walkforward``, each perturbed run of
    ``tape montecarlo --perturb``, a fresh ``tape paper`` / ``tape live`` session. A replay (and
    a resumed session) builds with ``make_strategies`` alone: it re-derives a journal as it was
    written, so one written before the check still replays."""
    strategies = make_strategies(config, installed)
    check_models_out_of_sample(config, strategies)
    return strategies


def check_models_out_of_sample(config: BacktestConfig, strategies: list[Strategy]) -> None:
    """A new run's model strategies may not decide inside their artifact's training window
    (``models.ml.strategy.check_out_of_sample``): refused here, before a journal opens, from the
    run's first trading day (the data set's, its ``[window]``'s start, or a paper or live
    session's first live step: a local exchange replaying history can start inside the window).
    A replay does not check: it re-derives the journal as it was written."""
    from models.ml.strategy import ModelRanker, check_out_of_sample

    if not any(isinstance(strategy, ModelRanker) and not strategy.in_sample for strategy in strategies):
        return  # nothing to check: the data set is not read
    panel, start_step = run_panel(config)
    if start_step >= panel.steps:
        return
    for strategy in strategies:
        try:
            check_out_of_sample(strategy, int(panel.day[start_step]))
        except ValueError as error:
            raise ConfigError(f"strategy {strategy.strategy_id}: {error}") from None


def typed_path(value: str) -> str:
    """A path given on the command line (``--journal``, ``--out``), absolute: a relative one
    resolves from the current directory, as a shell user reads it; paths written in a TOML
    resolve from the TOML's folder instead (``config_from_raw``)."""
    return str(Path(value).resolve())


def journal_override(journal: str | None) -> dict[str, Any]:
    """``--journal PATH`` as a configuration override (none when it was not given)."""
    return {"journal": typed_path(journal)} if journal else {}


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> BacktestConfig:
    """Read a backtest TOML; relative data set and journal paths resolve from the file's folder
    (``overrides`` are taken as they are: make a typed path absolute with ``typed_path``)."""
    raw = read_raw_config(path)
    raw.pop("sweep", None)  # the table of `tape sweep`; a backtest of the file runs its base point
    raw.pop("walkforward", None)  # and of `tape walkforward`
    raw.update(overrides or {})
    return config_from_raw(raw, path)


def read_raw_config(path: Path) -> dict[str, Any]:
    """The TOML's tables as read, with no checks."""
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a TOML file (not UTF-8 text)") from None


def config_from_raw(raw: dict[str, Any], path: Path) -> BacktestConfig:
    """A checked configuration from a TOML's tables; relative paths resolve from ``path``'s folder."""
    raw = copy.deepcopy(raw)
    for key in ("dataset", "journal"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{path}: {key} must be a path (a string), got {raw[key]!r}")
        if key in raw and not Path(raw[key]).is_absolute():
            raw[key] = str((Path(path).parent / raw[key]).resolve())
    venue = raw.get("venue")
    recording = venue.get("recording") if isinstance(venue, dict) else None
    if (
        isinstance(venue, dict)
        and isinstance(recording, str)
        and recording
        and not Path(recording).is_absolute()
    ):
        venue["recording"] = str((Path(path).parent / recording).resolve())
    if "risk_policy" in raw:
        raw["risk"] = _policy_file(Path(path), raw.pop("risk_policy"), "risk" in raw)
    try:
        _complete_policies(raw)
        config = msgspec.convert(raw, BacktestConfig)
    except (msgspec.ValidationError, PolicyError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from None
    if not -(2**63) <= config.seed < 2**63:  # the journal's JSON holds a 64-bit integer
        raise ConfigError(f"{path}: seed must be a 64-bit integer, got {config.seed}")
    _check_money(Path(path), config)
    return config


def _complete_policies(raw: dict[str, Any]) -> None:
    """The ``[risk]`` table, and each ``[[strategies]]`` entry's ``risk``, checked and written
    out whole: a rule or key left out takes its default (docs/risk_policies/policy.md), so
    ``sector = { limit_e8 = ... }`` alone, or a sweep point setting ``risk.sector.limit_e8``, is a
    complete rule. A table that names every key reads back as written (the same configuration)."""
    if isinstance(raw.get("risk"), dict):
        raw["risk"] = policy_to_mapping(policy_from_mapping(raw["risk"], prefix="risk."))
    strategies = raw.get("strategies")
    for index, entry in enumerate(strategies if isinstance(strategies, list) else []):
        if isinstance(entry, dict) and isinstance(entry.get("risk"), dict):
            label = entry.get("name") or entry.get("entry") or index
            prefix = f"strategies.{label}.risk."
            entry["risk"] = policy_to_mapping(policy_from_mapping(entry["risk"], prefix=prefix))


def _check_money(path: Path, config: BacktestConfig) -> None:
    """The currency is known; ``initial_cash`` is a positive, finite decimal of at most
    ``MONEY_MINOR_MAX`` minor units (10^13 USD, 10^9 USDT at its 6 digits: beyond, the journal's
    64-bit money overflowed as an internal error), and so is ``fill.commission_min_minor`` (a
    charge added to cash; the other ``*_minor`` settings are caps, only compared)."""
    try:
        digits = minor_digits(config.currency)
    except ValueError as error:
        raise ConfigError(f"{path}: currency: {error}") from None
    text = config.initial_cash
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{path}: initial_cash {text!r} is not a decimal number") from None
    if not value.is_finite() or value <= 0:
        raise ConfigError(f"{path}: initial_cash {text!r} must be a positive amount")
    # An exponent past any bound is refused before it is multiplied out ("1e999999999").
    minor = MONEY_MINOR_MAX + 1 if value.adjusted() > 40 else config.initial_cash_minor()
    try:
        checked_money_minor(minor, text, config.currency, "initial_cash")
    except ValueError as error:
        raise ConfigError(f"{path}: {error}") from None
    fee = config.fill.commission_min_minor
    if fee > MONEY_MINOR_MAX:
        largest = to_decimal(MONEY_MINOR_MAX, digits).normalize()
        raise ConfigError(
            f"{path}: fill.commission_min_minor: {fee} is too large: at most {MONEY_MINOR_MAX:,} "
            f"minor units ({largest:,f} {config.currency})"
        )
    if minor <= 0:
        raise ConfigError(
            f"{path}: initial_cash {text!r} must be a positive amount (it rounds to 0 at "
            f"{config.currency}'s {digits} minor digits)"
        )


def _policy_file(config_path: Path, name: object, inline: bool) -> dict[str, Any]:
    """``risk_policy = "policy.toml"``: the policy written once, in its own file (its ``[risk]``
    table, or the whole file). The policy's content goes into the run's configuration, so the
    journal holds it and replay does not need the file."""
    if inline:
        raise ConfigError(f"{config_path}: give either risk_policy or a [risk] table, not both")
    if not isinstance(name, str):
        raise ConfigError(f"{config_path}: risk_policy must be a file path, got {name!r}")
    policy_path = Path(name) if Path(name).is_absolute() else config_path.parent / name
    try:
        table = tomllib.loads(policy_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{config_path}: risk_policy {policy_path}: {error}") from None
    policy: dict[str, Any] = table.get("risk", table)
    return policy


def replay_builder(run: RunStarted, ref: DatasetReferenced, *, queued: bool = False) -> RunSetup:
    """Rebuild a run's setup from its journaled configuration and data set hash (``queued``: its
    bars arrived one step at a time and are journaled; the rows it traded start empty)."""
    if run.engine_version != ENGINE_VERSION:
        raise ConfigError(
            f"the journal was written by {run.engine_version}; this is {ENGINE_VERSION}, which cannot "
            "re-derive it (verify and report still read it)"
        )
    config = BacktestConfig.from_journal(run.config_json)
    try:
        strategies = make_strategies(config)
    except ConfigError as error:
        raise ConfigError(f"the run's strategies must load as they did when it ran: {error}") from None
    return build_setup(config, strategies, expected_hash=ref.content_hash, replaying=True, queued=queued)
