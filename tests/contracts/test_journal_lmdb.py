"""The journal contract on the LMDB backend (a directory)."""

from __future__ import annotations

import struct
from pathlib import Path

from kernel._lmdb import LmdbBackend
from kernel.journal import Journal
from tests.contracts.journal_contract import JournalContract


class TestLmdbJournal(JournalContract):
    backend = "lmdb"

    def journal_path(self, tmp_path: Path) -> Path:
        return tmp_path / "journal.lmdb"

    def raw_put_segment(self, journal: Journal, key: int, value: bytes) -> None:
        backend = journal._backend
        assert isinstance(backend, LmdbBackend)
        with backend._env.begin(write=True) as txn:
            txn.put(struct.pack(">Q", key), value, db=backend._segments)
