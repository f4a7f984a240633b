"""``kernel.marks.Marks`` and ``venues.mark_feed.MarkFeed`` for random arrivals: the mark in
effect at a step is always the newest scheduled at or before it (whatever order the steps were
scheduled in, however often it was asked; a reader's ``MarkHistory`` too, asked in any order),
and the feed journals at most one mark per instrument and step, newest first, with every mark in
exactly one count."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.marks import MarkHistory, Marks
from venues.ccxt_venue import VenueMark
from venues.mark_feed import MarkFeed

adds = st.lists(
    st.tuples(st.integers(0, 30), st.integers(1, 3), st.integers(1, 10**9)), min_size=0, max_size=40
)


@settings(max_examples=200, deadline=None)
@given(adds, st.lists(st.integers(0, 35), min_size=1, max_size=10))
def test_the_mark_in_effect_is_the_newest_scheduled_at_or_before_the_step(
    scheduled: list[tuple[int, int, int]], asked: list[int]
) -> None:
    marks = Marks()
    for step, iid, price in scheduled:
        marks.add(step, iid, price)
    for step in sorted(asked):  # the kernel values steps in increasing order
        by_step = sorted(scheduled, key=lambda add: add[0])  # by step, then in the order added
        expected = {iid: price for s, iid, price in by_step if s <= step}
        assert marks.at(step) == expected


@settings(max_examples=200, deadline=None)
@given(adds, st.lists(st.integers(0, 35), min_size=1, max_size=10))
def test_a_mark_history_gives_the_newest_scheduled_at_or_before_any_step_asked_in_any_order(
    scheduled: list[tuple[int, int, int]], asked: list[int]
) -> None:
    history = MarkHistory()
    for step, iid, price in scheduled:
        history.add(step, iid, price)
    assert len(history) == len(scheduled)
    by_step = sorted(scheduled, key=lambda add: add[0])  # by step, then in the order added
    for step in asked:  # a reader steps back and forth
        assert history.at(step) == {iid: price for s, iid, price in by_step if s <= step}


arrivals = st.lists(
    st.tuples(st.integers(1, 2), st.integers(0, 50), st.integers(1, 10**6)), min_size=0, max_size=60
)


@settings(max_examples=200, deadline=None)
@given(arrivals, st.lists(st.integers(0, 60), min_size=1, max_size=8))
def test_the_feed_journals_the_newest_mark_once_and_counts_every_one(
    marks: list[tuple[int, int, int]], steps: list[int]
) -> None:
    feed = MarkFeed([1, 2], lambda: 0)
    journaled: list[tuple[int, int, int]] = []
    cut = sorted(steps)
    chunk = max(1, len(marks) // len(cut))
    for index, up_to in enumerate(cut):
        arriving = (
            marks[index * chunk : (index + 1) * chunk] if index < len(cut) - 1 else marks[index * chunk :]
        )
        for iid, ms, raw in arriving:
            feed.take(VenueMark(instrument_id=iid, ts_ms=ms, mark_raw=raw))
        for mark in feed.due(up_to * 1_000_000):
            assert mark.ts_ns <= up_to * 1_000_000
            journaled.append((mark.instrument_id, mark.ts_ns, mark.mark_px_raw))
    counts = feed.counts
    assert counts.received == len(marks)
    assert counts.received == counts.journaled + counts.superseded + counts.stale + feed.pending
    assert counts.journaled == len(journaled)
    for iid in (1, 2):
        times = [ts for i, ts, _ in journaled if i == iid]
        assert times == sorted(set(times))  # strictly increasing: never twice, never backwards
