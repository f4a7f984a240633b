"""Kill a writer at random moments; nothing it reported committed may be lost.

Each trial runs ``_crash_writer.py`` (appends in commits of random sizes, printing the last
committed seq after every ``commit()`` returns), SIGKILLs it after a seeded random delay,
reopens the journal writable and checks: no tail repair was needed (both backends commit a
segment and its head in one transaction), ``verify()`` is clean, every reported seq
survived, and every record decodes to exactly the event that was appended. Each trial
kills the writer ``ROUNDS`` times on the same journal, so recovery-then-append is covered.

``TAPE_CRASH_SEEDS=N`` runs N seeds per backend instead of CI's 26 (each ``ROUNDS`` kills).

Reproduce one trial with ``pytest -k "test_sigkill_loses_nothing_committed and <backend>-<seed>"``;
every assertion message names its seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel.store import open_journal
from tests.integration._crash_writer import event_for

REPO_ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("_crash_writer.py")
# CI runs 26 seeds per backend (104 kills); TAPE_CRASH_SEEDS=N runs a longer drill (docs/runbook.md)
SEEDS_PER_BACKEND = int(os.environ.get("TAPE_CRASH_SEEDS", "26"))
ROUNDS = 2  # kills per trial on the same journal
KILL_DELAY_S_MAX = 0.12
READY_TIMEOUT_S = 30.0

JOURNAL_FILE = {"lmdb": "journal.lmdb", "sqlite": "journal.sqlite"}


def _spawn_writer(path: Path, backend: str, seed: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    with log.open("wb") as stdout:
        return subprocess.Popen(
            [sys.executable, str(WRITER), str(path), backend, str(seed)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO_ROOT,
        )


def _complete_lines(log: Path) -> list[str]:
    text = log.read_text()
    return text.split("\n")[:-1]  # a line without its newline was cut by the kill


def _wait_ready(process: subprocess.Popen[bytes], log: Path, context: str) -> int:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        lines = _complete_lines(log)
        if lines:
            word, next_seq = lines[0].split()
            assert word == "ready", context
            return int(next_seq)
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"writer exited early ({process.returncode}); {context}\n{stderr}")
        time.sleep(0.002)
    process.kill()
    pytest.fail(f"writer never became ready; {context}")


def _kill_after_random_delay(
    path: Path, backend: str, seed: int, rng: random.Random, log: Path, context: str
) -> tuple[int, int]:
    """Run one writer and SIGKILL it; returns (seq it started at, last seq it reported)."""
    process = _spawn_writer(path, backend, seed, log)
    try:
        start_seq = _wait_ready(process, log, context)
        time.sleep(rng.uniform(0.0, KILL_DELAY_S_MAX))
        assert process.poll() is None, f"writer died on its own; {context}"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()
    assert process.returncode == -signal.SIGKILL, context
    reported = [int(line) for line in _complete_lines(log)[1:]]
    assert reported == sorted(reported), context
    return start_seq, (reported[-1] if reported else start_seq - 1)


def _check_survivors(path: Path, backend: str, last_reported: int, context: str) -> int:
    with open_journal(path, backend=backend, writable=True) as journal:
        assert journal.tail_repair is None, f"{journal.tail_repair}; {context}"
        result = journal.verify()
        assert result.ok, f"{result}; {context}"
        assert len(journal) >= last_reported + 1, f"lost committed records: {len(journal)=}; {context}"
        assert result.records == len(journal), context
        assert result.last_hash == journal.last_hash, context
        expected_seq = 0
        for seq, event in journal.events():
            assert seq == expected_seq, context
            assert event == event_for(seq), f"seq {seq} decoded to {event!r}; {context}"
            expected_seq += 1
        assert expected_seq == len(journal), context
        return len(journal)


@pytest.mark.parametrize("seed", range(SEEDS_PER_BACKEND))
@pytest.mark.parametrize("backend", ["lmdb", "sqlite"])
def test_sigkill_loses_nothing_committed(tmp_path: Path, backend: str, seed: int) -> None:
    rng = random.Random(seed)  # test harness: seeded kill delays
    path = tmp_path / JOURNAL_FILE[backend]
    survived = 0
    for round_index in range(ROUNDS):
        writer_seed = seed * ROUNDS + round_index
        context = (
            f"reproduce with seed={seed} backend={backend} round={round_index} writer_seed={writer_seed}"
        )
        log = tmp_path / f"writer-{round_index}.out"
        start_seq, last_reported = _kill_after_random_delay(path, backend, writer_seed, rng, log, context)
        assert start_seq == survived, f"writer resumed at {start_seq}, not {survived}; {context}"
        survived = _check_survivors(path, backend, last_reported, context)
