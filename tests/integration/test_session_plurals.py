"""Counts in a paper session's lines read as English where a count is 1 ("1 step of 1d", not
"1 steps"): the counts go through ``cli.progress.plural``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from cli.paper_cmd import bar_updates
from lake.store import load_panel
from tests.factories import market_and_history, paper_config

HISTORY = 60


def test_a_one_step_session_says_1_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full, history = market_and_history(tmp_path, seed=5, bars=70, history=HISTORY)
    panel, _ = load_panel(full)
    start = int(panel.ts_ns[HISTORY])
    journal = tmp_path / "journal"
    config = paper_config(tmp_path / "paper.toml", history, journal, start, start + 12 * 3_600 * 10**9)
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "200"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "paper paper-local: 1 step of 1d from" in out, out  # was "1 steps of 1d"
    assert f"history {HISTORY} steps" in out and "0 steps passed with no bar" in out, out


def test_bar_updates_count_one_update() -> None:
    assert bar_updates(1, 0, 0) == "1 update"  # was "1 updates"
    assert bar_updates(3, 1, 0) == "3 updates (1 superseded by a later update of the same bar)"
