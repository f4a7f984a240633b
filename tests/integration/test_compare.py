"""`tape compare`: two backtests of one strategy that match, and two that part at a known day
(an operator flatten scheduled in B only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from sim.backtest import OperatorCommandConfig
from tests.factories import make_config, make_dataset, run

FLATTEN_DAY = "2020-03-05"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compare")
    data = make_dataset(root / "data", symbols=3, bars=120)
    run(make_config(data, root / "a", seed=1))
    run(make_config(data, root / "a2", seed=1))
    flatten = OperatorCommandConfig(at=f"{FLATTEN_DAY}T00:00:00Z", command="flatten", operator="ops")
    run(make_config(data, root / "b", seed=1, operator_commands=[flatten]))
    return root


def compare(root: Path, a: str, b: str, tmp_path: Path) -> tuple[int, dict[str, object]]:
    out = tmp_path / "compare.json"
    status = main(["compare", str(root / a), str(root / b), "--json", str(out)])
    return status, json.loads(out.read_text())


def test_two_runs_of_one_config_are_the_same(runs: Path, tmp_path: Path) -> None:
    status, result = compare(runs, "a", "a2", tmp_path)
    assert status == 0
    assert result["same"] is True
    assert result["first_differing_day"] is None
    assert result["first_divergent_event"] is None
    days = result["days"]
    assert isinstance(days, list)
    assert len(days) == 120
    assert all(day["differs"] == [] and day["nav_diff"] == "0.00" for day in days)
    summary = result["summary"]
    assert summary["nav"] == {
        "days": 120,
        "differing_days": 0,
        "mean": 0.0,
        "mean_abs": 0.0,
        "max_abs": 0.0,
        "last": 0.0,
    }  # type: ignore[index]


def test_a_flatten_in_b_parts_the_runs_at_its_day(runs: Path, tmp_path: Path) -> None:
    status, result = compare(runs, "a", "b", tmp_path)
    assert status == 1
    assert result["same"] is False
    assert result["first_differing_day"] == FLATTEN_DAY
    assert result["first_differing_day_figures"] == ["nav", "cash", "fills", "fees", "positions"]
    days = {day["day"]: day for day in result["days"]}  # type: ignore[union-attr]
    assert all(day["differs"] == [] for iso, day in days.items() if iso < FLATTEN_DAY)
    flat = days[FLATTEN_DAY]
    assert (flat["fills_a"], flat["fills_b"]) == (0, 3)
    assert {symbol: pair[1] for symbol, pair in flat["positions_differ"].items()} == {
        "SYN0001": "0", "SYN0002": "0", "SYN0003": "0",
    }  # fmt: skip
    event = result["first_divergent_event"]
    assert isinstance(event, dict)
    assert event["kind_a"] == "day.closed.v1"
    assert event["kind_b"] == "killswitch.tripped.v1"
    assert event["event_b"]["reason"] == "operator ops: flatten"
    assert event["seq_b"] == event["seq_a"] + 1  # B journals the operator's command before it
    assert "kind" in event["fields"]


def test_table_at_80_columns_and_csv(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.progress import console

    monkeypatch.setattr(console, "width", 80)
    csv_path = tmp_path / "days.csv"
    assert main(["compare", str(runs / "a"), str(runs / "b"), "--csv", str(csv_path)]) == 1
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert f"first differing day {FLATTEN_DAY}" in out
    assert "B seq 219 killswitch.tripped.v1" in " ".join(out.split())
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("day,nav_a,nav_b,nav_diff,cash_a")
    assert len(rows) == 121
    flatten_row = next(row for row in rows if row.startswith(FLATTEN_DAY))
    assert flatten_row.endswith("nav cash fills fees positions")


def test_journals_without_a_day_close_are_refused(runs: Path, tmp_path: Path) -> None:
    assert main(["compare", str(runs / "a"), str(tmp_path / "missing")]) == 2


def test_a_damaged_journal_exits_1_and_a_missing_one_2(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import shutil

    damaged = tmp_path / "truncated"
    shutil.copytree(runs / "a", damaged)
    os.truncate(damaged / "data.mdb", (damaged / "data.mdb").stat().st_size // 2)
    assert main(["compare", str(runs / "a"), str(damaged)]) == 1
    assert main(["reconcile", str(damaged), "--no-ledger", "--statement", str(tmp_path / "none.csv")]) == 2
    assert main(["compare", str(runs / "a"), str(tmp_path / "missing")]) == 2
    out = capsys.readouterr().out
    assert "Traceback" not in out
    assert all(line.startswith("error:") for line in out.splitlines() if "error" in line)


@pytest.mark.parametrize("store", ["lmdb", "sqlite"])
def test_a_broken_second_journal_is_the_one_named(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], store: str
) -> None:
    """QA: `tape compare A B` with B's hash chain broken said `error: A: hash chain broken`."""
    import shutil
    import sqlite3

    from kernel.store import open_journal

    if store == "lmdb":
        damaged = tmp_path / "broken"
        shutil.copytree(runs / "a", damaged)
        with open_journal(damaged) as journal:
            payload = journal.record(100).payload
        data = bytearray((damaged / "data.mdb").read_bytes())
        at = data.find(payload) + len(payload) // 2
        assert at > len(payload) // 2
        data[at] ^= 0x01
        (damaged / "data.mdb").write_bytes(bytes(data))
    else:
        damaged = tmp_path / "broken.sqlite"
        run(make_config(runs / "data", damaged, seed=1))
        with sqlite3.connect(damaged) as db:
            first_seq, value = db.execute(
                "SELECT first_seq, value FROM journal_segments ORDER BY first_seq LIMIT 1"
            ).fetchone()
            flipped = bytearray(value)
            flipped[len(flipped) // 2] ^= 0x01
            db.execute(
                "UPDATE journal_segments SET value = ? WHERE first_seq = ?", (bytes(flipped), first_seq)
            )
    capsys.readouterr()
    assert main(["compare", str(runs / "a"), str(damaged)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith(f"error: {damaged}: "), out
    assert str(runs / "a") not in out
    assert main(["compare", str(damaged), str(runs / "a")]) == 1
    assert " ".join(capsys.readouterr().out.split()).startswith(f"error: {damaged}: ")


def test_a_large_book_at_80_columns_never_cuts_a_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA: with initial_cash 9,000,000,000,000 the table showed `8,997,703,043…` and `2019-0…`;
    columns are dropped (and named) instead, as the project's table helpers do."""
    from decimal import Decimal

    from cli.progress import console

    data = make_dataset(tmp_path / "data", symbols=3, bars=60)
    run(make_config(data, tmp_path / "a", seed=1, initial_cash=Decimal("9000000000000")))
    flatten = OperatorCommandConfig(at="2020-02-05T00:00:00Z", command="flatten", operator="ops")
    run(
        make_config(
            data, tmp_path / "b", seed=1, initial_cash=Decimal("9000000000000"), operator_commands=[flatten]
        )
    )
    monkeypatch.setattr(console, "width", 80)
    csv_path = tmp_path / "days.csv"
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--csv", str(csv_path)]) == 1
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out, out
    first = next(row for row in csv_path.read_text().splitlines()[1:] if row.endswith("positions"))
    day, nav_a = first.split(",")[:2]
    assert f"{day} " in out, out
    assert f"{Decimal(nav_a):,.0f}" in out, out


@pytest.fixture(scope="module")
def fifty_names(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs of 50 and of 49 names (their first compared event, instruments.defined, differs),
    and a copy of the first cut before its first day."""
    from tests.factories import killed_copy

    root = tmp_path_factory.mktemp("compare-fifty")
    for name, symbols in (("a", 50), ("b", 49)):
        data = make_dataset(root / f"data-{name}", symbols=symbols, bars=25)
        run(make_config(data, root / name, seed=1))
    assert killed_copy(root / "a", root / "cut", 2) == 2  # run.started, dataset.referenced
    return root


def _compare_at_80(
    root: Path,
    a: str,
    b: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, list[str], dict[str, Any]]:
    from cli.progress import console

    monkeypatch.setattr(console, "width", 80)
    capsys.readouterr()
    status = main(["compare", str(root / a), str(root / b)])
    lines = capsys.readouterr().out.splitlines()
    assert main(["compare", str(root / a), str(root / b), "--json", str(tmp_path / "c.json")]) == status
    capsys.readouterr()
    divergence = json.loads((tmp_path / "c.json").read_text())["first_divergent_event"]
    start = next(i for i, line in enumerate(lines) if "first divergent event" in line)
    # Up to the unfinished run's line (one line however long: its path is copied whole).
    return status, [line for line in lines[start:] if "unfinished run" not in line], divergence


def test_a_large_divergent_event_is_summarised_in_a_few_lines(
    fifty_names: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA: the first divergent event was printed whole: an instruments.defined of 50 names ran
    to hundreds of lines. Now its kind, seq and time and the differing fields, each cut to the
    line with a count of what is left out; --json keeps both events whole."""
    status, lines, divergence = _compare_at_80(fifty_names, "a", "b", tmp_path, capsys, monkeypatch)
    assert status == 1
    said = " ".join(" ".join(lines).split())
    assert "first divergent event #0: A seq 2 instruments.defined.v1, B seq 2 instruments.defined.v1" in said
    assert "at 2020-01-02T00:00:00Z in both" in said
    assert "instruments: A 50 items, B 49 items; first differing: [49]" in said, said
    assert "B[49]: (none)" in said
    assert len(lines) <= 12, lines
    assert max(len(line) for line in lines) <= 80
    assert len(divergence["event_a"]["instruments"]) == 50  # the JSON: whole
    assert len(divergence["event_b"]["instruments"]) == 49
    assert divergence["fields"] == ["instruments"]


def test_a_run_cut_before_its_first_day_gives_both_seqs_and_a_bounded_event(
    fifty_names: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA: "A ends there" named neither A's end nor B's seq, and B's instruments.defined (50
    names) was printed whole."""
    status, lines, divergence = _compare_at_80(fifty_names, "cut", "a", tmp_path, capsys, monkeypatch)
    assert status == 3  # A is an unfinished prefix of B
    said = " ".join(" ".join(lines).split())
    assert "first divergent event #0: A ends at seq 1, B seq 2 instruments.defined.v1" in said, said
    assert "B at 2020-01-02T00:00:00Z" in said
    assert "instruments: B [{20 keys}, ... 49 more items]" in said, said
    assert "instruments: A" not in said
    assert len(lines) <= 8, lines
    assert max(len(line) for line in lines) <= 80
    assert divergence["event_a"] is None
    assert len(divergence["event_b"]["instruments"]) == 50
