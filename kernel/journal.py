"""The append-only journal: records of (sequence, event time, kind, payload) in a hash chain.

Records are group-committed in *segments*, one backend write per commit:

    segment body = >QIB (first_seq, count, kinds) + the kind table (>B length + ASCII tag each)
                   + >{count}q ts_ns  + {count} kind indexes (1 byte each)
                   + >{count}I payload lengths + >{count}I crc32 of each payload
                   + the msgpack payloads, back to back
    stored value = blake2b(prev_segment_hash || body, 32 bytes) || body

so the chain is ``h[n] = H(h[n-1] || segment n)`` with 32 zero bytes before the first.
Backends store the value under the segment's first sequence number, plus a *head* (last
committed seq and hash) in the same transaction. Equal events give equal bytes and equal
hashes on every backend. Columns of per-record fields keep per-record Python work down
to a few C calls, which is what makes group commit fast.

``verify`` names the first bad *record*: a flipped payload byte fails that record's
checksum; a flip in the ts or kind columns is found by comparing them with the payload
(which repeats both); a segment rewritten whole (checksums recomputed) fails its chained
hash and is reported at its first record.

A segment is written per ``records_per_commit_max`` records or when ``commit()`` is called
(a live caller commits an order intent before it is sent to a venue).
"""

from __future__ import annotations

import hashlib
import itertools
import operator
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import msgspec

from domain.events import AnyEvent, Event, decode_event, encode_event, encode_event_into

__all__ = [
    "GENESIS_HASH",
    "HASH_SIZE",
    "ChainBroken",
    "Journal",
    "JournalBackend",
    "JournalError",
    "Record",
    "Segment",
    "StoreDamaged",
    "TailRepair",
    "VerifyResult",
    "build_segment",
    "build_segment_value",
    "first_inconsistent_record",
    "parse_segment",
    "segment_hash",
    "segment_records_of_kinds",
    "segment_kinds",
]

GENESIS_HASH = bytes(32)
_TS_MIN, _TS_MAX = -(2**63), 2**63 - 1
HASH_SIZE = 32
_SEGMENT_HEADER = struct.Struct(">QIB")


class _KindAndTime(msgspec.Struct):
    kind: str
    ts_ns: int


_crc32 = zlib.crc32
_ts_of = operator.attrgetter("ts_ns")
_KIND_BYTES: dict[type, bytes] = {cls: cls.__struct_config__.tag.encode("ascii") for cls in AnyEvent.__args__}
_kind_header = msgspec.msgpack.Decoder(_KindAndTime)


class JournalError(Exception):
    """The journal cannot be opened or used as asked."""


