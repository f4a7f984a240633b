"""The journal contract every backend runs (STYLE example 12).

A backend's test module subclasses ``JournalContract`` and fills in the hooks:
``backend`` (the ``open_journal`` name), ``journal_path`` and ``raw_put_segment`` (a
backend-level overwrite of one stored segment value that bypasses the journal, used by
the canaries). Everything else is shared, so the backends cannot drift apart.

The canaries (STYLE example 19) flip single bytes in the stored segments and check that
``verify`` names the exact record; the offsets are computed here from the documented
segment layout, independently of ``kernel.journal.parse_segment``.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import pytest

from domain.events import DayClosed, Event, OrderAccepted, OrderFilled
from kernel.journal import (
    GENESIS_HASH,
    HASH_SIZE,
    Journal,
    JournalError,
    build_segment,
    segment_hash,
)
from kernel.store import open_journal

REPO_ROOT = Path(__file__).resolve().parents[2]
TAIL_CHECK_SEGMENTS = 4  # how far back from the head the "never cut" canaries reach


# --- plain factories ---------------------------------------------------------------------


def order_accepted(i: int) -> OrderAccepted:
    return OrderAccepted(ts_ns=1_700_000_000_000_000_000 + i, order_id=f"o-{i}")


def order_filled(i: int) -> OrderFilled:
    return OrderFilled(
        ts_ns=1_700_000_000_000_000_000 + i,
        order_id=f"o-{i}",
        instrument_id=i % 7,
        side=1 if i % 2 else -1,
        fill_qty_raw=100 * (i + 1),
        fill_px_raw=10_000 + i,
        leaves_qty_raw=0,
        notional_minor=(100 * (i + 1)) * (10_000 + i),
        commission_minor=5,
        currency="CNY",
    )


def day_closed(i: int) -> DayClosed:
    return DayClosed(
        ts_ns=1_700_000_000_000_000_000 + i,
        day=20240101 + i % 28,
        step=i,
        nav_minor=1_000_000 + i,
        cash_minor=500_000 - i,
        gross_exposure_minor=i * 3,
        currency="CNY",
    )


def event_for(i: int) -> Event:
    """The i-th event of a deterministic mixed stream."""
    return (order_accepted, order_filled, day_closed)[i % 3](i)


def events(count: int, start: int = 0) -> list[Event]:
    return [event_for(i) for i in range(start, start + count)]


# --- the segment layout, read independently of kernel.journal ----------------------------


class Layout(NamedTuple):
    """Absolute offsets (into the stored value) of one segment's columns and payloads."""

    first_seq: int
    record_count: int
    ts_offset: int
    payload_offsets: list[int]  # start of each record's payload
    payload_lengths: list[int]


def segment_layout(value: bytes) -> Layout:
    first_seq, count, kind_count = struct.unpack_from(">QIB", value, HASH_SIZE)
    offset = HASH_SIZE + 13
    for _ in range(kind_count):
        offset += 1 + value[offset]
    ts_offset = offset
    lengths_offset = ts_offset + 9 * count
    lengths = list(struct.unpack_from(f">{count}I", value, lengths_offset))
    payload = lengths_offset + 8 * count
    starts = []
    for length in lengths:
        starts.append(payload)
        payload += length
    assert payload == len(value), "layout must cover the whole stored value"
    return Layout(first_seq, count, ts_offset, starts, lengths)


def flip(value: bytes, offset: int) -> bytes:
    assert 0 <= offset < len(value)
    return value[:offset] + bytes([value[offset] ^ 0xFF]) + value[offset + 1 :]


def stored_segments(journal: Journal) -> list[tuple[int, bytes]]:
    return [(key, bytes(value)) for key, value in journal._backend.iter_segments(0)]


def stored_value(journal: Journal, key: int) -> bytes:
    for stored_key, value in journal._backend.iter_segments(key):
        assert stored_key == key, f"no segment stored at key {key}"
        return bytes(value)
    raise AssertionError(f"no segment stored at key {key}")


