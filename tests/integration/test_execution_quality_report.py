"""Execution quality end to end: a backtest with partial fills (participation cap) and
slippage, ``tape report`` and its exports, and the ledger projections on both databases."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from cli.main import main as tape
from domain.execution.posttrade_fold import ROW_COLUMNS, ExecutionRow
from kernel.store import open_journal
from projections import open_ledger, rebuild_ledger
from sim.execution_report import ExecutionReport, execution_report
from sim.fill_models import FillModel
from tests.contracts.projection_servers import scratch_database
from tests.factories import make_config, make_dataset, run

_ADDED = (
    "intended_qty_raw",
    "filled_qty_raw",
    "filled_notional_minor",
    "intended_notional_minor",
    "decision_notional_minor",
    "arrival_notional_minor",
    "execution_cost_decision_minor",
    "execution_cost_arrival_minor",
    "opportunity_cost_decision_minor",
    "shortfall_decision_minor",
    "shortfall_arrival_minor",
)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("execution")
    data = make_dataset(root / "data", symbols=5, bars=200)
    path = root / "journal"
    # 0.1% of a bar's volume: many orders fill partly and are cancelled by the next decision.
    run(make_config(data, path, fill=FillModel(slippage_e8=50_000, participation_e8=100_000)))
    return path


@pytest.fixture(scope="module")
def report(journal: Path) -> ExecutionReport:
    with open_journal(journal) as opened:
        return execution_report(opened)


def _as_tuples(rows: list[ExecutionRow]) -> list[tuple[object, ...]]:
    return [tuple(msgspec.structs.astuple(row)) for row in rows]


def test_the_run_has_partial_fills_cancels_and_costs(report: ExecutionReport) -> None:
    rows = report.rows
    assert len(rows) > 30
    partial = [row for row in rows if 0 < row.fill_ratio_e8 < 100_000_000 and row.status == "done"]
    assert len(partial) >= 5
    assert all(
        row.opportunity_cost_decision_minor != 0 for row in partial if row.close_px_raw != row.decision_px_raw
    )
    assert 0 < report.total.fill_ratio_e8 < 100_000_000
    assert report.total.execution_cost_decision_minor != 0
    # Against the arrival (the first fill) only a parent filled over several bars has a cost.
    single_price = [
        row for row in rows if row.filled_qty_raw and row.first_fill_px_raw == row.last_fill_px_raw
    ]
    assert all(row.execution_cost_arrival_minor == 0 for row in single_price)
    assert any(row.execution_cost_arrival_minor != 0 for row in rows)
    assert all(row.day > 0 for row in rows if row.status == "done")


@pytest.mark.parametrize("group", ["by_strategy", "by_day"])
def test_totals_equal_the_sum_of_their_rows(report: ExecutionReport, group: str) -> None:
    totals = getattr(report, group)
    key_of = (lambda row: row.strategy_id) if group == "by_strategy" else (lambda row: row.day)
    for key, total in totals.items():
        members = [row for row in report.rows if key_of(row) == key]
        assert total.parents == len(members)
        for name in _ADDED:
            assert getattr(total, name) == sum(getattr(row, name) for row in members), (key, name)
    for name in _ADDED:
        assert getattr(report.total, name) == sum(getattr(t, name) for t in totals.values())


def test_the_sqlite_projection_holds_the_report_rows(
    journal: Path, report: ExecutionReport, tmp_path: Path
) -> None:
    rebuilt = rebuild_ledger(journal, tmp_path / "ledger.sqlite")
    with open_ledger(tmp_path / "incremental.sqlite") as ledger, open_journal(journal) as opened:
        ledger.run(opened, batch_records_max=7)
        assert ledger.table_checksums() == rebuilt.checksums
        assert [tuple(row) for row in ledger.ordered_rows("execution_quality")] == _as_tuples(report.rows)
        per_strategy = ledger.query(
            "SELECT strategy_id, SUM(shortfall_decision_minor), COUNT(*) FROM execution_quality "
            "GROUP BY strategy_id"
        )
    assert per_strategy == [
        (key, total.shortfall_decision_minor, total.parents) for key, total in report.by_strategy.items()
    ]


@pytest.fixture
def postgres_database() -> Iterator[str]:
    with scratch_database() as url:
        yield url


def test_the_postgres_projection_holds_the_report_rows(
    journal: Path, report: ExecutionReport, postgres_database: str, tmp_path: Path
) -> None:
    on_sqlite = rebuild_ledger(journal, tmp_path / "ledger.sqlite")
    on_postgres = rebuild_ledger(journal, postgres_database, schema="quality", batch_records_max=11)
    assert on_postgres.checksums == on_sqlite.checksums
    with open_ledger(postgres_database, schema="quality") as ledger:
        rows = [tuple(row) for row in ledger.ordered_rows("execution_quality")]
    assert rows == _as_tuples(report.rows)


def test_tape_report_prints_and_exports(
    journal: Path, report: ExecutionReport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders, as_json = tmp_path / "orders.csv", tmp_path / "quality.json"
    argv = ["report", str(journal), "--orders", str(orders), "--json", str(as_json), "--worst", "3"]
    assert tape(argv) == 0
    out = capsys.readouterr().out
    assert "execution quality by strategy" in out
    assert "worst 3 orders by shortfall and slippage vs decision" in out
    with orders.open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert tuple(lines[0]) == ROW_COLUMNS
    expected = [[str(value) for value in row] for row in _as_tuples(report.rows)]
    assert lines[1:] == expected
    exported = json.loads(as_json.read_text())
    assert exported["total"] == msgspec.to_builtins(report.total)
    assert len(exported["orders"]) == len(report.rows)
    assert sorted(exported["by_day"]) == sorted(str(day) for day in report.by_day)
    worst = report.worst(3)
    assert [row.shortfall_decision_minor for row in worst] == sorted(
        (row.shortfall_decision_minor for row in report.rows), reverse=True
    )[:3]
    assert tape(["report", str(journal), "--worst", "-1"]) == 2


def test_report_json_to_a_dash_is_the_json_alone_on_stdout(
    journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--json -``: the report as JSON on stdout, its tables on stderr; no file called ``-``
    (it wrote one in the current folder)."""
    monkeypatch.chdir(tmp_path)
    assert tape(["report", str(journal), "--json", str(tmp_path / "report.json")]) == 0
    capsys.readouterr()
    assert tape(["report", str(journal), "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == json.loads((tmp_path / "report.json").read_text())
    assert "execution quality by strategy" in captured.err
    assert not (tmp_path / "-").exists()


def test_a_fill_of_an_unknown_order_exits_2_naming_it(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from domain.events import OrderCancelled
    from tests.unit.projections.test_ledger_sqlite import write_journal

    with open_journal(journal) as opened:
        events = [record.event() for record in opened.records()][:4]
    bad = tmp_path / "bad"
    write_journal(bad, [*events, OrderCancelled(ts_ns=events[-1].ts_ns, order_id="ghost-1", reason="x")])
    assert tape(["report", str(bad)]) == 2
    assert "order ghost-1 that was never submitted" in capsys.readouterr().out


def test_a_large_book_at_80_columns_cuts_no_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A book of 9 x 10**12 (the docs allow 10**13): the execution tables' shortfalls run to 17
    characters, and every figure still shows whole at 80 columns (headers wrap between words)."""
    from cli.progress import console

    monkeypatch.setattr(console, "width", 80)
    dataset = make_dataset(tmp_path / "data", symbols=3, bars=200)
    journal = run(make_config(dataset, tmp_path / "big", initial_cash="9000000000000")).journal
    assert tape(["report", str(journal), "--worst", "3"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out
    worst = execution_report(open_journal(journal)).worst(3)
    for row in worst:  # each order's id, shortfall and slippage, whole on its line
        line = next(line for line in out.splitlines() if line.startswith(row.parent_id))
        assert f"{row.shortfall_decision_minor / 100:,.2f}" in line, line
    assert len(f"{worst[0].shortfall_decision_minor / 100:,.2f}") >= 13
