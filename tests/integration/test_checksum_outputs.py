"""``verify``, ``rebuild``, ``projections rebuild``, ``audit`` and ``strategies`` take
``--json [PATH]`` and ``--csv PATH`` as the other verbs do: a file (with a ``wrote PATH`` line
beside the text), or ``-`` / a bare ``--json`` for stdout, which then carries the data alone
(the text, and a journal's "unfinished run" line, on stderr)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from cli.main import EXIT_DAMAGED, EXIT_OK, EXIT_UNFINISHED, main
from kernel.store import open_journal
from models.plugins import installed_strategies
from projections import open_ledger, rebuild_ledger
from tests.factories import killed_copy, make_config, make_dataset, run


@pytest.fixture
def journals(tmp_path: Path) -> tuple[Path, Path, str]:
    """A finished run's journal, a copy cut after 30 records (unfinished), the run's head."""
    result = run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=60), tmp_path / "j"))
    killed_copy(tmp_path / "j", tmp_path / "cut", 30)
    return tmp_path / "j", tmp_path / "cut", result.last_hash


def _checksums(ledger: Path) -> dict[str, dict[str, object]]:
    with open_ledger(ledger) as opened:
        checksums = opened.table_checksums()
    return {
        name: {"rows": int(c.split()[0].split("=")[1]), "sha256": c.split("sha256=")[1]}
        for name, c in sorted(checksums.items())
    }


def test_verify_json_path_and_csv_on_stdout(
    journals: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: `tape verify J --json PATH` was refused (`unrecognized arguments`: --json was a flag
    that printed) and verify had no --csv at all."""
    journal, cut, head = journals
    capsys.readouterr()
    out = tmp_path / "out" / "verify.json"
    assert main(["verify", str(journal), "--json", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert f"chain head {head[:16]}" in printed and f"wrote {out}" in printed
    sound = json.loads(out.read_text())
    assert sound["records"] == 201 and sound["chain_head"] == head and sound["finished"] is True
    assert main(["verify", str(cut), "--csv", "-"]) == EXIT_UNFINISHED
    captured = capsys.readouterr()
    (row,) = list(csv.DictReader(io.StringIO(captured.out)))  # the CSV alone: one row
    assert row["records"] == "30" and row["finished"] == "False" and row["torn_tail.records_cut"] == ""
    assert row["chain_head"] == json.loads(_verify_json(cut, capsys))["chain_head"] != head
    assert "unfinished run" in captured.err and "OK 30 records" in captured.err
    header = captured.out.splitlines()[0]
    assert main(["verify", str(journal), "--csv", "-"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[0] == header  # the same columns, whatever the verdict
    with open_journal(journal) as opened:
        payload = bytes(opened.record(20).payload)
    data = journal / "data.mdb"
    raw = data.read_bytes()
    at = raw.index(payload)
    data.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :])
    assert main(["verify", str(journal), "--json", "-"]) == EXIT_DAMAGED
    captured = capsys.readouterr()
    damaged = json.loads(captured.out)  # the verdict alone on stdout, the FAIL line on stderr
    assert damaged["ok"] is False and damaged["first_bad_seq"] == 20 and damaged["records"] is None
    assert "FAIL first bad seq 20" in captured.err


def _verify_json(journal: Path, capsys: pytest.CaptureFixture[str]) -> str:
    main(["verify", str(journal), "--json"])  # bare --json: stdout, as before
    return capsys.readouterr().out


def test_rebuild_json_on_stdout_is_json_alone_for_an_unfinished_run(
    journals: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: `tape rebuild CUT --json` printed the "unfinished run: ..." line on stdout after the
    JSON, so `| jq` failed (Extra data); `--json PATH` was refused."""
    _, cut, _ = journals
    ledger = tmp_path / "cut.sqlite"
    capsys.readouterr()
    assert main(["rebuild", str(cut), "--db", str(ledger), "--json"]) == EXIT_UNFINISHED
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["records"] == 30 and printed["checkpoint_seq"] == 29
    assert printed["tables"] == _checksums(ledger) and printed["tables"]["nav"]["rows"] > 0
    assert "unfinished run" in captured.err and "sha256" in captured.err  # the table: stderr
    out = tmp_path / "out" / "rebuild.json"
    assert main(["rebuild", str(cut), "--db", str(ledger), "--json", str(out)]) == EXIT_UNFINISHED
    assert f"wrote {out}" in capsys.readouterr().out
    assert json.loads(out.read_text()) == printed


def test_projections_rebuild_json_path_and_csv(
    journals: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: `tape projections rebuild J --json PATH` was refused (a flag only)."""
    journal, _, _ = journals
    ledger, out = tmp_path / "p.sqlite", tmp_path / "out" / "checksums.json"
    capsys.readouterr()
    argv = ["projections", "rebuild", str(journal), "--db", str(ledger), "--json", str(out), "--csv", "-"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    tables = _checksums(ledger)
    written = json.loads(out.read_text())
    assert written["tables"] == tables and written["records"] == 201 and written["ledger"] == str(ledger)
    rows = list(csv.DictReader(io.StringIO(captured.out)))  # stdout: the CSV alone
    assert {row["table"]: {"rows": int(row["rows"]), "sha256": row["sha256"]} for row in rows} == tables
    assert f"wrote {out}" in captured.err


def test_projections_rebuild_exits_3_for_an_unfinished_run_as_rebuild_does(
    journals: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tape projections rebuild CUT` exited 0 where `tape rebuild CUT` exits 3 (the same
    rebuild, two verdicts): now 3 with the "unfinished run" line, on stderr beside `--json -`;
    the ledger is rebuilt either way."""
    journal, cut, _ = journals
    ledger = tmp_path / "cut.sqlite"
    capsys.readouterr()
    argv = ["projections", "rebuild", str(cut), "--db", str(ledger)]
    assert main(argv) == EXIT_UNFINISHED
    assert "unfinished run" in capsys.readouterr().out
    assert main([*argv, "--json", "-"]) == EXIT_UNFINISHED
    captured = capsys.readouterr()
    assert json.loads(captured.out)["tables"] == _checksums(ledger)  # the JSON alone on stdout
    assert "unfinished run" in captured.err
    assert main(["rebuild", str(cut), "--db", str(tmp_path / "plain.sqlite")]) == EXIT_UNFINISHED
    capsys.readouterr()
    assert main(["projections", "rebuild", str(journal), "--db", str(ledger)]) == EXIT_OK
    assert "unfinished" not in capsys.readouterr().out


def test_audit_json_path_and_csv_on_stdout(
    journals: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: `tape audit J --json PATH` was refused (a flag only); with `--csv -` the CSV is alone
    on stdout and the verdict lines go to stderr."""
    journal, _, _ = journals
    ledger = tmp_path / "ledger.sqlite"
    built = rebuild_ledger(journal, ledger)
    with sqlite3.connect(ledger) as connection:
        connection.execute("UPDATE nav SET nav_minor = nav_minor + 1 WHERE day = (SELECT max(day) FROM nav)")
    connection.close()
    out = tmp_path / "out" / "audit.json"
    capsys.readouterr()
    argv = ["audit", str(journal), "--db", str(ledger), "--json", str(out), "--csv", "-"]
    assert main(argv) == 1  # the same exit status as the text
    captured = capsys.readouterr()
    found = json.loads(out.read_text())
    assert found["ok"] is False and found["checkpoint_seq"] == built.checkpoint_seq == 200
    assert [d["table"] for d in found["differences"]] == ["nav"]
    (row,) = list(csv.DictReader(io.StringIO(captured.out)))
    assert row["table"] == "nav" and row["ok"] == "False" and row["tables"] == str(found["tables"])
    assert "nav" in captured.err and f"wrote {out}" in captured.err


def test_strategies_json_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: `tape strategies --json PATH` was refused (a flag only)."""
    out = tmp_path / "out" / "strategies.json"
    assert main(["strategies", "--json", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert json.loads(out.read_text()) == installed_strategies()
    assert json.loads(out.read_text())["sma_crossover"] == "models.strategies.sma_crossover:SmaCrossover"


def test_models_json_path_and_json_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: `tape models DIR --json PATH` was refused (a flag only)."""
    from models.ml.registry import register

    meta = {"kind": "lightgbm", "label": {"horizon": 5, "gap": 1}, "rows": 1446,
            "train_window": {"start": "2004-01-01", "end": "2009-12-31", "end_ts_ns": 1},
            "metrics": {"wf_mean_test_ic": 0.01}}  # fmt: skip
    digest = register(tmp_path / "reg", "tree\n", meta)
    out = tmp_path / "out" / "models.json"
    assert main(["models", str(tmp_path / "reg"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert digest in printed and f"wrote {out}" in printed  # the table, and where the JSON went
    (artifact,) = json.loads(out.read_text())
    assert artifact["hash"] == digest and artifact["rows"] == 1446
    assert artifact["metrics"]["wf_mean_test_ic"] == 0.01
    assert main(["models", str(tmp_path / "reg"), "--json"]) == 0  # bare: stdout, the data alone
    captured = capsys.readouterr()
    assert json.loads(captured.out) == json.loads(out.read_text()) and digest in captured.err


def test_ingest_json_path_and_csv_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: `tape ingest ... --json PATH` was refused (a flag only)."""
    source = tmp_path / "bars.csv"
    source.write_text(
        "Date,Open,High,Low,Close,Volume\n2024-01-01,10,11,9,10.5,100\n"
        "2024-01-02,10.5,12,10,11,200\n2024-01-03,11,10,12,11,300\n"  # high < low: quarantined
    )
    out = tmp_path / "out" / "ingest.json"
    argv = ["ingest", "csv", str(source), "--out", str(tmp_path / "lake"), "--symbol", "ABC"]
    argv += ["--venue", "TEST", "--calendar", "24x7", "--json", str(out), "--csv", "-"]
    argv += ["--map", "ts=Date,open=Open,high=High,low=Low,close=Close,volume=Volume"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    (report,) = json.loads(out.read_text())["files"]
    assert (report["rows_in"], report["accepted"], report["quarantined"]) == (3, 2, 1)
    assert report["reasons"] == {"ohlc_inconsistent": 1}
    (row,) = list(csv.DictReader(io.StringIO(captured.out)))  # stdout: the CSV alone
    assert (row["rows_in"], row["accepted"], row["quarantined"]) == ("3", "2", "1")
    assert "in 3 = accepted 2 + quarantined 1" in captured.err and f"wrote {out}" in captured.err


def test_health_json_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: `tape health LAKE --json PATH` was refused (a flag only)."""
    from tests.factories import synth_lake

    lake = synth_lake(tmp_path / "lake", symbols=3, bars=30)
    out = tmp_path / "out" / "health.json"
    assert main(["health", str(lake), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "data health" in printed and f"wrote {out}" in printed
    (bars,) = json.loads(out.read_text())
    assert (bars["dataset"], bars["instruments"], bars["rows"]) == ("bars/1d", 3, 90)
    assert isinstance(bars["coverage"], float)


@pytest.mark.parametrize("width", [80, 120])
def test_rebuild_hashes_are_printed_whole_at_80_and_at_120_columns(
    width: int, journals: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """At 80 columns the rebuild table folded each 64-digit sha256 over two lines (a hash is
    what a user compares or copies); now the hash is whole on its own line where the three
    columns do not fit, and in the table's column where they do."""
    from cli.progress import console

    monkeypatch.setattr(console, "width", width)
    journal, _, _ = journals
    ledger = tmp_path / "r.sqlite"
    capsys.readouterr()
    assert main(["rebuild", str(journal), "--db", str(ledger)]) == 0
    lines = capsys.readouterr().out.splitlines()
    tables = _checksums(ledger)
    for name, row in tables.items():
        holding = [line for line in lines if str(row["sha256"]) in line]
        assert len(holding) == 1, (name, lines)
        if width == 80:
            assert holding[0] == f"  sha256 {row['sha256']}"
        else:
            assert name in holding[0] and f" {row['rows']:,} " in holding[0]
    assert max(len(line) for line in lines[1:]) <= width
