"""Same bytes, same hashes: equal events give equal stored segments on every backend."""

from __future__ import annotations

from pathlib import Path

from kernel.journal import GENESIS_HASH, build_segment, segment_hash
from kernel.store import BACKENDS, open_journal
from tests.contracts.journal_contract import commit_in_segments, events, stored_segments

SIZES = [1, 5, 3, 8, 2]


def _paths(tmp_path: Path) -> dict[str, Path]:
    return {"lmdb": tmp_path / "journal.lmdb", "sqlite": tmp_path / "journal.sqlite"}


def test_every_backend_is_covered() -> None:
    assert set(BACKENDS) == {"lmdb", "sqlite"}


def test_same_events_same_segments_same_hashes(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    for backend, path in paths.items():
        with open_journal(path, backend=backend, writable=True) as journal:
            commit_in_segments(journal, SIZES)
    stored = {}
    last_hash = {}
    for backend, path in paths.items():
        with open_journal(path, backend=backend) as journal:
            stored[backend] = stored_segments(journal)
            result = journal.verify()
            assert result.ok
            assert result.records == sum(SIZES)
            assert result.last_hash == journal.last_hash
            last_hash[backend] = result.last_hash
    assert stored["lmdb"] == stored["sqlite"]
    assert last_hash["lmdb"] == last_hash["sqlite"]
    assert last_hash["lmdb"] != GENESIS_HASH


def test_chain_hash_is_the_documented_fold(tmp_path: Path) -> None:
    """h[n] = H(h[n-1] || body n) from 32 zero bytes, independent of the backend."""
    expected = GENESIS_HASH
    start = 0
    for size in SIZES:
        expected = segment_hash(expected, build_segment(start, events(size, start=start)))
        start += size
    for backend, path in _paths(tmp_path).items():
        with open_journal(path, backend=backend, writable=True) as journal:
            commit_in_segments(journal, SIZES)
            assert journal.last_hash == expected, backend
