"""The SQLite ledger projection over real journals built from hand-made event sequences."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from domain.events import (
    DatasetReferenced,
    DayClosed,
    Event,
    InstrumentsDefined,
    KernelSnapshot,
    LedgerPosted,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PostingRecord,
    RiskVerdict,
    RunFinished,
    RunStarted,
    StateSnapshotted,
    TargetsDecided,
)
from domain.instruments import Instrument
from domain.ledger import (
    Position,
    UnbalancedTransaction,
    capital_postings,
    fill_postings,
    fold_positions,
)
from kernel.journal import Record
from kernel.store import open_journal
from projections import (
    IllegalOrderTransition,
    ProjectionError,
    SchemaMismatch,
    SqliteLedger,
    UnbalancedPosting,
    rebuild,
)

DAY_NS = 86_400 * 10**9
T0_NS = 1_704_204_000 * 10**9  # 2024-01-02 14:00 UTC
AAPL, MSFT = 1, 2


def instrument(instrument_id: int, symbol: str) -> Instrument:
    return Instrument(
        instrument_id=instrument_id,
        symbol=symbol,
        venue="XNAS",
        asset_class="equity",
        currency="USD",
        price_digits=2,
        tick_raw=1,
        qty_digits=0,
        lot_raw=1,
    )


class TapeBuilder:
    """Builds a realistic event sequence; fill postings come from ``domain.ledger``."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.positions: dict[int, Position] = {}
        self.txn_counter = 0
        self.filled: dict[str, int] = {}
        self.qty: dict[str, int] = {}

    def add(self, event: Event) -> Event:
        self.events.append(event)
        return event

    def post(self, ts_ns: int, memo: str, postings: list[PostingRecord]) -> None:
        self.txn_counter += 1
        self.add(LedgerPosted(ts_ns=ts_ns, txn_id=f"T{self.txn_counter:09d}", memo=memo, postings=postings))

    def submit(
        self,
        ts_ns: int,
        order_id: str,
        iid: int,
        side: int,
        qty_raw: int,
        px_raw: int,
        order_type: str = "market",
    ) -> None:
        self.qty[order_id] = qty_raw
        self.filled[order_id] = 0
        self.add(
            OrderSubmitted(
                ts_ns=ts_ns,
                order_id=order_id,
                strategy_id="momo",
                instrument_id=iid,
                side=side,
                order_type=order_type,
                qty_raw=qty_raw,
                limit_px_raw=px_raw if order_type == "limit" else 0,
                decision_px_raw=px_raw,
            )
        )

    def fill(self, ts_ns: int, order_id: str, iid: int, side: int, qty_raw: int, px_raw: int) -> None:
        self.filled[order_id] += qty_raw
        notional_minor = qty_raw * px_raw  # USD cents, price_digits 2, qty_digits 0
        fill = OrderFilled(
            ts_ns=ts_ns,
            order_id=order_id,
            instrument_id=iid,
            side=side,
            fill_qty_raw=qty_raw,
            fill_px_raw=px_raw,
            leaves_qty_raw=self.qty[order_id] - self.filled[order_id],
            notional_minor=notional_minor,
            commission_minor=max(100, notional_minor // 10_000),
            currency="USD",
        )
        self.add(fill)
        postings, position = fill_postings(self.positions.get(iid, Position()), fill)
        self.positions[iid] = position
        self.post(ts_ns, f"fill {order_id}", postings)


def trading_events() -> list[Event]:
    """Two trading days: partial and full fills, a cancel, a reject, an expiry, a round trip."""
    b = TapeBuilder()
    t = T0_NS
    b.add(
        RunStarted(ts_ns=t, run_id="run-1", seed=7, engine_version="0.1.0", config_json='{"strategy":"momo"}')
    )
    b.add(
        DatasetReferenced(
            ts_ns=t,
            uri="lake://us/1d",
            content_hash="abc123",
            frequency="1d",
            calendar="XNYS",
            steps=2,
            instruments=2,
            first_ts_ns=t,
            last_ts_ns=t + DAY_NS,
        )
    )
    b.add(InstrumentsDefined(ts_ns=t, instruments=[instrument(AAPL, "AAPL"), instrument(MSFT, "MSFT")]))
    b.post(t, "capital", capital_postings(1_000_000_00, "USD"))
    # Day 1: decide, risk, two buys (one partially filled then cancelled), a rejected sell.
    b.add(
        TargetsDecided(
            ts_ns=t,
            strategy_id="momo",
            step=0,
            instrument_ids=[AAPL, MSFT],
            weights_e8=[2_000_000, 3_000_000],
        )
    )
    b.add(
        RiskVerdict(
            ts_ns=t,
            strategy_id="momo",
            step=0,
            rule="gross",
            action="pass",
            unit="e8_nav",
            limit=100_000_000,
            observed=5_000_000,
            observed_after=5_000_000,
        )
    )
    b.add(
        RiskVerdict(
            ts_ns=t,
            strategy_id="momo",
            step=0,
            rule="single_name",
            action="clip",
            unit="e8_nav",
            limit=2_500_000,
            observed=3_000_000,
            observed_after=3_000_000,
            instrument_ids=[AAPL, MSFT],
            detail="MSFT clipped to 2.5%",
        )
    )
    b.submit(t, "momo-20240102-000001", AAPL, +1, 100, 185_00)
    b.add(OrderAccepted(ts_ns=t, order_id="momo-20240102-000001"))
    b.submit(t, "momo-20240102-000002", MSFT, +1, 50, 370_00, order_type="limit")
    b.add(OrderAccepted(ts_ns=t, order_id="momo-20240102-000002"))
    b.fill(t + 60 * 10**9, "momo-20240102-000001", AAPL, +1, 40, 185_10)
    b.fill(t + 120 * 10**9, "momo-20240102-000001", AAPL, +1, 60, 185_20)
    b.fill(t + 180 * 10**9, "momo-20240102-000002", MSFT, +1, 20, 369_90)
    b.add(
        OrderCancelled(
            ts_ns=t + 240 * 10**9, order_id="momo-20240102-000002", reason="superseded by a new decision"
        )
    )
    b.submit(t + 240 * 10**9, "momo-20240102-000003", AAPL, -1, 10, 185_00)
    b.add(OrderRejected(ts_ns=t + 240 * 10**9, order_id="momo-20240102-000003", reason="price outside band"))
    b.add(
        DayClosed(
            ts_ns=t + 3600 * 10**9,
            day=20240102,
            step=0,
            nav_minor=999_950_00,
            cash_minor=974_000_00,
            gross_exposure_minor=25_950_00,
            currency="USD",
        )
    )
    b.add(
        StateSnapshotted(
            ts_ns=t + 3600 * 10**9,
            day=20240102,
            snapshot=KernelSnapshot(
                next_step=1,
                order_counter=3,
                txn_counter=b.txn_counter,
                balances=[],
                positions=[],
                open_orders=[],
                last_targets=[(AAPL, 2_000_000)],
            ),
        )
    )
    # Day 2: close AAPL at a gain (the position row disappears), an MSFT sell expires.
    t += DAY_NS
    b.submit(t, "momo-20240103-000004", AAPL, -1, 100, 190_00)
    b.add(OrderAccepted(ts_ns=t, order_id="momo-20240103-000004"))
    b.fill(t + 60 * 10**9, "momo-20240103-000004", AAPL, -1, 100, 190_05)
    b.submit(t, "momo-20240103-000005", MSFT, -1, 5, 375_00, order_type="limit")
    b.add(OrderAccepted(ts_ns=t, order_id="momo-20240103-000005"))
    b.add(OrderExpired(ts_ns=t + 3600 * 10**9, order_id="momo-20240103-000005"))
    b.add(
        DayClosed(
            ts_ns=t + 3600 * 10**9,
            day=20240103,
            step=1,
            nav_minor=1_000_420_00,
            cash_minor=993_000_00,
            gross_exposure_minor=7_420_00,
            currency="USD",
        )
    )
    b.add(RunFinished(ts_ns=t + 3600 * 10**9, steps=2, nav_minor=1_000_420_00, currency="USD"))
    return b.events


def write_journal(path: Path, events: list[Event], records_per_commit_max: int = 4) -> None:
    with open_journal(path, writable=True, records_per_commit_max=records_per_commit_max) as j:
        for event in events:
            j.append(event)


def read_records(path: Path) -> list[Record]:
    with open_journal(path) as journal:
        return list(journal.records())


@pytest.fixture(params=["j", "j.sqlite"], ids=["lmdb", "sqlite"])
def journal_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / str(request.param)
    write_journal(path, trading_events())
    return path


@pytest.fixture
def clean_checksums(journal_path: Path, tmp_path: Path) -> dict[str, str]:
    return rebuild(journal_path, tmp_path / "clean.db").checksums


# --- rebuild and exactly-once -------------------------------------------------------------


def test_rebuild_twice_gives_identical_checksums(journal_path: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "ledger.db"
    first = rebuild(journal_path, db_path)
    second = rebuild(journal_path, db_path)
    elsewhere = rebuild(journal_path, tmp_path / "other" / "ledger.db", batch_records_max=5)
    events = trading_events()
    assert first.records_applied == len(events)
    assert second.records_applied == len(events)
    assert first.checkpoint_seq == len(events) - 1
    assert second.checksums == first.checksums
    assert elsewhere.checksums == first.checksums
    assert first.checksums["fills"].startswith("rows=4 ")
    assert first.checksums["orders"].startswith("rows=5 ")
    assert first.checksums["nav"].startswith("rows=2 ")
    assert first.checksums["risk_events"].startswith("rows=2 ")


@pytest.mark.parametrize("splits", [(1,), (12,), (13, 14), (3, 20, 21), (30,)])
def test_interrupted_runs_equal_one_clean_run(
    journal_path: Path, tmp_path: Path, clean_checksums: dict[str, str], splits: tuple[int, ...]
) -> None:
    records = read_records(journal_path)
    db_path = tmp_path / "ledger.db"
    start = 0
    for split in splits:  # apply a slice, then "crash" (close) and reopen
        with SqliteLedger.open(db_path) as ledger:
            assert ledger.apply(records[start:split]) == split - start
            assert ledger.checkpoint_seq == split - 1
        start = split
    with SqliteLedger.open(db_path) as ledger, open_journal(journal_path) as journal:
        assert ledger.run(journal, batch_records_max=3) == len(records) - start
        assert ledger.checkpoint_seq == len(records) - 1
        assert ledger.table_checksums() == clean_checksums


def test_reapplying_records_does_not_duplicate_rows(
    journal_path: Path, tmp_path: Path, clean_checksums: dict[str, str]
) -> None:
    records = read_records(journal_path)
    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        assert ledger.apply(records[:10]) == 10
        assert ledger.apply(records[5:]) == len(records) - 10  # overlap skipped by checkpoint
        assert ledger.apply(records) == 0
        assert ledger.apply(records + records) == 0
        with open_journal(journal_path) as journal:
            assert ledger.run(journal) == 0
        assert ledger.table_checksums() == clean_checksums
        (postings,) = ledger.query("SELECT COUNT(*) FROM postings")[0]
        assert postings == sum(len(e.postings) for e in trading_events() if isinstance(e, LedgerPosted))


def test_a_gap_in_the_records_raises(journal_path: Path, tmp_path: Path) -> None:
    records = read_records(journal_path)
    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        ledger.apply(records[:4])
        with pytest.raises(ProjectionError, match="expected seq 4") as raised:
            ledger.apply(records[6:])
        assert raised.value.seq == 6
        assert ledger.checkpoint_seq == 3


def test_run_refuses_a_non_positive_batch(journal_path: Path, tmp_path: Path) -> None:
    with (
        SqliteLedger.open(tmp_path / "ledger.db") as ledger,
        open_journal(journal_path) as journal,
        pytest.raises(ValueError, match="batch_records_max"),
    ):
        ledger.run(journal, batch_records_max=0)


# --- what the tables hold -----------------------------------------------------------------


def test_positions_equal_the_sum_of_fills(journal_path: Path, tmp_path: Path) -> None:
    rebuild(journal_path, tmp_path / "ledger.db")
    fills = [e for e in trading_events() if isinstance(e, OrderFilled)]
    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        positions = dict(ledger.query("SELECT instrument_id, qty_raw FROM positions"))
        summed = dict(
            ledger.query(
                "SELECT instrument_id, SUM(side * fill_qty_raw) FROM fills "
                "GROUP BY instrument_id HAVING SUM(side * fill_qty_raw) != 0"
            )
        )
    assert positions == dict(fold_positions(fills))
    assert positions == summed
    assert positions == {MSFT: 20}  # AAPL was bought 100 and sold 100: flat, no row


def test_every_transaction_in_postings_sums_to_zero(journal_path: Path, tmp_path: Path) -> None:
    rebuild(journal_path, tmp_path / "ledger.db")
    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        unbalanced = ledger.query(
            "SELECT txn_id, currency, SUM(amount_minor) FROM postings "
            "GROUP BY txn_id, currency HAVING SUM(amount_minor) != 0"
        )
        txn_ids = [
            txn_id for (txn_id,) in ledger.query("SELECT DISTINCT txn_id FROM postings ORDER BY txn_id")
        ]
        realized = ledger.query(
            "SELECT SUM(amount_minor) FROM postings WHERE account = 'income:realized:USD'"
        )
        cash = ledger.query("SELECT SUM(amount_minor) FROM postings WHERE account = 'assets:cash:USD'")
    assert unbalanced == []
    assert txn_ids == [f"T{n:09d}" for n in range(1, 6)]  # capital + four fills
    assert realized[0][0] < 0  # the AAPL round trip booked a gain (a credit)
    notional_minor = -(40 * 185_10 + 60 * 185_20) - 20 * 369_90 + 100 * 190_05
    commission_minor = 100 + 111 + 100 + 190  # max(1.00, 1 bp of notional) per fill
    assert cash[0][0] == 1_000_000_00 + notional_minor - commission_minor


def test_orders_and_transitions_follow_the_state_machine(journal_path: Path, tmp_path: Path) -> None:
    rebuild(journal_path, tmp_path / "ledger.db")
    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        orders = ledger.query(
            "SELECT order_id, status, filled_qty_raw, limit_px_raw, submitted_seq <= updated_seq "
            "FROM orders ORDER BY order_id"
        )
        msft_path = ledger.query(
            "SELECT from_status, to_status, trigger, reason FROM order_transitions "
            "WHERE order_id = 'momo-20240102-000002' ORDER BY seq"
        )
    assert orders == [
        ("momo-20240102-000001", "filled", 100, 0, 1),
        ("momo-20240102-000002", "cancelled", 20, 370_00, 1),
        ("momo-20240102-000003", "rejected", 0, 0, 1),
        ("momo-20240103-000004", "filled", 100, 0, 1),
        ("momo-20240103-000005", "expired", 0, 375_00, 1),
    ]
    assert msft_path == [
        (None, "submitted", "submit", ""),
        ("submitted", "accepted", "accept", ""),
        ("accepted", "partially_filled", "partial", ""),
        ("partially_filled", "cancelled", "cancel", "superseded by a new decision"),
    ]


def test_runs_nav_risk_and_instruments_are_projected(journal_path: Path, tmp_path: Path) -> None:
    rebuild(journal_path, tmp_path / "ledger.db")
    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        runs = ledger.query("SELECT seq, run_id, seed, dataset_uri, content_hash, steps, nav_minor FROM runs")
        nav = ledger.query("SELECT day, nav_minor, cash_minor FROM nav ORDER BY day")
        risk = ledger.query("SELECT rule, action, instrument_ids, detail FROM risk_events")
        symbols = ledger.query("SELECT instrument_id, symbol FROM instruments")
    assert runs == [(0, "run-1", 7, "lake://us/1d", "abc123", 2, 1_000_420_00)]
    assert nav == [(20240102, 999_950_00, 974_000_00), (20240103, 1_000_420_00, 993_000_00)]
    assert risk == [("gross", "pass", "[]", ""), ("single_name", "clip", "[1,2]", "MSFT clipped to 2.5%")]
    assert symbols == [(AAPL, "AAPL"), (MSFT, "MSFT")]


# --- checkers and their canaries ----------------------------------------------------------


def _append(path: Path, events: list[Event]) -> int:
    """Append events to an existing journal; returns the seq of the first."""
    with open_journal(path, writable=True) as journal:
        first_seq = journal.next_seq
        for event in events:
            journal.append(event)
    return first_seq


def test_a_fill_after_a_cancel_raises_naming_its_seq(journal_path: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "ledger.db"
    before = rebuild(journal_path, db_path)
    late_fill = OrderFilled(
        ts_ns=T0_NS + 2 * DAY_NS,
        order_id="momo-20240102-000002",
        instrument_id=MSFT,
        side=1,
        fill_qty_raw=30,
        fill_px_raw=369_00,
        leaves_qty_raw=0,
        notional_minor=11_070_00,
        commission_minor=100,
        currency="USD",
    )
    bad_seq = (
        _append(
            journal_path,
            [
                RiskVerdict(
                    ts_ns=T0_NS + 2 * DAY_NS,
                    strategy_id="momo",
                    step=2,
                    rule="gross",
                    action="pass",
                    unit="e8_nav",
                    limit=1,
                    observed=0,
                    observed_after=0,
                ),
                late_fill,
            ],
        )
        + 1
    )
    with SqliteLedger.open(db_path) as ledger, open_journal(journal_path) as journal:
        with pytest.raises(IllegalOrderTransition, match=f"seq {bad_seq}:.*cancelled") as raised:
            ledger.run(journal)
        assert raised.value.seq == bad_seq
        assert ledger.checkpoint_seq == before.checkpoint_seq  # the batch was rolled back
        assert ledger.table_checksums() == before.checksums


def test_an_unbalanced_posting_is_caught_canary(journal_path: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "ledger.db"
    before = rebuild(journal_path, db_path)
    bad_seq = _append(
        journal_path,
        [
            LedgerPosted(
                ts_ns=T0_NS + 2 * DAY_NS,
                txn_id="T999999999",
                memo="canary",
                postings=[
                    PostingRecord("assets:cash:USD", "USD", 100),
                    PostingRecord("equity:capital:USD", "USD", -99),
                ],
            )
        ],
    )
    with SqliteLedger.open(db_path) as ledger, open_journal(journal_path) as journal:
        with pytest.raises(UnbalancedTransaction, match="T999999999") as raised:
            ledger.run(journal)
        assert isinstance(raised.value, UnbalancedPosting)
        assert raised.value.seq == bad_seq
        assert ledger.table_checksums() == before.checksums


def test_an_event_for_an_unknown_order_raises(tmp_path: Path) -> None:
    write_journal(tmp_path / "j", [OrderAccepted(ts_ns=T0_NS, order_id="nobody")])
    with pytest.raises(ProjectionError, match="seq 0: event for unknown order nobody"):
        rebuild(tmp_path / "j", tmp_path / "ledger.db")


def test_a_changed_row_changes_only_its_tables_checksum_canary(journal_path: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "ledger.db"
    before = rebuild(journal_path, db_path).checksums
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE fills SET fill_px_raw = fill_px_raw + 1 WHERE seq = (SELECT MIN(seq) FROM fills)")
    with SqliteLedger.open(db_path) as ledger:
        after = ledger.table_checksums()
    assert after["fills"] != before["fills"]
    assert after["fills"].split()[0] == before["fills"].split()[0]  # same row count
    assert {k: v for k, v in after.items() if k != "fills"} == {
        k: v for k, v in before.items() if k != "fills"
    }


def test_another_schema_version_is_refused_until_rebuilt(
    journal_path: Path, tmp_path: Path, clean_checksums: dict[str, str]
) -> None:
    db_path = tmp_path / "ledger.db"
    rebuild(journal_path, db_path)
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM schema_version WHERE version = (SELECT MAX(version) FROM schema_version)")
    with pytest.raises(SchemaMismatch, match="tape rebuild"):
        SqliteLedger.open(db_path)
    assert rebuild(journal_path, db_path).checksums == clean_checksums


@pytest.mark.parametrize("first_batch_records", [0, 1, 2])
def test_an_order_submitted_twice_raises_naming_the_second(tmp_path: Path, first_batch_records: int) -> None:
    builder = TapeBuilder()
    builder.add(InstrumentsDefined(ts_ns=T0_NS, instruments=[instrument(AAPL, "AAPL")]))
    builder.submit(T0_NS, "dup", AAPL, +1, 10, 185_00)
    builder.add(OrderAccepted(ts_ns=T0_NS, order_id="dup"))
    builder.submit(T0_NS, "dup", AAPL, +1, 10, 185_00)
    write_journal(tmp_path / "j", builder.events)
    records = read_records(tmp_path / "j")
    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        # 0: the duplicate is in the same batch; 1: the order is loaded into the batch by its
        # accept; 2: only the table has it (the chunked check at write time).
        ledger.apply(records[: first_batch_records + 1])
        with pytest.raises(ProjectionError, match="seq 3: order dup submitted twice"):
            ledger.apply(records)
        assert ledger.checkpoint_seq == first_batch_records
