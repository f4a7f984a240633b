"""The ledger projection contract every database runs (STYLE examples 12, 13, 19).

A backend's test class subclasses ``LedgerProjectionContract`` and provides two hooks:
``target`` (a fixture giving ``(target, schema)`` for an empty ledger location) and
``raw_execute`` (a statement run behind the projection's back, for the canaries). Every
check compares with a **SQLite reference rebuild** of the same journal, so a backend that
passes has, table for table, the same checksums as SQLite.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from domain.events import LedgerPosted, OrderFilled, OrderSubmitted, PostingRecord, RiskVerdict
from domain.ledger import UnbalancedTransaction, fold_positions
from kernel.journal import Record
from kernel.store import open_journal
from projections import (
    IllegalOrderTransition,
    ProjectionError,
    SchemaMismatch,
    UnbalancedPosting,
    open_ledger,
    rebuild_ledger,
)
from projections.audit import audit
from projections.execution_quality import ROW_COLUMNS
from sim.execution_report import execution_report
from tests.unit.projections.test_ledger_sqlite import (
    DAY_NS,
    MSFT,
    T0_NS,
    trading_events,
    write_journal,
)

Target = tuple[Path | str, str]


def read_records(path: Path) -> list[Record]:
    with open_journal(path) as journal:
        return list(journal.records())


def append(path: Path, events: list[object]) -> int:
    with open_journal(path, writable=True) as journal:
        first_seq = journal.next_seq
        for event in events:
            journal.append(event)  # type: ignore[arg-type]
    return first_seq


class LedgerProjectionContract:
    """Shared checks; subclasses supply ``target`` and ``raw_execute``."""

    @pytest.fixture
    def target(self, tmp_path: Path) -> Target:
        raise NotImplementedError

    def raw_execute(self, target: Target, statement: str) -> None:
        raise NotImplementedError

    @pytest.fixture
    def journal_path(self, tmp_path: Path) -> Path:
        path = tmp_path / "journal"
        write_journal(path, trading_events())
        return path

    @pytest.fixture
    def reference(self, journal_path: Path, tmp_path: Path) -> dict[str, str]:
        return rebuild_ledger(journal_path, tmp_path / "reference.sqlite").checksums

    # --- rebuild and exactly once ---------------------------------------------------------

    def test_rebuild_equals_the_sqlite_reference_twice(
        self, journal_path: Path, target: Target, reference: dict[str, str]
    ) -> None:
        first = rebuild_ledger(journal_path, target[0], schema=target[1])
        second = rebuild_ledger(journal_path, target[0], schema=target[1], batch_records_max=5)
        assert first.records_applied == len(trading_events())
        assert first.checkpoint_seq == len(trading_events()) - 1
        assert first.checksums == reference
        assert second.checksums == reference
        assert reference["fills"].startswith("rows=4 ")

    @pytest.mark.parametrize("splits", [(1,), (13, 14), (3, 20, 21)])
    def test_interrupted_runs_equal_one_clean_run(
        self, journal_path: Path, target: Target, reference: dict[str, str], splits: tuple[int, ...]
    ) -> None:
        records = read_records(journal_path)
        start = 0
        for split in splits:  # apply a slice, then "crash" (close) and reopen
            with open_ledger(target[0], schema=target[1]) as ledger:
                assert ledger.apply(records[start:split]) == split - start
                assert ledger.checkpoint_seq == split - 1
            start = split
        with open_ledger(target[0], schema=target[1]) as ledger, open_journal(journal_path) as journal:
            assert ledger.run(journal, batch_records_max=3) == len(records) - start
            assert ledger.table_checksums() == reference

    def test_reapplying_records_changes_nothing(
        self, journal_path: Path, target: Target, reference: dict[str, str]
    ) -> None:
        records = read_records(journal_path)
        with open_ledger(target[0], schema=target[1]) as ledger:
            assert ledger.apply(records[:10]) == 10
            assert ledger.apply(records[5:]) == len(records) - 10
            assert ledger.apply(records) == 0
            assert ledger.table_checksums() == reference

    def test_a_gap_raises_and_keeps_the_checkpoint(self, journal_path: Path, target: Target) -> None:
        records = read_records(journal_path)
        with open_ledger(target[0], schema=target[1]) as ledger:
            ledger.apply(records[:4])
            with pytest.raises(ProjectionError, match="expected seq 4") as raised:
                ledger.apply(records[6:])
            assert raised.value.seq == 6
            assert ledger.checkpoint_seq == 3

    def test_run_stops_at_stop_seq(self, journal_path: Path, target: Target) -> None:
        with open_ledger(target[0], schema=target[1]) as ledger, open_journal(journal_path) as journal:
            assert ledger.run(journal, batch_records_max=4, stop_seq=9) == 10
            assert ledger.checkpoint_seq == 9

    # --- what the tables hold -------------------------------------------------------------

    def test_positions_equal_fills_and_postings_balance(self, journal_path: Path, target: Target) -> None:
        rebuild_ledger(journal_path, target[0], schema=target[1])
        fills = [e for e in trading_events() if isinstance(e, OrderFilled)]
        with open_ledger(target[0], schema=target[1]) as ledger:
            positions = dict(ledger.query("SELECT instrument_id, qty_raw FROM positions"))
            unbalanced = ledger.query(
                "SELECT txn_id, currency, SUM(amount_minor) FROM postings "
                "GROUP BY txn_id, currency HAVING SUM(amount_minor) != 0"
            )
            (postings,) = ledger.query("SELECT COUNT(*) FROM postings")[0]
        assert positions == dict(fold_positions(fills))
        assert positions == {MSFT: 20}
        assert unbalanced == []
        assert postings == sum(len(e.postings) for e in trading_events() if isinstance(e, LedgerPosted))

    # --- checkers and their canaries ------------------------------------------------------

    def test_an_illegal_transition_rolls_the_batch_back(self, journal_path: Path, target: Target) -> None:
        before = rebuild_ledger(journal_path, target[0], schema=target[1])
        late_fill = OrderFilled(
            ts_ns=T0_NS + 2 * DAY_NS,
            order_id="momo-20240102-000002",  # cancelled on day 1
            instrument_id=MSFT,
            side=1,
            fill_qty_raw=30,
            fill_px_raw=369_00,
            leaves_qty_raw=0,
            notional_minor=11_070_00,
            commission_minor=100,
            currency="USD",
        )
        verdict = RiskVerdict(
            ts_ns=T0_NS + 2 * DAY_NS,
            strategy_id="momo",
            step=2,
            rule="gross",
            action="pass",
            unit="e8_nav",
            limit=1,
            observed=0,
            observed_after=0,
        )
        bad_seq = append(journal_path, [verdict, late_fill]) + 1
        with open_ledger(target[0], schema=target[1]) as ledger, open_journal(journal_path) as journal:
            with pytest.raises(IllegalOrderTransition, match=f"seq {bad_seq}:.*cancelled"):
                ledger.run(journal)
            assert ledger.checkpoint_seq == before.checkpoint_seq
            assert ledger.table_checksums() == before.checksums

    def test_a_failing_batch_keeps_every_batch_before_it(
        self, journal_path: Path, target: Target, tmp_path: Path
    ) -> None:
        """``run`` folds the next batch while one is written: a failure still leaves exactly
        the batches before the failing one committed."""
        cancel = OrderFilled(
            ts_ns=T0_NS + 2 * DAY_NS, order_id="momo-20240102-000002", instrument_id=MSFT, side=1,
            fill_qty_raw=30, fill_px_raw=369_00, leaves_qty_raw=0, notional_minor=11_070_00,
            commission_minor=100, currency="USD",
        )  # fmt: skip
        bad_seq = append(journal_path, [cancel])
        expected_checkpoint = bad_seq // 4 * 4 - 1
        reference = rebuild_ledger(journal_path, tmp_path / "ref.sqlite", stop_seq=expected_checkpoint)
        with open_ledger(target[0], schema=target[1]) as ledger, open_journal(journal_path) as journal:
            with pytest.raises(IllegalOrderTransition, match=f"seq {bad_seq}:"):
                ledger.run(journal, batch_records_max=4)
            assert ledger.checkpoint_seq == expected_checkpoint
            assert ledger.table_checksums() == reference.checksums

    def test_an_order_submitted_again_in_a_later_batch_is_refused(
        self, journal_path: Path, target: Target
    ) -> None:
        before = rebuild_ledger(journal_path, target[0], schema=target[1])
        (first,) = [e for e in trading_events() if isinstance(e, OrderSubmitted)][:1]
        again = msgspec.structs.replace(first, ts_ns=T0_NS + 2 * DAY_NS)
        fresh = msgspec.structs.replace(first, ts_ns=T0_NS + 2 * DAY_NS, order_id="fresh-1")
        bad_seq = append(journal_path, [fresh, again]) + 1
        with open_ledger(target[0], schema=target[1]) as ledger, open_journal(journal_path) as journal:
            with pytest.raises(ProjectionError, match=f"seq {bad_seq}:.*{first.order_id} submitted twice"):
                ledger.run(journal)
            assert ledger.checkpoint_seq == before.checkpoint_seq
            assert ledger.table_checksums() == before.checksums

    def test_an_unbalanced_posting_is_caught_canary(self, journal_path: Path, target: Target) -> None:
        before = rebuild_ledger(journal_path, target[0], schema=target[1])
        bad = LedgerPosted(
            ts_ns=T0_NS + 2 * DAY_NS,
            txn_id="T999999999",
            memo="canary",
            postings=[
                PostingRecord("assets:cash:USD", "USD", 100),
                PostingRecord("equity:capital:USD", "USD", -99),
            ],
        )
        bad_seq = append(journal_path, [bad])
        with open_ledger(target[0], schema=target[1]) as ledger, open_journal(journal_path) as journal:
            with pytest.raises(UnbalancedTransaction, match="T999999999") as raised:
                ledger.run(journal)
            assert isinstance(raised.value, UnbalancedPosting)
            assert raised.value.seq == bad_seq
            assert ledger.table_checksums() == before.checksums

    def test_another_schema_version_is_refused_until_rebuilt(
        self, journal_path: Path, target: Target, reference: dict[str, str]
    ) -> None:
        rebuild_ledger(journal_path, target[0], schema=target[1])
        newest = "DELETE FROM schema_version WHERE version = (SELECT MAX(version) FROM schema_version)"
        self.raw_execute(target, newest)
        with pytest.raises(SchemaMismatch, match="rebuild"):
            open_ledger(target[0], schema=target[1])
        assert rebuild_ledger(journal_path, target[0], schema=target[1]).checksums == reference

    # --- execution quality ----------------------------------------------------------------

    def test_execution_quality_rows_equal_the_report_fold(
        self, journal_path: Path, target: Target, reference: dict[str, str]
    ) -> None:
        """Batch by batch (a parent's fills and its day close in later batches) the table
        holds what ``tape report`` folds from the whole journal in one go."""
        with open_journal(journal_path) as journal:
            expected = [tuple(msgspec.structs.astuple(row)) for row in execution_report(journal).rows]
        with open_ledger(target[0], schema=target[1]) as ledger, open_journal(journal_path) as journal:
            ledger.run(journal, batch_records_max=3)
            rows = list(ledger.ordered_rows("execution_quality"))
            assert ledger.table_checksums() == reference
        assert [tuple(row) for row in rows] == expected
        by_id = {row[0]: row for row in expected}
        assert sorted(by_id) == [
            f"momo-2024010{d}-00000{n}" for d, n in ((2, 1), (2, 2), (2, 3), (3, 4), (3, 5))
        ]
        status, day = ROW_COLUMNS.index("status"), ROW_COLUMNS.index("day")
        assert {row[status] for row in expected} == {"done"}
        assert [by_id[key][day] for key in sorted(by_id)] == [20240102] * 3 + [20240103] * 2

    def test_audit_names_a_changed_execution_quality_row_canary(
        self, journal_path: Path, target: Target
    ) -> None:
        rebuild_ledger(journal_path, target[0], schema=target[1])
        self.raw_execute(
            target,
            "UPDATE execution_quality SET shortfall_decision_minor = shortfall_decision_minor + 1 "
            "WHERE parent_id = 'momo-20240102-000002'",
        )
        report = audit(journal_path, target[0], schema=target[1])
        assert [d.table for d in report.differences] == ["execution_quality"]
        assert report.differences[0].first_difference.startswith(
            "row {'parent_id': 'momo-20240102-000002'}: shortfall_decision_minor: live "
        )

    # --- audit ----------------------------------------------------------------------------

    def test_audit_of_a_clean_ledger_is_ok(self, journal_path: Path, target: Target) -> None:
        rebuild_ledger(journal_path, target[0], schema=target[1])
        report = audit(journal_path, target[0], schema=target[1])
        assert report.ok, report.lines()
        assert report.exit_status == 0
        assert report.tables == 14
        assert report.lines()[0].startswith("audit ok: 14 tables")

    def test_audit_of_a_lagging_ledger_compares_at_its_checkpoint(
        self, journal_path: Path, target: Target
    ) -> None:
        with open_ledger(target[0], schema=target[1]) as ledger, open_journal(journal_path) as journal:
            ledger.run(journal, stop_seq=11)
        report = audit(journal_path, target[0], schema=target[1])
        assert report.ok, report.lines()
        assert report.checkpoint_seq == 11

    def test_audit_names_the_first_changed_row_canary(self, journal_path: Path, target: Target) -> None:
        rebuild_ledger(journal_path, target[0], schema=target[1])
        fill_seqs = [r.seq for r in read_records(journal_path) if r.kind == "order.filled.v1"]
        self.raw_execute(target, f"UPDATE fills SET fill_px_raw = fill_px_raw + 1 WHERE seq = {fill_seqs[1]}")
        report = audit(journal_path, target[0], schema=target[1])
        assert not report.ok
        assert report.exit_status == 1
        assert [d.table for d in report.differences] == ["fills"]
        (difference,) = report.differences
        assert difference.live.split()[0] == difference.rebuilt.split()[0] == "rows=4"
        assert difference.first_difference == (
            f"row {{'seq': {fill_seqs[1]}}}: fill_px_raw: live 18521 rebuilt 18520"
        )

    def test_audit_names_a_missing_and_an_extra_row_canary(self, journal_path: Path, target: Target) -> None:
        rebuild_ledger(journal_path, target[0], schema=target[1])
        self.raw_execute(target, "DELETE FROM nav WHERE day = 20240102")
        self.raw_execute(target, "INSERT INTO positions (instrument_id, qty_raw) VALUES (99, 5)")
        report = audit(journal_path, target[0], schema=target[1])
        details = {d.table: d.first_difference for d in report.differences}
        assert sorted(details) == ["nav", "positions"]
        assert details["nav"].startswith("live is missing row {'day': 20240102, ")
        assert details["positions"] == "live has an extra row {'instrument_id': 99, 'qty_raw': 5}"
        assert "audit FAILED: 2 of 14 tables differ" in report.lines()[0]
