"""A venue's mark prices as journaled inputs (``market.mark_price_received.v1``): a perpetual is
valued at the newest mark in effect (NAV, day close, gross exposure), from the first step at or
after the mark's time not yet run; sizing keeps the bars; marks the kernel cannot take are
refused with a reason; a run with marks replays bit for bit, whole, by day (marks journaled
before the day still value it) and when resumed from a cut-short journal. Constructed data
(``tests.factories.make_perp_dataset``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli.wiring import make_strategies, replay_builder
from domain.events import DayClosed, MarkPriceReceived, OrderFilled
from domain.fixed import Rounding
from domain.instruments import notional_minor
from kernel.loop import Kernel, KernelError
from kernel.marks import MarkHistory, Marks
from kernel.replay import replay, resume
from kernel.store import open_journal
from kernel.stream import QueueSource
from lake.store import dataset_ref, load_panel
from sim.backtest import build_setup, journal_inputs
from sim.queued import bars_at
from tests.factories import XRP_PERP, ListSink, make_config, make_dataset, make_perp_dataset

PREMIUM = 37  # the constructed marks sit this many ticks above the bar's close


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_perp_dataset(tmp_path_factory.mktemp("perp") / "data", bars=240)


def _config(data: Path, journal: Path) -> object:
    return make_config(
        data, journal, currency="USDT", initial_cash="10000",
        params={"fast": 3, "slow": 8, "weight": 0.8, "short_weight": 0.8},
    )  # fmt: skip


def _queued(data: Path, journal: Path) -> tuple[Kernel, QueueSource, object]:
    config = _config(data, journal)
    setup = build_setup(config, make_strategies(config), queued=True)  # type: ignore[arg-type]
    store = open_journal(journal, writable=True)
    journal_inputs(store, config, dataset_ref(data), setup.panel)  # type: ignore[arg-type]
    kernel = Kernel(setup, store, arrived=setup.start_step)
    kernel.begin()
    return kernel, QueueSource(kernel, journal=store, name="test-feed"), store


def _mark(panel: object, row: int) -> MarkPriceReceived:
    """The mark published just before row ``row``'s bar closes: its close plus the premium."""
    return MarkPriceReceived(
        ts_ns=int(panel.ts_ns[row]) - 1_000_000,  # type: ignore[attr-defined]
        received_ns=int(panel.ts_ns[row]),  # type: ignore[attr-defined]
        instrument_id=XRP_PERP.instrument_id,
        mark_px_raw=int(panel.close[row, 0]) + PREMIUM,  # type: ignore[attr-defined]
    )


def _run(data: Path, journal: Path, *, marks_from: int | None, stop_at: int | None = None) -> list[object]:
    """Every row's bars through a queue source; from ``marks_from`` on, each row's mark first
    (none with None). Stops (unfinished, committed) before ``stop_at``."""
    panel, _ = load_panel(data)
    kernel, source, store = _queued(data, journal)
    for row in range(panel.steps if stop_at is None else stop_at):
        if marks_from is not None and row >= marks_from:
            assert source.mark(_mark(panel, row)) == row
        bars = bars_at(panel, row)
        assert bars is not None
        source.push(bars)
    if stop_at is None:
        kernel.finish()
    store.commit()
    events = [event for _, event in store.events()]
    store.close()
    return events


def _held(events: list[object], up_to_ts: int) -> int:
    qty = 0
    for event in events:
        if isinstance(event, OrderFilled) and event.ts_ns <= up_to_ts:
            qty += event.side * event.fill_qty_raw
    return qty


def test_marks_fold_to_the_newest_at_or_before_the_step() -> None:
    marks = Marks()
    assert not marks.active and marks.at(0) == {}
    marks.add(3, 1, 100)
    marks.add(5, 1, 105)
    marks.add(5, 1, 106)  # the later of the same step wins
    marks.add(4, 2, 50)
    assert marks.active
    assert marks.at(2) == {}
    assert marks.at(3) == {1: 100}
    assert marks.at(4) == {1: 100, 2: 50}
    assert marks.at(9) == {1: 106, 2: 50}
    with pytest.raises(ValueError, match="positive"):
        marks.add(10, 1, 0)


def test_a_mark_history_looks_up_at_any_step_what_the_kernel_folded_there() -> None:
    """A reader's ``MarkHistory`` (the cockpit's day tape, in any order) gives at each step what
    the kernel's ``Marks`` gave when it valued the step: marks are scheduled, as the kernel does,
    only at steps not yet valued, some far ahead and several at one step (seeded)."""
    rng = np.random.default_rng(11)
    marks, history = Marks(), MarkHistory()
    folded = []
    for step in range(300):  # the kernel's next step: marks arrive, then the step is valued
        for _ in range(int(rng.integers(0, 4))):
            at = step + int(rng.choice([0, 0, 1, 3, 40]))
            iid, px = int(rng.integers(1, 4)), int(rng.integers(1, 1_000))
            marks.add(at, iid, px)
            history.add(at, iid, px)
        folded.append(dict(marks.at(step)))
    assert len(history) > 300
    assert any(folded[step] != folded[step - 1] for step in range(1, 300))
    for step in rng.permutation(300).tolist():
        assert history.at(step) == folded[step], step
    with pytest.raises(ValueError, match="positive"):
        history.add(10, 1, 0)


