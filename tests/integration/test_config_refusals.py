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
    ("cash-exponent", 'initial_cash = "100000"', 'initial_cash = "1e999999999"', "is too large: at most"),
    ("cash-negative", 'initial_cash = "100000"', 'initial_cash = "-1000000"', "must be a positive amount"),
    ("cash-zero", 'initial_cash = "100000"', 'initial_cash = "0"', "must be a positive amount"),
    ("currency-xyz", 'currency = "USD"', 'currency = "XYZ"', "unknown currency 'XYZ'"),
    ("currency-empty", 'currency = "USD"', 'currency = ""', "unknown currency ''"),
    ("strategy-range", "fast = 3, slow = 9", "fast = 9, slow = 3", "strategy sma_crossover"),
    ("strategy-float-bars", "fast = 3", "fast = 1.0", "fast must be a whole number of bars"),
    ("strategy-huge-window", "slow = 9", "slow = 1744830464", "slow must be at most 100,000 bars"),
    ("seed-past-64-bits", "seed = 1", "seed = -9223372036854775809", "seed must be a 64-bit integer"),
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


# Any value at all for a key a user edits: the run goes (exit 0) or is refused in one line (exit
# 2) naming the file, with no journal left behind; never an internal error (70) or an exception.
EDITED = {
    "run_id": 'run_id = "refusals"',
    "seed": "seed = 1",
    "currency": 'currency = "USD"',
    "initial_cash": 'initial_cash = "100000"',
    "fast": "fast = 3",
    "slow": "slow = 9",
    "weight": "weight = 0.9",
}


def _toml_value(value: object) -> str:
    import json
    import math

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(value)  # ints, and strings as TOML basic strings


def test_any_value_of_an_edited_key_runs_or_is_refused_in_one_line(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = st.one_of(
        st.text(max_size=12),
        st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{0,6})?([eE][+-]?[0-9]{1,4})?", fullmatch=True),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(),
        st.booleans(),
        st.lists(st.integers(min_value=-5, max_value=5), max_size=2),
    )
    examples = iter(range(1_000_000))

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(key=st.sampled_from(sorted(EDITED)), value=values)
    def check(key: str, value: object) -> None:
        number = next(examples)
        name = f"edited-{number}"
        text = CONFIG.replace('journal = "journal"', f'journal = "{name}"')
        edited = EDITED[key].split(" = ")[0] + " = " + _toml_value(value)
        config = data / f"{name}.toml"
        config.write_text(text.replace(EDITED[key], edited))
        capsys.readouterr()
        status = tape(["backtest", str(config)])
        out = capsys.readouterr().out
        assert status in (0, EXIT_REFUSED), f"{key} = {value!r}: exit {status}\n{out}"
        if status == EXIT_REFUSED:
            lines = [line for line in out.splitlines() if line.startswith("error: ")]
            assert len(lines) == 1 and str(config) in lines[0], f"{key} = {value!r}\n{out}"
            assert not (data / name).exists(), f"{key} = {value!r}: a refused run left a journal"

    check()
