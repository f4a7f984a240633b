"""Signals mid-command (issue 17's contract): Ctrl-C (SIGINT) or SIGTERM while a verb works on a
journal stops it in one line — exit 130 or 143 (docs/runbook.md, "Exit statuses"), no
``Traceback``, no death by the signal — and leaves what it had committed sound: a backtest's
journal verifies as an unfinished run, and a verb that only reads leaves the journal's bytes as
they were. Verbs: backtest, replay, verify, report, projections rebuild, compare, audit,
reconcile, montecarlo, and sweep (signalled as a terminal does, to its whole process group: the
pool's workers too). (``projections follow`` and paper sessions have their own tests:
test_follow_signals.py, test_paper_local_exchange.py.)

The signal goes once the verb has opened the journal (its file appears among the process's open
files in ``/proc``) and has worked a moment, so it lands inside the command, not in start-up.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_UNFINISHED
from kernel.store import open_journal
from tests.factories import make_dataset

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc to see open files"),
]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """run_id = "signals"
seed = 5
dataset = "data"
journal = "{journal}"
initial_cash = "100000"

[strategy]
name = "sma_crossover"
params = {{ fast = 3, slow = 9, weight = 0.9 }}
"""
SIGNALS = {"SIGINT": (signal.SIGINT, EXIT_INTERRUPTED), "SIGTERM": (signal.SIGTERM, EXIT_TERMINATED)}


def _start(args: list[str], cwd: Path, *, tmp: Path | None = None) -> subprocess.Popen[str]:
    """The verb as a process leading a process group of its own (a terminal's foreground job)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("TAPE_TRACEBACK", None)
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def _holds_open(pid: int, path: Path) -> bool:
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(link.startswith(str(path)) for link in links)


def _signal_mid_command(process: subprocess.Popen[str], journal: Path, sig: int) -> tuple[int, str]:
    deadline = time.monotonic() + 120
    while not _holds_open(process.pid, journal) and process.poll() is None:
        assert time.monotonic() < deadline, "the verb never opened the journal"
        time.sleep(0.02)
    time.sleep(0.4)  # working on it
    if process.poll() is None:
        process.send_signal(sig)
    output, _ = process.communicate(timeout=120)
    return process.returncode, output


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digests(path: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.iterdir())
        if p.is_file() and p.name != "lock.mdb"
    }


