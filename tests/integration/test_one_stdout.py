"""One output on stdout per command: ``--json -`` (or the flag ``--json``) beside ``--csv -``
is refused (exit 2) before any work, in every verb that has both; where ``--json`` is a flag
that prints, a ``--csv FILE`` beside it is still written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cli.main import main as tape
from cli.progress import one_stdout
from cli.wiring import ConfigError

# Each verb with inputs that do not exist: the refusal must come before they are read (a
# "no such file" would mean the verb did work first, or never checked).
VERBS = {
    "runs": ["runs", "NOPE", "--json", "-", "--csv", "-"],
    "walkforward": ["walkforward", "NOPE.toml", "--json", "-", "--csv", "-"],
    "montecarlo": ["montecarlo", "NOPE", "--json", "-", "--csv", "-"],
    "train": ["train", "NOPE.toml", "--json", "-", "--csv", "-"],
    "reconcile": ["reconcile", "NOPE", "--statement", "NOPE.csv", "--json", "-", "--csv", "-"],
    "compare": ["compare", "NOPE_A", "NOPE_B", "--json", "-", "--csv", "-"],
    "jobs list": ["jobs", "list", "--config", "NOPE.toml", "--json", "-", "--csv", "-"],
    "alerts list": ["alerts", "list", "--rules", "NOPE.toml", "--json", "-", "--csv", "-"],
    "models": ["models", "NOPE", "--json", "-", "--csv", "-"],
    "strategies": ["strategies", "--json", "-", "--csv", "-"],
    "rebuild": ["rebuild", "NOPE", "--json", "-", "--csv", "-"],
    "projections rebuild": ["projections", "rebuild", "NOPE", "--json", "-", "--csv", "-"],
    "audit": ["audit", "NOPE", "--json", "-", "--csv", "-"],
    "verify": ["verify", "NOPE", "--json", "-", "--csv", "-"],
    "health": ["health", "NOPE", "--json", "-", "--csv", "-"],
    # --json PATH alone means stdout, as in runs and walkforward (it was "expected one argument")
    "compare --json": ["compare", "NOPE_A", "NOPE_B", "--json", "--csv", "-"],
    "jobs list --json": ["jobs", "list", "--json", "--csv", "-", "--config", "NOPE.toml"],
    "alerts list --json": ["alerts", "list", "--json", "--rules", "NOPE.toml", "--csv", "-"],
    "montecarlo --json": ["montecarlo", "NOPE", "--json", "--csv", "-"],
    "train --json": ["train", "NOPE.toml", "--json", "--csv", "-"],
    "reconcile --json": ["reconcile", "NOPE", "--json", "--csv", "-"],
    "report --json": ["report", "NOPE", "--json", "--orders", "-"],
    "strategies --json": ["strategies", "--json", "--csv", "-"],
    "rebuild --json": ["rebuild", "NOPE", "--json", "--csv", "-"],
    "verify --json": ["verify", "NOPE", "--json", "--csv", "-"],
    "models --json": ["models", "NOPE", "--json", "--csv", "-"],
    "health --json": ["health", "NOPE", "--json", "--csv", "-"],
}


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_two_outputs_on_stdout_are_refused_before_work(
    verb: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = VERBS[verb]
    assert tape(argv) == 2, capsys.readouterr()
    captured = capsys.readouterr()
    assert captured.out == ""  # data was asked on stdout: the error line goes to stderr
    out = " ".join(captured.err.split())
    path_option = argv[argv.index("--json") + 1] == "-" or verb.endswith("--json")
    other = "--orders -" if "--orders" in argv else "--csv -"
    assert f"--json{' -' if path_option else ''} and {other} both write to stdout" in out, out
    assert list(tmp_path.iterdir()) == []  # nothing made: no '-' file, no output folder


def test_one_stdout_names_every_output_on_stdout() -> None:
    assert one_stdout(json=None, csv=None) is False
    assert one_stdout(json="a.json", csv="-") is True
    assert one_stdout(json=True, csv="b.csv") is True  # a flag that prints
    assert one_stdout(json=False, csv="b.csv") is False
    with pytest.raises(ConfigError, match="--json -, --orders - and --strategies - all write to stdout"):
        one_stdout(json="-", orders="-", strategies="-")


def test_strategies_json_flag_still_writes_the_csv_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tape strategies --json --csv FILE`` printed the JSON and never wrote FILE."""
    out = tmp_path / "strategies.csv"
    assert tape(["strategies", "--json", "--csv", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader(out.open()))
    assert {row["name"]: row["entry"] for row in rows} == printed
    assert "sma_crossover" in printed


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "NOPE", "--json", "-"],
        ["verify", "NOPE", "--json"],
        ["verify", "NOPE", "--csv", "-"],
        ["report", "NOPE", "--orders", "-"],
        ["backtest", "NOPE.toml", "--json", "-"],
    ],
    ids=" ".join,
)
def test_a_refusal_with_data_asked_on_stdout_says_so_on_stderr(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tape verify NOPE --json - | jq`` gave jq the line ``error: ...`` on stdout; the data
    goes there or nothing does, the error line to stderr. Without data on stdout the error
    line stays where the verb's results go (stdout), as the runbook says."""
    monkeypatch.chdir(tmp_path)
    assert tape(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error:") and "NOPE" in captured.err, captured
    assert tape(argv[:2]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("error:") and "NOPE" in captured.out and captured.err == "", captured