class ChainBroken(JournalError):
    """A record whose bytes or chain hash are wrong."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"hash chain broken at seq {seq}: {reason}")
        self.seq = seq
        self.reason = reason


class StoreDamaged(JournalError):
    """The journal's store (its LMDB or SQLite file) is damaged below the records: truncated,
    a bad page or header. Named with the file; nothing is mapped or written."""


class Record(NamedTuple):
    seq: int
    ts_ns: int
    kind: str
    payload: bytes

    def event(self) -> AnyEvent:
        return decode_event(self.payload)


class Segment(NamedTuple):
    first_seq: int
    records: list[Record]
    hash: bytes
    body: bytes


@dataclass(frozen=True)
class TailRepair:
    """What opening the journal found past the last whole, chained segment."""

    cut_from_seq: int
    records_cut: int
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    records: int
    first_bad_seq: int | None
    reason: str
    last_hash: bytes

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


class JournalBackend(Protocol):
    """Stores segment values keyed by first seq, and the head, atomically per write."""

    def read_head(self) -> tuple[int, bytes] | None: ...
    def last_key(self) -> int: ...  # first seq of the last stored segment, -1 when empty
    def write_segment(self, first_seq: int, value: bytes, head: tuple[int, bytes]) -> None: ...
    def iter_segments(self, start_key: int) -> Iterator[tuple[int, bytes]]: ...
    def floor_key(self, seq: int) -> int: ...  # largest key <= seq, -1 when none
    def truncate_from(self, key: int, head: tuple[int, bytes] | None) -> int: ...
    def close(self) -> None: ...


def build_segment(first_seq: int, events: list[Event]) -> bytes:
    """The segment body for ``events`` starting at ``first_seq`` (see the module doc)."""
    encoded = list(map(encode_event, events))
    payloads = b"".join(encoded)
    ends = list(itertools.accumulate(map(len, encoded)))
    columns = _segment_columns(first_seq, list(map(type, events)), list(map(_ts_of, events)), payloads, ends)
    return b"".join((*columns, payloads))


def build_segment_value(
    prev_hash: bytes,
    first_seq: int,
    types: list[type],
    ts_ns: list[int],
    payloads: bytearray,
    ends: list[int],
) -> tuple[bytes, bytes]:
    """(chain hash, stored value) of the segment of already encoded records: ``payloads``
    back to back, record ``i`` ending at ``ends[i]``. The same bytes as ``build_segment``
    over the events, hashed and joined without copying the body in between."""
    columns = _segment_columns(first_seq, types, ts_ns, payloads, ends)
    digest = hashlib.blake2b(prev_hash, digest_size=HASH_SIZE)
    for column in columns:
        digest.update(column)
    digest.update(payloads)
    new_hash = digest.digest()
    return new_hash, b"".join((new_hash, *columns, payloads))


def _segment_columns(
    first_seq: int, types: list[type], ts_ns: list[int], payloads: bytes | bytearray, ends: list[int]
) -> tuple[bytes, ...]:
    """Everything of a segment body before its payloads (module doc), from its records' event
    types, times and payload end offsets."""
    count = len(types)
    kinds: dict[type, int] = {}
    indexes = bytes([kinds.setdefault(t, len(kinds)) for t in types])
    assert len(kinds) < 256, "at most 255 event kinds per segment"
    table = b"".join(bytes([len(_KIND_BYTES[t])]) + _KIND_BYTES[t] for t in kinds)
    starts = [0, *ends[:-1]]
    with memoryview(payloads) as view:
        crcs = [_crc32(view[start:end]) for start, end in zip(starts, ends, strict=True)]
    return (
        _SEGMENT_HEADER.pack(first_seq, count, len(kinds)),
        table,
        struct.pack(f">{count}q", *ts_ns),
        indexes,
        struct.pack(f">{count}I", *map(operator.sub, ends, starts)),
        struct.pack(f">{count}I", *crcs),
    )


def segment_hash(prev_hash: bytes, body: bytes | memoryview) -> bytes:
    digest = hashlib.blake2b(prev_hash, digest_size=HASH_SIZE)
    digest.update(body)
    return digest.digest()


def parse_segment(key: int, value: bytes) -> Segment:
    """Split a stored segment, checking its structure and every payload's checksum."""
    body = value[HASH_SIZE:]
    if len(body) < _SEGMENT_HEADER.size:
        raise ChainBroken(key, f"segment too short ({len(value)} bytes)")
    first_seq, count, kind_count = _SEGMENT_HEADER.unpack_from(body)
    if first_seq != key or count == 0:
        raise ChainBroken(key, f"segment header is corrupt (first_seq {first_seq}, count {count})")
    try:
        offset, kind_names = _kind_table(body, kind_count)
        ts_ns = struct.unpack_from(f">{count}q", body, offset)
        indexes = body[offset + 8 * count : offset + 9 * count]
        offset += 9 * count
        lengths = struct.unpack_from(f">{count}I", body, offset)
        crcs = struct.unpack_from(f">{count}I", body, offset + 4 * count)
    except (struct.error, IndexError, UnicodeDecodeError) as error:
        raise ChainBroken(key, f"segment columns are corrupt: {error}") from None
    offset += 8 * count
    records: list[Record] = []
    for index in range(count):
        seq = first_seq + index
        end = offset + lengths[index]
        payload = body[offset:end]
        if end > len(body) or _crc32(payload) != crcs[index]:
            raise ChainBroken(seq, "record checksum mismatch")
        if indexes[index] >= len(kind_names):
            raise ChainBroken(seq, "record kind index out of range")
        records.append(Record(seq, ts_ns[index], kind_names[indexes[index]], payload))
        offset = end
    if offset != len(body):
        raise ChainBroken(first_seq + count - 1, f"{len(body) - offset} stray bytes after the last record")
    return Segment(first_seq, records, value[:HASH_SIZE], body)


