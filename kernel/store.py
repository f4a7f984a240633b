"""Open a journal by path: a directory is LMDB (default), a ``.sqlite``/``.db`` file SQLite."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from domain.events import Event
from kernel._lmdb import LmdbBackend
from kernel._memory import MemoryBackend
from kernel._sqlite import SqliteBackend
from kernel.journal import Journal, JournalBackend, JournalError

__all__ = ["BACKENDS", "backend_for", "memory_journal", "open_journal", "remove_journal"]

BACKENDS = ("lmdb", "sqlite")


def backend_for(path: Path, backend: str | None) -> str:
    if backend is not None:
        if backend not in BACKENDS:
            raise JournalError(f"unknown journal backend {backend!r}; choose one of {BACKENDS}")
        return backend
    return "sqlite" if Path(path).suffix in {".sqlite", ".sqlite3", ".db"} else "lmdb"


def open_journal(
    path: Path | str,
    *,
    backend: str | None = None,
    writable: bool = False,
    records_per_commit_max: int = 4096,
    on_append: Callable[[Event], None] | None = None,
) -> Journal:
    """Open (or, when ``writable``, create) the journal at ``path``; ``on_append`` sees each
    event as it is appended."""
    path = Path(path)
    kind = backend_for(path, backend)
    if not writable and not path.exists():
        raise JournalError(f"no journal at {path}")
    store: JournalBackend
    if kind == "lmdb":
        store = LmdbBackend(path, writable=writable)
    else:
        store = SqliteBackend(path, writable=writable)
    return Journal(
        store, writable=writable, records_per_commit_max=records_per_commit_max, on_append=on_append
    )


def memory_journal(on_append: Callable[[Event], None] | None = None) -> Journal:
    """A new, writable journal held in this process's memory (``kernel._memory``): the same
    segments and chain head as on disk, nothing kept once it is dropped."""
    return Journal(MemoryBackend(), writable=True, on_append=on_append)


def remove_journal(path: Path | str) -> None:
    """Delete the journal at ``path``, whichever backend wrote it: an LMDB folder, or a SQLite
    file and its sidecars (for a run that did not finish, or one refused before its first record)."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    for item in (path, *(path.with_name(path.name + tail) for tail in ("-wal", "-shm", "-journal"))):
        if item.is_file():
            item.unlink()
