"""The cockpit's marks for a queued run (``tape paper`` / ``tape live``): its data set holds only
the history, so the live rows come from the journaled bars and clock steps, and a perpetual is
valued at the venue's mark in effect (``market.mark_price_received.v1``). At every day close
the day tape's NAV (``tui.daytape``, marked with ``cli.cockpit_cmd``'s marks) is the journaled
NAV, with marks and without. Constructed data (``tests.factories.make_perp_dataset``): a
120-bar history, and the live bars of the rows after it from a 240-bar walk of the same seed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.cockpit_cmd import cockpit_sources
from cli.wiring import make_strategies, replay_builder
from domain.events import DayClosed, InstrumentsDefined, MarkPriceReceived
from domain.market import Panel
from kernel.loop import Kernel, KernelError
from kernel.replay import replay
from kernel.store import open_journal
from kernel.stream import QueueSource
from lake.store import dataset_ref, load_panel
from sim.backtest import PaperConfig, build_setup, journal_inputs
from sim.queued import bars_at
from tests.factories import XRP_PERP, make_config, make_perp_dataset
from tui.daytape import read_day_tape

HISTORY = 120  # bars in the data set; the run's live steps are the walk's rows after them
PREMIUM = 37  # a mark sits this many ticks above its bar's close
LATE_PREMIUM = -53  # a mark published before the previous step, arriving after it ran
SKIPPED = (150, 170)  # rows whose bars never come: the clock passes 150, 171's bars pass 170
BAD_ROW = 160  # a mark of zero arrives before this row (refused, BAD_MARK)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Panel]:
    root = tmp_path_factory.mktemp("perp")
    history = make_perp_dataset(root / "history", bars=HISTORY)
    walk, _ = load_panel(make_perp_dataset(root / "walk", bars=240))
    return history, walk


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mark(walk: Panel, ts_ns: int, row: int, premium: int) -> MarkPriceReceived:
    return MarkPriceReceived(
        ts_ns=ts_ns,
        received_ns=int(walk.ts_ns[row]),
        instrument_id=XRP_PERP.instrument_id,
        mark_px_raw=int(walk.close[row, 0]) + premium,
    )


def _session(history: Path, walk: Panel, journal: Path, *, marks: bool) -> None:
    """A paper session on the sim venue: each live row's bars through a queue source journaling
    them; with ``marks``, each row's mark first (published just before its bar closes), at a
    day's first row a late mark after it, and before ``BAD_ROW`` a mark of zero, refused."""
    config = make_config(
        history, journal, currency="USDT", initial_cash="10000",
        params={"fast": 3, "slow": 8, "weight": 0.8, "short_weight": 0.8},
        paper=PaperConfig(start=_iso(int(walk.ts_ns[HISTORY])), end=_iso(int(walk.ts_ns[-1]))),
    )  # fmt: skip
    setup = build_setup(config, make_strategies(config))
    assert setup.queued
    assert setup.start_step == HISTORY
    assert setup.panel.ts_ns[HISTORY:].tolist() == walk.ts_ns[HISTORY:].tolist()
    store = open_journal(journal, writable=True)
    journal_inputs(store, config, dataset_ref(history), setup.panel)
    kernel = Kernel(setup, store, arrived=setup.start_step)
    kernel.begin()
    source = QueueSource(kernel, journal=store, name="test-feed")
    for row in range(HISTORY, walk.steps):
        ts = int(walk.ts_ns[row])
        if marks:
            assert source.mark(_mark(walk, ts - 1_000_000, row, PREMIUM)) == row
        if marks and walk.day[row] != walk.day[row - 1]:  # its time is the previous day's close
            late = _mark(walk, int(walk.ts_ns[row - 1]) - 1_000_000, row - 1, LATE_PREMIUM)
            # the previous step ran: in effect from this one (before the first live row, no step
            # has run: at its time's step, a history row, with the row's own mark after it)
            assert source.mark(late) == (row if row > HISTORY else row - 1)
        if marks and row == BAD_ROW:
            with pytest.raises(KernelError, match="positive") as refused:
                source.mark(_mark(walk, ts - 1_000, row, -int(walk.close[row, 0])))
            source.refuse(ts, "BAD_MARK", str(refused.value))
        if row == SKIPPED[0]:
            assert source.pass_time(ts) == 1
        elif row != SKIPPED[1]:
            bars = bars_at(walk, row)
            assert bars is not None
            assert source.push(bars)
    kernel.finish()
    store.commit()
    store.close()


@pytest.mark.parametrize("marks", [False, True], ids=["closes", "marks"])
def test_the_day_tape_of_a_queued_run_closes_each_day_at_the_journaled_nav(
    data: tuple[Path, Panel], tmp_path: Path, marks: bool
) -> None:
    history, walk = data
    journal = tmp_path / "journal"
    _session(history, walk, journal, marks=marks)
    with open_journal(journal) as handle:
        assert replay(handle, replay_builder).ok  # the session is one the kernel re-derives
        cockpit_marks = cockpit_sources(journal).marks(handle)  # type: ignore[misc]
        events = dict(handle.events())
        instruments = {i.instrument_id: i for e in events.values() if isinstance(e, InstrumentsDefined)
                       for i in e.instruments}  # fmt: skip
        day_closes = [(seq, e) for seq, e in events.items() if isinstance(e, DayClosed)]
        assert len(day_closes) >= 5
        assert min(close.step for _, close in day_closes) >= HISTORY  # every close is a live day's
        held = 0
        for seq, close in day_closes:
            tape = read_day_tape(handle, close.day, instruments, "USDT")
            index = tape.index_of(seq)
            assert index is not None
            prices = tape.prices_at(index, cockpit_marks)
            assert prices is not None
            book = tape.book_at(index)
            assert tape.nav_minor(book, prices) == close.nav_minor, close.day
            held += bool(book.quantities)
            assert close.step not in SKIPPED
            close_px = int(walk.close[close.step, 0])  # the live bar's, not the history's last
            assert prices[XRP_PERP.instrument_id] == close_px + (PREMIUM if marks else 0)
        assert held >= 3  # days that closed holding the perpetual
