"""Kill switch: each trigger fires with its reason, the table holds, state survives a snapshot."""

import functools

import msgspec
import pytest

from domain.riskrules import (
    KILL_TRANSITIONS,
    IllegalKillTransition,
    KillState,
    KillSwitchCommandRefused,
    KillSwitchConfig,
    KillSwitchFlattened,
    KillSwitchRearmed,
    KillSwitchState,
    KillSwitchTripped,
    MarketDataSeen,
    NavMarked,
    Observation,
    OperatorCommanded,
    StepTicked,
    VenueResponded,
    evolve_kill_switch,
    initial_state,
    update_kill_switch,
)

CONFIG = KillSwitchConfig(
    daily_loss_max_minor=10_000,
    drawdown_max_e8=10_000_000,  # 10%
    consecutive_rejects_max=3,
    latency_ns_max=2_000_000_000,
    stale_data_ns_max=60_000_000_000,
)


def run(observations: list[Observation], config: KillSwitchConfig = CONFIG):  # type: ignore[no-untyped-def]
    state = initial_state(0)
    events = []
    for obs in observations:
        state, produced = update_kill_switch(state, config, obs)
        events.extend(produced)
    return state, events


def tripped(events: list[object]) -> KillSwitchTripped:
    (event,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert isinstance(event, KillSwitchTripped)
    return event


def test_daily_loss_from_previous_close() -> None:
    state, events = run(
        [
            NavMarked(ts_ns=1, day=20240102, nav_minor=1_000_000),
            NavMarked(ts_ns=2, day=20240103, nav_minor=995_000),  # previous close 1,000,000
            NavMarked(ts_ns=3, day=20240103, nav_minor=989_999),
        ]
    )
    event = tripped(events)
    assert (event.trigger, event.limit, event.observed, event.ts_ns) == ("daily_loss", 10_000, 10_001, 3)
    assert "daily loss 10001 > 10000" in event.reason
    assert state.state is KillState.HALTED
    assert state.trigger == "daily_loss"


def test_daily_loss_at_the_limit_does_not_fire() -> None:
    _, events = run(
        [NavMarked(ts_ns=1, day=1, nav_minor=100_000), NavMarked(ts_ns=2, day=2, nav_minor=90_000)]
    )
    assert events == []


def test_drawdown_from_peak() -> None:
    config = msgspec.structs.replace(CONFIG, daily_loss_max_minor=0)
    _, events = run(
        [
            NavMarked(ts_ns=i, day=i, nav_minor=nav)
            for i, nav in enumerate([100_000, 120_000, 110_000, 108_001, 107_999])
        ],
        config,
    )
    event = tripped(events)
    assert (event.trigger, event.ts_ns) == ("drawdown", 4)
    assert event.observed > 10_000_000
    assert "of peak 120000" in event.reason


def test_consecutive_rejects_reset_by_an_accept() -> None:
    reject = functools.partial(VenueResponded, venue="binance", accepted=False, latency_ns=1)
    accept = functools.partial(VenueResponded, venue="binance", accepted=True, latency_ns=1)
    _, events = run([reject(ts_ns=1), reject(ts_ns=2), accept(ts_ns=3), reject(ts_ns=4), reject(ts_ns=5)])
    assert events == []
    _, events = run([reject(ts_ns=i) for i in range(1, 4)])
    event = tripped(events)
    assert (event.trigger, event.observed, event.ts_ns) == ("consecutive_rejects", 3, 3)
    assert "binance" in event.reason


def test_latency_beyond_threshold() -> None:
    _, events = run([VenueResponded(ts_ns=5, venue="ib", accepted=True, latency_ns=2_000_000_001)])
    event = tripped(events)
    assert (event.trigger, event.observed) == ("latency", 2_000_000_001)


def test_stale_market_data_judged_at_the_step() -> None:
    minute = 60_000_000_000
    _, events = run([MarketDataSeen(ts_ns=10, data_ts_ns=10), StepTicked(ts_ns=10 + minute)])
    assert events == []
    _, events = run([MarketDataSeen(ts_ns=10, data_ts_ns=10), StepTicked(ts_ns=11 + minute)])
    event = tripped(events)
    assert (event.trigger, event.observed) == ("stale_data", minute + 1)


def test_operator_halt_flatten_rearm_cycle_and_refusals() -> None:
    obs = [
        OperatorCommanded(ts_ns=1, command="rearm", operator="ana"),  # refused: already armed
        OperatorCommanded(ts_ns=2, command="halt", operator="ana", note="news"),
        OperatorCommanded(ts_ns=3, command="flatten", operator="ana"),
        OperatorCommanded(ts_ns=4, command="rearm", operator="ana"),  # refused: still flattening
    ]
    state, events = run(obs)
    assert isinstance(events[0], KillSwitchCommandRefused)
    assert "not allowed while armed" in events[0].reason
    assert isinstance(events[1], KillSwitchTripped)
    assert events[1].reason == "operator ana: halt (news)"
    assert state.state is KillState.FLATTENING
    assert isinstance(events[3], KillSwitchCommandRefused)
    state = evolve_kill_switch(state, KillSwitchFlattened(ts_ns=5))
    state, events = update_kill_switch(
        state, CONFIG, OperatorCommanded(ts_ns=6, command="rearm", operator="bo")
    )
    assert events == [KillSwitchRearmed(ts_ns=6, operator="bo")]
    assert state.state is KillState.ARMED
    assert state.reason == ""


def test_flatten_on_trip_config() -> None:
    config = msgspec.structs.replace(CONFIG, flatten_on_trip=True)
    state, events = run([VenueResponded(ts_ns=1, venue="x", accepted=True, latency_ns=10**10)], config)
    assert tripped(events).flatten
    assert state.state is KillState.FLATTENING


def test_halted_switch_does_not_trip_again() -> None:
    state, events = run(
        [VenueResponded(ts_ns=i, venue="x", accepted=True, latency_ns=10**10) for i in (1, 2)]
    )
    assert len(events) == 1
    assert state.since_ts_ns == 1


def test_snapshot_round_trip_resumes_halted() -> None:
    state, _ = run([VenueResponded(ts_ns=1, venue="x", accepted=True, latency_ns=10**10)])
    restored = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=KillSwitchState)
    assert restored == state
    assert restored.state is KillState.HALTED


def test_transition_table_illegal_pairs_raise_and_every_state_reachable() -> None:
    reachable = {KillState.ARMED} | set(KILL_TRANSITIONS.values())
    assert reachable == set(KillState)
    with pytest.raises(IllegalKillTransition):
        evolve_kill_switch(initial_state(0), KillSwitchFlattened(ts_ns=1))
    with pytest.raises(IllegalKillTransition):
        evolve_kill_switch(initial_state(0), KillSwitchRearmed(ts_ns=1, operator="x"))


def test_disabled_triggers_never_fire() -> None:
    _, events = run(
        [
            NavMarked(ts_ns=1, day=1, nav_minor=100),
            NavMarked(ts_ns=2, day=2, nav_minor=1),
            VenueResponded(ts_ns=3, venue="x", accepted=False, latency_ns=10**15),
            StepTicked(ts_ns=10**18),
        ],
        KillSwitchConfig(),
    )
    assert events == []


def test_config_rejects_negative_thresholds() -> None:
    with pytest.raises(ValueError, match="latency_ns_max"):
        KillSwitchConfig(latency_ns_max=-1)
