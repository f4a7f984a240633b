"""SQLite journal backend: one portable file, WAL mode, head row in the same transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kernel.journal import JournalError, StoreDamaged

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_segments (first_seq INTEGER PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS journal_head (id INTEGER PRIMARY KEY CHECK (id = 0),
                                         seq INTEGER NOT NULL, hash BLOB NOT NULL);
"""
_TABLES = {"journal_segments", "journal_head"}
_MAGIC = b"SQLite format 3\x00"


def check_file(path: Path, *, writable: bool) -> None:
    """Refuse what is not a SQLite file before SQLite opens it (a directory, a text file; an
    empty file only a writer may start a journal in)."""
    if not path.exists():
        if writable:
            return
        raise FileNotFoundError(f"no SQLite journal at {path}")
    if not path.is_file():
        raise JournalError(f"{path}: not a SQLite journal (a directory or special file)")
    with path.open("rb") as file:
        magic = file.read(len(_MAGIC))
    if not magic:
        if writable:
            return
        raise JournalError(f"{path}: empty (0 bytes): not a SQLite journal")
    if magic != _MAGIC:
        raise JournalError(f"{path}: not a SQLite journal (not a SQLite database file)")


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection. A journal in WAL mode needs its ``-shm`` file, which SQLite
    creates next to it: in a folder the reader may not write (a read-only copy, a backup
    mount, another user's files) that fails ("attempt to write a readonly database"). With no
    write-ahead log beside it (a writer that closed checkpointed everything into the file),
    the file alone is the whole journal and is opened ``immutable`` (no locks, no -shm); a
    non-empty log holds records only a reader that may write the folder can read: refused."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError as error:
        db.close()
        if "readonly" not in str(error) and "unable to open" not in str(error):
            raise StoreDamaged(f"{path}: SQLite: {error}") from None
    except sqlite3.DatabaseError as error:
        db.close()
        raise StoreDamaged(f"{path}: SQLite: {error}") from None
    except UnicodeDecodeError as error:  # a damaged schema: SQLite's own message is not UTF-8
        db.close()
        raise StoreDamaged(f"{path}: SQLite: unreadable schema or error text ({error.reason})") from None
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise JournalError(
            f"{path}: its write-ahead log {wal.name} holds records, and SQLite cannot read it from "
            f"a folder this user may not write (it needs {path.name}-shm there): copy the journal "
            "to a writable folder, or let its writer close it first"
        )
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)


class SqliteBackend:
    def __init__(self, path: Path, *, writable: bool) -> None:
        path = Path(path)
        check_file(path, writable=writable)
        self._path = path
        if writable:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), isolation_level=None)
        else:
            self._db = _open_read_only(path)
        try:
            with self._errors():
                self._check_tables(writable)
                if writable:
                    self._db.execute("PRAGMA journal_mode=WAL")
                    self._db.execute("PRAGMA synchronous=FULL")
                    self._db.executescript(_SCHEMA)
        except JournalError:
            self._db.close()
            raise

    def _check_tables(self, writable: bool) -> None:
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        tables = {str(row[0]) for row in rows}
        if tables >= _TABLES or (writable and not tables):
            return
        raise JournalError(
            f"{self._path}: a SQLite database but not a Tape journal (no journal_segments and "
            "journal_head tables)"
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors as the journal's, naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as error:
            raise StoreDamaged(f"{self._path}: SQLite: {error}") from None
        except UnicodeDecodeError as error:  # damaged text in the schema or in SQLite's message
            raise StoreDamaged(f"{self._path}: SQLite: unreadable text ({error.reason})") from None

    def read_head(self) -> tuple[int, bytes] | None:
        with self._errors():
            row = self._db.execute("SELECT seq, hash FROM journal_head WHERE id = 0").fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def last_key(self) -> int:
        with self._errors():
            row = self._db.execute("SELECT MAX(first_seq) FROM journal_segments").fetchone()
        return -1 if row[0] is None else int(row[0])

    def floor_key(self, seq: int) -> int:
        with self._errors():
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
        with self._errors():
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
