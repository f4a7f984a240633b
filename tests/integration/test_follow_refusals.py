"""``tape projections follow`` tells permanent failures from transient ones: a database that
does not exist stops it at once with the reason (exit 2) instead of retrying forever."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (POSTGRES_SERVER.replace("postgres@", "tape_no_such_role@") + "/postgres", "does not exist"),
        ("postgresql://postgres@no-such-host.invalid:5432/postgres", "no-such-host.invalid"),
    ],
    ids=["missing-role", "unknown-host"],
)
def test_a_missing_role_or_unknown_host_is_refused_not_retried(
    tmp_path: Path, url: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17 point 13's other permanent failures: stop at once with the reason (exit 2)."""
    require_postgres()
    assert "postgres@" in POSTGRES_SERVER, "the role case rewrites the server URL's user"
    if "invalid" in url:
        import socket

        try:
            socket.getaddrinfo("no-such-host.invalid", 5432)
        except socket.gaierror as error:
            if error.errno != socket.EAI_NONAME:  # no resolver here: a transient failure, retried
                pytest.skip(f"the resolver does not answer ({error})")
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=40), tmp_path / "j"))
    started = time.monotonic()
    assert main(["projections", "follow", str(tmp_path / "j"), "--db", url, "--poll-s", "0.1"]) == 2
    assert time.monotonic() - started < 30
    output = capsys.readouterr().out
    assert words in output and "retrying" not in output, output


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


