"""`make demo` (the README's first command) end to end: `tape demo` generates its data, runs
the three backtests, rebuilds each SQLite ledger, reports, verifies and replays, exit 0. No
test ran it before; a Namespace the demo built by hand lacked an option a verb had come to
read, and the README's first command ended in an internal error."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from cli.main import main as tape


def test_the_demo_runs_verifies_and_replays_its_three_backtests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "demo"
    assert tape(["demo", "--workdir", str(workdir), "--json", "-", "--csv", "-"]) == 2
    assert "--json - and --csv - both write to stdout" in capsys.readouterr().err  # data was asked on stdout
    assert not workdir.exists()  # refused before any work
    outputs = ["--json", str(tmp_path / "demo.json"), "--csv", str(tmp_path / "demo.csv")]
    assert tape(["demo", "--workdir", str(workdir), *outputs]) == 0
    out = capsys.readouterr().out
    written = re.findall(r"journal \S+/journals/(\w+): ([\d,]+) records, chain head (\w+)", out)
    assert [name for name, _, _ in written] == ["sma_minute", "momentum_daily", "two_strategies_daily"]
    verified = re.findall(r"^OK ([\d,]+) records, chain head (\w+)", out, flags=re.M)
    assert verified == [(records, head) for _, records, head in written]  # verify: the same chain
    assert out.count("replay matched the hash chain") == 3
    for name, _, _ in written:
        assert (workdir / "journals" / f"{name}.ledger.sqlite").stat().st_size > 0
    # --json / --csv: each run's journal, head, records, final NAV and verdicts (had none)
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["ok"] is True and summary["workdir"] == str(workdir)
    runs = summary["runs"]
    assert [run["config"] for run in runs] == [f"{name}.toml" for name, _, _ in written]
    for run, (name, records, head) in zip(runs, written, strict=True):
        assert run["backtest"]["journal"] == str(workdir / "journals" / name)
        assert run["backtest"]["records"] == int(records.replace(",", ""))
        assert run["backtest"]["chain_head"].startswith(head)
        assert f"final NAV {run['backtest']['final_nav']:,.2f} USD" in " ".join(out.replace("│", " ").split())
        assert run["status"] == run["verify_status"] == run["replay_status"] == 0
        assert run["replay"]["ok"] is True and run["replay"]["records_compared"] > 0
    rows = list(csv.DictReader((tmp_path / "demo.csv").open()))
    assert [row["config"] for row in rows] == [run["config"] for run in runs]
    assert [row["backtest.chain_head"] for row in rows] == [run["backtest"]["chain_head"] for run in runs]
    assert [row["replay.ok"] for row in rows] == ["True"] * 3
