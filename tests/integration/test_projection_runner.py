"""The projector under failure: SIGKILL at random points, and the database going away.

SIGKILL: ``_projector.py`` applies a journal in small batches and is killed after a seeded
random delay, ``KILLS`` times, then run to the end; the ledger must equal one clean run
(table checksums), and every checkpoint it reported must have survived. Reproduce with
``pytest -k "sigkill and <backend>-<seed>"``.

Outage: ``follow`` runs in a thread while the journal grows; the test terminates the
projector's sessions and refuses new connections to its database for a while
(``ALLOW_CONNECTIONS false``), then lets it back; the runner must log the outage, resume
from its checkpoint and converge.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from domain.events import Event, InstrumentsDefined, LedgerPosted, OrderAccepted
from kernel.store import open_journal
from projections import open_ledger, rebuild_ledger
from projections.runner import Backoff, follow
from tests.contracts.projection_servers import admin_execute, scratch_database
from tests.unit.projections.test_ledger_sqlite import AAPL, MSFT, T0_NS, TapeBuilder, instrument

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECTOR = Path(__file__).with_name("_projector.py")
SEEDS = 3
KILLS = 3
KILL_DELAY_S_MAX = 0.5
# The first run projects the whole journal: kill it early, whatever the machine's speed.
FIRST_KILL_DELAY_S_MAX = 0.1
READY_TIMEOUT_S = 30.0


def busy_events(orders: int, start: int = 0) -> list[Event]:
    """``orders`` round trips: submit, accept, fill, postings; alternating AAPL/MSFT."""
    builder = TapeBuilder()
    if start == 0:
        builder.add(
            InstrumentsDefined(ts_ns=T0_NS, instruments=[instrument(AAPL, "AAPL"), instrument(MSFT, "MSFT")])
        )
    for n in range(start, start + orders):
        order_id = f"o-{n:07d}"
        iid = AAPL if n % 2 else MSFT
        side = 1 if (n // 2) % 2 == 0 else -1
        ts_ns = T0_NS + n * 10**9
        builder.submit(ts_ns, order_id, iid, side, 10 + n % 7, 100_00 + n % 50)
        builder.add(OrderAccepted(ts_ns=ts_ns, order_id=order_id))
        builder.fill(ts_ns, order_id, iid, side, 10 + n % 7, 100_00 + n % 50)
    return builder.events


def _txn_safe(events: list[Event], offset: int) -> list[Event]:
    """Give ledger transactions ids unique across separately built chunks."""
    return [
        msgspec.structs.replace(event, txn_id=f"{offset}-{event.txn_id}")
        if isinstance(event, LedgerPosted)
        else event
        for event in events
    ]


def write_busy_journal(path: Path, orders: int) -> int:
    with open_journal(path, writable=True, records_per_commit_max=512) as journal:
        for event in busy_events(orders):
            journal.append(event)
        return journal.next_seq


@pytest.fixture(scope="module")
def busy_journal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("busy")
    write_busy_journal(root / "journal", 5000)
    return root / "journal", rebuild_ledger(root / "journal", root / "clean.sqlite").checksums


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    with scratch_database() as url:
        yield url


def _spawn(journal: Path, target: str, schema: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    with log.open("wb") as stdout:
        return subprocess.Popen(
            [sys.executable, str(PROJECTOR), str(journal), target, schema, "25"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO_ROOT,
        )


def _lines(log: Path) -> list[str]:
    return log.read_text().split("\n")[:-1]  # a line without its newline was cut by the kill


def _wait_ready(process: subprocess.Popen[bytes], log: Path, context: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(line.startswith("ready") for line in _lines(log)):
            return
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"{context}: projector exited early: {stderr}")
        time.sleep(0.01)
    process.kill()
    raise AssertionError(f"{context}: projector not ready in {READY_TIMEOUT_S}s")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("seed", range(SEEDS))
def test_sigkill_at_random_points_converges_to_one_clean_run(
    busy_journal: tuple[Path, dict[str, str]],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    backend: str,
    seed: int,
) -> None:
    journal, clean = busy_journal
    schema = f"kill_{seed}"
    if backend == "postgres":
        target = request.getfixturevalue("postgres_database")
        from projections.ledger_postgres import drop_schema

        drop_schema(target, schema)
    else:
        target = str(tmp_path / "ledger.sqlite")
    rng = random.Random(seed)
    context = f"backend={backend} seed={seed}"
    reported = -1
    killed_mid_run = 0
    for kill in range(KILLS):
        log = tmp_path / f"out{kill}.log"
        process = _spawn(journal, target, schema, log)
        _wait_ready(process, log, context)
        time.sleep(rng.uniform(0, FIRST_KILL_DELAY_S_MAX if kill == 0 else KILL_DELAY_S_MAX))
        process.send_signal(signal.SIGKILL)
        process.wait()
        lines = _lines(log)
        killed_mid_run += "done" not in lines
        committed = [int(line) for line in lines if line.lstrip("-").isdigit()]
        reported = max([reported, *committed])
        with open_ledger(target, schema=schema) as ledger:
            assert ledger.checkpoint_seq >= reported, f"{context}: lost a committed batch"
    log = tmp_path / "final.log"
    process = _spawn(journal, target, schema, log)
    assert process.wait(timeout=120) == 0, f"{context}: {process.stderr.read() if process.stderr else ''}"
    assert "done" in _lines(log)
    with open_ledger(target, schema=schema) as ledger:
        assert ledger.table_checksums() == clean, context
    assert killed_mid_run > 0, f"{context}: no kill landed mid-run; raise the journal size"


def test_follow_survives_the_database_going_away(
    postgres_database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "journal"
    chunks = [_txn_safe(busy_events(300, start=n * 300), n) for n in range(3)]
    with open_journal(journal, writable=True, records_per_commit_max=256) as writer:
        for event in chunks[0]:
            writer.append(event)
    database = postgres_database.rsplit("/", 1)[1]
    done = threading.Event()
    stats_box: list[object] = []

    def run() -> None:
        stats = follow(
            journal,
            lambda: open_ledger(postgres_database, schema="followed"),
            batch_records_max=50,
            poll_s=0.02,
            backoff=Backoff(initial_s=0.05, maximum_s=0.4),
            should_stop=lambda stats: done.is_set(),
        )
        stats_box.append(stats)

    caplog.set_level(logging.INFO, logger="tape.projections")
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)
        admin_execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        admin_execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' "
            "AND pid <> pg_backend_pid()"
        )
        with open_journal(journal, writable=True, records_per_commit_max=256) as writer:
            for event in chunks[1]:
                writer.append(event)
        time.sleep(1.0)  # the runner keeps failing to connect meanwhile
        admin_execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        with open_journal(journal, writable=True, records_per_commit_max=256) as writer:
            for event in chunks[2]:
                writer.append(event)
            head = writer.next_seq - 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open_ledger(postgres_database, schema="followed") as ledger:
                if ledger.checkpoint_seq == head:
                    break
            time.sleep(0.05)
    finally:
        admin_execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        done.set()
        thread.join(timeout=30)
    (stats,) = stats_box
    assert stats.outages >= 2, stats  # the killed session, then at least one refused connect
    assert stats.checkpoint_seq == head
    clean = rebuild_ledger(journal, tmp_path / "clean.sqlite").checksums
    with open_ledger(postgres_database, schema="followed") as ledger:
        assert ledger.table_checksums() == clean
    messages = [record.getMessage() for record in caplog.records]
    assert any("target unavailable" in message and "retrying in" in message for message in messages)
    assert sum("connected; resuming after seq" in message for message in messages) >= 2
