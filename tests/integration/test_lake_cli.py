"""``tape ingest`` through its own parser (cli.main wires the same two functions)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cli.ingest import add_ingest_parser, cmd_ingest
from lake.partitioned import Lake


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tape")
    add_ingest_parser(parser.add_subparsers(dest="verb", required=True))
    return cmd_ingest(parser.parse_args(argv))


def test_ingest_prints_the_balance_and_quarantines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bars.csv"
    source.write_text(
        "when,o,h,l,c,v\n"
        "2024-01-02 00:01:00,10,11,9,10.5,5\n"
        "2024-01-02 00:02:00,10,9,9,10.5,5\n"  # high below open/close
        "2024-01-02 00:01:00,10,11,9,10.5,5\n"  # duplicate
    )
    argv = [
        "ingest",
        "csv",
        str(source),
        "--out",
        str(tmp_path / "lake"),
        "--symbol",
        "BTC/USDT",
        "--venue",
        "x",
    ]
    argv += [
        "--calendar",
        "24x7",
        "--currency",
        "USDT",
        "--frequency",
        "1m",
        "--ts-format",
        "%Y-%m-%d %H:%M:%S",
    ]
    argv += ["--map", "ts=when,open=o,high=h,low=l,close=c,volume=v"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "in 3 = accepted 1 + quarantined 2" in out
    report = json.loads((tmp_path / "lake" / "reports" / "ingest-000001.json").read_text())
    assert report["files"][0]["reasons"] == {"duplicate": 1, "ohlc_inconsistent": 1}
    assert Lake(tmp_path / "lake").verify() == []


def test_unparseable_file_exits_non_zero_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "AAA.txt"
    source.write_text("Date,Open,High,Low,Close,Volume\n2014-01-02,1,1,1,1,1\n2014-01-03,1,1\n")
    assert run(["ingest", "yahoo", str(source), "--out", str(tmp_path / "lake")]) == 2
    out = capsys.readouterr().out
    assert "AAA.txt:3: expected 6 fields, got 3" in out
    assert not (tmp_path / "lake").exists()
