"""LMDB journal backend: segments keyed by 8-byte big-endian first seq, head in a meta db."""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lmdb

from kernel.journal import JournalError, StoreDamaged

_KEY = struct.Struct(">Q")
_HEAD_KEY = b"head"
_MAP_SIZE = 1 << 37  # 128 GiB of address space only (the file grows with the data): each open
# environment reserves it, and a process holding many (a test suite, the cockpit) must not run out

# LMDB's meta pages (pages 0 and 1 of data.mdb, native byte order, 64-bit build): a 16-byte
# page header (flags at 10), then magic and version at 16, the page size in the free db's
# md_pad at 40, each db's root page at 80 and 128, the last page used at 136, the txn id at 144.
_META_FLAG = 0x08
_META_MAGIC = 0xBEEFC0DE
_META_VERSION = 1
_META_MIN_BYTES = 152
_NO_PAGE = 2**64 - 1
_U16, _U32, _U64 = struct.Struct("=H"), struct.Struct("=I"), struct.Struct("=Q")


_ENVS: dict[str, tuple[lmdb.Environment, int]] = {}
"""py-lmdb allows one open environment per path and process: readers and the writer in one
process share it, reference-counted (under ``_ENVS_LOCK``: threads of one process, such as the
cockpit's workers, open and close journals concurrently)."""
_ENVS_LOCK = threading.Lock()
_WRITER = threading.Lock()
"""Held around everything that takes LMDB's writer lock in this process: a write transaction,
and ``open_db`` (which begins one of its own without releasing the GIL). Without it a thread
opening a journal while another commits to it deadlocks: the committer holds LMDB's writer lock
and waits for the GIL, the opener holds the GIL and waits for the writer lock."""


def _acquire(path: Path, *, writable: bool) -> lmdb.Environment:
    with _ENVS_LOCK:
        return _acquire_locked(path, writable=writable)


def _acquire_locked(path: Path, *, writable: bool) -> lmdb.Environment:
    key = str(path.resolve())
    if key in _ENVS:
        env, count = _ENVS[key]
        _ENVS[key] = (env, count + 1)
        return env
    env = _open_env(key, writable=writable)
    _ENVS[key] = (env, 1)
    return env


def _open_env(key: str, *, writable: bool) -> lmdb.Environment:
    """A reader never writes to data.mdb: it only begins read transactions. Where this process
    may write the journal's folder, a reader still opens the environment writable, because one
    process holds one environment per journal (LMDB forbids a second) and a writer in the same
    process — a run that also follows its own journal — must be able to share it. Where it may
    not write, the reader opens read-only, and where it may not write the lock file either (a
    read-only copy or mount, another user's files) it reads without LMDB's reader lock, which is
    safe while no writer runs there."""
    shareable = writable or (os.access(key, os.W_OK) and os.access(Path(key) / "data.mdb", os.W_OK))
    try:
        return lmdb.open(key, map_size=_MAP_SIZE, max_dbs=2, subdir=True, readonly=not shareable)
    except lmdb.Error as error:
        if writable:
            raise JournalError(f"{key}: cannot open the LMDB journal for writing: {error}") from None
    try:
        return lmdb.open(key, map_size=_MAP_SIZE, max_dbs=2, subdir=True, readonly=True, lock=False)
    except lmdb.Error as error:
        raise StoreDamaged(f"{key}: cannot open the LMDB journal: {error}") from None


def check_data_file(path: Path, *, writable: bool) -> None:
    """Check ``path``/data.mdb against LMDB's own meta pages before it is mapped: a data file
    shorter than the pages its meta page names would crash the process (SIGBUS) when read."""
    if path.exists() and not path.is_dir():
        raise JournalError(
            f"{path}: not an LMDB journal (a file; LMDB journals are directories, "
            "SQLite journals end in .sqlite)"
        )
    data = path / "data.mdb"
    if not data.exists():
        if writable:
            return
        raise FileNotFoundError(f"no LMDB journal at {path} (no data.mdb)")
    if not data.is_file():
        raise JournalError(f"{data}: not a file")
    size = data.stat().st_size
    if size == 0:
        if writable:
            return  # LMDB writes the meta pages of a new environment
        raise StoreDamaged(f"{data}: empty (0 bytes): an LMDB journal whose creation never finished")
    with data.open("rb") as file:
        head = file.read(65536 + _META_MIN_BYTES)
    page_size, metas = _read_metas(data, head)
    (_, last_page), (_, older_last_page) = sorted(metas, reverse=True)
    if size < (last_page + 1) * page_size:
        raise StoreDamaged(
            f"{data}: truncated: {size:,} bytes, but its meta page says {(last_page + 1) * page_size:,} "
            f"({last_page + 1:,} pages of {page_size:,} bytes); restore the journal from a copy"
        )
    if older_last_page > last_page:
        raise StoreDamaged(f"{data}: the older meta page is damaged (last page {older_last_page:,})")


