"""``LATER_DEFAULTS``: a setting added later is left out of the journaled configuration while it
holds its legacy value, and a journaled configuration without it is read with that value —
even where a new run's default differs (``fill.at_limit``: "skip" now, "fill" before)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from kernel.router import ExecutionConfig
from sim.backtest import BacktestConfig, PaperConfig, StrategyConfig, VenueConfig
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


def test_the_paper_brokers_settings_are_left_out_until_used_and_checked() -> None:
    paper = PaperConfig(start="2026-01-01T00:00:00Z", end="2026-01-02T00:00:00Z")
    plain = json.loads(_config(paper=paper).canonical_json())["paper"]
    assert not {"latency_ms", "latency_jitter_ms", "quotes", "heartbeat_s"} & set(plain)  # as before
    beating = _config(paper=msgspec.structs.replace(paper, heartbeat_s=30.0))
    assert json.loads(beating.canonical_json())["paper"]["heartbeat_s"] == 30.0
    broker = msgspec.structs.replace(paper, latency_ms=40, latency_jitter_ms=10, quotes=True)
    used = _config(paper=broker, venue=VenueConfig(kind="paper"))
    assert json.loads(used.canonical_json())["paper"]["latency_ms"] == 40
    assert BacktestConfig.from_json(used.canonical_json()) == used
    with pytest.raises(ValueError, match='read with \\[venue\\] kind = "paper" only'):
        _config(paper=broker)
    with pytest.raises(ValueError, match="add \\[paper\\]"):
        _config(venue=VenueConfig(kind="paper"))
    with pytest.raises(ValueError, match="commission_min_minor"):
        _config(paper=paper, venue=VenueConfig(kind="paper"), fill=FillModel(commission_min_minor=100))
    with pytest.raises(ValueError, match="latency_ms"):
        msgspec.structs.replace(paper, latency_ms=-1)
    with pytest.raises(ValueError, match="heartbeat_s"):
        msgspec.structs.replace(paper, heartbeat_s=-1.0)


def test_execution_supersede_reads_all_from_a_journal_without_it_and_named_is_journaled() -> None:
    """``execution.supersede``: a journal from before it (no ``[execution]`` table, or one
    without the key) replays with "all"; "named" is journaled and read back; the default
    journals the bytes of before."""
    plain = json.loads(_config().canonical_json())
    assert "execution" not in plain  # the default: the same bytes as before the setting
    assert BacktestConfig.from_json(json.dumps(plain)).execution.supersede == "all"
    named = _config(execution=ExecutionConfig(supersede="named"))
    journaled = json.loads(named.canonical_json())
    assert journaled["execution"]["supersede"] == "named"
    assert BacktestConfig.from_json(named.canonical_json()) == named
    del journaled["execution"]["supersede"]  # an [execution] table journaled before the setting
    assert BacktestConfig.from_json(json.dumps(journaled)).execution.supersede == "all"
    with pytest.raises(ValueError, match=r"execution\.supersede must be one of named, all; got 'some'"):
        ExecutionConfig(supersede="some")
