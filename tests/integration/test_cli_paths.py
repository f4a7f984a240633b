"""Where relative paths land: a path written in a TOML resolves from the TOML's folder, a path
typed on the command line (``--journal``, ``--out``) from the current directory, as a shell user
reads it (docs/runbook.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli.main import main
from tests.factories import make_dataset

CONFIG = """
run_id = "paths"
dataset = "data"
journal = "journals/base"

[strategy]
name = "sma_crossover"
params = {{ fast = 5, slow = 20, weight = 0.9 }}
{table}
"""
SWEEP = '[sweep]\ngrid = { "strategy.params.fast" = [5, 10] }\n'
WALK = (
    "[walkforward]\ntrain_days = 100\ntest_days = 60\n"
    'grid = { "strategy.params.fast" = [5, 10] }\n'
)


def _config(tmp_path: Path, table: str = "") -> Path:
    """``tmp_path/sub/run.toml`` over ``tmp_path/sub/data``; the tests run from ``tmp_path``."""
    sub = tmp_path / "sub"
    if not (sub / "data").exists():
        make_dataset(sub / "data", symbols=2, bars=240)
    path = sub / "run.toml"
    path.write_text(CONFIG.format(table=table))
    return path


def test_a_typed_journal_path_is_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["backtest", "sub/run.toml", "--journal", "sub/typed"]) == 0
    assert (tmp_path / "sub" / "typed").is_dir()
    assert not (tmp_path / "sub" / "sub").exists()
    assert main(["report", "sub/typed"]) == 0  # the path as typed finds it
    assert main(["backtest", "sub/run.toml"]) == 0  # the TOML's own journal: beside the TOML
    assert (tmp_path / "sub" / "journals" / "base").is_dir()


def test_a_typed_out_folder_is_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, SWEEP)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "sub/run.toml", "--workers", "1", "--out", "swept"]) == 0
    assert (tmp_path / "swept" / "experiments.sqlite").is_file()
    assert main(["runs", "swept"]) == 0
    assert main(["sweep", "sub/run.toml", "--workers", "1"]) == 0  # default: beside the TOML
    assert (tmp_path / "sub" / "sweeps" / "paths" / "experiments.sqlite").is_file()
    _config(tmp_path, WALK)
    assert main(["walkforward", "sub/run.toml", "--workers", "1", "--out", "walked"]) == 0
    assert (tmp_path / "walked" / "walkforward.json").is_file()
    assert not (tmp_path / "sub" / "walked").exists()


def test_the_chain_head_stays_on_its_line_for_scripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Piped output (no terminal: 80 columns) keeps a result line whole, so `grep "chain head"`
    finds the head on a long journal path (it wrapped onto the next line)."""
    _config(tmp_path)
    monkeypatch.chdir(tmp_path)
    journal = "sub/" + "a_journal_with_a_long_name_" * 3
    assert main(["backtest", "sub/run.toml", "--journal", journal]) == 0
    assert main(["verify", journal]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "chain head" in line]
    assert len(lines) == 2
    assert all(re.search(r"chain head [0-9a-f]{16}\.\.\.$", line) for line in lines), lines
    assert str(tmp_path / journal) in lines[0]
