"""The kill switch as a pure state machine: observations in, trip/re-arm events out, state folded.

    state = observe(state, config, observation)      # trackers: day start, peak NAV, reject run...
    events = decide(state, config, observation)      # KillSwitchTripped / Rearmed / CommandRefused
    state = functools.reduce(evolve, events, state)  # the table KILL_TRANSITIONS
    (``update`` does the three in one call.)

Observations are journaled inputs (NAV marks, venue responses, market-data arrivals, step ticks,
operator commands); the state is plain data (``KillSwitchState``, a msgspec Struct) that goes into
the kernel snapshot, so a restart resumes halted and a replay halts at the same record, for the
same recorded reason. Triggers fire only while ``armed``; a halted switch stays halted until an
operator re-arms it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import msgspec

from domain.events import (
    Event,
    KillSwitchCommandRefused,
    KillSwitchFlattened,
    KillSwitchRearmed,
    KillSwitchTripped,
    OperatorCommanded,
)
from domain.fixed import RATE_SCALE

__all__ = [
    "KILL_TRANSITIONS",
    "OPERATOR_COMMANDS",
    "IllegalKillTransition",
    "KillState",
    "KillSwitchCommandRefused",
    "KillSwitchConfig",
    "KillSwitchEvent",
    "KillSwitchFlattened",
    "KillSwitchRearmed",
    "KillSwitchState",
    "KillSwitchTripped",
    "BookDataAged",
    "MarketDataSeen",
    "NavMarked",
    "Observation",
    "OperatorCommanded",
    "StepTicked",
    "VenueResponded",
    "decide",
    "evolve",
    "initial_state",
    "observe",
    "update",
]

OPERATOR_COMMANDS = ("halt", "flatten", "rearm")
"""What an operator may tell the kill switch (``OperatorCommanded.command``)."""


class KillState(enum.Enum):
    ARMED = "armed"
    HALTED = "halted"  # no new risk: only risk-reducing orders
    FLATTENING = "flattening"  # halted, and the kernel is closing every position


KILL_TRANSITIONS: Mapping[tuple[KillState, str], KillState] = {
    (KillState.ARMED, "halt"): KillState.HALTED,
    (KillState.ARMED, "flatten"): KillState.FLATTENING,
    (KillState.HALTED, "flatten"): KillState.FLATTENING,
    (KillState.FLATTENING, "flattened"): KillState.HALTED,
    (KillState.HALTED, "rearm"): KillState.ARMED,
}


class IllegalKillTransition(Exception):
    def __init__(self, state: KillState, trigger: str) -> None:
        super().__init__(f"kill switch: illegal transition {state.value} --{trigger}-->")
        self.state = state
        self.trigger = trigger


class KillSwitchConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Thresholds; 0 disables a trigger."""

    daily_loss_max_minor: int = 0
    drawdown_max_e8: int = 0  # from the NAV peak, 1e-8 of the peak
    consecutive_rejects_max: int = 0
    latency_ns_max: int = 0
    stale_data_ns_max: int = 0
    flatten_on_trip: bool = False

    def __post_init__(self) -> None:
        for name in (
            "daily_loss_max_minor",
            "drawdown_max_e8",
            "consecutive_rejects_max",
            "latency_ns_max",
            "stale_data_ns_max",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"kill_switch.{name}: must be >= 0")


# --- observations (journaled inputs) --------------------------------------------------------


class NavMarked(Event, frozen=True, tag="killswitch.nav_marked.v1"):
    day: int  # YYYYMMDD of the session
    nav_minor: int


class VenueResponded(Event, frozen=True, tag="killswitch.venue_responded.v1"):
    venue: str
    accepted: bool
    latency_ns: int  # venue response time minus our send time


class MarketDataSeen(Event, frozen=True, tag="killswitch.market_data_seen.v1"):
    data_ts_ns: int  # timestamp of the newest bar / quote


class StepTicked(Event, frozen=True, tag="killswitch.step_ticked.v1"):
    """The kernel's step: staleness is judged here, against the step's time."""


class BookDataAged(Event, frozen=True, tag="killswitch.book_data_aged.v1"):
    """At a decision: the oldest newest-bar among the instruments the book holds or the decision
    names (``instrument_id`` is that instrument). Stale data is judged on what is traded, so a
    held name that stopped printing trips the switch even while other names trade."""

    instrument_id: int
    data_ts_ns: int