def _check(code: int, output: str, expected: int, context: str) -> bool:
    """The contract; True when the verb was stopped (not finished before the signal came)."""
    assert code >= 0, f"{context}: killed by signal {-code}\n{output}"
    assert "Traceback" not in output, f"{context}\n{output}"
    assert code in (EXIT_OK, EXIT_UNFINISHED, expected), f"{context}: exit {code}\n{output}"
    if code != expected:
        return False
    stopped = [line for line in output.splitlines() if line.startswith(("interrupted:", "terminated:"))]
    assert len(stopped) == 1, f"{context}: not one line saying it stopped\n{output}"
    return True


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished minute-bar backtest big enough that every verb below takes a while over it."""
    root = tmp_path_factory.mktemp("signals")
    make_dataset(root / "data", symbols=3, bars=40_000, frequency="1m")
    (root / "run.toml").write_text(CONFIG.format(journal="journal"))
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "backtest", "run.toml"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    built = subprocess.run(  # the ledger that audit and reconcile read
        [sys.executable, "-m", "cli.main", "rebuild", "journal"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == EXIT_OK, built.stdout + built.stderr
    return root


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_backtest_stopped_by_a_signal_keeps_what_it_committed(finished: Path, name: str) -> None:
    sig, expected = SIGNALS[name]
    journal = finished / f"stopped-{name}"
    (finished / f"{name}.toml").write_text(CONFIG.format(journal=journal.name))
    code, output = _signal_mid_command(_start(["backtest", f"{name}.toml"], finished), journal, sig)
    assert _check(code, output, expected, f"backtest, {name}"), f"finished before the signal:\n{output}"
    with open_journal(journal) as opened:
        assert opened.verify().ok
        kept = len(opened)
    verified = subprocess.run(
        [sys.executable, "-m", "cli.main", "verify", str(journal)],
        cwd=finished,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode in (EXIT_UNFINISHED, EXIT_OK), verified.stdout  # 0 only if it ended whole
    with open_journal(finished / "journal") as whole:
        assert kept <= len(whole)


READS = [
    ("replay", ["replay", "journal"]),
    ("verify", ["verify", "journal"]),
    ("report", ["report", "journal"]),
    ("rebuild", ["projections", "rebuild", "journal", "--db", "ledger.sqlite"]),
    ("compare", ["compare", "journal", "journal"]),
    ("audit", ["audit", "journal", "--db", "journal.ledger.sqlite"]),
    ("reconcile", ["reconcile", "journal"]),
    ("montecarlo", ["montecarlo", "journal", "--samples", "200000"]),
]


@pytest.mark.parametrize("name", list(SIGNALS))
@pytest.mark.parametrize(("verb", "args"), READS, ids=[verb for verb, _ in READS])
def test_a_verb_reading_a_journal_stopped_by_a_signal_leaves_it_as_it_was(
    finished: Path, verb: str, args: list[str], name: str, tmp_path: Path
) -> None:
    """The journal (and the built ledger that audit and reconcile only read) as they were, and
    no scratch left behind (audit rebuilds into a temporary folder: TMPDIR is watched)."""
    sig, expected = SIGNALS[name]
    before = {**_digests(finished / "journal"), "ledger": _digest(finished / "journal.ledger.sqlite")}
    code, output = _signal_mid_command(_start(args, finished, tmp=tmp_path), finished / "journal", sig)
    if _check(code, output, expected, f"{verb}, {name}") and verb == "rebuild":
        _check_rebuild_said_where(output, finished / "ledger.sqlite")
    after = {**_digests(finished / "journal"), "ledger": _digest(finished / "journal.ledger.sqlite")}
    assert after == before, f"{verb} wrote to the journal or ledger it reads"
    assert list(tmp_path.iterdir()) == [], f"{verb} left scratch behind: {list(tmp_path.iterdir())}"


def _check_rebuild_said_where(output: str, ledger: Path) -> None:
    """A stopped rebuild says where its ledger stands (issue 17 point 9), and it is so: the
    rebuild is one transaction, so nothing of it was kept (the target was new: no tables)."""
    import sqlite3

    assert "before it finished: nothing of it was kept" in output, f"it did not say so:\n{output}"
    if not ledger.exists():
        return
    db = sqlite3.connect(f"{ledger.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        db.close()
    assert tables == [], output


def test_a_long_replay_is_stopped_mid_command(finished: Path) -> None:
    """At least one reading verb is really stopped, not finished before the signal (the test
    above accepts either, since short verbs may win the race)."""
    code, output = _signal_mid_command(
        _start(["replay", "journal"], finished), finished / "journal", signal.SIGINT
    )
    assert _check(code, output, EXIT_INTERRUPTED, "replay, SIGINT"), f"finished before the signal:\n{output}"


# Journals kept: a run's journal folder is the landmark that the workers run backtests (a run
# that keeps none journals in memory and writes nothing until its result is recorded).
SWEEP = """
[sweep]
grid = { "strategy.params.fast" = [3, 4, 5, 6], "strategy.params.slow" = [9, 12] }
workers = 2
keep_journals = true
"""


def _group_gone(pgid: int, within_s: float = 20.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


# When the signal comes: as the pool's workers start (they exist and are still importing) or
# once they run backtests (the first journal exists), and how long after.
MOMENTS = {"workers-starting": ("experiments.sqlite", 0.6), "workers-running": ("journals", 1.0)}


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_sweep_stopped_in_a_terminal_stops_its_workers_in_one_line(
    finished: Path, name: str, moment: str
) -> None:
    """A terminal's Ctrl-C signals the whole foreground process group — the sweep and its pool's
    workers — and so does a scheduler's or systemd's stop: one line from the sweep, no worker's
    KeyboardInterrupt traceback (each worker printed one), no worker left running, and what was
    recorded before the stop stays readable (``tape runs``); the sweep says how to run the rest,
    and ``--resume`` does (journals the stopped runs left cut short are replaced)."""
    sig, expected = SIGNALS[name]
    config = finished / f"sweep-{name}-{moment}.toml"
    config.write_text(CONFIG.format(journal="unused") + SWEEP)
    out = finished / f"sweep-{name}-{moment}"
    process = _start(["sweep", config.name, "--out", out.name], finished)
    deadline = time.monotonic() + 120
    landmark, wait_s = MOMENTS[moment]
    while process.poll() is None and not ((out / landmark).exists() and len(_children(process.pid)) >= 2):
        assert time.monotonic() < deadline, f"the sweep never got to {moment}"
        time.sleep(0.02)
    time.sleep(wait_s)
    assert process.poll() is None, f"finished before the signal:\n{process.communicate()[0]}"
    os.killpg(process.pid, sig)
    output, _ = process.communicate(timeout=120)
    assert _check(process.returncode, output, expected, f"sweep, {name}"), f"finished:\n{output}"
    assert "SpawnPoolWorker" not in output and "KeyboardInterrupt" not in output, output
    assert _group_gone(process.pid), "a sweep worker outlived the stopped sweep"
    runs = subprocess.run(
        [sys.executable, "-m", "cli.main", "runs", out.name],
        cwd=finished,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert runs.returncode == EXIT_OK and "Traceback" not in runs.stdout + runs.stderr, runs.stdout
    assert "--resume` runs the rest" in " ".join(output.split()), output
    if moment == "workers-running":  # journals of runs stopped midway are on disk: --resume redoes them
        resumed = subprocess.run(
            [sys.executable, "-m", "cli.main", "sweep", config.name, "--out", out.name, "--resume"],
            cwd=finished,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert resumed.returncode == EXIT_OK, resumed.stdout + resumed.stderr
        assert "8 runs recorded" in resumed.stdout, resumed.stdout


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_a_signal_while_tape_is_still_starting_is_one_line(name: str, tmp_path: Path) -> None:
    """The ``tape`` program (``cli.start:entry``, ``[project.scripts]``) signalled while it
    still imports the system, before any verb runs (the signal is sent as the import of
    ``cli.main`` begins): one line, exit 130 / 143, no traceback, no death by the signal.
    Before ``cli.start``, a Ctrl-C there printed a ``KeyboardInterrupt`` traceback."""
    signum, status = SIGNALS[name]
    program = f"""
import os, signal, sys
import cli.start

class SignalAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == "cli.main":
            os.kill(os.getpid(), {int(signum)})
        return None

sys.meta_path.insert(0, SignalAtImport())
cli.start.entry()
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("TAPE_TRACEBACK", None)
    process = subprocess.run(
        [sys.executable, "-c", program, "verify", str(tmp_path / "none")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    output = process.stdout + process.stderr
    assert process.returncode == status, (process.returncode, output)
    what = "interrupted" if signum == signal.SIGINT else "terminated"
    assert output == f"{what}: tape was still starting; nothing was done\n"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'tape = "cli.start:entry"' in pyproject  # the program starts here
