"""Journals that are damaged or not journals, opened read-only, and runs killed part-way
(issue 17, items 1-5): every verb names the file and the problem, maps nothing it cannot
read (no SIGBUS), writes nothing it only reads, and says when a run never finished."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import lmdb
import pytest

from cli.main import EXIT_DAMAGED, EXIT_OK, EXIT_REFUSED, EXIT_UNFINISHED
from cli.main import main as tape
from kernel.journal import JournalError, StoreDamaged
from kernel.store import open_journal
from tests.factories import killed_copy, make_dataset
from tests.integration._crash_writer import event_for

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
run_id = "damage-test"
seed = 3
dataset = "data"
journal = "journal"
initial_cash = "100000"

[strategy]
name = "sma_crossover"
params = { fast = 3, slow = 9, weight = 0.9 }
"""


def _write_journal(path: Path, records: int = 3000, commit: int = 64) -> None:
    with open_journal(path, writable=True, records_per_commit_max=commit) as journal:
        for i in range(records):
            journal.append(event_for(i))


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` except LMDB's lock file (its reader table)."""
    paths = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.name != "lock.mdb"}


def _tape(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture
def lmdb_journal(tmp_path: Path) -> Path:
    path = tmp_path / "j"
    _write_journal(path)
    return path


@pytest.mark.parametrize("size", [0, 100, 4096, 8192, 20_000, 60_000])
def test_a_truncated_lmdb_journal_is_named_never_mapped(lmdb_journal: Path, size: int) -> None:
    data = lmdb_journal / "data.mdb"
    assert data.stat().st_size > 60_000
    os.truncate(data, size)
    before = _digests(lmdb_journal)
    with pytest.raises(StoreDamaged, match=r"data\.mdb"):
        open_journal(lmdb_journal)
    assert _digests(lmdb_journal) == before  # a zero-length data.mdb stays zero bytes
    result = _tape("verify", str(lmdb_journal))  # in a process of its own: a SIGBUS would kill it
    assert result.returncode == EXIT_DAMAGED, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert str(lmdb_journal) in result.stdout
    assert _digests(lmdb_journal) == before


@pytest.mark.parametrize(
    ("offset", "what"),
    [
        (16, "magic"),
        (20, "version"),
        (40, "page size"),
        (80, "free root"),
        (128, "main root"),
        (136, "last page"),
    ],
)
@pytest.mark.parametrize("page", [0, 1])
def test_a_damaged_lmdb_meta_page_is_reported_not_raised(
    lmdb_journal: Path, offset: int, what: str, page: int
) -> None:
    data = lmdb_journal / "data.mdb"
    raw = bytearray(data.read_bytes())
    at = page * 4096 + offset
    raw[at : at + 4] = bytes(b ^ 0xFF for b in raw[at : at + 4])
    data.write_bytes(bytes(raw))
    before = _digests(lmdb_journal)
    for verb in ("verify", "replay", "report", "rebuild"):
        assert tape([verb, str(lmdb_journal)]) == EXIT_DAMAGED, (verb, what)
    assert _digests(lmdb_journal) == before


def test_a_damaged_btree_page_is_named_not_raised(lmdb_journal: Path) -> None:
    """LMDB's own errors past the meta pages (a root page of the wrong type) name the file."""
    data = lmdb_journal / "data.mdb"
    raw = bytearray(data.read_bytes())
    newest = max((0, 4096), key=lambda offset: struct.unpack_from("=Q", raw, offset + 144)[0])
    root = struct.unpack_from("=Q", raw, newest + 128)[0]
    raw[root * 4096 + 10 : root * 4096 + 12] = b"\x00\x00"  # page flags: neither branch nor leaf
    data.write_bytes(bytes(raw))
    with pytest.raises(StoreDamaged, match=re.escape(str(lmdb_journal))):
        open_journal(lmdb_journal)
    result = _tape("verify", str(lmdb_journal))
    assert result.returncode == EXIT_DAMAGED, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_foreign_lmdb_environments_and_files_are_not_journals(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "foreign"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v")
    env.close()
    (tmp_path / "file").write_text("not a journal\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(JournalError, match="without a Tape journal"):
        open_journal(tmp_path / "foreign")
    with pytest.raises(JournalError, match="a file"):
        open_journal(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match=r"no data\.mdb"):
        open_journal(tmp_path / "empty")
    with pytest.raises(JournalError, match="a file"):
        open_journal(tmp_path / "file", writable=True)
    assert not any((tmp_path / "empty").iterdir())


def test_a_read_only_open_writes_nothing(lmdb_journal: Path, tmp_path: Path) -> None:
    """Before: a reader opened the environment writable whenever it could. Now: readonly."""
    sqlite_path = tmp_path / "j.sqlite"
    _write_journal(sqlite_path, records=500)
    for path in (lmdb_journal, sqlite_path):
        before = _digests(path)
        with open_journal(path) as journal:
            assert journal.verify().ok
            with pytest.raises(JournalError, match="read-only"):
                journal.append(event_for(0))
        assert tape(["verify", str(path)]) == EXIT_UNFINISHED  # crash-writer events: no run
        assert _digests(path) == before


def test_a_reader_that_may_not_write_the_lock_file_still_reads(
    lmdb_journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only copy, mount or another user's files: the lock file cannot be opened for
    writing (lmdb raises), so the reader opens without LMDB's lock. Simulated, so that it runs
    as root too; the next test does it for real where permissions apply."""
    real_open = lmdb.open

    def no_lock_file(path: str, **kwargs: object) -> lmdb.Environment:
        if kwargs.get("lock", True):
            raise lmdb.ReadonlyError(f"{path}/lock.mdb: Permission denied")
        return real_open(path, **kwargs)

    monkeypatch.setattr(lmdb, "open", no_lock_file)
    with open_journal(lmdb_journal) as journal:
        assert journal.verify().records == 3000
    with pytest.raises(JournalError, match="for writing"):
        open_journal(lmdb_journal / "new", writable=True)


UNPRIVILEGED_UID = 65534  # nobody


def _as_unprivileged() -> list[str] | None:
    """The command prefix that runs a process as ``nobody`` when this test runs as root (root
    reads and writes files whatever their mode, so a read-only copy is only read-only to
    another user); ``[]`` when not root; None when no tool for it is installed."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv:
        uid = str(UNPRIVILEGED_UID)
        return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "nobody", "--"]
    return None


def test_a_read_only_copy_verifies(lmdb_journal: Path) -> None:
    prefix = _as_unprivileged()
    if prefix is None:
        pytest.skip("running as root and neither setpriv nor runuser is installed to run as nobody")
    # A folder the unprivileged user can reach (pytest's tmp_path is root's, mode 0700).
    shared = Path(tempfile.mkdtemp(prefix="tape-readonly-"))
    try:
        shared.chmod(0o755)
        cache = shared / "cache"  # the verb's own writable place (numba's cache, HOME)
        cache.mkdir(mode=0o777)
        cache.chmod(0o777)
        lmdb_copy, sqlite_path = shared / "journal", shared / "j.sqlite"
        shutil.copytree(lmdb_journal, lmdb_copy)
        _write_journal(sqlite_path, records=500)
        for path in (lmdb_copy, sqlite_path):
            for p in [path, *path.glob("*")] if path.is_dir() else [path]:
                p.chmod(0o555 if p.is_dir() else 0o444)
            before = _digests(path)
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "PYTHONDONTWRITEBYTECODE": "1",
                "HOME": str(cache),
                "NUMBA_CACHE_DIR": str(cache / "numba"),
            }
            if prefix:  # the permissions really apply: the user cannot write there
                probe = subprocess.run(
                    [*prefix, "touch", str(path if path.is_file() else path / "probe")],
                    capture_output=True,
                    check=False,
                )
                assert probe.returncode != 0, f"{path} is writable by the unprivileged user"
            result = subprocess.run(
                [*prefix, sys.executable, "-m", "cli.main", "verify", str(path)],
                capture_output=True,
                text=True,
                env=env,
                cwd=shared,
                timeout=180,
                check=False,
            )
            output = result.stdout + result.stderr
            assert "Traceback" not in output, output
            assert result.returncode == EXIT_UNFINISHED, output  # crash-writer events: no run
            assert "OK" in result.stdout, output
            assert _digests(path) == before
    finally:
        for p in shared.rglob("*"):
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(shared, ignore_errors=True)


def test_a_read_only_sqlite_copy_whose_write_ahead_log_holds_records_is_refused() -> None:
    """Copied while its writer was open: the records of the -wal file cannot be read from a
    folder the reader may not write, and the verb says so instead of reading a partial file."""
    prefix = _as_unprivileged()
    if prefix is None:
        pytest.skip("running as root and neither setpriv nor runuser is installed to run as nobody")
    shared = Path(tempfile.mkdtemp(prefix="tape-readonly-wal-"))
    try:
        writer_dir = shared / "writer"
        copy_dir = shared / "copy"
        copy_dir.mkdir()
        with open_journal(writer_dir / "j.sqlite", writable=True, records_per_commit_max=16) as journal:
            for i in range(200):
                journal.append(event_for(i))
            journal.commit()
            wal = writer_dir / "j.sqlite-wal"
            assert wal.stat().st_size > 0
            for name in ("j.sqlite", "j.sqlite-wal"):
                shutil.copyfile(writer_dir / name, copy_dir / name)
        for p in copy_dir.iterdir():
            p.chmod(0o444)
        copy_dir.chmod(0o555)
        shared.chmod(0o755)
        cache = shared / "cache"
        cache.mkdir()
        cache.chmod(0o777)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(cache)}
        env["NUMBA_CACHE_DIR"] = str(cache / "numba")
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "cli.main", "verify", str(copy_dir / "j.sqlite")],
            capture_output=True,
            text=True,
            env=env,
            cwd=shared,
            timeout=180,
            check=False,
        )
        output = result.stdout + result.stderr
        assert "Traceback" not in output, output
        assert result.returncode == EXIT_REFUSED, output
        assert "j.sqlite-wal holds records" in output, output
    finally:
        for p in [shared, *shared.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.parametrize("make", ["truncated", "empty", "text", "directory", "foreign", "header"])
def test_sqlite_files_that_are_damaged_or_not_journals(tmp_path: Path, make: str) -> None:
    path = tmp_path / "j.sqlite"
    _write_journal(path, records=3000, commit=16)
    match make:
        case "truncated":
            os.truncate(path, path.stat().st_size // 3)
        case "empty":
            path.write_bytes(b"")
        case "text":
            path.write_text("hello\n")
        case "directory":
            path.unlink()
            path.mkdir()
        case "foreign":
            path.unlink()
            with sqlite3.connect(path) as db:
                db.execute("CREATE TABLE t (x)")
            db.close()
        case "header":
            raw = bytearray(path.read_bytes())
            raw[16:18] = struct.pack(">H", 3)  # page size 3: not a power of two
            path.write_bytes(bytes(raw))
    before = _digests(path) if path.is_file() else {}
    expected = EXIT_DAMAGED if make in ("truncated", "header") else EXIT_REFUSED
    for verb in ("verify", "replay", "report"):
        assert tape([verb, str(path)]) == expected, (verb, make)
    if path.is_file():
        assert _digests(path) == before
    if make == "foreign":
        with pytest.raises(JournalError, match="not a Tape journal"):
            open_journal(path, writable=True)  # never adds journal tables to someone's database


# --- a run killed part-way --------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    make_dataset(tmp_path / "data", symbols=3, bars=400)
    (tmp_path / "run.toml").write_text(CONFIG)
    assert tape(["backtest", str(tmp_path / "run.toml")]) == EXIT_OK
    return tmp_path


def test_a_killed_run_is_matched_but_unfinished_in_every_verb(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = run_dir / "journal"
    with open_journal(journal) as whole:
        half = len(whole) // 2
    killed = run_dir / "killed"
    records = killed_copy(journal, killed, half)
    assert records == half
    capsys.readouterr()
    before = _digests(killed)
    assert tape(["verify", str(killed)]) == EXIT_UNFINISHED
    assert f"ends at seq {records - 1}" in capsys.readouterr().out
    assert tape(["replay", str(killed)]) == EXIT_UNFINISHED
    out = capsys.readouterr().out
    assert "replay matched an unfinished run" in out and "diverged" not in out
    assert tape(["report", str(killed)]) == EXIT_UNFINISHED
    out = capsys.readouterr().out
    assert "unfinished run" in out.splitlines()[0]
    assert "final NAV" in out
    assert _digests(killed) == before
    assert tape(["rebuild", str(killed)]) == EXIT_UNFINISHED
    for verb in ("verify", "replay", "report", "rebuild"):
        assert tape([verb, str(journal)]) == EXIT_OK


def test_a_real_divergence_in_a_killed_run_is_still_a_divergence(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The unfinished status is only for a prefix that matches."""
    killed = run_dir / "killed"
    records = killed_copy(run_dir / "journal", killed, 1000)
    config = (
        (run_dir / "run.toml").read_text().replace("seed = 3", "seed = 3\nfill = { slippage_e8 = 90_000 }")
    )
    (run_dir / "other.toml").write_text(config.replace('"journal"', '"other"'))
    assert tape(["backtest", str(run_dir / "other.toml")]) == EXIT_OK
    hybrid = run_dir / "hybrid"
    with open_journal(killed) as head, open_journal(run_dir / "other") as other:
        events = [r.event() for r in head.records()][:2] + [r.event() for r in other.records(2)]
    with open_journal(hybrid, writable=True) as journal:
        for event in events[:records]:
            journal.append(event)
    capsys.readouterr()
    assert tape(["replay", str(hybrid)]) == EXIT_DAMAGED
    assert "replay diverged" in capsys.readouterr().out


def test_an_empty_journal_is_an_unfinished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    open_journal(tmp_path / "j", writable=True).close()
    for verb in ("verify", "replay", "report"):  # report raised an internal error (exit 70)
        assert tape([verb, str(tmp_path / "j")]) == EXIT_UNFINISHED
        assert "journal is empty" in capsys.readouterr().out
    assert tape(["tearsheet", str(tmp_path / "j"), "--out", str(tmp_path / "sheet")]) == EXIT_REFUSED
    assert "journal is empty" in capsys.readouterr().out


def test_killed_backtests_are_unfinished_never_diverged(run_dir: Path) -> None:
    """SIGKILL a real `tape backtest` part-way: what it committed verifies and replays as a
    matched, unfinished run (or, killed late, a finished one)."""
    for trial, delay_s in enumerate((1.5, 2.5)):
        config = (run_dir / "run.toml").read_text().replace('"journal"', f'"k{trial}"')
        (run_dir / f"k{trial}.toml").write_text(config)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "backtest", str(run_dir / f"k{trial}.toml")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            process.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        journal = run_dir / f"k{trial}"
        if not (journal / "data.mdb").exists():
            continue  # killed before it opened the journal
        statuses = {_tape(verb, str(journal)).returncode for verb in ("verify", "replay")}
        assert statuses <= {EXIT_OK, EXIT_UNFINISHED}, (trial, statuses)
        assert len(statuses) == 1
    shutil.rmtree(run_dir / "data", ignore_errors=True)


def test_a_writer_can_open_a_journal_a_reader_in_the_same_process_holds(tmp_path: Path) -> None:
    """One process holds one LMDB environment per journal: a run that follows its own journal
    (a reader opened first) must still be able to write to it."""
    from domain.events import DayClosed
    from kernel.store import open_journal

    path = tmp_path / "j"
    with open_journal(path, writable=True) as writer:
        writer.append(DayClosed(ts_ns=1, day=20240102, step=0, nav_minor=1, cash_minor=1,
                                gross_exposure_minor=0, currency="USD"))  # fmt: skip
        writer.commit()
    with open_journal(path) as reader:
        assert len(reader) == 1
        with open_journal(path, writable=True) as writer:
            writer.append(DayClosed(ts_ns=2, day=20240103, step=1, nav_minor=1, cash_minor=1,
                                    gross_exposure_minor=0, currency="USD"))  # fmt: skip
            writer.commit()
    with open_journal(path) as again:
        assert len(again) == 2


@pytest.mark.parametrize("verb", [["rebuild"], ["projections", "rebuild"]])
def test_a_failed_rebuild_leaves_no_ledger_file_where_there_was_none(
    tmp_path: Path, verb: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: `tape rebuild` of a journal with a flipped byte said `hash chain broken` (exit 1) but
    left an empty SQLite database (and its -wal/-shm) at JOURNAL.ledger.sqlite, so the `tape
    audit` after it said `is not a Tape ledger (tables: [])`; nothing of a failed rebuild stays,
    and the audit says no ledger was built."""
    from tests.factories import make_config, run

    journal = tmp_path / "j"
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=60), journal))
    data = journal / "data.mdb"
    with open_journal(journal) as opened:
        assert len(opened) > 40
    raw = bytearray(data.read_bytes())
    at = len(raw) // 2
    while raw[at] == 0:  # a byte of a record, not page padding
        at += 1
    raw[at] ^= 0xFF
    data.write_bytes(bytes(raw))
    ledger = tmp_path / "j.ledger.sqlite"
    assert tape([*verb, str(journal), "--db", str(ledger)]) == EXIT_DAMAGED
    assert not list(tmp_path.glob("j.ledger.sqlite*"))
    capsys.readouterr()
    assert tape(["audit", str(journal), "--db", str(ledger)]) == EXIT_REFUSED
    assert "no SQLite ledger at" in capsys.readouterr().out