def commit_in_segments(journal: Journal, sizes: list[int]) -> list[int]:
    """Append ``sum(sizes)`` events committing after each size; return the segment keys."""
    keys = []
    for size in sizes:
        keys.append(journal.next_seq)
        for event in events(size, start=journal.next_seq):
            journal.append(event)
        journal.commit()
    return keys


_READER = """
import json, sys
from kernel.store import open_journal
journal = open_journal(sys.argv[1], backend=sys.argv[2])
result = journal.verify()
print(json.dumps({
    "len": len(journal),
    "seqs": [record.seq for record in journal.records()],
    "ts": [record.ts_ns for record in journal.records()],
    "ok": result.ok,
    "records": result.records,
    "last_hash": result.last_hash.hex(),
    "tail_repair": journal.tail_repair is not None,
}))
journal.close()
"""


class JournalContract:
    """Shared behaviour of every journal backend; subclasses fill in the hooks."""

    backend: ClassVar[str]

    # --- hooks -------------------------------------------------------------------------

    def journal_path(self, tmp_path: Path) -> Path:
        raise NotImplementedError

    def raw_put_segment(self, journal: Journal, key: int, value: bytes) -> None:
        """Overwrite (or insert) the stored value at ``key`` without touching the head."""
        raise NotImplementedError

    def make_journal(self, tmp_path: Path, **kw: Any) -> Journal:
        kw.setdefault("writable", True)
        return open_journal(self.journal_path(tmp_path), backend=self.backend, **kw)

    def read_in_subprocess(self, tmp_path: Path) -> dict[str, Any]:
        """A read-only Journal in another process (LMDB allows one env per process)."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run(
            [sys.executable, "-c", _READER, str(self.journal_path(tmp_path)), self.backend],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    # --- append, commit, read back -----------------------------------------------------

    def test_append_commit_read_back(self, tmp_path: Path) -> None:
        written = events(10)
        with self.make_journal(tmp_path) as journal:
            seqs = [journal.append(event) for event in written]
            journal.commit()
            assert seqs == list(range(10))
            assert len(journal) == 10
            assert list(journal.events()) == list(enumerate(written))
        with self.make_journal(tmp_path, writable=False) as journal:
            assert list(journal.events()) == list(enumerate(written))
            records = list(journal.records())
            assert [r.seq for r in records] == list(range(10))
            assert [r.ts_ns for r in records] == [e.ts_ns for e in written]
            assert [r.kind for r in records] == [type(e).__struct_config__.tag for e in written]
            assert journal.record(7).event() == written[7]

    def test_empty_journal(self, tmp_path: Path) -> None:
        with self.make_journal(tmp_path) as journal:
            assert len(journal) == 0
            assert journal.next_seq == 0
            assert journal.last_hash == GENESIS_HASH
            assert list(journal.records()) == []
            result = journal.verify()
            assert result.ok
            assert result.records == 0
            assert result.last_hash == GENESIS_HASH
            journal.commit()  # nothing pending: no empty segment
            assert stored_segments(journal) == []

    def test_read_from_start_seq_across_segments(self, tmp_path: Path) -> None:
        with self.make_journal(tmp_path) as journal:
            commit_in_segments(journal, [3, 1, 4, 2])
            for start in range(0, 11):
                assert [seq for seq, _ in journal.events(start)] == list(range(start, 10))
            for seq in range(10):
                assert journal.record(seq).event() == event_for(seq)
            with pytest.raises(JournalError):
                journal.record(10)
            with pytest.raises(JournalError):
                journal.record(-1)

    def test_segment_per_commit_and_per_records_max(self, tmp_path: Path) -> None:
        with self.make_journal(tmp_path, records_per_commit_max=3) as journal:
            seqs = [journal.append(event) for event in events(7)]
            assert seqs == list(range(7))
            assert len(journal) == 6  # two full segments committed by append
            assert journal.next_seq == 7
            journal.commit()
            assert len(journal) == 7
            assert [key for key, _ in stored_segments(journal)] == [0, 3, 6]

    def test_seq_continues_across_reopen(self, tmp_path: Path) -> None:
        with self.make_journal(tmp_path) as journal:
            commit_in_segments(journal, [4])
            hash_before = journal.last_hash
        with self.make_journal(tmp_path) as journal:
            assert journal.tail_repair is None
            assert len(journal) == 4
            assert journal.last_hash == hash_before
            assert journal.append(event_for(4)) == 4
            journal.commit()
        with self.make_journal(tmp_path, writable=False) as journal:
            assert list(journal.events()) == list(enumerate(events(5)))
            assert journal.verify().ok

    def test_close_commits_pending(self, tmp_path: Path) -> None:
        journal = self.make_journal(tmp_path)
        journal.append(event_for(0))
        journal.append(event_for(1))
        assert len(journal) == 0
        journal.close()
        with self.make_journal(tmp_path, writable=False) as reader:
            assert list(reader.events()) == list(enumerate(events(2)))

    def test_read_only_journal_refuses_appends(self, tmp_path: Path) -> None:
        self.make_journal(tmp_path).close()
        with self.make_journal(tmp_path, writable=False) as journal, pytest.raises(JournalError):
            journal.append(event_for(0))

    def test_missing_journal_read_only_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(JournalError):
            self.make_journal(tmp_path, writable=False)

    def test_reader_sees_committed_not_pending_while_writer_open(self, tmp_path: Path) -> None:
        with self.make_journal(tmp_path) as journal:
            commit_in_segments(journal, [3, 2])
            journal.append(event_for(5))  # pending, not committed
            seen = self.read_in_subprocess(tmp_path)
            assert seen["len"] == 5
            assert seen["seqs"] == list(range(5))
            assert seen["ts"] == [e.ts_ns for e in events(5)]
            assert seen["ok"]
            assert seen["records"] == 5
            assert seen["last_hash"] == journal.last_hash.hex()
            assert not seen["tail_repair"]
            journal.commit()
            seen = self.read_in_subprocess(tmp_path)
            assert seen["seqs"] == list(range(6))
            assert seen["last_hash"] == journal.last_hash.hex()

    def test_in_process_reader_sees_committed_not_pending(self, tmp_path: Path) -> None:
        with self.make_journal(tmp_path) as journal:
            commit_in_segments(journal, [3, 2])
            journal.append(event_for(5))  # pending, not committed
            with self.make_journal(tmp_path, writable=False) as reader:
                assert len(reader) == 5
                assert list(reader.events()) == list(enumerate(events(5)))
                assert reader.last_hash == journal.last_hash
                assert reader.verify().ok
            journal.commit()
            with self.make_journal(tmp_path, writable=False) as reader:
                assert list(reader.events()) == list(enumerate(events(6)))
            journal.append(event_for(6))  # the writer still works after its readers closed
            journal.commit()
        with self.make_journal(tmp_path, writable=False) as reader:
            assert len(reader) == 7
            assert reader.verify().ok

    # --- verify and the hash chain -----------------------------------------------------

    def test_verify_clean_journal(self, tmp_path: Path) -> None:
        with self.make_journal(tmp_path) as journal:
            commit_in_segments(journal, [5, 1, 3, 7, 2, 2])
            result = journal.verify()
            assert result.ok
            assert result.first_bad_seq is None
            assert result.records == 20
            assert result.last_hash == journal.last_hash

    def test_chain_hash_depends_on_history(self, tmp_path: Path) -> None:
        """Same events, different commit points: different segments, different hash."""
        with self.make_journal(tmp_path / "a") as one, self.make_journal(tmp_path / "b") as two:
            commit_in_segments(one, [4])
            commit_in_segments(two, [2, 2])
            assert list(one.events()) == list(two.events())
            assert one.last_hash != two.last_hash

    # --- canaries: a flipped byte must be reported at its record ----------------------

    @pytest.mark.parametrize("segment_index", [0, 2, 7])
    @pytest.mark.parametrize("record_index", [0, 2, 4])
    def test_canary_payload_byte_flip_names_its_record(
        self, tmp_path: Path, segment_index: int, record_index: int
    ) -> None:
        with self.make_journal(tmp_path) as journal:
            keys = commit_in_segments(journal, [5] * 8)
            key = keys[segment_index]
            value = stored_value(journal, key)
            layout = segment_layout(value)
            offset = layout.payload_offsets[record_index] + layout.payload_lengths[record_index] // 2
            self.raw_put_segment(journal, key, flip(value, offset))
            result = journal.verify()
            assert result.first_bad_seq == layout.first_seq + record_index, result
            assert "checksum" in result.reason
            assert result.records == key  # every segment before the bad one was counted

    def test_canary_payload_flip_found_after_reopen(self, tmp_path: Path) -> None:
        with self.make_journal(tmp_path) as journal:
            keys = commit_in_segments(journal, [3] * 8)
            value = stored_value(journal, keys[1])
            layout = segment_layout(value)
            self.raw_put_segment(journal, keys[1], flip(value, layout.payload_offsets[2]))
        for writable in (False, True):
            with self.make_journal(tmp_path, writable=writable) as journal:
                assert journal.tail_repair is None  # far from the tail: not a torn write
                assert len(journal) == 24
                assert journal.verify().first_bad_seq == keys[1] + 2

    @pytest.mark.parametrize("record_index", [0, 3])
    def test_canary_ts_column_flip_names_its_record(self, tmp_path: Path, record_index: int) -> None:
        with self.make_journal(tmp_path) as journal:
            keys = commit_in_segments(journal, [4, 4, 4])
            value = stored_value(journal, keys[1])
            layout = segment_layout(value)
            offset = layout.ts_offset + 8 * record_index + 7  # low byte of that record's ts
            self.raw_put_segment(journal, keys[1], flip(value, offset))
            result = journal.verify()
            assert result.first_bad_seq == keys[1] + record_index, result

    @pytest.mark.parametrize("hash_byte", [0, HASH_SIZE - 1])
    def test_canary_hash_flip_reported_at_segment_first_record(self, tmp_path: Path, hash_byte: int) -> None:
        with self.make_journal(tmp_path) as journal:
            keys = commit_in_segments(journal, [3, 5, 2])
            value = stored_value(journal, keys[1])
            self.raw_put_segment(journal, keys[1], flip(value, hash_byte))
            result = journal.verify()
            assert result.first_bad_seq == keys[1], result
            assert result.records == keys[1]

    def test_canary_segment_rewritten_whole_reported_at_first_record(self, tmp_path: Path) -> None:
        """A forged segment with valid checksums but the old chain hash is caught."""
        with self.make_journal(tmp_path) as journal:
            keys = commit_in_segments(journal, [3, 3, 3])
            original = stored_value(journal, keys[1])
            forged_events = events(3, start=keys[1])
            forged_events[1] = order_accepted(999)  # consistent ts/kind columns and payload
            forged = original[:HASH_SIZE] + build_segment(keys[1], forged_events)
            self.raw_put_segment(journal, keys[1], forged)
            result = journal.verify()
            assert result.first_bad_seq == keys[1], result
            assert "hash" in result.reason

    # --- torn tails and corrupt heads ------------------------------------------------------
    #
    # Both backends write a segment and the head in one transaction, so a torn write can
    # only leave segments *past* the head: those are cut (when writable) and reported. A
    # bad segment at or before the head is committed data gone bad: never cut.

    def _store_past_head(self, tmp_path: Path, make_value: Any) -> tuple[int, bytes, int]:
        """Commit 3 segments (9 records), then store ``make_value(whole_value)`` as a
        5-record segment after them without moving the head.

        Returns (committed record count, committed hash, records in the stored segment)."""
        with self.make_journal(tmp_path) as journal:
            commit_in_segments(journal, [2, 3, 4])
            committed, last_hash = len(journal), journal.last_hash
            body = build_segment(committed, events(5, start=committed))
            whole = segment_hash(last_hash, body) + body
            journal._backend.write_segment(committed, make_value(whole), (committed - 1, last_hash))
        return committed, last_hash, 5

    def _assert_cut_past_head(self, tmp_path: Path, committed: int, last_hash: bytes, cut: int) -> None:
        with self.make_journal(tmp_path) as journal:
            repair = journal.tail_repair
            assert repair is not None
            assert repair.cut_from_seq == committed
            assert repair.records_cut == cut
            assert "head" in repair.reason
            assert len(journal) == committed
            assert journal.last_hash == last_hash
            assert [key for key, _ in stored_segments(journal)] == [0, 2, 5]
            assert journal.verify().ok
            assert journal.append(event_for(committed)) == committed  # the cut seq is reused
        with self.make_journal(tmp_path) as journal:
            assert journal.tail_repair is None
            assert len(journal) == committed + 1
            assert journal.verify().ok
            assert list(journal.events()) == list(enumerate(events(committed + 1)))

    def test_bad_hash_segment_past_head_is_cut(self, tmp_path: Path) -> None:
        committed, last_hash, count = self._store_past_head(tmp_path, lambda v: flip(v, 0))
        self._assert_cut_past_head(tmp_path, committed, last_hash, count)

    def test_whole_segment_past_head_is_cut(self, tmp_path: Path) -> None:
        """Even a well-formed, chained segment the head does not cover was never committed."""
        committed, last_hash, count = self._store_past_head(tmp_path, lambda v: v)
        self._assert_cut_past_head(tmp_path, committed, last_hash, count)

    @pytest.mark.parametrize("keep_bytes", [0, 20, HASH_SIZE, 40, 44, 45, 60, -1])
    def test_truncated_segment_past_head_is_cut(self, tmp_path: Path, keep_bytes: int) -> None:
        """A torn write cut short at any length; 44 bytes once crashed the open (struct.error)."""
        committed, last_hash, count = self._store_past_head(tmp_path, lambda v: v[:keep_bytes])
        with self.make_journal(tmp_path, writable=False) as journal:
            assert journal.tail_repair is not None
            cut = journal.tail_repair.records_cut
        if keep_bytes >= HASH_SIZE + 13 or keep_bytes < 0:
            assert cut == count  # the segment header survived: its count is exact
        else:
            assert cut >= 1
        self._assert_cut_past_head(tmp_path, committed, last_hash, cut)

    def test_several_segments_past_head_are_all_cut(self, tmp_path: Path) -> None:
        with self.make_journal(tmp_path) as journal:
            commit_in_segments(journal, [2, 3, 4])
            committed, last_hash = len(journal), journal.last_hash
            head = (committed - 1, last_hash)
            previous, start = last_hash, committed
            for size in (2, 3):
                body = build_segment(start, events(size, start=start))
                previous = segment_hash(previous, body)
                journal._backend.write_segment(start, previous + body, head)
                start += size
        self._assert_cut_past_head(tmp_path, committed, last_hash, 5)

    def test_read_only_open_reports_torn_tail_but_does_not_cut(self, tmp_path: Path) -> None:
        committed, last_hash, count = self._store_past_head(tmp_path, lambda v: v[:-1])
        for _ in range(2):
            with self.make_journal(tmp_path, writable=False) as journal:
                repair = journal.tail_repair
                assert repair is not None
                assert repair.cut_from_seq == committed
                assert repair.records_cut == count
                assert len(journal) == committed
                assert journal.last_hash == last_hash
                assert [seq for seq, _ in journal.events()] == list(range(committed))
                assert journal.verify().ok
                assert [key for key, _ in stored_segments(journal)] == [0, 2, 5, committed]
        self._assert_cut_past_head(tmp_path, committed, last_hash, count)  # still there to cut

    def test_reader_in_other_process_does_not_cut(self, tmp_path: Path) -> None:
        committed, _, _ = self._store_past_head(tmp_path, lambda v: v[:50])
        seen = self.read_in_subprocess(tmp_path)
        assert seen["tail_repair"]
        assert seen["len"] == committed
        assert seen["ok"]
        with self.make_journal(tmp_path, writable=False) as journal:
            assert [key for key, _ in stored_segments(journal)][-1] == committed

    @pytest.mark.parametrize("keep_bytes", [40, 50, -1])
    def test_no_head_marker_cuts_the_torn_last_segment(self, tmp_path: Path, keep_bytes: int) -> None:
        """Without a head (no commit marker) the tail segments are verified and cut from the
        first bad one."""
        with self.make_journal(tmp_path) as journal:
            keys = commit_in_segments(journal, [3, 4, 5])
            previous_hash = stored_value(journal, keys[1])[:HASH_SIZE]
            self.raw_put_segment(journal, keys[2], stored_value(journal, keys[2])[:keep_bytes])
            journal._backend.truncate_from(10**9, None)  # removes no segment, drops the head
            assert journal._backend.read_head() is None
        with self.make_journal(tmp_path) as journal:
            repair = journal.tail_repair
            assert repair is not None
            assert repair.cut_from_seq == keys[2]
            assert repair.records_cut == (5 if keep_bytes >= HASH_SIZE + 13 or keep_bytes < 0 else 1)
            assert len(journal) == keys[2]
            assert journal.last_hash == previous_hash
            assert journal.verify().ok
            journal.append(event_for(keys[2]))  # writes a head again
        with self.make_journal(tmp_path) as journal:
            assert journal.tail_repair is None
            assert len(journal) == keys[2] + 1
            assert journal.verify().ok

    def test_no_head_marker_and_whole_tail_keeps_everything(self, tmp_path: Path) -> None:
        with self.make_journal(tmp_path) as journal:
            commit_in_segments(journal, [3, 4, 5])
            last_hash = journal.last_hash
            journal._backend.truncate_from(10**9, None)
        with self.make_journal(tmp_path) as journal:
            assert journal.tail_repair is None
            assert len(journal) == 12
            assert journal.last_hash == last_hash
            assert journal.verify().ok

    @pytest.mark.parametrize("damage", ["truncate", "payload", "hash"])
    def test_corrupt_head_segment_is_never_cut(self, tmp_path: Path, damage: str) -> None:
        """The head says the last segment was committed: a bad one is corruption, not a
        torn write. A writer refuses to open; a reader opens and ``verify`` names it."""
        with self.make_journal(tmp_path) as journal:
            keys = commit_in_segments(journal, [3, 4, 5])
            value = stored_value(journal, keys[2])
            layout = segment_layout(value)
            damaged = {
                "truncate": value[:-3],
                "payload": flip(value, layout.payload_offsets[1]),
                "hash": flip(value, 5),
            }[damage]
            self.raw_put_segment(journal, keys[2], damaged)
        expected_bad_seq = keys[2] + (1 if damage == "payload" else 0)
        if damage == "truncate":
            expected_bad_seq = keys[2] + 4  # the last record's payload is short
        with pytest.raises(JournalError):
            self.make_journal(tmp_path)
        for _ in range(2):  # the failed writable open changed nothing
            with self.make_journal(tmp_path, writable=False) as journal:
                assert journal.tail_repair is None
                assert len(journal) == 12
                result = journal.verify()
                assert result.first_bad_seq == expected_bad_seq, result
                assert result.records == keys[2]
                assert stored_value(journal, keys[2]) == damaged

    @pytest.mark.parametrize("segment_from_end", [1, 2, TAIL_CHECK_SEGMENTS, TAIL_CHECK_SEGMENTS + 1])
    def test_corrupt_segment_before_head_is_never_cut(self, tmp_path: Path, segment_from_end: int) -> None:
        """One flipped hash byte in any committed segment but the last: the journal opens
        whole (nothing is cut) and ``verify`` reports that segment's first record."""
        with self.make_journal(tmp_path) as journal:
            keys = commit_in_segments(journal, [2] * (TAIL_CHECK_SEGMENTS + 3))
            bad_key = keys[-1 - segment_from_end]
            self.raw_put_segment(journal, bad_key, flip(stored_value(journal, bad_key), 0))
        for writable in (True, False):
            with self.make_journal(tmp_path, writable=writable) as journal:
                assert journal.tail_repair is None
                assert len(journal) == 2 * len(keys)
                assert journal.verify().first_bad_seq == bad_key
