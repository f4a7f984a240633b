"""The ledger contract on SQLite and on a real PostgreSQL, and cross-database checksums."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.events import InstrumentsDefined, OrderAccepted, OrderSubmitted
from projections import open_ledger, rebuild_ledger
from projections.audit import audit
from tests.contracts.projection_contract import LedgerProjectionContract, Target
from tests.contracts.projection_servers import POSTGRES_SERVER, admin_execute, scratch_database
from tests.factories import make_config, make_dataset, run
from tests.unit.projections.test_ledger_sqlite import T0_NS, instrument, trading_events, write_journal


class TestSqliteLedgerContract(LedgerProjectionContract):
    @pytest.fixture
    def target(self, tmp_path: Path) -> Target:
        return tmp_path / "ledger.sqlite", "unused"

    def raw_execute(self, target: Target, statement: str) -> None:
        with sqlite3.connect(target[0]) as db:
            db.execute(statement)


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    with scratch_database() as url:
        yield url


class TestPostgresLedgerContract(LedgerProjectionContract):
    @pytest.fixture
    def target(self, postgres_database: str, request: pytest.FixtureRequest) -> Iterator[Target]:
        from projections.ledger_postgres import drop_schema

        schema = f"t{abs(hash(request.node.nodeid)) % 10**12}"
        drop_schema(postgres_database, schema)
        yield postgres_database, schema
        drop_schema(postgres_database, schema)

    def raw_execute(self, target: Target, statement: str) -> None:
        import psycopg

        with psycopg.connect(str(target[0]), autocommit=True) as connection:
            connection.execute(f'SET search_path TO "{target[1]}"')  # type: ignore[arg-type]
            connection.execute(statement)  # type: ignore[arg-type]


# --- the same journal, the same checksums, on both databases --------------------------------


def test_a_demo_backtest_journal_has_the_same_checksums_on_both(
    postgres_database: str, tmp_path: Path
) -> None:
    data = make_dataset(tmp_path / "daily", symbols=5, bars=120)
    journal_path = tmp_path / "demo.lmdb"
    run(make_config(data, journal_path))
    on_sqlite = rebuild_ledger(journal_path, tmp_path / "ledger.sqlite")
    on_postgres = rebuild_ledger(journal_path, postgres_database, schema="demo")
    assert on_sqlite.records_applied == on_postgres.records_applied > 300
    assert int(on_sqlite.checksums["fills"].split()[0][5:]) > 0
    assert int(on_sqlite.checksums["nav"].split()[0][5:]) == 120
    assert on_postgres.checksums == on_sqlite.checksums
    assert audit(journal_path, postgres_database, schema="demo").ok


def test_text_keys_sort_bytewise_on_both(postgres_database: str, tmp_path: Path) -> None:
    """Order ids whose order differs between byte order and a natural-language collation."""
    events: list[object] = [InstrumentsDefined(ts_ns=T0_NS, instruments=[instrument(1, "S")])]
    for n, order_id in enumerate(["b-2", "B-1", "a_3", "_z", "A-10", "é-5", "e-6", "Z 9"]):
        events.append(
            OrderSubmitted(
                ts_ns=T0_NS + n,
                order_id=order_id,
                strategy_id="s",
                instrument_id=1,
                side=1,
                order_type="market",
                qty_raw=1,
                limit_px_raw=0,
                decision_px_raw=100,
            )
        )
        events.append(OrderAccepted(ts_ns=T0_NS + n, order_id=order_id))
    write_journal(tmp_path / "j", events)  # type: ignore[arg-type]
    on_sqlite = rebuild_ledger(tmp_path / "j", tmp_path / "ledger.sqlite")
    on_postgres = rebuild_ledger(tmp_path / "j", postgres_database, schema="collation")
    with open_ledger(postgres_database, schema="collation") as ledger:
        ordered = [row[0] for row in ledger.ordered_rows("orders")]
    assert ordered == sorted(ordered, key=lambda text: text.encode())
    assert on_postgres.checksums["orders"] == on_sqlite.checksums["orders"]


# --- a read-only role for dashboards --------------------------------------------------------


def test_the_dashboard_role_can_read_but_not_write(postgres_database: str, tmp_path: Path) -> None:
    import psycopg

    from projections.ledger_postgres import grant_readonly

    write_journal(tmp_path / "j", trading_events())
    role = f"tape_ro_{abs(hash(postgres_database)) % 10**8}"
    try:
        rebuild_ledger(tmp_path / "j", postgres_database, schema="dash")
        grant_readonly(postgres_database, role, "dash")
        grant_readonly(postgres_database, role, "dash")  # idempotent
        rebuild_ledger(tmp_path / "j", postgres_database, schema="dash")  # new tables stay readable
        as_role = postgres_database.replace("postgres@", f"{role}@", 1)
        with psycopg.connect(as_role, autocommit=True) as connection:
            (count,) = connection.execute("SELECT COUNT(*) FROM dash.fills").fetchone() or (None,)
            assert count == 4
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute("DELETE FROM dash.fills")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute("CREATE TABLE dash.sneaky (x int)")
    finally:
        database = postgres_database.rsplit("/", 1)[1]
        admin_execute(f"DROP OWNED BY {role}", database) if _role_exists(role) else None
        admin_execute(f"DROP ROLE IF EXISTS {role}")


def _role_exists(role: str) -> bool:
    import psycopg

    with psycopg.connect(f"{POSTGRES_SERVER}/postgres") as connection:
        return connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


@pytest.mark.needs_shared_data
def test_a_three_currency_journal_has_the_same_checksums_and_marks_on_both(
    postgres_database: str, tmp_path: Path
) -> None:
    """The three-market book (real SPDB, AAPL and XRP/USDT:USDT bars, CONSTRUCTED rates): each
    currency's postings and the day's marks per currency and in the base land alike on both."""
    from sim.backtest import run_backtest
    from tests.integration import test_fx_three_markets as three

    if not (three.SPDB_FILE.exists() and three.AAPL_FILE.exists() and three.XRP_FILE.exists()):
        pytest.skip(f"real market data not present under {three.SHARED}")
    cfg = three.config(tmp_path, three.build_dataset(tmp_path / "data"))
    run_backtest(cfg, three.ThreeMarkets())
    on_sqlite = rebuild_ledger(cfg.journal, tmp_path / "ledger.sqlite")
    on_postgres = rebuild_ledger(cfg.journal, postgres_database, schema="fx")
    assert on_postgres.checksums == on_sqlite.checksums
    assert int(on_sqlite.checksums["currency_marks"].split()[0][5:]) > 3 * 300  # three currencies a day
    assert audit(cfg.journal, postgres_database, schema="fx").ok


# --- a rebuild that fails keeps the ledger that was there -----------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_rebuild_of_a_damaged_journal_keeps_the_ledger_that_was_there(
    postgres_database: str, tmp_path: Path, backend: str
) -> None:
    """QA: `tape rebuild` of a damaged copy printed `hash chain broken` and left the ledger with
    no fills and no checkpoint. The rebuild is one transaction: failing, it keeps nothing."""
    from kernel.journal import JournalError

    good = tmp_path / "j.sqlite"
    write_journal(good, trading_events())
    target: Path | str = tmp_path / "ledger.sqlite" if backend == "sqlite" else postgres_database
    before = rebuild_ledger(good, target, schema="keep")
    assert before.checkpoint_seq > 4 and int(before.checksums["fills"].split()[0][5:]) > 0
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(good.read_bytes())
    with sqlite3.connect(damaged) as db:  # one byte flipped in the last segment
        first_seq, value = db.execute(
            "SELECT first_seq, value FROM journal_segments ORDER BY first_seq DESC LIMIT 1"
        ).fetchone()
        flipped = bytearray(value)
        flipped[len(flipped) // 2] ^= 0x01
        db.execute("UPDATE journal_segments SET value = ? WHERE first_seq = ?", (bytes(flipped), first_seq))
    with pytest.raises(JournalError):
        rebuild_ledger(damaged, target, schema="keep", batch_records_max=2)
    with open_ledger(target, schema="keep") as ledger:
        assert ledger.checkpoint_seq == before.checkpoint_seq
        assert ledger.table_checksums() == before.checksums


def test_grant_readonly_takes_the_password_from_a_private_file_or_the_environment(
    postgres_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The role's password never on the command line: ``--password`` is refused without echoing
    it (it was taken, visible in ``ps``); a file of mode 600 or ``$TAPE_DASHBOARDS_PASSWORD``
    sets it (checked in ``pg_authid``), a file others can read is refused."""
    from cli.main import main

    role = f"tape_pw_{abs(hash(postgres_database)) % 10**8}"
    monkeypatch.delenv("TAPE_DASHBOARDS_PASSWORD", raising=False)
    grant = ["projections", "grant-readonly", "--db", postgres_database, "--role", role]
    try:
        with pytest.raises(SystemExit) as refused:
            main([*grant, "--password", "s3cret-canary"])
        assert refused.value.code == 2
        err = capsys.readouterr().err
        assert "visible to every user" in err and "s3cret-canary" not in err
        assert not _role_exists(role)  # nothing created
        secret = tmp_path / "pw"
        secret.write_text("from-a-file\n")
        secret.chmod(0o644)
        assert main([*grant, "--password-file", str(secret)]) == 2
        assert "readable by others" in capsys.readouterr().out
        secret.chmod(0o600)
        assert main([*grant, "--password-file", str(secret)]) == 0
        assert _has_password(role)
        admin_execute(f"ALTER ROLE {role} PASSWORD NULL")
        monkeypatch.setenv("TAPE_DASHBOARDS_PASSWORD", "from-the-environment")
        assert main(grant) == 0
        assert _has_password(role)
    finally:
        database = postgres_database.rsplit("/", 1)[1]
        admin_execute(f"DROP OWNED BY {role}", database) if _role_exists(role) else None
        admin_execute(f"DROP ROLE IF EXISTS {role}")


def _has_password(role: str) -> bool:
    import psycopg

    with psycopg.connect(f"{POSTGRES_SERVER}/postgres") as connection:
        row = connection.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    return row is not None and row[0] is not None
