"""Alert rules over constructed journals: each rule fires on a journal built to trip it and stays
quiet on one that does not; de-duplication, silences, acknowledgements and repeats; state that
holds across a restart (a new engine on the same state file)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from domain.events import (
    AlertAcknowledged,
    AlertUnsilenced,
    BarsReceived,
    DayClosed,
    Event,
    KillSwitchRearmed,
    KillSwitchTripped,
    OrderAccepted,
    OrderRejected,
    OrderSubmitted,
    VenueMessage,
    VenueMessageReceived,
)
from kernel.store import open_journal
from projections.alerts import (
    AlertConfigError,
    AlertEngine,
    AlertStateError,
    AlertStore,
    JobOutcome,
    Observation,
    operations_journal_path,
    rules_from_config,
)

S = 1_000_000_000
DAY = 86_400 * S
T0 = 1_704_000_000 * S  # 2023-12-31


def day_close(i: int, nav_minor: int) -> DayClosed:
    return DayClosed(
        ts_ns=T0 + i * DAY,
        day=20240101 + i,
        step=i,
        nav_minor=nav_minor,
        cash_minor=nav_minor,
        gross_exposure_minor=0,
        currency="USD",
    )


def orders(answers: str, strategy: str = "sma", t: int = T0) -> list[Event]:
    """One submitted order per letter, answered a (accepted) or r (rejected)."""
    events: list[Event] = []
    for i, answer in enumerate(answers):
        order_id = f"{strategy}-{i}"
        events.append(
            OrderSubmitted(
                ts_ns=t + i,
                order_id=order_id,
                strategy_id=strategy,
                instrument_id=1,
                side=1,
                order_type="market",
                qty_raw=100,
                limit_px_raw=0,
                decision_px_raw=1000,
            )
        )
        if answer == "a":
            events.append(OrderAccepted(ts_ns=t + i, order_id=order_id))
        else:
            events.append(OrderRejected(ts_ns=t + i, order_id=order_id, reason="price band"))
    return events


def trip(t: int = T0) -> KillSwitchTripped:
    return KillSwitchTripped(
        ts_ns=t, trigger="daily_loss", flatten=False, limit=200, observed=350, reason="daily loss 3.5% > 2%"
    )


MS = 1_000_000


def venue_orders(latencies_ms: list[int], t: int = T0) -> list[Event]:
    """Orders sent to an asynchronous venue, one a second, each acked (the last one of every
    five rejected) after its latency by the venue's clock; every answer arrives twice (a
    duplicate the rule must not count again) and the order is then filled."""
    events: list[Event] = []
    for i, latency_ms in enumerate(latencies_ms):
        order_id, sent = f"async-{i}", t + i * S
        answered = sent + latency_ms * MS
        kind = "reject" if i % 5 == 4 else "ack"
        submitted = orders("a", strategy="async", t=sent)[0]
        assert isinstance(submitted, OrderSubmitted)
        events.append(msgspec.structs.replace(submitted, order_id=order_id))
        answer = VenueMessage(venue_seq=2 * i + 1, ts_ns=answered, order_id=order_id, kind=kind, reason="x")
        events.extend(VenueMessageReceived(ts_ns=answered + 5 * MS, step=i, message=answer) for _ in range(2))
        if kind == "ack":
            events.append(OrderAccepted(ts_ns=answered + 5 * MS, order_id=order_id))
            fill = VenueMessage(venue_seq=2 * i + 2, ts_ns=answered + 9 * S, order_id=order_id, kind="fill")
            events.append(VenueMessageReceived(ts_ns=answered + 9 * S, step=i, message=fill))
        else:
            events.append(OrderRejected(ts_ns=answered + 5 * MS, order_id=order_id, reason="x"))
    return events


def bars(lags_ms: list[int | None], t: int = T0) -> list[Event]:
    """One step of bars a minute, arriving ``lag`` after the close (None: no arrival stamp)."""
    return [
        BarsReceived(
            ts_ns=t + i * 60 * S,
            received_ns=0 if lag is None else t + i * 60 * S + lag * MS,
            instrument_ids=[1],
            open_raw=[100],
            high_raw=[101],
            low_raw=[99],
            close_raw=[100],
            volume_raw=[10],
        )
        for i, lag in enumerate(lags_ms)
    ]


def write(path: Path, events: list[Event]) -> Path:
    with open_journal(path, writable=True) as journal:
        for event in events:
            journal.append(event)
    return path


RULES = [
    {"kind": "drawdown", "limit_bps": 1000},
    {"kind": "daily_loss", "limit_bps": 300},
    {"kind": "reject_rate", "limit_bps": 5000, "window_orders": 10, "min_orders": 4},
    {"kind": "kill_switch"},
    {"kind": "staleness", "max_age_s": 600},
    {"kind": "failed_jobs"},
    {"kind": "venue_latency", "limit_ms": 500, "window": 10, "min_samples": 10},
    {"kind": "bar_lag", "limit_ms": 2000, "window": 10, "min_samples": 5, "percentile": 50},
]


def evaluate(
    tmp_path: Path,
    events: list[Event],
    *,
    now_ns: int | None = None,
    jobs: list[JobOutcome] | None = None,
    state: str = "state.sqlite",
) -> tuple[AlertStore, list]:
    journal_path = write(tmp_path / "j.sqlite", events) if events else tmp_path / "j.sqlite"
    store = AlertStore(tmp_path / state, str(journal_path))
    engine = AlertEngine(rules_from_config(RULES), store)
    last_ts = max((e.ts_ns for e in events), default=T0)
    journal = open_journal(journal_path) if events else None
    try:
        report = engine.evaluate(journal, now_ns if now_ns is not None else last_ts, jobs or [])
    finally:
        if journal is not None:
            journal.close()
    return store, [(a.rule, a.key) for a in report.fired]


TRIPS = {
    "drawdown": [
        day_close(0, 1_000_000),
        day_close(1, 1_050_000),
        day_close(2, 1_060_000),
        day_close(3, 1_030_000),
        day_close(4, 1_000_000),
        day_close(5, 975_000),
        day_close(6, 950_000),
    ],  # 10.4% below the 1,060,000 peak, no day worse than -3%
    "daily_loss": [day_close(0, 1_000_000), day_close(1, 960_000)],  # -4%
    "reject_rate": orders("aarrrr"),  # 2 of 4 = 50% once 4 are answered, then more
    "kill_switch": [trip()],
    # p90 of 10 answers = the 9th fastest: two slow ones of ten reach it
    "venue_latency": venue_orders([80, 90, 700, 100, 85, 95, 110, 120, 900, 100]),
    "bar_lag": bars([300, 2500, 2600, None, 2700, 400, 2800]),  # median of 5 stamped: 2.6 s
}
QUIET = {
    "drawdown": [
        day_close(0, 1_000_000),
        day_close(1, 975_000),
        day_close(2, 950_000),
        day_close(3, 930_000),
    ],  # 7%
    "daily_loss": [day_close(0, 1_000_000), day_close(1, 980_000), day_close(2, 960_000)],  # -2% twice
    "reject_rate": orders("aaraaraa"),  # 2 of 8
    "kill_switch": orders("aaaa"),
    # one slow answer of ten is below the p90; a synchronous venue's answers have no latency
    "venue_latency": venue_orders([80, 90, 2000, 100, 85, 95, 110, 120, 60, 100, 70]) + orders("aaaa"),
    "bar_lag": bars([300, None, 2500, 400, 350, None, 9000, 500]),  # median 400 ms; unstamped skipped
}


@pytest.mark.parametrize("rule", sorted(TRIPS))
def test_each_journal_rule_fires_on_a_journal_built_to_trip_it(tmp_path: Path, rule: str) -> None:
    _, fired = evaluate(tmp_path, TRIPS[rule])
    assert [r for r, _ in fired] == [rule]


@pytest.mark.parametrize("rule", sorted(QUIET))
def test_each_journal_rule_stays_quiet_on_a_journal_that_does_not_trip_it(tmp_path: Path, rule: str) -> None:
    store, fired = evaluate(tmp_path, QUIET[rule])
    assert fired == []
    assert store.alerts() == []


def test_drawdown_message_names_the_peak_and_the_numbers(tmp_path: Path) -> None:
    store, _ = evaluate(tmp_path, TRIPS["drawdown"])
    (alert,) = store.alerts()
    assert alert.key == "USD"
    assert alert.severity == "critical"
    assert "drawdown 10.37% from peak 10,600.00 USD (limit 10.00%)" in alert.message
    assert alert.fired_seq == 6


def test_staleness_fires_when_the_newest_record_is_too_old_and_clears_on_a_new_one(tmp_path: Path) -> None:
    events: list[Event] = [day_close(0, 1_000_000)]
    (tmp_path / "fresh").mkdir()
    _, fired_fresh = evaluate(tmp_path / "fresh", events, now_ns=T0 + 599 * S)
    assert fired_fresh == []
    store, fired = evaluate(tmp_path, events, now_ns=T0 + 601 * S)
    assert fired == [("staleness", "journal")]
    (alert,) = store.alerts()
    assert (alert.fired_seq, alert.fired_ts_ns) == (0, T0 + 600 * S)  # stale by the journal's clock
    engine = AlertEngine(rules_from_config(RULES), store)
    with open_journal(tmp_path / "j.sqlite", writable=True) as journal:
        journal.append(KillSwitchRearmed(ts_ns=T0 + 700 * S, operator="me"))  # any newer record
    with open_journal(tmp_path / "j.sqlite") as journal:
        report = engine.evaluate(journal, T0 + 701 * S)
    assert [(a.rule, a.status) for a in report.resolved] == [("staleness", "resolved")]


def test_failed_jobs_fire_on_the_latest_failed_run_and_clear_on_success(tmp_path: Path) -> None:
    failed = [
        JobOutcome("ingest", 1, "ok", T0),
        JobOutcome("ingest", 2, "failed", T0 + S, "exit 1"),
        JobOutcome("backup", 3, "ok", T0 + 2 * S),
    ]
    store, fired = evaluate(tmp_path, [], now_ns=T0 + 3 * S, jobs=failed)
    assert fired == [("failed_jobs", "ingest")]
    assert "job ingest run 2: failed (exit 1)" in store.alerts()[0].message
    engine = AlertEngine(rules_from_config(RULES), store)
    report = engine.evaluate(None, T0 + 5 * S, [*failed, JobOutcome("ingest", 4, "ok", T0 + 4 * S)])
    assert [(a.rule, a.key) for a in report.resolved] == [("failed_jobs", "ingest")]
    (tmp_path / "quiet").mkdir()
    _, quiet = evaluate(tmp_path / "quiet", [], now_ns=T0, jobs=[JobOutcome("ingest", 1, "ok", T0)])
    assert quiet == []


def test_an_alert_fires_once_until_it_clears_then_can_fire_again(tmp_path: Path) -> None:
    events: list[Event] = [trip(T0), trip(T0 + S), trip(T0 + 2 * S)]
    store, fired = evaluate(tmp_path, events)
    assert fired == [("kill_switch", "book")]
    with open_journal(tmp_path / "j.sqlite", writable=True) as journal:
        journal.append(KillSwitchRearmed(ts_ns=T0 + 3 * S, operator="me"))
        journal.append(trip(T0 + 4 * S))
    engine = AlertEngine(rules_from_config(RULES), store)
    with open_journal(tmp_path / "j.sqlite") as journal:
        report = engine.evaluate(journal, T0 + 4 * S)
    assert [a.rule for a in report.resolved] == ["kill_switch"]
    assert [a.rule for a in report.fired] == ["kill_switch"]
    assert [a.status for a in store.alerts()] == ["resolved", "firing"]


def test_restart_resumes_at_the_checkpoint_without_raising_again(tmp_path: Path) -> None:
    store, fired = evaluate(tmp_path, TRIPS["daily_loss"])
    assert fired == [("daily_loss", "USD")]
    checkpoint = store.checkpoint_seq
    store.close()
    with open_journal(tmp_path / "j.sqlite", writable=True) as journal:
        journal.append(day_close(2, 920_000))  # still losing: the same alert, not a new one
    restarted = AlertStore(tmp_path / "state.sqlite", str(tmp_path / "j.sqlite"))
    assert restarted.checkpoint_seq == checkpoint == 1
    engine = AlertEngine(rules_from_config(RULES), restarted)
    with open_journal(tmp_path / "j.sqlite") as journal:
        report = engine.evaluate(journal, T0 + 2 * DAY)
    assert report.records == 1
    assert report.fired == []
    assert len(restarted.alerts()) == 1


def test_state_of_another_journal_is_refused(tmp_path: Path) -> None:
    AlertStore(tmp_path / "s.sqlite", "/a/journal").close()
    with pytest.raises(AlertStateError, match="not /b/journal"):
        AlertStore(tmp_path / "s.sqlite", "/b/journal")


def test_outbox_silences_acks_repeats_and_resolutions(tmp_path: Path) -> None:
    store, _ = evaluate(tmp_path, [trip()])
    (alert,) = store.alerts()
    routes = {"mail": "warning", "chat": "critical"}
    options = {"repeat_s": 60.0, "retry_s": 30.0, "notify_resolved": True}
    now = T0
    silence_id = store.silence("kill_switch", "", now + 10 * S, "drill", now)
    assert store.outbox(routes, now, **options).due == []  # silenced
    due = store.outbox(routes, now + 11 * S, **options).due  # the silence ended, still firing: send
    assert [(p.route, p.phase) for p in due] == [("chat", "fire"), ("mail", "fire")]
    store.record_delivery(due[0], now + 11 * S)
    store.record_delivery(due[1], now + 11 * S, error="smtp: connection refused")
    assert [(p.route, p.phase) for p in store.outbox(routes, now + 12 * S, **options).due] == []  # retry_s
    assert [(p.route, p.phase) for p in store.outbox(routes, now + 42 * S, **options).due] == [
        ("mail", "fire")
    ]
    store.record_delivery(store.outbox(routes, now + 42 * S, **options).due[0], now + 42 * S)
    repeats = store.outbox(routes, now + 102 * S, **options).due
    assert [(p.route, p.phase) for p in repeats] == [("chat", "repeat"), ("mail", "repeat")]
    store.acknowledge(alert.id, "me", now + 102 * S)
    assert store.outbox(routes, now + 200 * S, **options).due == []
    store.commit_batch(
        store.checkpoint_seq,
        store.rule_state(),
        [Observation("kill_switch", "book", False, "rearmed", 9, now)],
        now + 201 * S,
        {"kill_switch": "critical"},
    )
    resolves = store.outbox(routes, now + 201 * S, **options).due
    assert [(p.route, p.phase) for p in resolves] == [("chat", "resolve"), ("mail", "resolve")]
    for pending in resolves:
        store.record_delivery(pending, now + 201 * S)
    assert store.outbox(routes, now + 300 * S, **options).due == []
    with pytest.raises(AlertStateError):
        store.unsilence(silence_id, now + 300 * S)  # long over


def test_min_severity_keeps_warnings_off_a_critical_only_route(tmp_path: Path) -> None:
    store, _ = evaluate(tmp_path, TRIPS["reject_rate"])
    (alert,) = store.alerts()
    assert alert.severity == "warning"
    due = store.outbox(
        {"pager": "critical", "mail": "info"}, T0, repeat_s=0, retry_s=30, notify_resolved=True
    ).due
    assert [p.route for p in due] == ["mail"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": "drawdown"}, "limit_bps is required"),
        ({"kind": "drawdown", "limit_bps": -5}, "positive"),
        ({"kind": "drawdown", "limit_bps": 5, "limit": 3}, "unknown keys"),
        ({"kind": "nope"}, "kind must be one of"),
        ({"kind": "kill_switch", "severity": "loud"}, "severity"),
        ({"kind": "reject_rate", "limit_bps": 10, "window_orders": 3, "min_orders": 5}, "min_orders"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(table: dict[str, object], message: str) -> None:
    with pytest.raises(AlertConfigError, match=message):
        rules_from_config([table])


def test_venue_latency_names_the_percentile_the_limit_and_the_slowest(tmp_path: Path) -> None:
    store, _ = evaluate(tmp_path, TRIPS["venue_latency"])
    (alert,) = store.alerts()
    assert (alert.rule, alert.key, alert.severity) == ("venue_latency", "venue", "warning")
    assert (
        "venue answer latency p90 700 ms over the last 10 (limit 500 ms, slowest 900 ms); "
        "latest reject of async-9: 100 ms"
    ) in alert.message


def test_latency_windows_survive_a_restart_and_clear_when_the_venue_is_fast_again(tmp_path: Path) -> None:
    slow = venue_orders([900] * 9)  # nine samples: not judged yet (min_samples 10)
    store, fired = evaluate(tmp_path, slow)
    assert fired == []
    store.close()
    restarted = AlertStore(tmp_path / "state.sqlite", str(tmp_path / "j.sqlite"))
    with open_journal(tmp_path / "j.sqlite", writable=True) as journal:
        for event in venue_orders([950, *[50] * 9], t=T0 + 20 * S):
            journal.append(event)
    engine = AlertEngine(rules_from_config(RULES), restarted)
    with open_journal(tmp_path / "j.sqlite") as journal:
        report = engine.evaluate(journal, T0 + 60 * S)
    # the tenth sample (held across the restart) fires it; fast answers then resolve it
    assert [(a.rule, a.key) for a in report.fired] == [("venue_latency", "venue")]
    assert [(a.rule, a.key) for a in report.resolved] == [("venue_latency", "venue")]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": "venue_latency"}, "limit_ms is required"),
        ({"kind": "venue_latency", "limit_ms": 0}, "positive"),
        ({"kind": "bar_lag", "limit_ms": 5, "percentile": 101}, "percentile"),
        ({"kind": "bar_lag", "limit_ms": 5, "window": 3, "min_samples": 4}, "min_samples"),
        ({"kind": "venue_latency", "limit_ms": 5, "window": 2.5}, "integer"),
    ],
)
def test_bad_latency_rules_are_refused_with_the_reason(table: dict[str, object], message: str) -> None:
    with pytest.raises(AlertConfigError, match=message):
        rules_from_config([table])


# --- acknowledgements and silences: journaled, the state their fold -------------------------


def test_acks_and_silences_are_journaled_and_a_lost_state_gets_them_back(tmp_path: Path) -> None:
    store, _ = evaluate(tmp_path, [trip()])
    (alert,) = store.alerts()
    now = T0 + 10 * S
    first = store.silence("kill_switch", "", now + 3600 * S, "drill", now, "ana")
    second = store.silence("kill_switch", "book", now + 7200 * S, "", now, "ana")
    store.unsilence(first, now + S, "bo")
    assert store.acknowledge(alert.id, "me", now + 2 * S).acked_by == "me"
    assert store.acknowledge(alert.id, "someone else", now + 3 * S).acked_by == "me"  # once
    with pytest.raises(AlertStateError, match="no active silence 1"):
        store.unsilence(first, now + 4 * S, "bo")  # refused: nothing journaled
    journal_path = operations_journal_path(tmp_path / "state.sqlite")
    assert journal_path == tmp_path / "state.journal.sqlite"
    with open_journal(journal_path) as journal:
        assert journal.verify().ok
        records = list(journal.records())
    assert [r.kind for r in records] == [
        "alert.silenced.v1",
        "alert.silenced.v1",
        "alert.unsilenced.v1",
        "alert.acknowledged.v1",
    ]
    assert [(seq, e.operator) for seq, e in store.operations()] == [
        (0, "ana"),
        (1, "ana"),
        (2, "bo"),
        (3, "me"),
    ]
    in_force = [(s.id, s.key) for s in store.silences(now + 5 * S)]
    assert in_force == [(second, "book")]
    store.close()
    (tmp_path / "state.sqlite").unlink()  # the state is lost; the alerts journal is not
    rebuilt = AlertStore(tmp_path / "state.sqlite", str(tmp_path / "j.sqlite"))
    with open_journal(tmp_path / "j.sqlite") as journal:  # the watched journal, evaluated afresh
        report = AlertEngine(rules_from_config(RULES), rebuilt).evaluate(journal, T0)
    assert [(a.rule, a.key) for a in report.fired] == [("kill_switch", "book")]
    assert rebuilt.sync_operations() == 4
    assert rebuilt.operations_seq == 3
    (again,) = rebuilt.alerts()
    assert (again.acked_by, again.acked_at_ns) == ("me", now + 2 * S)  # matched by what fired it
    assert [(s.id, s.key) for s in rebuilt.silences(now + 5 * S)] == in_force
    assert rebuilt.silence("kill_switch", "", now + 9 * S, "", now + 6 * S, "ana") == second + 1


def test_an_operation_journaled_but_not_yet_folded_is_folded_by_the_next_sync(tmp_path: Path) -> None:
    """A process that journaled an acknowledgement and died before its state write, or another
    process's acknowledgement: the follower's next sync folds it."""
    store, _ = evaluate(tmp_path, [trip()])
    (alert,) = store.alerts()
    assert store.sync_operations() == 0  # no alerts journal yet: nothing to fold
    with open_journal(operations_journal_path(store.path), writable=True) as journal:
        journal.append(
            AlertAcknowledged(
                ts_ns=T0 + S,
                alert_id=alert.id,
                rule=alert.rule,
                key=alert.key,
                fired_seq=alert.fired_seq,
                fired_ts_ns=alert.fired_ts_ns,
                operator="cockpit",
            )
        )
    assert store.alerts()[0].acked_by is None
    assert store.sync_operations() == 1
    assert store.alerts()[0].acked_by == "cockpit"
    assert store.sync_operations() == 0  # unchanged on disk: not reopened


def test_a_replaced_alerts_journal_is_refused_not_folded_twice(tmp_path: Path) -> None:
    store, _ = evaluate(tmp_path, [trip()])
    store.silence("kill_switch", "", T0 + 60 * S, "", T0, "ana")
    store.silence("kill_switch", "", T0 + 60 * S, "", T0, "ana")
    store.operations_path.unlink()
    with open_journal(store.operations_path, writable=True) as journal:  # a shorter, other journal
        journal.append(AlertUnsilenced(ts_ns=T0, silence_id=1, operator="x"))
    with pytest.raises(AlertStateError, match="it was replaced"):
        store.sync_operations()


def test_venue_latency_is_measured_from_the_edges_send_where_it_journals_one(tmp_path: Path) -> None:
    """Decided at the step, sent four seconds later (a ``sent`` message), answered 100 ms
    after the send: 100 ms round trips, no alert. Without the ``sent`` messages the same
    answers are 4.1 s after the step, and it fires."""
    events: list[Event] = []
    noted: set[str] = set()
    for event in venue_orders([4_100] * 10):
        if isinstance(event, VenueMessageReceived) and event.message.order_id not in noted:
            noted.add(event.message.order_id)
            at = event.message.ts_ns - 100 * MS
            sent = VenueMessage(venue_seq=0, ts_ns=at, order_id=event.message.order_id, kind="sent")
            events.append(VenueMessageReceived(ts_ns=at, step=event.step, message=sent))
        events.append(event)
    (tmp_path / "sent").mkdir()
    _, fired = evaluate(tmp_path / "sent", events)
    assert ("venue_latency", "venue") not in fired
    _, fired = evaluate(tmp_path, venue_orders([4_100] * 10))
    assert ("venue_latency", "venue") in fired


# --- an alert that fires and resolves in one batch of records --------------------------------

OUTBOX = {"repeat_s": 0.0, "retry_s": 30.0, "notify_resolved": True}


def tripped_and_rearmed(tmp_path: Path) -> AlertStore:
    """One evaluation over a trip and its rearm: the alert fires and resolves in one batch,
    before any delivery pass ran."""
    store, fired = evaluate(tmp_path, [trip(T0), KillSwitchRearmed(ts_ns=T0 + S, operator="me")])
    assert fired == [("kill_switch", "book")]
    assert [a.status for a in store.alerts()] == ["resolved"]
    return store


def test_an_alert_fired_and_resolved_in_one_batch_is_due_as_fire_then_resolve(tmp_path: Path) -> None:
    """The old outbox looked only at firing alerts and at resolved ones a route was told of:
    this one was never due anywhere (QA: 33 fired, 0 sent over a demo journal)."""
    store = tripped_and_rearmed(tmp_path)
    routes = {"mail": "warning", "chat": "critical"}
    due = store.outbox(routes, T0 + 2 * S, **OUTBOX).due
    assert [(p.route, p.phase) for p in due] == [
        ("chat", "fire"),
        ("chat", "resolve"),
        ("mail", "fire"),
        ("mail", "resolve"),
    ]
    only_fire = store.outbox(routes, T0 + 2 * S, **{**OUTBOX, "notify_resolved": False}).due
    assert [(p.route, p.phase) for p in only_fire] == [("chat", "fire"), ("mail", "fire")]
    store.record_delivery(due[0], T0 + 2 * S)
    store.record_delivery(due[1], T0 + 2 * S)
    store.record_delivery(due[2], T0 + 2 * S, error="smtp: connection refused")
    assert store.outbox(routes, T0 + 3 * S, **OUTBOX).due == []  # mail waits for retry_s
    retried = store.outbox(routes, T0 + 33 * S, **OUTBOX).due
    assert [(p.route, p.phase) for p in retried] == [("mail", "fire"), ("mail", "resolve")]
    for pending in retried:
        store.record_delivery(pending, T0 + 33 * S)
    outbox = store.outbox(routes, T0 + 34 * S, **OUTBOX)
    assert outbox.due == [] and outbox.held == []
    ((alert, note),) = outbox.settled  # every route told of both: not scanned again once settled
    assert (alert.id, note) == (1, "chat: sent; mail: sent")
    store.settle(outbox.settled, T0 + 34 * S)
    assert store.outbox(routes, T0 + 35 * S, **OUTBOX).settled == []


def test_an_alert_that_resolved_while_silenced_is_held_back_for_good_with_the_reason(tmp_path: Path) -> None:
    """A silence holds back an alert; one that resolves under it is not told afterwards (an
    alert still firing when the silence ends is): the outbox says so, and settles it."""
    journal = write(tmp_path / "j.sqlite", [trip(T0), KillSwitchRearmed(ts_ns=T0 + S, operator="me")])
    store = AlertStore(tmp_path / "state.sqlite", str(journal))
    store.silence("kill_switch", "", T0 + 3600 * S, "drill", T0 - S, "ana")
    with open_journal(journal) as reader:
        AlertEngine(rules_from_config(RULES), store).evaluate(reader, T0 + S)
    routes = {"mail": "warning", "pager": "critical"}
    outbox = store.outbox(routes, T0 + 7200 * S, **OUTBOX)  # long after the silence ended
    assert outbox.due == []
    assert [(h.route, h.reason, h.final) for h in outbox.held] == [
        ("mail", "silence 1 (drill)", True),
        ("pager", "silence 1 (drill)", True),
    ]
    assert [note for _, note in outbox.settled] == [
        "mail: resolved while silence 1 held it back; pager: resolved while silence 1 held it back"
    ]


def test_a_silence_set_after_the_resolution_holds_it_back_until_it_ends(tmp_path: Path) -> None:
    store = tripped_and_rearmed(tmp_path)  # resolved at T0 + S, nobody told yet
    store.silence("kill_switch", "book", T0 + 60 * S, "", T0 + 10 * S, "ana")
    held = store.outbox({"mail": "warning"}, T0 + 20 * S, **OUTBOX)
    assert held.due == [] and [(h.route, h.final) for h in held.held] == [("mail", False)]
    assert held.settled == []
    after = store.outbox({"mail": "warning"}, T0 + 61 * S, **OUTBOX).due
    assert [(p.route, p.phase) for p in after] == [("mail", "fire"), ("mail", "resolve")]


def test_an_alert_no_route_takes_is_named_and_settled(tmp_path: Path) -> None:
    store, _ = evaluate(tmp_path, [*orders("aarrrr"), *orders("aaaaaaaaaa", t=T0 + 10)])  # fires, clears
    (alert,) = store.alerts()
    assert (alert.severity, alert.status) == ("warning", "resolved")
    outbox = store.outbox({"pager": "critical"}, T0 + S, **OUTBOX)
    assert outbox.due == [] and outbox.unrouted == [alert]
    assert outbox.settled == [(alert, "no route takes warning alerts")]
    assert store.outbox({}, T0 + S, **OUTBOX).settled == []  # --no-send: nothing settles
