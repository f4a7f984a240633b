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


def test_futures_margin_at_is_stated_in_a_runs_journal_only_where_it_decides_the_run() -> None:
    """``account.futures_margin_at`` ("settlement" now, the close before it): a configuration
    leaves its default out (same bytes as before the setting), a run's journal states it where
    daily-settled futures meet an active margin check, and a run's journal without it (every
    journal before the setting) is re-derived with "close" -- an [account] table left out too."""
    from types import SimpleNamespace

    from domain.instruments import Instrument
    from domain.market import MarginRow
    from kernel.account import AccountConfig

    future = Instrument(instrument_id=7, symbol="ES", venue="CME", asset_class="future", currency="USD",
                        price_digits=2, tick_raw=25, qty_digits=0, lot_raw=1, multiplier=50)  # fmt: skip
    stock = msgspec.structs.replace(future, instrument_id=8, symbol="AAPL", asset_class="equity")
    rows = (MarginRow(7, 20200101, initial_minor=800_000, maintenance_minor=725_500),)
    plain = _config()
    assert "futures_margin_at" not in plain.canonical_json()
    assert BacktestConfig.from_json(plain.canonical_json()).account.futures_margin_at == "settlement"
    # The data set's margin rows switch the check on without an [account] table: stated.
    futures = SimpleNamespace(margin_rows=rows, instruments=[future, stock])
    journaled = json.loads(plain.journaled_json(futures))  # type: ignore[arg-type]
    assert journaled["account"] == {"futures_margin_at": "settlement"}
    assert BacktestConfig.from_journal(json.dumps(journaled)) == plain
    # No futures, no margin rows, or a cash account: the bytes of before, read as before.
    for panel, config in [
        (SimpleNamespace(margin_rows=(), instruments=[future]), plain),
        (SimpleNamespace(margin_rows=rows, instruments=[stock]), plain),
        (futures, _config(account=AccountConfig(type="cash"))),
    ]:
        assert config.journaled_json(panel) == config.canonical_json()  # type: ignore[arg-type]
    # A journal written before the setting (no key; no [account] table, or one without it).
    old = json.loads(plain.canonical_json())
    assert "account" not in old
    assert BacktestConfig.from_journal(json.dumps(old)).account.futures_margin_at == "close"
    old["account"] = {"margin_call": "halt"}
    read = BacktestConfig.from_journal(json.dumps(old)).account
    assert (read.futures_margin_at, read.margin_call) == ("close", "halt")
    legacy = _config(account=AccountConfig(futures_margin_at="close"))
    assert json.loads(legacy.canonical_json())["account"]["futures_margin_at"] == "close"
    assert BacktestConfig.from_journal(legacy.journaled_json(futures)) == legacy  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"account\.futures_margin_at must be one of"):
        AccountConfig(futures_margin_at="mark")
