"""Journal.records_of_kinds: the same records as filtering records(), payloads checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.events import DayClosed, RunFinished
from kernel.journal import ChainBroken, Journal, segment_records_of_kinds
from kernel.store import open_journal


def _journal(path: Path) -> Journal:
    journal = open_journal(path, writable=True, records_per_commit_max=7)
    for step in range(50):
        journal.append(DayClosed(ts_ns=step, day=20200101, step=step, nav_minor=step, cash_minor=0,
                                 gross_exposure_minor=0, currency="USD"))  # fmt: skip
        if step % 9 == 0:
            journal.append(RunFinished(ts_ns=step, steps=step, nav_minor=step, currency="USD"))
    journal.commit()
    return journal


@pytest.mark.parametrize("start", [0, 3, 20, 46])
def test_records_of_kinds_equals_a_filtered_read(tmp_path: Path, start: int) -> None:
    with _journal(tmp_path / "j.sqlite") as journal:
        kinds = frozenset({"run.finished.v1"})
        expected = [record for record in journal.records(start) if record.kind in kinds]
        assert list(journal.records_of_kinds(kinds, start)) == expected
        assert expected
        assert list(journal.records_of_kinds(frozenset({"order.filled.v1"}))) == []


def test_a_flipped_payload_of_a_selected_kind_is_named(tmp_path: Path) -> None:
    with _journal(tmp_path / "j.sqlite") as journal:
        key, value = next(iter(journal.raw_segments(0)))
        body = bytearray(value[32:])
        body[-1] ^= 0xFF  # the last payload of the first segment
        last = list(journal.records(0))[6]
        with pytest.raises(ChainBroken) as broken:
            segment_records_of_kinds(key, bytes(body), frozenset({last.kind}))
        assert broken.value.seq == last.seq