def segment_kinds(key: int, body: bytes) -> list[str]:
    """The kind of every record of a segment body, from its columns alone (no payloads)."""
    first_seq, count, kind_count = _SEGMENT_HEADER.unpack_from(body)
    if first_seq != key or count == 0:
        raise ChainBroken(key, f"segment header is corrupt (first_seq {first_seq}, count {count})")
    try:
        offset, names = _kind_table(body, kind_count)
        return [names[index] for index in body[offset + 8 * count : offset + 9 * count]]
    except (IndexError, UnicodeDecodeError) as error:
        raise ChainBroken(key, f"segment columns are corrupt: {error}") from None


def segment_records_of_kinds(key: int, body: bytes, kinds: frozenset[str]) -> list[Record]:
    """The records of a segment body whose kind is in ``kinds``, each payload checked against
    its checksum; the other payloads are neither copied nor checked (a reader that wants a few
    kinds out of a large journal, e.g. the cockpit's day closes)."""
    first_seq, count, kind_count = _SEGMENT_HEADER.unpack_from(body)
    if first_seq != key or count == 0:
        raise ChainBroken(key, f"segment header is corrupt (first_seq {first_seq}, count {count})")
    try:
        offset, names = _kind_table(body, kind_count)
        wanted = {index for index, name in enumerate(names) if name in kinds}
        if not wanted:
            return []
        ts_ns = struct.unpack_from(f">{count}q", body, offset)
        indexes = body[offset + 8 * count : offset + 9 * count]
        offset += 9 * count
        lengths = struct.unpack_from(f">{count}I", body, offset)
        crcs = struct.unpack_from(f">{count}I", body, offset + 4 * count)
    except (struct.error, IndexError, UnicodeDecodeError) as error:
        raise ChainBroken(key, f"segment columns are corrupt: {error}") from None
    starts = list(itertools.accumulate(lengths, initial=offset + 8 * count))
    selected: list[Record] = []
    for index in (i for i, kind_index in enumerate(indexes) if kind_index in wanted):
        payload = body[starts[index] : starts[index + 1]]
        if _crc32(payload) != crcs[index]:
            raise ChainBroken(first_seq + index, "record checksum mismatch")
        selected.append(Record(first_seq + index, ts_ns[index], names[indexes[index]], payload))
    return selected


def _kind_table(body: bytes, kind_count: int) -> tuple[int, list[str]]:
    offset = _SEGMENT_HEADER.size
    names: list[str] = []
    for _ in range(kind_count):
        length = body[offset]
        names.append(body[offset + 1 : offset + 1 + length].decode("ascii"))
        offset += 1 + length
    return offset, names


def first_inconsistent_record(segment: Segment) -> Record | None:
    """The first record whose ts or kind column disagrees with its payload, if any."""
    for record in segment.records:
        try:
            header = _kind_header.decode(record.payload)
        except msgspec.DecodeError:
            return record
        if header.kind != record.kind or header.ts_ns != record.ts_ns:
            return record
    return None


def _raise_hash_mismatch(segment: Segment) -> None:
    bad = first_inconsistent_record(segment)
    if bad is not None:
        raise ChainBroken(bad.seq, "record ts/kind columns disagree with its payload")
    raise ChainBroken(segment.first_seq, "segment hash mismatch (segment rewritten whole)")


