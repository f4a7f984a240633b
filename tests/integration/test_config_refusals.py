"""Configurations a backtest cannot run (issue 17, items 6 and 7): exit 2 and one line that
names the file and the problem, never a traceback, and no journal left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import EXIT_REFUSED
from cli.main import main as tape
from tests.factories import make_dataset

CONFIG = """run_id = "refusals"
seed = 1
dataset = "data"
journal = "journal"
currency = "USD"
initial_cash = "100000"

[strategy]
name = "sma_crossover"
params = { fast = 3, slow = 9, weight = 0.9 }
"""

# (name, replace this line or text, with this, words the error line must hold)
HOSTILE = [
    ("cash-lots", 'initial_cash = "100000"', 'initial_cash = "lots"', "not a decimal number"),
    ("cash-nan", 'initial_cash = "100000"', 'initial_cash = "NaN"', "must be a positive amount"),
    ("cash-inf", 'initial_cash = "100000"', 'initial_cash = "-Infinity"', "must be a positive amount"),
    ("cash-huge", 'initial_cash = "100000"', 'initial_cash = "1e30"', "at most 10,000,000,000,000"),
    ("cash-exponent", 'initial_cash = "100000"', 'initial_cash = "1e999999999"', "must be a positive"),
    ("cash-negative", 'initial_cash = "100000"', 'initial_cash = "-1000000"', "must be a positive amount"),
    ("cash-zero", 'initial_cash = "100000"', 'initial_cash = "0"', "must be a positive amount"),
    ("currency-xyz", 'currency = "USD"', 'currency = "XYZ"', "unknown currency 'XYZ'"),
    ("currency-empty", 'currency = "USD"', 'currency = ""', "unknown currency ''"),
    ("strategy-range", "fast = 3, slow = 9", "fast = 9, slow = 3", "strategy sma_crossover"),
    ("dataset-int", 'dataset = "data"', "dataset = 5", "dataset must be a path"),
    ("journal-list", 'journal = "journal"', "journal = [1]", "journal must be a path"),
    ("journal-file", 'journal = "journal"', 'journal = "data/manifest.json"', "not an LMDB journal"),
    ("dataset-file", 'dataset = "data"', 'dataset = "data/manifest.json"', "manifest.json"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("refusals")
    make_dataset(folder / "data", symbols=2, bars=60)
    return folder


@pytest.mark.parametrize(("name", "old", "new", "words"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_a_hostile_config_is_refused_in_one_line(
    data: Path, capsys: pytest.CaptureFixture[str], name: str, old: str, new: str, words: str
) -> None:
    assert old in CONFIG
    config = data / f"{name}.toml"
    config.write_text(CONFIG.replace(old, new))
    assert tape(["backtest", str(config)]) == EXIT_REFUSED
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("error: ")]  # a progress bar may precede it
    assert len(lines) == 1, out
    assert str(config) in lines[0]
    assert words in lines[0]
    assert not (data / "journal").exists()  # nothing left behind, not even an empty journal


def test_a_binary_file_as_config(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = data / "binary.toml"
    config.write_bytes(bytes(range(256)) * 4)
    assert tape(["backtest", str(config)]) == EXIT_REFUSED
    assert capsys.readouterr().out.strip() == f"error: {config}: not a TOML file (not UTF-8 text)"
