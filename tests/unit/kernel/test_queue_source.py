"""The queue source refuses bad inputs with a reason and loses nothing (received = accepted +
quarantined), passes steps that got no bar when the clock moves on, applies operator commands
that arrive while running at the next step, and refuses what it does not drive yet."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import pytest

from cli.wiring import make_strategies, replay_builder
from domain.events import (
    INPUT_KINDS,
    BarsReceived,
    CommandReceived,
    InputQuarantined,
    KillSwitchTripped,
    OperatorCommanded,
    OrderSubmitted,
    event_kind,
)
from kernel.loop import Kernel, KernelError
from kernel.replay import replay
from kernel.router import ExecutionConfig
from kernel.store import open_journal
from kernel.stream import QueueSource, refused_bars
from lake.store import dataset_ref, load_panel
from sim.backtest import build_setup, journal_inputs
from sim.queued import bars_at
from tests.factories import ListSink, make_config, make_dataset, run

DAY_NS = 86_400 * 10**9


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", seed=11, symbols=2, bars=120)


def _queued(data: Path, journal: Path, **fields: object) -> tuple[Kernel, QueueSource, object]:
    config = make_config(data, journal, **fields)
    setup = build_setup(config, make_strategies(config), queued=True)
    store = open_journal(journal, writable=True)
    journal_inputs(store, config, dataset_ref(data), setup.panel)
    kernel = Kernel(setup, store, arrived=setup.start_step)
    kernel.begin()
    return kernel, QueueSource(kernel, journal=store, name="test-feed"), store


def test_bad_inputs_are_quarantined_with_reasons_and_counted(data: Path, tmp_path: Path) -> None:
    clean = run(make_config(data, tmp_path / "clean"))
    full, _ = load_panel(data)
    kernel, source, store = _queued(data, tmp_path / "j")
    first = bars_at(full, 0)
    assert first is not None
    assert source.push(first)
    assert not source.push(first)  # the same step again
    assert not source.push(msgspec.structs.replace(first, ts_ns=first.ts_ns + 1))  # off the grid
    bars = [bars_at(full, row) for row in range(1, full.steps)]
    for index, step in enumerate(bars):
        assert step is not None
        if index == 10:  # one bad bar among good ones: only it is refused
            bad = msgspec.structs.replace(step, low_raw=[step.high_raw[0] + 1, *step.low_raw[1:]])
            source.push(bad)
            continue
        if index == 21:  # an unknown instrument id in place of the first name's
            source.push(msgspec.structs.replace(step, instrument_ids=[999, *step.instrument_ids[1:]]))
            continue
        source.push(step)
        if index == 20:
            assert not source.push(bars[5])  # type: ignore[arg-type]  # late: out of order
    kernel.finish()
    store.commit()
    counts = source.counts
    assert counts.balanced
    assert counts.quarantined == Counter(
        {"DUPLICATE": len(first.instrument_ids), "OFF_GRID": len(first.instrument_ids),
         "OUT_OF_ORDER": len(bars[5].instrument_ids), "BAD_BAR": 1, "UNKNOWN_INSTRUMENT": 1}  # type: ignore[union-attr]
    )  # fmt: skip
    events = [event for _, event in store.events()]
    quarantined = [e for e in events if isinstance(e, InputQuarantined)]
    assert Counter(e.reason for e in quarantined) == Counter(
        {"DUPLICATE": 1, "OFF_GRID": 1, "OUT_OF_ORDER": 1, "BAD_BAR": 1, "UNKNOWN_INSTRUMENT": 1}
    )
    assert all(e.source == "test-feed" and e.detail for e in quarantined)
    # Each record says how many bars it refused (a whole step: "2 bars: ..."), so a resumed
    # session counts them again exactly (kernel.replay.resume).
    assert sum(refused_bars(e) for e in quarantined) == sum(counts.quarantined.values())
    received = [e for e in events if isinstance(e, BarsReceived)]
    assert sum(len(e.instrument_ids) for e in received) == counts.accepted
    assert replay(store, replay_builder).ok
    store.close()
    # Before the bad bar's step the refused inputs changed nothing: the run is the clean one.
    with open_journal(tmp_path / "clean") as journal:
        clean_events = [e for _, e in journal.events() if event_kind(e) not in INPUT_KINDS]
    derived = [e for e in events if event_kind(e) not in INPUT_KINDS]
    cut = int(full.ts_ns[11])
    before = [e for e in derived if e.ts_ns < cut]
    assert len(before) > 20 and before == [e for e in clean_events if e.ts_ns < cut]
    assert clean.records > len(before)


def test_steps_without_bars_pass_when_the_clock_moves_on(data: Path, tmp_path: Path) -> None:
    """A session whose bars never came still closes (DayClosed) once the clock passes it; the
    journal says so (ClockAdvanced) and replays."""
    full, _ = load_panel(data)
    kernel, source, store = _queued(data, tmp_path / "j")
    for row in range(0, 40):
        bars = bars_at(full, row)
        assert bars is not None
        source.push(bars)
    passed = source.pass_time(int(full.ts_ns[44]) + DAY_NS // 2)
    assert passed == 5 and source.next_row == 45
    assert source.pass_time(int(full.ts_ns[44])) == 0  # the clock does not pass a step twice
    for row in range(45, full.steps):
        bars = bars_at(full, row)
        assert bars is not None
        source.push(bars)
    kernel.finish()
    store.commit()
    events = [event for _, event in store.events()]
    closes = [e.day for e in events if event_kind(e) == "day.closed.v1"]
    assert len(closes) == full.steps
    assert source.counts.empty_steps == 5
    assert sum(1 for e in events if event_kind(e) == "clock.advanced.v1") == 1
    outcome = replay(store, replay_builder)
    assert outcome.ok, outcome.divergence
    day = int(full.day[42])
    assert replay(store, replay_builder, day=day).ok
    store.close()


def test_an_operator_command_arriving_mid_run_applies_at_the_next_step(data: Path, tmp_path: Path) -> None:
    full, _ = load_panel(data)
    kernel, source, store = _queued(data, tmp_path / "j")
    for row in range(0, 60):
        bars = bars_at(full, row)
        assert bars is not None
        source.push(bars)
    late = int(full.ts_ns[30])  # stamped long before it reached the run: applied at step 60
    step = source.command(CommandReceived(ts_ns=late, command="halt", operator="ops", note="test"))
    assert step == 60
    for row in range(60, full.steps):
        bars = bars_at(full, row)
        assert bars is not None
        source.push(bars)
    kernel.finish()
    store.commit()
    events = [event for _, event in store.events()]
    commanded = [e for e in events if isinstance(e, OperatorCommanded)]
    assert [(e.command, e.ts_ns) for e in commanded] == [("halt", int(full.ts_ns[60]))]
    tripped = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert tripped and tripped[0].trigger == "operator"
    late_orders = [e for e in events if isinstance(e, OrderSubmitted) and e.ts_ns > int(full.ts_ns[60])]
    assert not [e for e in late_orders if e.side > 0]  # halted: sells may reduce risk, no buys
    assert replay(store, replay_builder).ok
    assert replay(store, replay_builder, day=int(full.day[70])).ok
    store.close()


def test_a_command_after_the_last_step_is_refused_counted_and_replays(data: Path, tmp_path: Path) -> None:
    """A command that comes when every step has run (a reconciliation's halt at a session's end,
    an operator's late line): journaled as it arrived, refused as ``LATE_COMMAND`` the way the
    session's pump refuses it, and a replay of the journal does the same."""
    full, _ = load_panel(data)
    kernel, source, store = _queued(data, tmp_path / "j")
    for row in range(full.steps):
        bars = bars_at(full, row)
        assert bars is not None
        source.push(bars)
    after = int(full.ts_ns[-1]) + DAY_NS
    with pytest.raises(KernelError, match="after the data's end"):
        source.command(CommandReceived(ts_ns=after, command="halt", operator="reconciliation", note="end"))
    source.refuse(after, "LATE_COMMAND", "after the data's end")
    kernel.finish()
    store.commit()
    events = [event for _, event in store.events()]
    assert not [e for e in events if isinstance(e, OperatorCommanded)]
    assert [e.reason for e in events if isinstance(e, InputQuarantined)] == ["LATE_COMMAND"]
    outcome = replay(store, replay_builder)
    assert outcome.ok, outcome.divergence
    assert replay(store, replay_builder, day=int(full.day[-1])).ok
    store.close()


def test_rows_must_arrive_in_order_and_unsupported_setups_are_refused(data: Path, tmp_path: Path) -> None:
    config = make_config(data, tmp_path / "j")
    setup = build_setup(config, make_strategies(config), queued=True)
    kernel = Kernel(setup, ListSink(), arrived=0)
    with pytest.raises(KernelError, match="out of order"):
        kernel.rows_arrived(5, 6)
    twap = make_config(data, tmp_path / "k", execution=ExecutionConfig(algo="twap", window_steps=5))
    setup = build_setup(twap, make_strategies(twap), queued=True)
    with pytest.raises(KernelError, match="execution algorithm on rows arriving one at a time"):
        Kernel(setup, ListSink(), arrived=0)