Observation = NavMarked | VenueResponded | MarketDataSeen | StepTicked | BookDataAged | OperatorCommanded


# --- derived events (defined in domain.events, journaled by the kernel) --------------------

KillSwitchEvent = KillSwitchTripped | KillSwitchFlattened | KillSwitchRearmed | KillSwitchCommandRefused


class KillSwitchState(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Snapshot-able state. ``day_start_nav_minor`` is the previous session's last NAV."""

    state: KillState = KillState.ARMED
    trigger: str = ""
    reason: str = ""
    since_ts_ns: int = 0
    day: int = 0
    day_start_nav_minor: int = 0
    last_nav_minor: int = 0
    peak_nav_minor: int = 0
    consecutive_rejects: int = 0
    last_data_ts_ns: int = 0  # or the arm time, whichever is later


def initial_state(ts_ns: int) -> KillSwitchState:
    return KillSwitchState(since_ts_ns=ts_ns, last_data_ts_ns=ts_ns)


def observe(state: KillSwitchState, obs: Observation) -> KillSwitchState:
    """Fold an observation into the trackers (no decision)."""
    replace = msgspec.structs.replace
    match obs:
        case NavMarked():
            new_day = obs.day != state.day
            start = (state.last_nav_minor or obs.nav_minor) if new_day else state.day_start_nav_minor
            return replace(
                state,
                day=obs.day,
                day_start_nav_minor=start,
                last_nav_minor=obs.nav_minor,
                peak_nav_minor=max(state.peak_nav_minor, obs.nav_minor),
            )
        case VenueResponded():
            rejects = 0 if obs.accepted else state.consecutive_rejects + 1
            return replace(state, consecutive_rejects=rejects)
        case MarketDataSeen():
            return replace(state, last_data_ts_ns=max(state.last_data_ts_ns, obs.data_ts_ns))
        case StepTicked() | BookDataAged() | OperatorCommanded():
            return state


def _tripped(
    obs: Observation, config: KillSwitchConfig, trigger: str, limit: int, seen: int, reason: str
) -> list[KillSwitchEvent]:
    return [
        KillSwitchTripped(
            ts_ns=obs.ts_ns,
            trigger=trigger,
            flatten=config.flatten_on_trip,
            limit=limit,
            observed=seen,
            reason=reason,
        )
    ]


def _check_nav(state: KillSwitchState, config: KillSwitchConfig, obs: NavMarked) -> list[KillSwitchEvent]:
    loss = state.day_start_nav_minor - obs.nav_minor
    if config.daily_loss_max_minor and loss > config.daily_loss_max_minor:
        reason = f"daily loss {loss} > {config.daily_loss_max_minor} minor (day {obs.day})"
        return _tripped(obs, config, "daily_loss", config.daily_loss_max_minor, loss, reason)
    peak = state.peak_nav_minor
    drop = peak - obs.nav_minor
    if config.drawdown_max_e8 and peak > 0 and drop * RATE_SCALE > config.drawdown_max_e8 * peak:
        drawdown_e8 = drop * RATE_SCALE // peak
        reason = f"drawdown {drawdown_e8}e-8 of peak {peak} > {config.drawdown_max_e8}e-8"
        return _tripped(obs, config, "drawdown", config.drawdown_max_e8, drawdown_e8, reason)
    return []


def _check_venue(
    state: KillSwitchState, config: KillSwitchConfig, obs: VenueResponded
) -> list[KillSwitchEvent]:
    run = state.consecutive_rejects
    if config.consecutive_rejects_max and run >= config.consecutive_rejects_max:
        reason = f"{run} consecutive rejects from {obs.venue} (max {config.consecutive_rejects_max})"
        return _tripped(obs, config, "consecutive_rejects", config.consecutive_rejects_max, run, reason)
    if config.latency_ns_max and obs.latency_ns > config.latency_ns_max:
        reason = f"{obs.venue} latency {obs.latency_ns} ns > {config.latency_ns_max} ns"
        return _tripped(obs, config, "latency", config.latency_ns_max, obs.latency_ns, reason)
    return []


def _check_aged(config: KillSwitchConfig, obs: BookDataAged) -> list[KillSwitchEvent]:
    age = obs.ts_ns - obs.data_ts_ns
    if config.stale_data_ns_max and age > config.stale_data_ns_max:
        reason = f"instrument {obs.instrument_id}: newest bar {age} ns old > {config.stale_data_ns_max} ns"
        return _tripped(obs, config, "stale_data", config.stale_data_ns_max, age, reason)
    return []


def _check_stale(state: KillSwitchState, config: KillSwitchConfig, obs: StepTicked) -> list[KillSwitchEvent]:
    age = obs.ts_ns - state.last_data_ts_ns
    if config.stale_data_ns_max and age > config.stale_data_ns_max:
        reason = f"market data {age} ns old > {config.stale_data_ns_max} ns"
        return _tripped(obs, config, "stale_data", config.stale_data_ns_max, age, reason)
    return []


def _command(state: KillSwitchState, obs: OperatorCommanded) -> list[KillSwitchEvent]:
    trigger = {"halt": "halt", "flatten": "flatten", "rearm": "rearm"}.get(obs.command)
    if trigger is None or (state.state, trigger) not in KILL_TRANSITIONS:
        reason = f"{obs.command!r} is not allowed while {state.state.value}"
        return [KillSwitchCommandRefused(ts_ns=obs.ts_ns, command=obs.command, reason=reason)]
    if trigger == "rearm":
        return [KillSwitchRearmed(ts_ns=obs.ts_ns, operator=obs.operator)]
    reason = f"operator {obs.operator}: {obs.command}" + (f" ({obs.note})" if obs.note else "")
    return [
        KillSwitchTripped(
            ts_ns=obs.ts_ns,
            trigger="operator",
            flatten=trigger == "flatten",
            limit=0,
            observed=0,
            reason=reason,
        )
    ]


def decide(state: KillSwitchState, config: KillSwitchConfig, obs: Observation) -> list[KillSwitchEvent]:
    """Events for an observation already folded in by ``observe``. Automatic triggers need ARMED."""
    if isinstance(obs, OperatorCommanded):
        return _command(state, obs)
    if state.state is not KillState.ARMED:
        return []
    match obs:
        case NavMarked():
            return _check_nav(state, config, obs)
        case VenueResponded():
            return _check_venue(state, config, obs)
        case StepTicked():
            return _check_stale(state, config, obs)
        case BookDataAged():
            return _check_aged(config, obs)
        case MarketDataSeen():
            return []


def _trigger_of(state: KillSwitchState, event: KillSwitchEvent) -> str | None:
    match event:
        case KillSwitchTripped():
            return "flatten" if event.flatten else "halt"
        case KillSwitchFlattened():
            return "flattened"
        case KillSwitchRearmed():
            return "rearm"
        case KillSwitchCommandRefused():
            return None


def evolve(state: KillSwitchState, event: KillSwitchEvent) -> KillSwitchState:
    """Apply one kill-switch event through ``KILL_TRANSITIONS``; illegal pairs raise."""
    trigger = _trigger_of(state, event)
    if trigger is None:
        return state
    target = KILL_TRANSITIONS.get((state.state, trigger))
    if target is None:
        raise IllegalKillTransition(state.state, trigger)
    replace = msgspec.structs.replace
    if isinstance(event, KillSwitchTripped):
        return replace(
            state, state=target, trigger=event.trigger, reason=event.reason, since_ts_ns=event.ts_ns
        )
    if isinstance(event, KillSwitchRearmed):
        return replace(
            state,
            state=target,
            trigger="",
            reason="",
            since_ts_ns=event.ts_ns,
            consecutive_rejects=0,
            last_data_ts_ns=max(state.last_data_ts_ns, event.ts_ns),
            peak_nav_minor=state.last_nav_minor,
        )
    return replace(state, state=target, since_ts_ns=event.ts_ns)


def update(
    state: KillSwitchState, config: KillSwitchConfig, obs: Observation
) -> tuple[KillSwitchState, list[KillSwitchEvent]]:
    """observe -> decide -> evolve: the one call the kernel makes per observation."""
    state = observe(state, obs)
    events = decide(state, config, obs)
    for event in events:
        state = evolve(state, event)
    return state, events