class Journal:
    """One writer per journal; readers open their own ``Journal`` read-only."""

    def __init__(
        self,
        backend: JournalBackend,
        *,
        writable: bool = True,
        records_per_commit_max: int = 4096,
        on_append: Callable[[Event], None] | None = None,
    ) -> None:
        assert records_per_commit_max > 0
        self._backend = backend
        self._on_append = on_append  # sees each event as it is queued (a fold of the run)
        self._writable = writable
        self._commit_max = records_per_commit_max
        # Appended, not yet committed records: encoded at once, payloads back to back.
        self._types: list[type] = []
        self._ts: list[int] = []
        self._payloads = bytearray()
        self._ends: list[int] = []
        self.tail_repair: TailRepair | None = None
        head_seq, head_hash = self._check_tail()
        self._next_seq = head_seq + 1
        self._last_hash = head_hash

    # --- writing -----------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """Sequence number the next appended event will get."""
        return self._next_seq + len(self._ends)

    @property
    def last_hash(self) -> bytes:
        """Chain hash of the last committed segment (GENESIS_HASH when empty)."""
        return self._last_hash

    def append(self, event: Event) -> int:
        """Queue one event; returns its sequence number. Commits when the segment is full.

        The event is encoded here, once; the commit only adds the columns and the hash.
        """
        if not self._writable:
            raise JournalError("journal was opened read-only")
        ts_ns = event.ts_ns
        if not _TS_MIN <= ts_ns <= _TS_MAX:
            raise JournalError(f"event time {ts_ns} does not fit a signed 64-bit nanosecond stamp")
        payloads = self._payloads
        encode_event_into(event, payloads)
        ends = self._ends
        ends.append(len(payloads))
        self._ts.append(ts_ns)
        self._types.append(type(event))
        if self._on_append is not None:
            self._on_append(event)
        if len(ends) >= self._commit_max:
            self.commit()
            return self._next_seq - 1
        return self._next_seq + len(ends) - 1

    def commit(self) -> None:
        """Make every appended event durable: one segment, one backend transaction."""
        if not self._ends:
            return
        first = self._next_seq
        new_hash, value = build_segment_value(
            self._last_hash, first, self._types, self._ts, self._payloads, self._ends
        )
        last_seq = first + len(self._ends) - 1
        self._backend.write_segment(first, value, (last_seq, new_hash))
        self._types, self._ts, self._payloads, self._ends = [], [], bytearray(), []
        self._next_seq = last_seq + 1
        self._last_hash = new_hash

    def close(self) -> None:
        try:
            if self._writable:
                self.commit()
        finally:
            self._backend.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._next_seq

    def segments(self, start_seq: int = 0, *, verify: bool = True) -> Iterator[Segment]:
        """Committed segments from the one holding ``start_seq``. With ``verify`` each
        segment's chain hash is checked and a mismatch raises ``ChainBroken``."""
        key = max(0, self._backend.floor_key(start_seq))
        prev = self._hash_before_key(key) if verify else b""
        expected = key
        for stored_key, value in self._backend.iter_segments(key):
            if stored_key >= self._next_seq:
                break
            if stored_key != expected:
                raise ChainBroken(expected, f"records missing (next segment starts at {stored_key})")
            segment = parse_segment(stored_key, value)
            if verify and segment_hash(prev, segment.body) != segment.hash:
                _raise_hash_mismatch(segment)
            prev = segment.hash
            expected = stored_key + len(segment.records)
            yield segment
        if expected < self._next_seq:
            raise ChainBroken(expected, "records missing before the committed head")

    def raw_segments(self, start_seq: int = 0) -> Iterator[tuple[int, bytes]]:
        """Committed segments as stored (key, value), from the one holding ``start_seq``;
        nothing is parsed or checked (replay rebuilds and compares them itself)."""
        key = max(0, self._backend.floor_key(start_seq))
        for stored_key, value in self._backend.iter_segments(key):
            if stored_key >= self._next_seq:
                break
            yield stored_key, value

    def records(self, start_seq: int = 0, *, verify: bool = True) -> Iterator[Record]:
        for segment in self.segments(start_seq, verify=verify):
            for record in segment.records:
                if record.seq >= start_seq:
                    yield record

    def records_of_kinds(self, kinds: frozenset[str], start_seq: int = 0) -> Iterator[Record]:
        """Committed records of the given kinds from ``start_seq``, read without the chain
        check (``verify`` walks it); only their payloads are copied and checksummed."""
        for key, value in self.raw_segments(start_seq):
            for record in segment_records_of_kinds(key, value[HASH_SIZE:], kinds):
                if record.seq >= start_seq:
                    yield record

    def events(self, start_seq: int = 0) -> Iterator[tuple[int, AnyEvent]]:
        for record in self.records(start_seq):
            yield record.seq, record.event()

    def record(self, seq: int) -> Record:
        if not 0 <= seq < self._next_seq:
            raise JournalError(f"no record at seq {seq} (journal has {self._next_seq})")
        for record in self.records(seq, verify=False):
            return record
        raise JournalError(f"no record at seq {seq}")

    def _hash_before_key(self, key: int) -> bytes:
        if key == 0:
            return GENESIS_HASH
        prev_key = self._backend.floor_key(key - 1)
        if prev_key < 0:
            raise ChainBroken(key - 1, "segment missing")
        for _, value in self._backend.iter_segments(prev_key):
            return value[:HASH_SIZE]
        raise ChainBroken(key - 1, "segment missing")

    def verify(self) -> VerifyResult:
        """Walk the whole chain; report the first record whose bytes or hash are wrong."""
        count = 0
        last = GENESIS_HASH
        try:
            for segment in self.segments(0):
                count += len(segment.records)
                last = segment.hash
        except ChainBroken as broken:
            return VerifyResult(count, broken.seq, broken.reason, last)
        return VerifyResult(count, None, "", last)

    # --- opening -----------------------------------------------------------------------

    def _check_tail(self) -> tuple[int, bytes]:
        """Find the last committed record; report (and, when writable, cut) a torn tail.

        A torn tail is what lies past the committed head, or — in a journal without a head
        marker — a last segment that fails its checksums or chain hash while the segment
        before it is sound. The head is written in the same transaction as its segment, so
        a bad segment *at* the head is committed data gone bad, not a torn write: it is never
        cut; a writer refuses to open and ``verify`` names the record.
        """
        head = self._backend.read_head()
        last_key = self._backend.last_key()
        if head is None and last_key < 0:
            return -1, GENESIS_HASH
        if head is None:
            problem, segment = self._last_segment_problem(last_key)
            if problem:
                good_seq, good_hash = last_key - 1, self._hash_before_key(last_key)
                self._cut(last_key, good_seq, good_hash, f"no commit marker; torn last segment: {problem}")
                return good_seq, good_hash
            assert segment is not None
            return last_key + len(segment.records) - 1, segment.hash
        head_key = self._backend.floor_key(head[0])
        if last_key > head_key:
            self._cut(self._next_key(head_key), head[0], head[1], "segments past the committed head")
        problem, segment = self._last_segment_problem(head_key)
        if (
            not problem
            and segment is not None
            and (head_key + len(segment.records) - 1, segment.hash) != head
        ):
            problem = "the head marker does not match the last segment"
        if problem and self._writable:
            raise JournalError(
                f"journal is corrupt at its last committed segment (seq {head_key}): "
                f"{problem}; run `tape verify` to locate the record"
            )
        return head

    def _last_segment_problem(self, key: int) -> tuple[str, Segment | None]:
        value = next(iter(self._backend.iter_segments(key)))[1]
        try:
            segment = parse_segment(key, value)
        except ChainBroken as broken:
            return broken.reason, None
        if segment_hash(self._hash_before_key(key), segment.body) == segment.hash:
            return "", segment
        if key > 0 and not self._sound(self._backend.floor_key(key - 1)):
            return "", segment  # the predecessor is corrupt, not this tail: verify reports it
        return "chain hash mismatch", segment

    def _sound(self, key: int) -> bool:
        """Whether the segment at ``key`` parses and chains from its predecessor's hash."""
        value = next(iter(self._backend.iter_segments(key)))[1]
        try:
            segment = parse_segment(key, value)
        except ChainBroken:
            return False
        return segment_hash(self._hash_before_key(key), segment.body) == segment.hash

    def _cut(self, key: int, good_seq: int, good_hash: bytes, reason: str) -> None:
        self.tail_repair = TailRepair(good_seq + 1, self._records_from(key), reason)
        if self._writable:
            self._backend.truncate_from(key, (good_seq, good_hash) if good_seq >= 0 else None)

    def _next_key(self, key: int) -> int:
        for stored_key, _ in self._backend.iter_segments(key + 1):
            return stored_key
        return key + 1

    def _records_from(self, key: int) -> int:
        total = 0
        for stored_key, value in self._backend.iter_segments(key):
            try:
                total += len(parse_segment(stored_key, value).records)
            except ChainBroken:
                total += (
                    _SEGMENT_HEADER.unpack_from(value, HASH_SIZE)[1]
                    if len(value) >= HASH_SIZE + _SEGMENT_HEADER.size
                    else 1
                )
        return total
