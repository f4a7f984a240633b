"""The step assembler: a step goes to the kernel when every instrument's bar is final, or when
the clock has passed its close by the grace; bars for a step already gone come back to be
quarantined, never dropped; the venue's clock waits for its slowest stream."""

from __future__ import annotations

import numpy as np
import pytest

from domain.market import Panel, PanelError
from lake.sessions import step_grid
from tests.factories import SPDB
from venues.bar_feed import StepAssembler
from venues.ccxt_venue import VenueBar

MIN_NS = 60 * 10**9
GRID = [minute * MIN_NS for minute in range(1, 60)]  # a 1m grid: every minute's close


def _bar(iid: int, open_min: int, close: int = 100) -> VenueBar:
    return VenueBar(
        instrument_id=iid, open_ms=open_min * 60_000, open_raw=close, high_raw=close + 1,
        low_raw=close - 1, close_raw=close, volume_raw=5,
    )  # fmt: skip


def test_closed_bars_go_when_every_instrument_has_one() -> None:
    feed = StepAssembler([1, 2], MIN_NS, 30 * 10**9, closed_bars=True, grid_ns=GRID)
    feed.add(_bar(1, 0))
    assert feed.due(MIN_NS) == []  # instrument 2 has not sent yet; grace not over
    feed.add(_bar(2, 0, 200))
    (step,) = feed.due(MIN_NS + 1)
    assert (step.ts_ns, step.instrument_ids, step.close_raw, step.received_ns) == (
        MIN_NS,
        [1, 2],
        [100, 200],
        MIN_NS + 1,
    )


def test_an_incomplete_step_goes_after_the_grace_and_a_late_bar_comes_back() -> None:
    feed = StepAssembler([1, 2], MIN_NS, 30 * 10**9, closed_bars=True, grid_ns=GRID)
    feed.add(_bar(1, 0))
    assert feed.due(MIN_NS + 29 * 10**9) == []
    (step,) = feed.due(MIN_NS + 30 * 10**9)
    assert step.instrument_ids == [1]
    feed.add(_bar(2, 0))  # too late: handed over again for the source to quarantine
    (late,) = feed.due(MIN_NS + 31 * 10**9)
    assert (late.ts_ns, late.instrument_ids) == (MIN_NS, [2])
    assert feed.received == 2


def test_open_bars_are_final_when_the_next_one_starts() -> None:
    feed = StepAssembler([1], MIN_NS, 10 * MIN_NS, closed_bars=False, grid_ns=GRID)
    feed.add(_bar(1, 0, 100))
    feed.add(_bar(1, 0, 101))  # the same bar, updated while open: the latest counts
    assert feed.due(MIN_NS + 1) == []  # closed by the clock, but its final update may be coming
    feed.add(_bar(1, 1, 102))
    (step,) = feed.due(MIN_NS + 2)
    assert step.close_raw == [101]


def test_the_venue_clock_waits_for_the_slowest_stream() -> None:
    feed = StepAssembler([1, 2], MIN_NS, 0, closed_bars=True, grid_ns=GRID)
    assert feed.venue_clock() == 0
    feed.add(_bar(1, 0))
    feed.add(_bar(1, 1))
    feed.add(_bar(1, 2))
    feed.add(_bar(2, 0))
    assert feed.venue_clock() == MIN_NS  # stream 2 is behind: its next bars are not late yet
    assert [s.ts_ns for s in feed.due(feed.venue_clock())] == [MIN_NS]


