"""The journal contract on the SQLite backend (one ``.sqlite`` file)."""

from __future__ import annotations

from pathlib import Path

from kernel._sqlite import SqliteBackend
from kernel.journal import Journal
from tests.contracts.journal_contract import JournalContract


class TestSqliteJournal(JournalContract):
    backend = "sqlite"

    def journal_path(self, tmp_path: Path) -> Path:
        return tmp_path / "journal.sqlite"

    def raw_put_segment(self, journal: Journal, key: int, value: bytes) -> None:
        backend = journal._backend
        assert isinstance(backend, SqliteBackend)
        backend._db.execute(
            "INSERT OR REPLACE INTO journal_segments (first_seq, value) VALUES (?, ?)", (key, value)
        )
