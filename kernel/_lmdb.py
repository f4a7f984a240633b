"""LMDB journal backend: segments keyed by 8-byte big-endian first seq, head in a meta db."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import lmdb

_KEY = struct.Struct(">Q")
_HEAD_KEY = b"head"
_MAP_SIZE = 1 << 40  # address space only; the file grows with the data


_ENVS: dict[str, tuple[lmdb.Environment, int]] = {}
"""py-lmdb allows one open environment per path and process: readers and the writer in one
process share it, reference-counted."""


def _acquire(path: Path, *, writable: bool) -> lmdb.Environment:
    key = str(path.resolve())
    if key in _ENVS:
        env, count = _ENVS[key]
        _ENVS[key] = (env, count + 1)
        return env
    can_write = writable or os.access(path, os.W_OK)
    env = lmdb.open(key, map_size=_MAP_SIZE, max_dbs=2, readonly=not can_write, subdir=True)
    _ENVS[key] = (env, 1)
    return env


def _release(path: Path) -> None:
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
        if writable:
            path.mkdir(parents=True, exist_ok=True)
        elif not (path / "data.mdb").exists():
            raise FileNotFoundError(f"no LMDB journal at {path}")
        self._path = path
        self._env = _acquire(path, writable=writable)
        if writable and self._env.flags()["readonly"]:
            _release(path)
            raise PermissionError(f"{path} is open read-only in this process or not writable")
        self._segments = self._env.open_db(b"segments", create=writable)
        self._meta = self._env.open_db(b"meta", create=writable)
        self._closed = False

    def read_head(self) -> tuple[int, bytes] | None:
        with self._env.begin(db=self._meta) as txn:
            value = txn.get(_HEAD_KEY)
        if value is None:
            return None
        return _KEY.unpack_from(value)[0], bytes(value[8:])

    def last_key(self) -> int:
        with self._env.begin(db=self._segments) as txn, txn.cursor() as cursor:
            return int(_KEY.unpack(cursor.key())[0]) if cursor.last() else -1

    def floor_key(self, seq: int) -> int:
        with self._env.begin(db=self._segments) as txn, txn.cursor() as cursor:
            if cursor.set_range(_KEY.pack(seq)):
                key = _KEY.unpack(cursor.key())[0]
                if key == seq:
                    return int(key)
                return int(_KEY.unpack(cursor.key())[0]) if cursor.prev() else -1
            return int(_KEY.unpack(cursor.key())[0]) if cursor.last() else -1

    def write_segment(self, first_seq: int, value: bytes, head: tuple[int, bytes]) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(_KEY.pack(first_seq), value, db=self._segments, append=True)
            txn.put(_HEAD_KEY, _KEY.pack(head[0]) + head[1], db=self._meta)

    def iter_segments(self, start_key: int) -> Iterator[tuple[int, bytes]]:
        with self._env.begin(db=self._segments) as txn, txn.cursor() as cursor:
            if not cursor.set_range(_KEY.pack(max(0, start_key))):
                return
            for key, value in cursor:
                yield int(_KEY.unpack(key)[0]), value

    def truncate_from(self, key: int, head: tuple[int, bytes] | None) -> int:
        removed = 0
        with self._env.begin(write=True) as txn:
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
