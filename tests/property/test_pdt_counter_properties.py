"""The PDT day-trade counter over random fill sequences: counts are never negative, a snapshot
round-trips, and the counts match a brute-force recount that reads each session's executions as
a string of opening (O) and closing (C) letters and counts the O-runs followed by a C-run."""

from __future__ import annotations

import re

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import KernelSnapshot
from domain.markets import DayTradeBook, DayTradeRecord, PdtRule, pdt_window, record_fill, window_counts
from kernel.state import KernelState

DAYS = (20240102, 20240103, 20240104, 20240105, 20240108, 20240109, 20240110, 20240111)
RULE = PdtRule()

fill = st.tuples(st.integers(1, 3), st.sampled_from((1, -1)), st.integers(1, 300))
session = st.lists(fill, max_size=12)
start_positions = st.fixed_dictionaries({iid: st.integers(-200, 200) for iid in (1, 2, 3)})


def _brute(
    history: list[tuple[int, int, int, int]], start: dict[int, int]
) -> dict[tuple[int, int], tuple[int, int]]:
    """(day, iid) -> (day_trades, trades), recounted from the whole history."""
    position = dict(start)
    letters: dict[tuple[int, int], list[str]] = {}
    for day, iid, side, qty in history:
        before = position[iid]
        after = before + side * qty
        tags = letters.setdefault((day, iid), [])
        if before != 0 and (after == 0 or (after > 0) != (before > 0) or abs(after) < abs(before)):
            tags.append("C")
        if after != 0 and (before == 0 or (after > 0) != (before > 0) or abs(after) > abs(before)):
            tags.append("O")
        tags.append("|")  # execution boundary
        position[iid] = after
    counts = {}
    for key, tags in letters.items():
        collapsed = re.sub(r"(.)\1+", r"\1", "".join(t for t in tags if t != "|"))
        counts[key] = (len(re.findall("OC", collapsed)), tags.count("|"))
    return counts


@settings(max_examples=200, deadline=None)
@given(start=start_positions, days=st.lists(session, min_size=1, max_size=len(DAYS)))
def test_counter_matches_brute_force_recount(
    start: dict[int, int], days: list[list[tuple[int, int, int]]]
) -> None:
    book = DayTradeBook()
    position = dict(start)
    history: list[tuple[int, int, int, int]] = []
    for day, fills in zip(DAYS, days, strict=False):
        for iid, side, qty in fills:
            book = record_fill(book, day, iid, position[iid], side, qty)  # no pruning: whole history
            position[iid] += side * qty
            history.append((day, iid, side, qty))
        for record in book.records:
            assert min(record.opening, record.closing, record.trades, record.day_trades) >= 0
            assert record.day_trades <= min(record.opening, record.closing) <= record.trades
    expected = _brute(history, start)
    assert {(r.day, r.instrument_id): (r.day_trades, r.trades) for r in book.records} == expected
    last = DAYS[len(days) - 1]
    window = pdt_window(RULE, last)
    assert window_counts(book, window) == (
        sum(v[0] for k, v in expected.items() if k[0] in window),
        sum(v[1] for k, v in expected.items() if k[0] in window),
    )


@settings(max_examples=100, deadline=None)
@given(start=start_positions, days=st.lists(session, min_size=1, max_size=len(DAYS)))
def test_pruned_book_keeps_the_window_and_snapshots(
    start: dict[int, int], days: list[list[tuple[int, int, int]]]
) -> None:
    full = pruned = DayTradeBook()
    position = dict(start)
    for day, fills in zip(DAYS, days, strict=False):
        window = pdt_window(RULE, day)
        for iid, side, qty in fills:
            full = record_fill(full, day, iid, position[iid], side, qty)
            pruned = record_fill(pruned, day, iid, position[iid], side, qty, keep_from=window[0])
            position[iid] += side * qty
        if fills:
            assert window_counts(pruned, window) == window_counts(full, window)
            assert all(r.day >= window[0] for r in pruned.records)
    state = KernelState("USD")
    state.day_trades = pruned
    encoded = msgspec.json.encode(state.snapshot())
    restored = KernelState.restore(msgspec.json.decode(encoded, type=KernelSnapshot), "USD")
    assert restored.day_trades == pruned
    if not pruned.records:
        assert b"day_trades" not in encoded  # an unused counter adds no bytes
    assert all(isinstance(r, DayTradeRecord) for r in restored.day_trades.records)
