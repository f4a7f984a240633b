"""In-trade risk in the kernel. Volatility targeting scales decisions by the run's own NAV vol.
The kill switch: each trigger fires and the journal says why (with the numbers),
a halted kernel sends only risk-reducing orders, flattening closes the book, an operator re-arms,
and the state survives a restart: whole-run and one-day replays reproduce the journal."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from cli.wiring import replay_builder
from domain.events import (
    DayClosed,
    KillSwitchCommandRefused,
    KillSwitchFlattened,
    KillSwitchRearmed,
    KillSwitchTripped,
    OperatorCommanded,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    ParentCreated,
    ParentDone,
    RiskVerdict,
    StateSnapshotted,
)
from domain.fixed import RATE_SCALE
from domain.market import Panel
from domain.riskrules import KillSwitchConfig, VolTarget, policy_from_mapping
from kernel.loop import KILL_SWITCH_STRATEGY
from kernel.replay import replay
from kernel.router import ExecutionConfig
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import write_dataset
from lake.synth import synth_instruments
from sim.backtest import OperatorCommandConfig, build_setup, run_backtest
from tests.factories import make_config, make_dataset, run
from tests.integration.test_cn_rules_kernel import SPDB, Scripted, _dataset, _ts

LOOSE = policy_from_mapping({"name": {"limit_e8": 100_000_000, "action": "clip"}})


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "daily", symbols=5, bars=300)


def _events(journal_path: Path) -> list[object]:
    journal = open_journal(journal_path)
    assert journal.verify().ok
    outcome = replay(journal, replay_builder)
    assert outcome.ok, outcome.divergence
    return [event for _, event in journal.events()]


def _day_iso(events: list[object], index: int) -> str:
    """An ISO time a little after the close of the ``index``-th session day of the run."""
    closes = [e for e in events if isinstance(e, DayClosed)]
    ts_ns = closes[index].ts_ns + 1_000_000_000
    seconds = ts_ns // 1_000_000_000
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _positions_by_step(events: list[object]) -> list[tuple[int, dict[int, int]]]:
    held: dict[int, int] = {}
    out = []
    for event in events:
        if isinstance(event, OrderFilled):
            held[event.instrument_id] = held.get(event.instrument_id, 0) + event.side * event.fill_qty_raw
            out.append((event.ts_ns, dict(held)))
    return out


def test_operator_halt_allows_only_risk_reducing_orders_and_replays(daily: Path, tmp_path: Path) -> None:
    base = make_config(daily, tmp_path / "base", strategy="momentum", risk=LOOSE)
    base_events = [e for _, e in open_journal(run(base).journal).events()]
    at = _day_iso(base_events, 120)
    config = make_config(
        daily,
        tmp_path / "j",
        strategy="momentum",
        risk=LOOSE,
        operator_commands=[OperatorCommandConfig(at=at, command="halt", operator="ops", note="drill")],
    )
    run(config)
    events = _events(tmp_path / "j")
    (command,) = [e for e in events if isinstance(e, OperatorCommanded)]
    (tripped,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert (tripped.trigger, tripped.flatten) == ("operator", False)
    assert tripped.reason == "operator ops: halt (drill)" and tripped.ts_ns == command.ts_ns
    # After the halt: every strategy order moves its position toward zero, never past it.
    held: dict[int, int] = {}
    for event in events:
        if isinstance(event, OrderFilled):
            held[event.instrument_id] = held.get(event.instrument_id, 0) + event.side * event.fill_qty_raw
        if isinstance(event, OrderSubmitted) and event.ts_ns > tripped.ts_ns:
            current = held.get(event.instrument_id, 0)
            assert current != 0 and event.side == (-1 if current > 0 else 1), event
            assert event.qty_raw <= abs(current)
    gates = [e for e in events if isinstance(e, RiskVerdict) and e.rule == "kill_switch"]
    assert gates and all(g.ts_ns > tripped.ts_ns and "halted" in g.detail for g in gates)
    assert any(g.action == "clip" for g in gates)
    # The halted state is in every later snapshot, so a one-day replay after the trip resumes halted.
    later = [e for e in events if isinstance(e, StateSnapshotted) and e.ts_ns > tripped.ts_ns]
    assert later[0].snapshot.kill_switch is not None and later[0].snapshot.kill_switch.state == "halted"
    journal = open_journal(tmp_path / "j")
    for snap in (later[0], later[len(later) // 2]):
        outcome = replay(journal, replay_builder, day=snap.day)
        assert outcome.ok, outcome.divergence


def test_operator_flatten_closes_the_book_then_rearm_resumes(daily: Path, tmp_path: Path) -> None:
    base = make_config(daily, tmp_path / "base", strategy="momentum", risk=LOOSE)
    base_events = [e for _, e in open_journal(run(base).journal).events()]
    config = make_config(
        daily,
        tmp_path / "j",
        strategy="momentum",
        risk=LOOSE,
        operator_commands=[
            OperatorCommandConfig(at=_day_iso(base_events, 150), command="flatten", operator="ops"),
            OperatorCommandConfig(at=_day_iso(base_events, 160), command="halt", operator="ops"),
            OperatorCommandConfig(at=_day_iso(base_events, 200), command="rearm", operator="ops"),
        ],
    )
    run(config)
    events = _events(tmp_path / "j")
    (tripped,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    (flattened,) = [e for e in events if isinstance(e, KillSwitchFlattened)]
    (refused,) = [e for e in events if isinstance(e, KillSwitchCommandRefused)]
    (rearmed,) = [e for e in events if isinstance(e, KillSwitchRearmed)]
    assert tripped.flatten and tripped.ts_ns < flattened.ts_ns < rearmed.ts_ns
    assert refused.command == "halt" and "halted" in refused.reason  # already halted
    closing = [e for e in events if isinstance(e, OrderSubmitted) and e.strategy_id == KILL_SWITCH_STRATEGY]
    assert closing and all(tripped.ts_ns <= e.ts_ns <= flattened.ts_ns for e in closing)
    book = dict(_positions_by_step([e for e in events if getattr(e, "ts_ns", 0) <= flattened.ts_ns])[-1][1])
    assert all(qty == 0 for qty in book.values())
    # Between flat and re-arm nothing is bought; after re-arm the strategy trades again.
    buys = [e for e in events if isinstance(e, OrderSubmitted) and e.side > 0]
    assert not [e for e in buys if flattened.ts_ns <= e.ts_ns < rearmed.ts_ns]
    assert [e for e in buys if e.ts_ns > rearmed.ts_ns]


@pytest.mark.parametrize("trigger", ["drawdown", "daily_loss"])
def test_nav_triggers_fire_with_their_numbers(daily: Path, tmp_path: Path, trigger: str) -> None:
    kill = (
        KillSwitchConfig(drawdown_max_e8=2_000_000, flatten_on_trip=True)  # 2% from the peak
        if trigger == "drawdown"
        else KillSwitchConfig(daily_loss_max_minor=500_000)  # 5,000.00 in one day
    )
    config = make_config(daily, tmp_path / "j", strategy="momentum", risk=LOOSE, kill_switch=kill)
    run(config)
    events = _events(tmp_path / "j")
    tripped = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert len(tripped) == 1 and tripped[0].trigger == trigger
    event = tripped[0]
    assert event.observed > event.limit
    if trigger == "drawdown":
        # The numbers agree with the journal's own marks: peak NAV so far vs the NAV at the trip.
        marks = [e.nav_minor for e in events if isinstance(e, DayClosed) and e.ts_ns <= event.ts_ns]
        peak = max([1_000_000_00, *marks])
        assert event.limit == 2_000_000
        assert f"of peak {peak}" in event.reason
        assert any(flat.ts_ns >= event.ts_ns for flat in events if isinstance(flat, KillSwitchFlattened))
    else:
        assert event.limit == 500_000 and f"daily loss {event.observed} > 500000" in event.reason
    assert event.observed * RATE_SCALE > 0


def test_consecutive_rejects_trip_the_switch(tmp_path: Path) -> None:
    stamps = [(20240102, t) for t in ("10:00", "10:30", "11:00", "14:00")]
    stamps += [(20240103, t) for t in ("10:00", "10:30", "11:00", "14:00")]
    dataset = _dataset(tmp_path / "data", stamps, [(1000, 1010, 990, 1000)] * 8)
    targets = {0: 0.5, 1: 0.0, 2: 0.0, 4: 0.0}  # two same-session sells: two T+1 rejects
    config = make_config(
        dataset,
        tmp_path / "j",
        strategy="momentum",
        currency="CNY",
        risk=LOOSE,
        kill_switch=KillSwitchConfig(consecutive_rejects_max=2),
    )
    run_backtest(config, Scripted(targets))
    journal = open_journal(tmp_path / "j")
    outcome = replay(
        journal, lambda r, ref: build_setup(config, Scripted(targets), expected_hash=ref.content_hash)
    )
    assert outcome.ok, outcome.divergence
    events = [e for _, e in journal.events()]
    rejects = [e for e in events if isinstance(e, OrderRejected)]
    (tripped,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert len(rejects) == 2 and tripped.ts_ns == rejects[1].ts_ns == _ts(20240102, "11:00")
    assert (tripped.trigger, tripped.limit, tripped.observed) == ("consecutive_rejects", 2, 2)
    assert tripped.reason == "2 consecutive rejects from XSHG (max 2)"
    # Halted: the next session's sell reduces risk and still goes through.
    sells = [e for e in events if isinstance(e, OrderFilled) and e.side < 0]
    assert [e.ts_ns for e in sells] == [_ts(20240103, "10:30")]


def test_a_bad_operator_command_is_a_clear_config_error(daily: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="command must be one of"):
        OperatorCommandConfig(at="2020-03-01T00:00:00Z", command="panic")
    with pytest.raises(ValueError, match="needs a UTC offset"):
        OperatorCommandConfig(at="2020-03-01T00:00:00", command="halt")


def test_vol_targeting_scales_decisions_by_realised_nav_vol(daily: Path, tmp_path: Path) -> None:
    target = VolTarget(target_vol_e8=5_000_000, periods_per_year=365, window=30, min_history=10)
    config = make_config(daily, tmp_path / "j", strategy="momentum", risk=LOOSE, vol_target=target)
    run(config)
    events = _events(tmp_path / "j")
    verdicts = [e for e in events if isinstance(e, RiskVerdict) and e.rule == "vol_target"]
    decided = [e for e in events if type(e).__name__ == "TargetsDecided"]
    assert len(verdicts) == len(decided) > 0
    closes = [e.nav_minor for e in events if isinstance(e, DayClosed)]
    for verdict in verdicts:
        history = [e.nav_minor for e in events if isinstance(e, DayClosed) and e.ts_ns < verdict.ts_ns]
        returns = [b / a - 1.0 for a, b in zip(history[-31:-1], history[-30:], strict=True)]
        if len(returns) < 10:
            assert verdict.detail.startswith("short_history") and verdict.observed_after == RATE_SCALE
            continue
        realised = statistics.stdev(returns) * math.sqrt(365)
        assert verdict.observed == math.floor(realised * RATE_SCALE)
        if verdict.observed == 0:  # all cash so far: the fallback scale (1x)
            assert verdict.detail.startswith("zero_vol") and verdict.observed_after == RATE_SCALE
            continue
        expected = min(max(5_000_000 * RATE_SCALE // verdict.observed, 0), 200_000_000)
        assert verdict.observed_after == expected
    assert closes and any(v.action == "scale" for v in verdicts)
    # The journaled targets after risk are the scaled ones: no order exceeds the scaled weight.
    unscaled = run(make_config(daily, tmp_path / "plain", strategy="momentum", risk=LOOSE))
    assert unscaled.last_hash != open_journal(tmp_path / "j").last_hash.hex()


def test_a_trip_cancels_working_orders_and_the_routers_parents(tmp_path: Path) -> None:
    minutes = make_dataset(tmp_path / "m", symbols=3, bars=3600, frequency="1m")
    execution = ExecutionConfig(algo="twap", slices=10, window_steps=600)
    base = make_config(minutes, tmp_path / "base", risk=LOOSE, execution=execution)
    base_events = [e for _, e in open_journal(run(base).journal).events()]
    created = [e for e in base_events if isinstance(e, ParentCreated)]
    assert created
    # Halt while the first parent still has slices to send.
    first = created[0]
    at_ns = first.ts_ns + 120 * 60 * 1_000_000_000 + 30_000_000_000
    at = datetime.fromtimestamp(at_ns // 1_000_000_000, UTC).isoformat().replace("+00:00", "Z")
    config = make_config(
        minutes,
        tmp_path / "j",
        risk=LOOSE,
        execution=execution,
        operator_commands=[OperatorCommandConfig(at=at, command="halt", operator="ops")],
    )
    run(config)
    events = _events(tmp_path / "j")
    (tripped,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    done = [e for e in events if isinstance(e, ParentDone) and e.ts_ns == tripped.ts_ns]
    assert done and all(
        d.reason == "cancelled" and "kill switch tripped (operator)" in d.detail for d in done
    )
    working_after = [e for e in events if isinstance(e, ParentCreated) and e.ts_ns > tripped.ts_ns]
    # After the halt, parents only reduce positions (the strategy may still sell what it holds).
    assert all(p.side < 0 for p in working_after)


class _TwoNames:
    """Buys name 1 at step 0; at step 1 sells it (refused by T+1) and buys name 2 in one decision."""

    strategy_id = "two"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([0, 1], dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([0.3, 0.0]) if view.step == 0 else np.array([0.0, 0.3])


def test_a_trip_while_sending_stops_the_rest_of_the_decision(tmp_path: Path) -> None:
    second = msgspec.structs.replace(SPDB, instrument_id=2, symbol="600004")
    stamps = [_ts(20240102, t) for t in ("10:00", "10:30", "11:00", "14:00")]
    rows = [(ts, iid) for ts in stamps for iid in (1, 2)]
    bars = pa.table(
        {
            "ts_ns": [ts for ts, _ in rows],
            "day": [20240102] * len(rows),
            "instrument_id": [iid for _, iid in rows],
            "open": [1000] * len(rows),
            "high": [1010] * len(rows),
            "low": [990] * len(rows),
            "close": [1000] * len(rows),
            "volume": [1_000_000] * len(rows),
        }
    )
    data = write_dataset(
        tmp_path / "data", name="two", frequency="1m", calendar="XSHG", instruments=[SPDB, second], bars=bars
    )
    config = make_config(
        tmp_path / "data",
        tmp_path / "j",
        currency="CNY",
        risk=LOOSE,
        kill_switch=KillSwitchConfig(consecutive_rejects_max=1),
    )
    assert data is not None
    run_backtest(config, _TwoNames())
    journal = open_journal(tmp_path / "j")
    outcome = replay(journal, lambda r, ref: build_setup(config, _TwoNames(), expected_hash=ref.content_hash))
    assert outcome.ok, outcome.divergence
    events = [e for _, e in journal.events()]
    (rejected,) = [e for e in events if isinstance(e, OrderRejected)]
    assert rejected.reason.startswith("CN_T_PLUS_1")
    (tripped,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert tripped.trigger == "consecutive_rejects"
    dropped = [
        e for e in events if isinstance(e, RiskVerdict) and e.detail.startswith("kill switch tripped while")
    ]
    assert len(dropped) == 1 and dropped[0].instrument_ids == [2] and dropped[0].action == "reject"
    assert not [e for e in events if isinstance(e, OrderSubmitted) and e.instrument_id == 2]


class _HoldTwo:
    """Holds two names from the first decision, re-deciding every session."""

    strategy_id = "two"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.arange(panel.steps, dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([0.3, 0.3])


def test_a_held_name_that_stops_printing_trips_stale_data(tmp_path: Path) -> None:
    day_ns = 86_400 * 10**9
    base = 1_704_067_200 * 10**9  # 2024-01-01T00:00Z
    rows = [(d, iid) for d in range(10) for iid in (1, 2) if not (iid == 2 and d > 4)]  # 2: last bar day 4
    bars = pa.table(
        {
            "ts_ns": [base + d * day_ns for d, _ in rows],
            "day": [20240101 + d for d, _ in rows],
            "instrument_id": [iid for _, iid in rows],
            "open": [100_00] * len(rows),
            "high": [101_00] * len(rows),
            "low": [99_00] * len(rows),
            "close": [100_00] * len(rows),
            "volume": [10_000] * len(rows),
        }
    )
    instruments = synth_instruments(2)
    write_dataset(
        tmp_path / "data", name="stale", frequency="1d", calendar="24x7", instruments=instruments, bars=bars
    )
    config = make_config(
        tmp_path / "data",
        tmp_path / "j",
        risk=LOOSE,
        kill_switch=KillSwitchConfig(stale_data_ns_max=2 * day_ns),
    )
    run_backtest(config, _HoldTwo())
    journal = open_journal(tmp_path / "j")
    outcome = replay(journal, lambda r, ref: build_setup(config, _HoldTwo(), expected_hash=ref.content_hash))
    assert outcome.ok, outcome.divergence
    events = [e for _, e in journal.events()]
    (tripped,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    # Day 7's decision sees name 2's newest bar from day 4: 3 days > 2.
    assert tripped.ts_ns == base + 7 * day_ns
    assert (tripped.trigger, tripped.limit, tripped.observed) == ("stale_data", 2 * day_ns, 3 * day_ns)
    assert tripped.reason == f"instrument 2: newest bar {3 * day_ns} ns old > {2 * day_ns} ns"
    later = [e for e in events if isinstance(e, OrderSubmitted) and e.ts_ns >= tripped.ts_ns]
    assert not [e for e in later if e.side > 0]  # halted: nothing bought after the trip
