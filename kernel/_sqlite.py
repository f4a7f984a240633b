"""SQLite journal backend: one portable file, WAL mode, head row in the same transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_segments (first_seq INTEGER PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS journal_head (id INTEGER PRIMARY KEY CHECK (id = 0),
                                         seq INTEGER NOT NULL, hash BLOB NOT NULL);
"""


class SqliteBackend:
    def __init__(self, path: Path, *, writable: bool) -> None:
        path = Path(path)
        if not writable and not path.exists():
            raise FileNotFoundError(f"no SQLite journal at {path}")
        if writable:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        else:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)

    def read_head(self) -> tuple[int, bytes] | None:
        row = self._db.execute("SELECT seq, hash FROM journal_head WHERE id = 0").fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def last_key(self) -> int:
        row = self._db.execute("SELECT MAX(first_seq) FROM journal_segments").fetchone()
        return -1 if row[0] is None else int(row[0])

    def floor_key(self, seq: int) -> int:
        row = self._db.execute(
            "SELECT MAX(first_seq) FROM journal_segments WHERE first_seq <= ?", (seq,)
        ).fetchone()
        return -1 if row[0] is None else int(row[0])

    def write_segment(self, first_seq: int, value: bytes, head: tuple[int, bytes]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("INSERT INTO journal_segments VALUES (?, ?)", (first_seq, value))
            self._db.execute("INSERT OR REPLACE INTO journal_head VALUES (0, ?, ?)", head)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def iter_segments(self, start_key: int) -> Iterator[tuple[int, bytes]]:
        cursor = self._db.execute(
            "SELECT first_seq, value FROM journal_segments WHERE first_seq >= ? ORDER BY first_seq",
            (start_key,),
        )
        for key, value in cursor:
            yield int(key), bytes(value)

    def truncate_from(self, key: int, head: tuple[int, bytes] | None) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        removed = self._db.execute("DELETE FROM journal_segments WHERE first_seq >= ?", (key,)).rowcount
        if head is None:
            self._db.execute("DELETE FROM journal_head")
        else:
            self._db.execute("INSERT OR REPLACE INTO journal_head VALUES (0, ?, ?)", head)
        self._db.execute("COMMIT")
        return int(removed)

    def close(self) -> None:
        self._db.close()
