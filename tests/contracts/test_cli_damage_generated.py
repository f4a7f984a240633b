"""Generated damage (issue 17's contract, "hypothesis where it fits"): a journal truncated at any
byte or with any bytes flipped anywhere — not only the hand-picked cases of
test_cli_hostile_inputs.py — is answered by ``tape verify`` and ``tape report`` with a documented
status (0 where the damage fell in unused space), never a traceback, an internal error (70) or a
death by a signal, one ``error:`` line naming the file where there is one, and the damaged file
as it was (a read-only verb writes nothing).

SQLite journals run in this process (fast; SQLite checks its pages and cannot crash it); LMDB
journals run as processes, since LMDB trusts its pages and a damaged one could kill the process
that maps it — which is what the contract forbids, so the test must survive it to see it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.main import EXIT_DAMAGED, EXIT_OK, EXIT_REFUSED, EXIT_UNFINISHED
from cli.main import main as tape
from kernel.store import open_journal
from tests.factories import make_config, make_dataset, run
from tests.integration._crash_writer import event_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = {EXIT_OK, EXIT_DAMAGED, EXIT_REFUSED, EXIT_UNFINISHED}
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write_journal(path: Path, records: int = 2000, commit: int = 16) -> None:
    with open_journal(path, writable=True, records_per_commit_max=commit) as journal:
        for i in range(records):
            journal.append(event_for(i))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _damage(raw: bytes, cut: int | None, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(raw if cut is None else raw[: cut % (len(raw) + 1)])
    for offset, mask in flips:
        if data:
            data[offset % len(data)] ^= mask
    return bytes(data)


FLIP = st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255))  # (offset, xor mask)
DAMAGE = {"cut": st.one_of(st.none(), st.integers(min_value=0)), "flips": st.lists(FLIP, max_size=4)}


def _one_error_line(output: str, subject: Path, context: str) -> None:
    errors = [line for line in output.splitlines() if line.startswith(("error:", "internal error:"))]
    assert len(errors) <= 1, f"{context}: more than one error line\n{output}"
    if errors:
        assert str(subject) in errors[0], f"{context}: the error does not name {subject}\n{output}"


def test_a_sqlite_journal_damaged_anywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A backtest's journal (so ``report`` folds real records); a journal with no run.started
    (damaged there, or empty) is refused or unfinished, never an internal error."""
    pristine = tmp_path / "pristine.sqlite"
    run(make_config(make_dataset(tmp_path / "data", symbols=2, bars=120), pristine, backend="sqlite"))
    raw = pristine.read_bytes()
    damaged = tmp_path / "damaged.sqlite"

    @settings(SETTINGS, max_examples=60)
    @given(**DAMAGE)
    def check(cut: int | None, flips: list[tuple[int, int]]) -> None:
        for leftover in tmp_path.glob("damaged.sqlite*"):
            leftover.unlink()
        damaged.write_bytes(_damage(raw, cut, flips))
        before = _digest(damaged)
        for verb in ("verify", "report"):
            capsys.readouterr()
            status = tape([verb, str(damaged)])
            output = capsys.readouterr().out
            context = f"tape {verb}, cut {cut}, flips {flips}"
            assert status in DOCUMENTED, f"{context}: exit {status}\n{output}"
            _one_error_line(output, damaged, context)
            assert _digest(damaged) == before, f"{context}: wrote to the journal"

    check()


def test_a_sqlite_journal_whose_schema_text_is_not_utf8_is_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One flipped bit in the schema's text (its CREATE statement in page 1) makes SQLite's
    error message, or the table names, invalid UTF-8: still a damaged journal, named, never an
    internal error (found by the generated test above, flips [(556793702, 128)])."""
    pristine = tmp_path / "pristine.sqlite"
    run(make_config(make_dataset(tmp_path / "data", symbols=2, bars=60), pristine, backend="sqlite"))
    raw = bytearray(pristine.read_bytes())
    at = raw.index(b"NULL, hash BLOB NOT")  # journal_head's "seq INTEGER NOT NULL, ..."
    raw[at] ^= 0x80  # "N" -> 0xce: a UTF-8 lead byte with no continuation
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(bytes(raw))
    for verb in ("verify", "report"):
        capsys.readouterr()
        assert tape([verb, str(damaged)]) == EXIT_DAMAGED
        output = capsys.readouterr().out
        _one_error_line(output, damaged, f"tape {verb}")
        assert "internal error" not in output and "SQLite" in output


def test_an_lmdb_journal_damaged_anywhere(tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    _write_journal(pristine)
    raw = (pristine / "data.mdb").read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("TAPE_TRACEBACK", None)
    damaged = tmp_path / "damaged"

    @settings(SETTINGS, max_examples=15)
    @given(**DAMAGE)
    def check(cut: int | None, flips: list[tuple[int, int]]) -> None:
        shutil.rmtree(damaged, ignore_errors=True)
        damaged.mkdir()
        (damaged / "data.mdb").write_bytes(_damage(raw, cut, flips))
        before = _digest(damaged / "data.mdb")
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "verify", str(damaged)],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        output = result.stdout + result.stderr
        context = f"tape verify, cut {cut}, flips {flips}"
        assert result.returncode >= 0, f"{context}: killed by signal {-result.returncode}\n{output}"
        assert "Traceback" not in output, f"{context}\n{output}"
        assert result.returncode in DOCUMENTED, f"{context}: exit {result.returncode}\n{output}"
        _one_error_line(result.stdout, damaged, context)
        assert _digest(damaged / "data.mdb") == before, f"{context}: wrote to the journal"

    check()
