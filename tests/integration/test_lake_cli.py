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


SHARED_US = Path(__file__).resolve().parents[3] / "shared" / "data" / "us"


@pytest.mark.skipif(not SHARED_US.exists(), reason=f"real market data not present at {SHARED_US}")
def test_the_ingest_table_fits_80_columns_and_cuts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real Yahoo files: every name, symbol and count whole at 80 columns (names fold onto a
    second line, counts never), the table no wider than the terminal."""
    from cli.progress import console

    monkeypatch.setattr(console, "width", 80)
    files = [str(SHARED_US / name) for name in ("yhoo-1996-2015.txt", "orcl-1995-2014.txt")]
    assert run(["ingest", "yahoo", *files, "--out", str(tmp_path / "lake")]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert not [line for line in out.splitlines() if "│" in line and "…" in line]  # the progress line may
    rows = [line.split("│") for line in out.splitlines() if line.count("│") == 6]  # the ingest table's
    first = "".join(cells[0].strip() for cells in rows)  # the file column, its folds joined again
    for whole in ("yhoo-1996-2015.txt", "orcl-1995-2014.txt", "XNYS:YHOO", "XNYS:ORCL"):
        assert whole in first, (whole, first)
    assert [cells[1].strip() for cells in rows if cells[1].strip()] == ["4,965", "5,036"]
    assert "in 10,001 = accepted 10,001 + quarantined 0" in out