def _read_metas(data: Path, head: bytes) -> tuple[int, list[tuple[int, int]]]:
    """The page size and (txn id, last page) of both meta pages, each checked on its own."""
    if len(head) < _META_MIN_BYTES:
        raise StoreDamaged(f"{data}: not an LMDB file ({len(head)} bytes, shorter than a meta page)")
    page_size = _U32.unpack_from(head, 40)[0]
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        raise StoreDamaged(f"{data}: meta page 0 is damaged or not LMDB's (page size {page_size})")
    metas = []
    for number in (0, 1):
        offset = number * page_size
        if len(head) < offset + _META_MIN_BYTES:
            raise StoreDamaged(f"{data}: truncated inside meta page {number}")
        metas.append(_meta_page(data, head, offset, number))
    return page_size, metas


def _meta_page(data: Path, head: bytes, offset: int, number: int) -> tuple[int, int]:
    flags = _U16.unpack_from(head, offset + 10)[0]
    magic, version = _U32.unpack_from(head, offset + 16)[0], _U32.unpack_from(head, offset + 20)[0]
    if not flags & _META_FLAG or magic != _META_MAGIC:
        raise StoreDamaged(f"{data}: meta page {number} is damaged or this is not an LMDB file")
    if version != _META_VERSION:
        raise StoreDamaged(f"{data}: meta page {number} is damaged (LMDB data version {version})")
    last_page = _U64.unpack_from(head, offset + 136)[0]
    roots = (_U64.unpack_from(head, offset + 80)[0], _U64.unpack_from(head, offset + 128)[0])
    if any(root != _NO_PAGE and root > last_page for root in roots):
        raise StoreDamaged(f"{data}: meta page {number} is damaged (a root page past the last page)")
    txn_id = _U64.unpack_from(head, offset + 144)[0]
    if txn_id and txn_id % 2 != number:  # LMDB writes transaction n's meta to page n % 2
        raise StoreDamaged(f"{data}: meta page {number} is damaged (transaction id {txn_id:,})")
    return txn_id, last_page


def _release(path: Path) -> None:
    with _ENVS_LOCK:
        _release_locked(path)


def _release_locked(path: Path) -> None:
    key = str(path.resolve())
    env, count = _ENVS[key]
    if count > 1:
        _ENVS[key] = (env, count - 1)
        return
    del _ENVS[key]
    env.close()


class LmdbBackend:
    def __init__(self, path: Path, *, writable: bool) -> None:
        path = Path(path)
        check_data_file(path, writable=writable)
        if writable:
            path.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._env = _acquire(path, writable=writable)
        if writable and self._env.flags()["readonly"]:
            _release(path)
            raise JournalError(f"{path} is open read-only in this process or not writable")
        try:
            with self._errors(), _WRITER:
                self._segments = self._env.open_db(b"segments", create=writable)
                self._meta = self._env.open_db(b"meta", create=writable)
        except JournalError:
            _release(path)
            raise
        self._closed = False

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """LMDB's errors as the journal's, naming the file."""
        try:
            yield
        except lmdb.NotFoundError:
            raise JournalError(f"{self._path}: an LMDB environment without a Tape journal in it") from None
        except lmdb.Error as error:
            raise StoreDamaged(f"{self._path}/data.mdb: LMDB: {error}") from None

    def read_head(self) -> tuple[int, bytes] | None:
        with self._errors(), self._env.begin(db=self._meta) as txn:
            value = txn.get(_HEAD_KEY)
        if value is None:
            return None
        return _KEY.unpack_from(value)[0], bytes(value[8:])

    def last_key(self) -> int:
        with self._errors(), self._env.begin(db=self._segments) as txn, txn.cursor() as cursor:
            return int(_KEY.unpack(cursor.key())[0]) if cursor.last() else -1

    def floor_key(self, seq: int) -> int:
        with self._errors(), self._env.begin(db=self._segments) as txn, txn.cursor() as cursor:
            if cursor.set_range(_KEY.pack(seq)):
                key = _KEY.unpack(cursor.key())[0]
                if key == seq:
                    return int(key)
                return int(_KEY.unpack(cursor.key())[0]) if cursor.prev() else -1
            return int(_KEY.unpack(cursor.key())[0]) if cursor.last() else -1

    def write_segment(self, first_seq: int, value: bytes, head: tuple[int, bytes]) -> None:
        with _WRITER, self._env.begin(write=True) as txn:
            txn.put(_KEY.pack(first_seq), value, db=self._segments, append=True)
            txn.put(_HEAD_KEY, _KEY.pack(head[0]) + head[1], db=self._meta)

    def iter_segments(self, start_key: int) -> Iterator[tuple[int, bytes]]:
        with self._errors(), self._env.begin(db=self._segments) as txn, txn.cursor() as cursor:
            if not cursor.set_range(_KEY.pack(max(0, start_key))):
                return
            for key, value in cursor:
                yield int(_KEY.unpack(key)[0]), value

    def truncate_from(self, key: int, head: tuple[int, bytes] | None) -> int:
        removed = 0
        with _WRITER, self._env.begin(write=True) as txn:
            with txn.cursor(db=self._segments) as cursor:
                if cursor.set_range(_KEY.pack(key)):
                    while cursor.delete():
                        removed += 1
            if head is None:
                txn.delete(_HEAD_KEY, db=self._meta)
            else:
                txn.put(_HEAD_KEY, _KEY.pack(head[0]) + head[1], db=self._meta)
        return removed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self._path)