def test_day_closes_value_the_perpetual_at_the_mark_in_effect(data: Path, tmp_path: Path) -> None:
    """Each day close's NAV is the cash plus the position's notional at the mark in effect, not
    at the bar's close; without marks it is at the close."""
    panel, _ = load_panel(data)
    for marks_from, premium in ((None, 0), (0, PREMIUM)):
        events = _run(data, tmp_path / f"j{marks_from}", marks_from=marks_from)
        days = [e for e in events if isinstance(e, DayClosed)]
        assert len(days) >= 9
        held_days = 0
        for day in days:
            qty = _held(events, day.ts_ns)
            close = int(panel.close[day.step, 0])
            value = notional_minor(XRP_PERP, qty, close + premium, Rounding.HALF_EVEN)
            assert day.nav_minor == day.cash_minor + value
            assert day.gross_exposure_minor == abs(value)
            held_days += qty != 0
        assert held_days >= 3  # days that closed holding a position (long or short)


def test_a_run_with_marks_replays_whole_by_day_and_resumed(data: Path, tmp_path: Path) -> None:
    """Marks only on the first day: a replay of a later day starts from that day's snapshot
    (which holds no mark) and must still value at the first day's last mark; a journal cut
    short mid-run resumes to the uninterrupted run's records."""
    panel, _ = load_panel(data)
    journal = tmp_path / "j"
    day_one = [row for row in range(panel.steps) if int(panel.day[row]) == int(panel.day[0])]
    # marks on the first day only, fed as _run does, then bars alone
    kernel, source, store = _queued(data, journal)
    for row in range(panel.steps):
        if row in day_one:
            source.mark(_mark(panel, row))
        source.push(bars_at(panel, row))  # type: ignore[arg-type]
    kernel.finish()
    store.commit()
    store.close()
    days = sorted({int(d) for d in panel.day.tolist()})
    with open_journal(journal) as j:
        assert replay(j, replay_builder).ok
        for day in days[1:4]:
            outcome = replay(j, replay_builder, day=day)
            assert outcome.ok, (day, outcome.divergence)
        closes = [e for _, e in j.events() if isinstance(e, DayClosed)]
    last_mark = int(panel.close[day_one[-1], 0]) + PREMIUM
    later = [e for e in closes if e.day != days[0]]
    with open_journal(journal) as j:
        events = [e for _, e in j.events()]
    held = [(e, _held(events, e.ts_ns)) for e in later]
    assert any(qty for _, qty in held)
    for close, qty in held:  # the day-one mark still values the position on later days
        value = notional_minor(XRP_PERP, qty, last_mark, Rounding.HALF_EVEN)
        assert close.nav_minor == close.cash_minor + value

    # Resume: the same inputs cut short at row 150, carried on to the end.
    whole = _run(data, tmp_path / "whole", marks_from=20)
    _run(data, tmp_path / "cut", marks_from=20, stop_at=150)
    with open_journal(tmp_path / "cut", writable=True) as j:
        resumed = resume(j, replay_builder, source_name="test-feed")
        source = resumed.source
        assert source.next_row == 150
        for row in range(150, panel.steps):
            source.mark(_mark(panel, row))
            source.push(bars_at(panel, row))  # type: ignore[arg-type]
        resumed.kernel.finish()
        j.commit()
        assert [e for _, e in j.events()][1:] == whole[1:]  # all but RunStarted (its journal path)
        assert replay(j, replay_builder).ok


def test_marks_the_kernel_cannot_take_are_refused(data: Path, tmp_path: Path) -> None:
    panel, _ = load_panel(data)
    _kernel, source, store = _queued(data, tmp_path / "j")
    last = int(panel.ts_ns[-1])
    cases = [
        (
            MarkPriceReceived(ts_ns=last + 1, received_ns=0, instrument_id=1, mark_px_raw=10_000),
            "after the run",
        ),
        (MarkPriceReceived(ts_ns=0, received_ns=0, instrument_id=99, mark_px_raw=10_000), "does not hold"),
        (MarkPriceReceived(ts_ns=0, received_ns=0, instrument_id=1, mark_px_raw=0), "positive"),
    ]
    for mark, words in cases:
        with pytest.raises(KernelError, match=words):
            source.mark(mark)
    store.close()


def test_a_mark_for_an_instrument_that_is_not_a_perpetual_is_refused(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "spot", seed=5, symbols=1, bars=40)
    config = make_config(data, tmp_path / "j")
    setup = build_setup(config, make_strategies(config), queued=True)
    kernel = Kernel(setup, ListSink(), arrived=setup.start_step)
    iid = setup.panel.instruments[0].instrument_id
    with pytest.raises(KernelError, match="not a perpetual"):
        kernel.add_mark(0, iid, 10_000)
