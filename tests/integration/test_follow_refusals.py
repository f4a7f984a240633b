"""``tape projections follow`` tells permanent failures from transient ones: a database that
does not exist stops it at once with the reason (exit 2) instead of retrying forever."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cli.main import main
from projections import TargetRefused
from projections.ledger_postgres import PostgresLedger
from tests.contracts.projection_servers import POSTGRES_SERVER, require_postgres
from tests.factories import make_config, make_dataset, run


def test_a_database_that_does_not_exist_is_refused_not_retried(tmp_path: Path) -> None:
    require_postgres()
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=40), tmp_path / "j"))
    url = f"{POSTGRES_SERVER}/tape_no_such_database"
    with pytest.raises(TargetRefused, match="does not exist"):
        PostgresLedger.open(url, "tape_ledger")
    started = time.monotonic()
    assert main(["projections", "follow", str(tmp_path / "j"), "--db", url]) == 2
    assert time.monotonic() - started < 30


def test_a_rebuild_blocked_by_another_session_names_it_and_stops(tmp_path: Path) -> None:
    import psycopg

    from projections import rebuild_ledger
    from tests.contracts.projection_servers import scratch_database

    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=40), tmp_path / "j"))
    with scratch_database() as url:
        rebuild_ledger(tmp_path / "j", url)
        holder = psycopg.connect(url, application_name="dashboard-probe")
        try:
            holder.execute("BEGIN")
            holder.execute("SELECT count(*) FROM tape_ledger.nav")  # an open transaction holds the table
            started = time.monotonic()
            with pytest.raises(TargetRefused, match="application dashboard-probe, idle in transaction"):
                rebuild_ledger(tmp_path / "j", url)
            assert time.monotonic() - started < 30
        finally:
            holder.close()
        rebuild_ledger(tmp_path / "j", url)  # the holder gone, the rebuild goes through
