"""``LATER_DEFAULTS``: a setting added later is left out of the journaled configuration while it
holds its legacy value, and a journaled configuration without it is read with that value —
even where a new run's default differs (``fill.at_limit``: "skip" now, "fill" before)."""

from __future__ import annotations

import json
from pathlib import Path

from sim.backtest import BacktestConfig, StrategyConfig
from sim.fill_models import FillModel


def _config(**fields: object) -> BacktestConfig:
    return BacktestConfig(run_id="r", dataset="d", journal="j", strategy=StrategyConfig(name="sma_crossover"),
                          **fields)  # type: ignore[arg-type]  # fmt: skip


def test_a_new_default_is_journaled_and_a_legacy_value_is_left_out() -> None:
    assert json.loads(_config().canonical_json())["fill"]["at_limit"] == "skip"
    legacy = _config(fill=FillModel(at_limit="fill"))
    assert "at_limit" not in json.loads(legacy.canonical_json())["fill"]
    assert BacktestConfig.from_json(legacy.canonical_json()) == legacy


def test_a_journal_written_before_the_setting_replays_as_it_ran(tmp_path: Path) -> None:
    old = json.loads(_config().canonical_json())
    del old["fill"]["at_limit"]  # what a journal from before fill.at_limit holds
    assert BacktestConfig.from_json(json.dumps(old)).fill.at_limit == "fill"
    assert BacktestConfig.from_json(_config().canonical_json()).fill.at_limit == "skip"
