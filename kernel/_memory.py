"""In-memory journal backend: the segments and head of one process's journal, gone when it
ends. For a run whose records are wanted only as they are written (a sweep point that keeps no
journal): the chain head is the same as on disk, since the segments are the same bytes."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """``JournalBackend`` over a dict: segment values by first seq, and the head."""

    def __init__(self) -> None:
        self._segments: dict[int, bytes] = {}
        self._keys: list[int] = []  # ascending
        self._head: tuple[int, bytes] | None = None

    def read_head(self) -> tuple[int, bytes] | None:
        return self._head

    def last_key(self) -> int:
        return self._keys[-1] if self._keys else -1

    def floor_key(self, seq: int) -> int:
        index = bisect.bisect_right(self._keys, seq)
        return self._keys[index - 1] if index else -1

    def write_segment(self, first_seq: int, value: bytes, head: tuple[int, bytes]) -> None:
        assert not self._keys or first_seq > self._keys[-1], "segments are written in order"
        self._segments[first_seq] = value
        self._keys.append(first_seq)
        self._head = head

    def iter_segments(self, start_key: int) -> Iterator[tuple[int, bytes]]:
        for key in self._keys[bisect.bisect_left(self._keys, start_key) :]:
            yield key, self._segments[key]

    def truncate_from(self, key: int, head: tuple[int, bytes] | None) -> int:
        cut = self._keys[bisect.bisect_left(self._keys, key) :]
        for stale in cut:
            del self._segments[stale]
        del self._keys[len(self._keys) - len(cut) :]
        self._head = head
        return len(cut)

    def close(self) -> None:
        """Nothing to release; the segments stay readable until the backend is dropped."""
