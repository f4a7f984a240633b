"""Property: any event stream with any commit points round-trips exactly and verifies.

Actions are events (appended), ``COMMIT`` and ``REOPEN`` (close, which commits, then open
writable again). The same actions run on every backend; a pure model predicts the seqs,
the committed length, the segment boundaries and so the chain hash, which must be equal
on every backend ("same bytes, same hashes").
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.events import DayClosed, Event, OrderAccepted, OrderFilled
from kernel.journal import GENESIS_HASH, Journal, build_segment, segment_hash
from kernel.store import open_journal

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TS_NS = INT64  # the ts column is a signed 64-bit integer
TEXT = st.text(max_size=24)
COMMIT = "commit"
REOPEN = "reopen"
JOURNAL_FILE = {"lmdb": "journal.lmdb", "sqlite": "journal.sqlite"}

EVENTS = st.one_of(
    st.builds(OrderAccepted, ts_ns=TS_NS, order_id=TEXT),
    st.builds(
        OrderFilled,
        ts_ns=TS_NS,
        order_id=TEXT,
        instrument_id=INT64,
        side=st.sampled_from([1, -1]),
        fill_qty_raw=INT64,
        fill_px_raw=INT64,
        leaves_qty_raw=INT64,
        notional_minor=INT64,
        commission_minor=INT64,
        currency=TEXT,
    ),
    st.builds(
        DayClosed,
        ts_ns=TS_NS,
        day=st.integers(19000101, 21001231),
        step=st.integers(0, 2**31),
        nav_minor=INT64,
        cash_minor=INT64,
        gross_exposure_minor=INT64,
        currency=TEXT,
    ),
)
ACTIONS = st.lists(st.one_of(EVENTS, EVENTS, st.just(COMMIT), st.just(REOPEN)), max_size=80)


class Model:
    """What the journal must hold: events, committed count, and the chain hash."""

    def __init__(self, records_per_commit_max: int) -> None:
        self.records_per_commit_max = records_per_commit_max
        self.events: list[Event] = []
        self.committed = 0
        self.last_hash = GENESIS_HASH

    def append(self, event: Event) -> int:
        self.events.append(event)
        if len(self.events) - self.committed >= self.records_per_commit_max:
            self.commit()
        return len(self.events) - 1

    def commit(self) -> None:
        if self.committed == len(self.events):
            return
        body = build_segment(self.committed, self.events[self.committed :])
        self.last_hash = segment_hash(self.last_hash, body)
        self.committed = len(self.events)


def _run(path: Path, backend: str, actions: list[object], records_per_commit_max: int) -> Model:
    model = Model(records_per_commit_max)

    def reopen() -> Journal:
        return open_journal(
            path, backend=backend, writable=True, records_per_commit_max=records_per_commit_max
        )

    journal = reopen()
    try:
        for action in actions:
            if action == COMMIT:
                journal.commit()
                model.commit()
            elif action == REOPEN:
                journal.close()
                model.commit()
                journal = reopen()
                assert journal.tail_repair is None
            else:
                assert isinstance(action, Event)
                assert journal.append(action) == model.append(action)
            assert len(journal) == model.committed
            assert journal.next_seq == len(model.events)
            assert journal.last_hash == model.last_hash
    finally:
        journal.close()
    model.commit()  # close commits
    return model


def _check_read_back(path: Path, backend: str, model: Model) -> None:
    with open_journal(path, backend=backend) as journal:
        assert journal.tail_repair is None
        assert len(journal) == len(model.events)
        assert list(journal.events()) == list(enumerate(model.events))
        result = journal.verify()
        assert result.ok, result
        assert result.records == len(model.events)
        assert result.last_hash == model.last_hash
        assert journal.last_hash == model.last_hash
        count = len(model.events)
        for start in sorted({0, count // 3, count // 2, max(0, count - 1), count}):
            assert [seq for seq, _ in journal.events(start)] == list(range(start, count))
        for seq in range(0, count, max(1, count // 5)):
            assert journal.record(seq).event() == model.events[seq]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=ACTIONS, records_per_commit_max=st.integers(min_value=1, max_value=6))
def test_any_commit_points_round_trip_and_verify(actions: list[object], records_per_commit_max: int) -> None:
    hashes = {}
    with tempfile.TemporaryDirectory() as directory:
        for backend, name in JOURNAL_FILE.items():
            path = Path(directory) / name
            model = _run(path, backend, actions, records_per_commit_max)
            _check_read_back(path, backend, model)
            hashes[backend] = model.last_hash
    assert hashes["lmdb"] == hashes["sqlite"]