def test_a_schema_dropped_under_a_running_follower_stops_it_with_the_reason(tmp_path: Path) -> None:
    """Issue 17 point 10: ``DROP SCHEMA`` under a running ``tape projections follow`` (a process,
    caught up and polling) stops it at once: one ``error:`` line saying the ledger's tables are
    gone and how to mend it, exit 2, no traceback; not retried, not recreated behind the
    operator's back."""
    import os
    import subprocess
    import sys

    import psycopg

    from kernel.store import open_journal
    from tests.contracts.projection_servers import scratch_database

    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=120), tmp_path / "j"))
    with open_journal(tmp_path / "j") as journal:
        last = len(journal) - 1
    with scratch_database() as url:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "projections", "follow", str(tmp_path / "j"), "--db", url,
             "--poll-s", "0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            with psycopg.connect(url, autocommit=True) as connection:
                while True:
                    assert process.poll() is None, process.communicate()[0]
                    assert time.monotonic() < deadline, "the follower never caught up"
                    has_checkpoint = connection.execute(
                        "SELECT to_regclass('tape_ledger.checkpoint') IS NOT NULL"
                    ).fetchone()
                    if has_checkpoint and has_checkpoint[0]:
                        row = connection.execute("SELECT max(seq) FROM tape_ledger.checkpoint").fetchone()
                        if row is not None and row[0] == last:
                            break
                    time.sleep(0.1)
                time.sleep(0.5)  # polling now
                connection.execute("DROP SCHEMA tape_ledger CASCADE")
                output, _ = process.communicate(timeout=30)
                schemas = connection.execute(
                    "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'tape_ledger'"
                ).fetchone()
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 2, output
    assert "Traceback" not in output and "UndefinedTable" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "tables are gone" in errors[0] and "rebuild" in errors[0], output
    assert str(tmp_path / "j") in errors[0], output
    assert schemas == (0,), "the follower recreated the dropped schema"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_ledger_of_another_run_is_refused_untouched(
    tmp_path: Path, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: `projections follow OTHER --db LEDGER_OF_J` said `ledger projection failed at seq N:
    day D closed twice`; it says the ledger is another run's (exit 2) and writes nothing. The
    two runs share a run id and differ by their seed only."""
    from contextlib import ExitStack

    from projections import open_ledger, rebuild_ledger
    from tests.contracts.projection_servers import scratch_database

    data = make_dataset(tmp_path / "d", symbols=2, bars=60)
    run(make_config(data, tmp_path / "j", seed=1))
    run(make_config(data, tmp_path / "other", seed=2))
    with ExitStack() as stack:
        target: Path | str = tmp_path / "ledger.sqlite"
        if backend == "postgres":
            target = stack.enter_context(scratch_database())
        before = rebuild_ledger(tmp_path / "j", target, schema="other_run")
        follow = ["projections", "follow", str(tmp_path / "other"), "--db", str(target)]
        capsys.readouterr()
        assert main([*follow, "--schema", "other_run", "--poll-s", "0.1"]) == 2
        out = " ".join(capsys.readouterr().out.split())
        assert "is the ledger of another run (run 'test-sma_crossover' " in out, out
        assert "closed twice" not in out
        with open_ledger(target, schema="other_run") as ledger:
            assert ledger.checkpoint_seq == before.checkpoint_seq
            assert ledger.table_checksums() == before.checksums


def _follow_process(journal: Path, ledger: Path) -> subprocess.CompletedProcess[str]:
    """``tape projections follow JOURNAL --db LEDGER`` in a child, stopped after 30 s: the old
    follower polled a path it could not open forever, silently."""
    command = [sys.executable, "-m", "cli.main", "projections", "follow", str(journal), "--db", str(ledger),
               "--poll-s", "0.1"]  # fmt: skip
    try:
        return subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=30,
            env={**os.environ, "COLUMNS": "200"},
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(f"follow kept polling a path that is no journal: {error.output!r}") from None


def test_a_path_that_is_no_journal_is_refused_before_the_ledger(tmp_path: Path) -> None:
    """QA: `projections follow CONFIG.toml` (a file, not a journal) polled it forever at debug
    level, after creating an empty ledger; it says `not an LMDB journal` (exit 2), no ledger."""
    config = tmp_path / "run.toml"
    config.write_text('run_id = "x"\n')
    done = _follow_process(config, tmp_path / "ledger.sqlite")
    assert done.returncode == 2, done.stdout
    assert "not an LMDB journal" in done.stdout and "Traceback" not in done.stdout, done.stdout
    assert not (tmp_path / "ledger.sqlite").exists()


@pytest.mark.parametrize("backend", ["lmdb", "sqlite"])
def test_a_damaged_journal_stops_the_follower_with_the_reason(tmp_path: Path, backend: str) -> None:
    """QA: `projections follow` of an LMDB journal whose data.mdb was truncated polled it
    forever, saying nothing (the open's StoreDamaged was logged at debug level); it stops with
    the damage named (exit 1), as verify does. A SQLite journal cut short likewise."""
    journal = tmp_path / ("j.sqlite" if backend == "sqlite" else "j")
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=60), journal, backend=backend))
    store = journal / "data.mdb" if backend == "lmdb" else journal
    with store.open("r+b") as file:
        file.truncate(store.stat().st_size // 2)
    done = _follow_process(journal, tmp_path / "ledger.sqlite")
    assert done.returncode == 1, done.stdout
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(journal) in errors[0], done.stdout


def test_a_damage_found_while_following_stops_the_runner(tmp_path: Path) -> None:
    """The runner itself: a journal that stops opening (damaged) raises instead of being polled
    as if it were still to come; a path with nothing there yet is waited for."""
    from kernel.journal import StoreDamaged
    from projections import open_ledger
    from projections.runner import follow, journal_not_there_yet

    assert journal_not_there_yet(tmp_path / "later")
    (tmp_path / "starting").mkdir()  # an LMDB writer between creating lock.mdb and data.mdb
    (tmp_path / "starting" / "lock.mdb").write_bytes(b"\0" * 64)
    (tmp_path / "starting" / "data.mdb").touch()
    assert journal_not_there_yet(tmp_path / "starting")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a journal")
    assert not journal_not_there_yet(tmp_path / "notes")
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=60), tmp_path / "j"))
    assert not journal_not_there_yet(tmp_path / "j")
    with (tmp_path / "j" / "data.mdb").open("r+b") as file:
        file.truncate(8192)
    with pytest.raises(StoreDamaged, match="truncated"):
        follow(tmp_path / "j", lambda: open_ledger(tmp_path / "l.sqlite"), should_stop=lambda s: s.polls > 3,
               sleep=lambda _: None)  # fmt: skip
