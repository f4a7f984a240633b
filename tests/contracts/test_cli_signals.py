"""Signals mid-command (issue 17's contract): Ctrl-C (SIGINT) or SIGTERM while a verb works on a
journal stops it in one line — exit 130 or 143 (docs/runbook.md, "Exit statuses"), no
``Traceback``, no death by the signal — and leaves what it had committed sound: a backtest's
journal verifies as an unfinished run, and a verb that only reads leaves the journal's bytes as
they were. (``projections follow`` and paper sessions have their own tests: test_follow_signals.py,
test_paper_local_exchange.py.)

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


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("TAPE_TRACEBACK", None)
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
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
]


@pytest.mark.parametrize("name", list(SIGNALS))
@pytest.mark.parametrize(("verb", "args"), READS, ids=[verb for verb, _ in READS])
def test_a_verb_reading_a_journal_stopped_by_a_signal_leaves_it_as_it_was(
    finished: Path, verb: str, args: list[str], name: str
) -> None:
    sig, expected = SIGNALS[name]
    before = _digests(finished / "journal")
    code, output = _signal_mid_command(_start(args, finished), finished / "journal", sig)
    _check(code, output, expected, f"{verb}, {name}")
    assert _digests(finished / "journal") == before, f"{verb} wrote to the journal it reads"


def test_a_long_replay_is_stopped_mid_command(finished: Path) -> None:
    """At least one reading verb is really stopped, not finished before the signal (the test
    above accepts either, since short verbs may win the race)."""
    code, output = _signal_mid_command(
        _start(["replay", "journal"], finished), finished / "journal", signal.SIGINT
    )
    assert _check(code, output, EXIT_INTERRUPTED, "replay, SIGINT"), f"finished before the signal:\n{output}"