def test_the_live_grid_follows_the_calendar() -> None:
    day = 86_400 * 10**9
    start = 1_733_364_000 * 10**9  # 2024-12-05 02:00 UTC, 10:00 Shanghai
    ts, days = step_grid("XSHG", "1m", start, start + day)
    shanghai_minutes = (ts // MIN_NS + 8 * 60) % (24 * 60)
    assert not np.any((shanghai_minutes > 11 * 60 + 30) & (shanghai_minutes <= 13 * 60))  # lunch break
    assert set(days.tolist()) == {20241205, 20241206}
    ts, _ = step_grid("24x7", "1h", start + 1, start + 3 * 3_600 * 10**9)
    assert (ts % (3_600 * 10**9) == 0).all() and len(ts) == 3
    year = step_grid("24x7", "1d", 1_609_632_000 * 10**9, (1_609_632_000 + 339 * 86_400) * 10**9)[0]
    assert len(year) == 340  # integer steps: np.arange would size this one step short
    with pytest.raises(ValueError, match="frequency"):
        step_grid("24x7", "7x", start, start + day)


def test_a_panel_grows_only_forward() -> None:
    one = np.ones((1, 1), dtype=np.int64)
    panel = Panel(
        ts_ns=np.array([10], dtype=np.int64), day=np.array([20240101], dtype=np.int64),
        instruments=(SPDB,), open=one, high=one, low=one, close=one, volume=one,
        valid=np.ones((1, 1), dtype=np.bool_), last_close=one,
    )  # fmt: skip
    grown = panel.extended(np.array([20, 30]), np.array([20240102, 20240103]))
    assert grown.steps == 3 and not grown.valid[1:].any() and grown.close[0, 0] == 1
    with pytest.raises(PanelError, match="after the last step"):
        panel.extended(np.array([10]), np.array([20240101]))


def test_every_update_is_counted_handed_over_superseded_or_waiting() -> None:
    """QA: a bar sent twice before its step went (the REST catch-up after a drop and the stream
    both sent it) replaced the first copy uncounted, so a session's summary said "230 updates;
    to the kernel: 206 received" with nothing to account for the 24 between them."""
    feed = StepAssembler([1, 2], MIN_NS, 30 * 10**9, closed_bars=True, grid_ns=GRID)
    feed.add(_bar(1, 0))
    feed.add(_bar(1, 0, 101))  # the same bar again, corrected: the later one stands
    feed.add(_bar(2, 0, 200))
    feed.add(_bar(1, 1))  # the next step's, not complete at the end
    (step,) = feed.due(MIN_NS + 1)
    assert step.close_raw == [101, 200]
    feed.add(_bar(2, 0, 200))  # late: its step went, handed over for the source to quarantine
    assert feed.superseded == 1 and feed.waiting == 2
    handed = len(step.instrument_ids)
    assert feed.received == 5 == handed + feed.superseded + feed.waiting
    (late,) = feed.due(MIN_NS + 2)
    assert late.instrument_ids == [2] and feed.waiting == 1


def test_a_complete_later_step_waits_for_an_earlier_empty_step_inside_its_grace() -> None:
    """QA: with a grace longer than a bar, a venue that sends a newer bar before an older one (a
    reordered stream) made the newer step complete while the older one had no bar yet: the newer
    went, and the older bars, arriving well inside their grace, were handed back as late (the
    source quarantined them OUT_OF_ORDER). Now the newer step waits for the older one."""
    feed = StepAssembler([1, 2], MIN_NS, 5 * MIN_NS, closed_bars=True, grid_ns=GRID)
    feed.add(_bar(1, 1, 110))
    feed.add(_bar(2, 1, 210))  # step 2 min is complete; step 1 min has nothing yet
    assert feed.due(2 * MIN_NS + 1) == []  # step 1 min may still come (grace to 6 min)
    feed.add(_bar(1, 0, 100))
    feed.add(_bar(2, 0, 200))  # the older bars, in time
    steps = feed.due(3 * MIN_NS)
    assert [(s.ts_ns, s.close_raw) for s in steps] == [(MIN_NS, [100, 200]), (2 * MIN_NS, [110, 210])]
    assert feed.waiting == 0 and feed.handed_to == 2 * MIN_NS


def test_an_empty_step_holds_later_steps_only_for_its_grace() -> None:
    """A grid step whose bars never come holds the steps after it until its grace has passed
    (then the source passes it empty); a bar for it after that is late, as before."""
    feed = StepAssembler([1], MIN_NS, 5 * MIN_NS, closed_bars=True, grid_ns=GRID)
    feed.add(_bar(1, 1))
    feed.add(_bar(1, 2))
    assert feed.due(6 * MIN_NS - 1) == []
    assert [s.ts_ns for s in feed.due(6 * MIN_NS)] == [2 * MIN_NS, 3 * MIN_NS]
    feed.add(_bar(1, 0))  # step 1 min, past its grace: handed back for the source to quarantine
    (late,) = feed.due(6 * MIN_NS + 1)
    assert late.ts_ns == MIN_NS


def test_only_the_grids_steps_are_waited_for() -> None:
    """Between two sessions no bar is expected: the next session's first step goes when it is
    complete, although a grace of ten minutes would still cover a step a minute before it. Where
    the grace is longer than the gap, an empty last step of the earlier session still holds it."""
    sessions = [MIN_NS * m for m in (1, 2, 3, 60, 61, 62)]
    feed = StepAssembler([1], MIN_NS, 10 * MIN_NS, closed_bars=True, grid_ns=sessions)
    for minute in (0, 1, 2, 59):
        feed.add(_bar(1, minute))
    assert [s.ts_ns for s in feed.due(60 * MIN_NS)] == [MIN_NS, 2 * MIN_NS, 3 * MIN_NS, 60 * MIN_NS]
    short_gap = [MIN_NS * m for m in (1, 2, 3, 8, 9)]  # step 3 min empty, grace to 13 min
    feed = StepAssembler([1], MIN_NS, 10 * MIN_NS, closed_bars=True, grid_ns=short_gap)
    for minute in (0, 1, 7):
        feed.add(_bar(1, minute))
    assert [s.ts_ns for s in feed.due(8 * MIN_NS)] == [MIN_NS, 2 * MIN_NS]
    feed.add(_bar(1, 2))  # the last bar of the first session, late but inside its grace
    assert [s.ts_ns for s in feed.due(9 * MIN_NS)] == [3 * MIN_NS, 8 * MIN_NS]
    with pytest.raises(ValueError, match="increasing"):
        StepAssembler([1], MIN_NS, 0, closed_bars=True, grid_ns=[2 * MIN_NS, MIN_NS])
