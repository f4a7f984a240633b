"""``tape alerts follow|check|list|silence|unsilence|ack``: alert rules over a journal.

The rules file (TOML, ``docs/operations.md``) holds ``[[rules]]``, ``[[routes]]`` and a few
settings; the alert state (checkpoint, alerts, silences, acknowledgements, deliveries) lives in
``state`` (default: the rules file's name with ``.state.sqlite``), so a restarted
``alerts follow`` keeps its de-duplication and silences. Acknowledgements and silences are
journaled first, in the alerts journal beside the state (``projections.alerts.
operations_journal_path``), and folded from it. Evaluation is ``projections.alerts``; delivery
``cli.alert_routes``; the wall clock is read here only.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import io
import json
import logging
import math
import os
import re
import sqlite3
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.alert_routes import DeliveryFailed, Route, routes_from_config
from cli.arguments import output_file
from cli.logs import LogSetup, Redactor, configure_logging
from cli.progress import console, one_stdout, results_on_stderr, write_output
from cli.research_tables import Column, print_fitted
from cli.scheduler import JobLog, hold_lock, lock_holder, stop_on_signals
from cli.wiring import ConfigError
from domain.events import AlertAcknowledged, AlertSilenced
from kernel.journal import Journal, JournalError
from kernel.store import open_journal
from projections.alerts import (
    Alert,
    AlertConfigError,
    AlertEngine,
    AlertOperation,
    AlertStateError,
    AlertStore,
    EvaluationReport,
    FailedJobsRule,
    JobOutcome,
    JobOutcomes,
    Outbox,
    Rule,
    Silence,
    rules_from_config,
)

__all__ = [
    "AlertsConfig",
    "AlertsService",
    "acknowledge_alert",
    "add_alerts_parser",
    "alert_operations",
    "cmd_alerts",
    "firing_alerts",
    "load_alerts_config",
    "open_alert_state",
    "operation_text",
    "parse_duration_s",
]

log = logging.getLogger("tape.alerts")

_SETTINGS = {"state", "job_log", "repeat_s", "retry_s", "notify_resolved", "poll_s", "log", "rules", "routes"}


@dataclass
class AlertsConfig:
    path: Path
    rules: list[Rule]
    routes: list[Route]
    state: Path
    job_log: Path | None
    repeat_s: float
    retry_s: float
    notify_resolved: bool
    poll_s: float
    log: Path | None


def _relative(base: Path, value: object) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base.parent / path


POLL_S_RANGE = (0.01, 3600.0)  # follow's pause between polls: not a busy loop, not an hour's deafness


def poll_seconds(value: object, where: str = "--poll-s") -> float:
    """A poll interval within ``POLL_S_RANGE`` (seconds); anything else is refused (exit 2)."""
    low, high = POLL_S_RANGE
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not low <= seconds <= high:
        raise ConfigError(f"{where} {value!r}: give seconds between {low:g} and {high:g}")
    return seconds


def _check_settings(path: Path, data: dict[str, Any]) -> None:
    """The settings' types: a text ``repeat_s`` was an internal error, a negative or nan one
    taken, ``notify_resolved = "no"`` read as true, ``state = 7`` a file named 7."""
    for key in ("state", "job_log", "log"):
        if key in data and (not isinstance(data[key], str) or not data[key]):
            raise ConfigError(f"{path}: {key} must be a path (a text), got {data[key]!r}")
    for key in ("repeat_s", "retry_s"):
        value = data.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
            raise ConfigError(f"{path}: {key} must be a number of seconds, 0 or more, got {value!r}")
    if not isinstance(data.get("notify_resolved", True), bool):
        raise ConfigError(f"{path}: notify_resolved must be true or false, got {data['notify_resolved']!r}")


def load_alerts_config(path: Path, redactor: Redactor, *, sending: bool = True) -> AlertsConfig:
    """The rules file, every rule and route checked. ``sending`` false (a verb that delivers
    nothing: ``check --no-send``, ``list``, ``silence``, ``ack``, the cockpit): the routes'
    secrets need not be set, and the config holds no route."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not a valid TOML file: {error}") from None
    unknown = set(data) - _SETTINGS
    if unknown:
        raise ConfigError(f"{path}: unknown settings {sorted(unknown)}")
    try:
        rules = rules_from_config(data.get("rules", []), path.parent)
        routes = routes_from_config(data.get("routes", []), redactor, read_secrets=sending)
    except AlertConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    _check_settings(path, data)
    if "job_log" not in data and any(isinstance(rule, FailedJobsRule) for rule in rules):
        raise ConfigError(f"{path}: a failed_jobs rule reads the scheduler's job log: set job_log")
    return AlertsConfig(
        path=path,
        rules=rules,
        routes=routes if sending else [],
        state=_relative(path, data.get("state", path.with_suffix(".state.sqlite").name)),
        job_log=_relative(path, data["job_log"]) if "job_log" in data else None,
        repeat_s=float(data.get("repeat_s", 0)),
        retry_s=float(data.get("retry_s", 30)),
        notify_resolved=data.get("notify_resolved", True),
        poll_s=poll_seconds(data.get("poll_s", 0.25), f"{path}: poll_s"),
        log=_relative(path, data["log"]) if "log" in data else None,
    )


def wall_ns() -> int:
    return time.time_ns()  # clock-edge: the alert service's evaluation time


class AlertsService:
    """One evaluation cycle: read the job log, fold the journal, deliver what is due."""

    def __init__(self, config: AlertsConfig, journal_path: Path, clock: Callable[[], int] = wall_ns) -> None:
        self.config = config
        self.journal_path = journal_path
        self.clock = clock
        self.store = AlertStore(config.state, str(journal_path.resolve()))
        self.engine = AlertEngine(config.rules, self.store)
        self.sent = 0
        self.failed = 0
        self.sent_by_phase: Counter[str] = Counter()
        self.outbox = Outbox([], [], [], [])  # what the last delivery pass found

    def close(self) -> None:
        self.store.close()

    def cycle(self) -> EvaluationReport:
        try:
            if self.store.sync_operations():  # acknowledgements / silences another process journaled
                log.info("alert operations folded up to seq %d", self.store.operations_seq)
        except AlertStateError as error:  # keep alerting with what was folded; say why once
            log.error("%s", error)
        now_ns = self.clock()
        journal = self._journal()
        try:
            report = self.engine.evaluate(journal, now_ns, self._job_outcomes())
        finally:
            if journal is not None:
                journal.close()
        for alert in report.fired:
            log.warning("alert fired: %s %s: %s", alert.rule, alert.key, alert.message, extra=_fields(alert))
        for alert in report.resolved:
            log.info(
                "alert resolved: %s %s: %s",
                alert.rule,
                alert.key,
                alert.resolved_message,
                extra=_fields(alert),
            )
        self.deliver()
        return report

    def _journal(self) -> Journal | None:
        try:
            journal = open_journal(self.journal_path)
        except JournalError as error:
            log.warning("journal not readable yet: %s", error)
            return None
        return journal

    def _job_outcomes(self) -> list[JobOutcome]:
        path = self.config.job_log
        if path is None:
            return []
        if not path.is_file():  # JobLog would create it: a missing log is reported, not made
            return JobOutcomes(
                source=str(path), error="no such file: is the scheduler running, job_log right?"
            )
        try:
            with JobLog(path) as job_log:
                job_log.settle_abandoned(self.clock(), scheduler_gone=False)  # a killed scheduler's
                return JobOutcomes(job_log.final_outcomes(), source=str(path))
        except (sqlite3.Error, OSError) as error:
            return JobOutcomes(source=str(path), error=f"{type(error).__name__}: {error}")

    def deliver(self) -> None:
        """Send what the outbox holds, in order: an alert's fire before its resolve to each
        route (both in one pass when it fired and resolved in one batch); after a failed send
        the rest of that alert's notices to that route wait for the retry. Resolved alerts every
        route is done with are settled, and those a silence kept from a route are logged then."""
        routes = {route.name: route for route in self.config.routes}
        outbox = self.store.outbox(
            {name: route.min_severity for name, route in routes.items()},
            self.clock(),
            repeat_s=self.config.repeat_s,
            retry_s=self.config.retry_s,
            notify_resolved=self.config.notify_resolved,
        )
        self.outbox = outbox
        try:
            self._send_due(outbox, routes)
        finally:
            for route in routes.values():
                route.close()
        for held in outbox.held:
            if held.final:
                log.info(
                    "alert %d not sent to %s: it resolved while %s held it back",
                    held.alert.id,
                    held.route,
                    held.reason,
                    extra=_fields(held.alert),
                )
        self.store.settle(outbox.settled, self.clock())

    def _send_due(self, outbox: Outbox, routes: dict[str, Route]) -> None:
        """``deliver``'s sends, each recorded as it happens (the routes are closed after)."""
        failed: set[tuple[int, str]] = set()
        for pending in outbox.due:
            if (pending.alert.id, pending.route) in failed:
                continue  # never a resolve to a route its fire did not reach
            try:
                routes[pending.route].send(pending, str(self.journal_path))
            except DeliveryFailed as error:
                failed.add((pending.alert.id, pending.route))
                self.failed += 1
                log.error(
                    "alert %d not delivered to %s: %s",
                    pending.alert.id,
                    pending.route,
                    error,
                    extra=_fields(pending.alert),
                )
                self.store.record_delivery(pending, self.clock(), str(error) or "failed")
                continue
            self.sent += 1
            self.sent_by_phase[pending.phase] += 1
            log.info(
                "alert %d %s sent to %s",
                pending.alert.id,
                pending.phase,
                pending.route,
                extra=_fields(pending.alert),
            )
            self.store.record_delivery(pending, self.clock())

    def summary(self) -> str:
        """Notifications sent (by phase) and failed, and what the last delivery pass held back:
        notices a silence keeps (for now, or for good: the alert resolved while silenced) and
        alerts no route takes (below every route's ``min_severity``). Over a fresh state with
        one route every fired alert is one of: a fire sent, a fire failed, held, not routed."""
        by_phase = [
            f"{self.sent_by_phase[p]} {p}" for p in ("fire", "resolve", "repeat") if self.sent_by_phase[p]
        ]
        text = f"{self.sent} notifications sent"
        text += f" ({', '.join(by_phase)})" if by_phase else ""
        text += f", {self.failed} failed"
        held = self.outbox.held
        if held:
            final = sum(h.final for h in held)
            text += f"; {len(held)} held back by silences ({final} resolved while silenced)"
        if self.outbox.unrouted:
            unrouted = len(self.outbox.unrouted)
            text += f"; {unrouted} alert{'s' * (unrouted != 1)} below every route's min_severity"
        if not self.config.routes:
            text += "; no routes: nothing delivered"
        return text

    def delivery_json(self) -> dict[str, Any]:
        """``summary`` as numbers (``alerts check`` / ``follow --json``)."""
        held = self.outbox.held
        return {
            "sent": self.sent,
            "sent_by_phase": {phase: self.sent_by_phase[phase] for phase in ("fire", "resolve", "repeat")},
            "failed": self.failed,
            "held_by_silences": len(held),
            "held_resolved_while_silenced": sum(h.final for h in held),
            "below_every_route": len(self.outbox.unrouted),
            "routes": [route.name for route in self.config.routes],
        }


def _fields(alert: Alert) -> dict[str, Any]:
    return {"seq": alert.fired_seq, "alert_id": alert.id}


def evaluator_lock_path(state: Path) -> Path:
    """The lock ``alerts follow`` holds while it runs and ``alerts check`` for its cycle: one
    process at a time folds the journal into a state and delivers from it."""
    return state.with_name(state.name + ".lock")


@contextmanager
def _service(args: argparse.Namespace, config: AlertsConfig, redactor: Redactor) -> Iterator[AlertsService]:
    # Always JSON and redacted: to the configured file, else stderr (never the plain last resort).
    setup: LogSetup | None = configure_logging(
        "alerts", run=Path(args.journal).name, path=config.log, redactor=redactor
    )
    try:
        service = AlertsService(config, Path(args.journal))
    except AlertStateError as error:
        raise ConfigError(str(error)) from None
    try:
        yield service
    finally:
        service.close()
        if setup is not None:
            setup.close()


@contextmanager
def _evaluator(config: AlertsConfig, verb: str) -> Iterator[bool]:
    """Hold the state's evaluator lock while the block runs (True), or False when another
    process holds it. Two evaluators of one state would each send every notification (each
    reads the outbox before the other records a send) and fold the journal with rule state
    the other one moved past."""
    fd = hold_lock(evaluator_lock_path(config.state), f"tape alerts {verb} {config.path}")
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def cmd_alerts_follow(args: argparse.Namespace) -> int:
    """Evaluate and deliver until a signal; ``--json`` writes what it sent at the stop."""
    one_stdout(json=args.json)
    poll_arg = poll_seconds(args.poll_s) if args.poll_s is not None else None  # before any state is made
    redactor = Redactor()
    config = load_alerts_config(Path(args.rules), redactor)
    with _evaluator(config, "follow") as held:
        if not held:
            raise ConfigError(
                f"{config.state}: {lock_holder(evaluator_lock_path(config.state))} already evaluates "
                "this alert state; one follower per state (stop that one, or give this rules file "
                "its own `state`)"
            )
        stop = stop_on_signals()
        with _service(args, config, redactor) as service:
            poll_s = poll_arg if poll_arg is not None else service.config.poll_s
            log.info(
                "following %s with %d rules, %d routes",
                args.journal,
                len(service.config.rules),
                len(service.config.routes),
            )
            records = cycles = 0
            while not stop.is_set():
                report = service.cycle()
                records, cycles = records + report.records, cycles + 1
                if report.records == 0:
                    stop.wait(poll_s)
            log.info("stopped: %s", service.summary())
            if args.json:
                document = {
                    "journal": str(Path(args.journal)),
                    "rules": str(Path(args.rules)),
                    "cycles": cycles,
                    "records": records,
                    "firing": [_alert_json(alert) for alert in service.store.alerts(firing_only=True)],
                    "delivery": service.delivery_json(),
                }
                write_output(args.json, json.dumps(document, indent=1) + "\n", option="--json")
    stop.raise_if_stopped()
    return 0


def cmd_alerts_check(args: argparse.Namespace) -> int:
    """One cycle; prints the firing alerts; exit 1 when any is firing. While ``alerts follow``
    evaluates the same state, the follower's firing alerts are shown instead (it delivers).
    ``--json`` / ``--csv`` (``-``: stdout, no table): the same, and the delivery counts."""
    on_stdout = one_stdout(json=args.json, csv=args.csv)
    open_journal(args.journal).close()  # a path that is no journal is refused (exit 2), not waited for
    redactor = Redactor()
    config = load_alerts_config(Path(args.rules), redactor, sending=not args.no_send)
    document: dict[str, Any] = {"journal": str(Path(args.journal)), "rules": str(Path(args.rules))}
    with results_on_stderr(on_stdout), _evaluator(config, "check") as held:
        if not held:
            firing = _check_beside_the_evaluator(args, config, document)
        else:
            firing = _check_here(args, config, redactor, document)
    if args.json:
        write_output(args.json, json.dumps(document, indent=1) + "\n", option="--json")
    if args.csv:
        write_output(args.csv, _check_csv(document), option="--csv")
    return 1 if firing else 0


def _check_here(
    args: argparse.Namespace, config: AlertsConfig, redactor: Redactor, document: dict[str, Any]
) -> list[Alert]:
    """``alerts check``'s own cycle: evaluated and (but ``--no-send``) delivered here."""
    with _service(args, config, redactor) as service:
        if args.no_send:
            service.config.routes = []
        report = service.cycle()
        firing = service.store.alerts(firing_only=True)
        counts = f"{len(report.fired)} fired, {len(report.resolved)} resolved"
        console.print(
            f"{report.records:,} new records; {counts}; "
            + ("--no-send: nothing delivered" if args.no_send else service.summary())
        )
        _print_alerts(firing, "firing alerts")
        document.update(
            evaluated_here=True,
            evaluator="",
            checkpoint_seq=service.store.checkpoint_seq,
            records=report.records,
            fired=[_alert_json(alert) for alert in report.fired],
            resolved=[_alert_json(alert) for alert in report.resolved],
            firing=[_alert_json(alert) for alert in firing],
            no_send=bool(args.no_send),
            delivery=service.delivery_json(),
        )
        return firing


def _check_beside_the_evaluator(
    args: argparse.Namespace, config: AlertsConfig, document: dict[str, Any]
) -> list[Alert]:
    """``alerts check`` while another process (``alerts follow``) evaluates the state: that one
    folds and delivers; this one shows its firing alerts, as of its checkpoint."""
    holder = lock_holder(evaluator_lock_path(config.state))
    store = open_alert_state(Path(args.rules), Path(args.journal))
    try:
        firing = store.alerts(firing_only=True)
        checkpoint = store.checkpoint_seq
    finally:
        store.close()
    console.print(
        f"{holder} evaluates {config.state} and delivers its alerts; its firing alerts up to "
        f"journal seq {checkpoint} (nothing evaluated or sent here)"
    )
    _print_alerts(firing, "firing alerts")
    document.update(
        evaluated_here=False,
        evaluator=holder,
        checkpoint_seq=checkpoint,
        records=0,
        fired=[],
        resolved=[],
        firing=[_alert_json(alert) for alert in firing],
        no_send=bool(args.no_send),
        delivery=None,  # the evaluator delivers: nothing was sent here
    )
    return firing


_CHECK_FIELDS = (
    "alert",
    "id",
    "rule",
    "key",
    "severity",
    "status",
    "fired",
    "fired_seq",
    "acked_by",
    "message",
)


def _check_csv(document: dict[str, Any]) -> str:
    """``alerts check --csv``: one row per alert fired or resolved by this cycle, and per alert
    firing after it; ``alert`` says which (``fired``, ``resolved``, ``firing``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, _CHECK_FIELDS, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for table in ("fired", "resolved", "firing"):
        writer.writerows({"alert": table, **alert} for alert in document[table])
    return buffer.getvalue()


def _open_store(args: argparse.Namespace) -> AlertStore:
    return open_alert_state(Path(args.rules))


def open_alert_state(rules: Path, journal: Path | None = None) -> AlertStore:
    """The alert state of a rules file (its ``state``), which ``alerts check`` / ``follow``
    wrote; with ``journal``, refused when it holds another journal's alerts."""
    config = load_alerts_config(rules, Redactor(), sending=False)
    if not config.state.exists():
        raise ConfigError(f"{config.state}: no alert state yet (run tape alerts check or follow first)")
    try:
        store = AlertStore(config.state, str(journal.resolve()) if journal is not None else "")
    except AlertStateError as error:
        raise ConfigError(str(error)) from None
    try:
        store.sync_operations()  # what the alerts journal holds, whoever wrote it
    except AlertStateError as error:
        store.close()
        raise ConfigError(str(error)) from None
    return store


def firing_alerts(rules: Path, journal: Path | None = None) -> list[Alert]:
    """The alerts firing now, as ``tape alerts list`` shows them."""
    store = open_alert_state(rules, journal)
    try:
        return store.alerts(firing_only=True)
    finally:
        store.close()


def alert_operations(
    rules: Path, journal: Path | None = None
) -> tuple[list[tuple[int, AlertOperation]], list[Silence]]:
    """The journaled acknowledgements and silences as (seq, event), oldest first, and the
    silences in force now, folded from the alerts journal: what the cockpit shows."""
    store = open_alert_state(rules, journal)
    try:
        return store.operations(), store.silences(wall_ns())
    except AlertStateError as error:
        raise ConfigError(str(error)) from None
    finally:
        store.close()


def acknowledge_alert(rules: Path, alert_id: int, by: str) -> Alert:
    """Acknowledge an alert (its repeats stop): journaled (``alert.acknowledged.v1``, who and
    when: the wall clock) in the alerts journal and folded into the alert state. ``tape alerts
    ack`` and the cockpit's ``a`` both come here."""
    store = open_alert_state(rules)
    try:
        return store.acknowledge(alert_id, by, wall_ns())
    except AlertStateError as error:
        raise ConfigError(str(error)) from None
    finally:
        store.close()


def _iso(ns: int | None) -> str:
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_WIDER = "a wider terminal shows them, e.g. COLUMNS=160"
_ALERT_COLUMNS = (
    Column("id", 9),
    Column("rule", 8),
    Column("key", 7),
    Column("severity", 4),
    Column("status", 3),  # dropped first: who acknowledged an alert matters more
    Column("fired", 5),
    Column("acked", 6),
    Column("message", 10, wraps=True),
)


def _print_alerts(alerts: list[Alert], title: str) -> None:
    """Fitted to the terminal (``cli.research_tables.print_fitted``): the message wraps between
    words, never inside a number; columns that do not fit are dropped and named."""
    rows = [
        (
            str(alert.id),
            alert.rule,
            alert.key,
            alert.severity,
            alert.status,
            _iso(alert.fired_ts_ns),  # the journal event that fired it, not when it was evaluated
            alert.acked_by or "",
            " ".join(alert.message.split()),
        )
        for alert in alerts
    ]
    print_fitted(title, _ALERT_COLUMNS, rows, left=len(_ALERT_COLUMNS), elsewhere=_WIDER)


_SILENCE_COLUMNS = (
    Column("id", 9),
    Column("rule", 8),
    Column("key", 7),
    Column("until", 6),
    Column("by", 5),
    Column("reason", 4, wraps=True),
)


def _print_silences(silences: list[dict[str, Any]]) -> None:
    rows = [
        (str(s["id"]), s["rule"], s["key"] or "*", s["until"], s["by"], " ".join(s["reason"].split()))
        for s in silences
    ]
    print_fitted("silences in force", _SILENCE_COLUMNS, rows, left=len(_SILENCE_COLUMNS), elsewhere=_WIDER)


def _alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule": alert.rule,
        "key": alert.key,
        "severity": alert.severity,
        "status": alert.status,
        "fired": _iso(alert.fired_ts_ns),  # the journal event that fired it (its time, UTC)
        "fired_seq": alert.fired_seq,
        "fired_ts_ns": alert.fired_ts_ns,
        "evaluated_at": _iso(alert.fired_at_ns),
        "resolved_seq": alert.resolved_seq,
        "resolved_at": _iso(alert.resolved_at_ns),
        "acked_by": alert.acked_by or "",
        "acked_at": _iso(alert.acked_at_ns),
        "message": alert.message,
        "resolved_message": alert.resolved_message or "",
    }


def _silence_json(silence: Silence, by: dict[int, str]) -> dict[str, Any]:
    return {
        "id": silence.id,
        "rule": silence.rule,
        "key": silence.key,  # "": every key
        "until": _iso(silence.until_ns),
        "until_ns": silence.until_ns,
        "by": by.get(silence.id, ""),
        "reason": silence.reason,
    }


def _operation_json(seq: int, event: AlertOperation) -> dict[str, Any]:
    kind = {AlertAcknowledged: "ack", AlertSilenced: "silence"}.get(type(event), "unsilence")
    return {
        "seq": seq,
        "at": _iso(event.ts_ns),
        "by": event.operator,
        "kind": kind,
        "what": operation_text(event),
    }


_CSV_FIELDS = (
    "table",
    "id",
    "rule",
    "key",
    "severity",
    "status",
    "fired",
    "fired_seq",
    "until",
    "by",
    "text",
)


def _list_csv(document: dict[str, Any]) -> str:
    """One row per alert, silence in force and (``--all``) journaled operation; ``table`` says
    which. ``text``: an alert's message, a silence's reason, an operation's line; ``by``: who
    acknowledged the alert, set the silence, journaled the operation; ``id``: the operation's seq;
    ``status``: its kind (ack, silence, unsilence)."""
    rows = [
        {"table": "alert", **alert, "by": alert["acked_by"], "text": alert["message"]}
        for alert in document["alerts"]
    ]
    rows += [{"table": "silence", **silence, "text": silence["reason"]} for silence in document["silences"]]
    rows += [
        {"table": "operation", "id": op["seq"], "status": op["kind"], "by": op["by"], "text": op["what"]}
        for op in document.get("operations", [])
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, _CSV_FIELDS, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def cmd_alerts_list(args: argparse.Namespace) -> int:
    """Firing (``--all``: every) alert, the silences in force and (``--all``) every journaled
    operation, fitted to the terminal; ``--json`` / ``--csv`` (``-``: stdout, no table)."""
    one_stdout(json=args.json, csv=args.csv)
    store = _open_store(args)
    try:
        alerts = store.alerts(firing_only=not args.all)
        operations = store.operations()
        by = {e.silence_id: e.operator for _, e in operations if isinstance(e, AlertSilenced)}
        silences = [_silence_json(silence, by) for silence in store.silences(wall_ns())]
        journal_name = store.operations_path.name
    except AlertStateError as error:
        raise ConfigError(str(error)) from None
    finally:
        store.close()
    document: dict[str, Any] = {
        "rules": str(Path(args.rules)),
        "alerts": [_alert_json(alert) for alert in alerts],
        "silences": silences,
    }
    if args.all:
        document["operations"] = [_operation_json(seq, event) for seq, event in operations]
    if args.json:
        write_output(args.json, json.dumps(document, indent=1) + "\n", option="--json")
    if args.csv:
        write_output(args.csv, _list_csv(document), option="--csv")
    if "-" in (args.json, args.csv):
        return 0
    _print_alerts(alerts, "alerts" if args.all else "firing alerts")
    _print_silences(silences)
    if args.all:
        _print_operations(operations, f"alerts journal {journal_name}")
    return 0


def operation_text(event: AlertOperation) -> str:
    """One journaled acknowledgement or silence, as a line."""
    if isinstance(event, AlertAcknowledged):
        return f"ack alert {event.alert_id} ({event.rule} {event.key}, fired at seq {event.fired_seq})"
    if isinstance(event, AlertSilenced):
        return (
            f"silence {event.silence_id}: {event.rule} {event.key or '(every key)'} "
            f"until {_iso(event.until_ns)} {event.reason}".rstrip()
        )
    return f"unsilence {event.silence_id}"


def _print_operations(operations: list[tuple[int, AlertOperation]], title: str) -> None:
    columns = (Column("seq", 9), Column("at", 7), Column("by", 8), Column("what", 10, wraps=True))
    rows = [
        (str(seq), _iso(event.ts_ns), event.operator, " ".join(operation_text(event).split()))
        for seq, event in operations
    ]
    print_fitted(title, columns, rows, left=len(columns), elsewhere=_WIDER)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_duration_s(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``1d`` -> seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ConfigError(f"duration {text!r}: write a number and s, m, h or d (e.g. 2h)")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


SILENCE_S_MAX = 366 * 86400  # a longer silence is a rule to change or remove (docs/operations.md)


def cmd_alerts_silence(args: argparse.Namespace) -> int:
    with results_on_stderr(one_stdout(json=args.json)):
        document = _silence(args)
    if args.json:
        write_output(args.json, json.dumps(document, indent=1) + "\n", option="--json")
    return 0


def _silence(args: argparse.Namespace) -> dict[str, Any]:
    """Set the silence (journaled), say so; the silence as ``--json`` writes it."""
    config = load_alerts_config(Path(args.rules), Redactor(), sending=False)
    names = [rule.name for rule in config.rules]
    if args.rule not in names:
        raise ConfigError(f"{args.rules} defines no rule {args.rule!r} (rules: {', '.join(names)})")
    duration_s = parse_duration_s(args.duration)
    if not 0 < duration_s <= SILENCE_S_MAX:
        raise ConfigError(
            f"--for {args.duration}: a silence lasts more than 0 s and at most 366d "
            "(for longer, change or remove the rule)"
        )
    store = _open_store(args)
    try:
        now_ns = wall_ns()
        until_ns = now_ns + int(duration_s * 1e9)
        by = args.by or getpass.getuser()
        silence_id = store.silence(args.rule, args.key or "", until_ns, args.reason, now_ns, by)
    except AlertStateError as error:
        raise ConfigError(str(error)) from None
    finally:
        store.close()
    console.print(f"silence {silence_id}: {args.rule} {args.key or '(every key)'} until {_iso(until_ns)}")
    return {"silence_id": silence_id, "rule": args.rule, "key": args.key or "", "until": _iso(until_ns),
            "until_ns": until_ns, "by": by, "reason": args.reason}  # fmt: skip


def cmd_alerts_unsilence(args: argparse.Namespace) -> int:
    on_stdout = one_stdout(json=args.json)
    store = _open_store(args)
    by = args.by or getpass.getuser()
    try:
        store.unsilence(args.silence_id, wall_ns(), by)
    except AlertStateError as error:
        raise ConfigError(str(error)) from None
    finally:
        store.close()
    with results_on_stderr(on_stdout):
        console.print(f"silence {args.silence_id} ended")
    if args.json:
        document = {"silence_id": args.silence_id, "ended": True, "by": by}
        write_output(args.json, json.dumps(document, indent=1) + "\n", option="--json")
    return 0


def cmd_alerts_ack(args: argparse.Namespace) -> int:
    on_stdout = one_stdout(json=args.json)
    alert = acknowledge_alert(Path(args.rules), args.alert_id, args.by or getpass.getuser())
    with results_on_stderr(on_stdout):
        console.print(f"alert {alert.id} ({alert.rule} {alert.key}) acknowledged by {alert.acked_by}")
    if args.json:
        document = {"alert_id": alert.id, "alert": _alert_json(alert)}
        write_output(args.json, json.dumps(document, indent=1) + "\n", option="--json")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "follow": cmd_alerts_follow,
    "check": cmd_alerts_check,
    "list": cmd_alerts_list,
    "silence": cmd_alerts_silence,
    "unsilence": cmd_alerts_unsilence,
    "ack": cmd_alerts_ack,
}


def cmd_alerts(args: argparse.Namespace) -> int:
    return COMMANDS[args.alerts_verb](args)


def add_alerts_parser(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    alerts = verbs.add_parser("alerts", help="alert rules over a journal: follow, check, silence, ack")
    sub = alerts.add_subparsers(dest="alerts_verb", required=True)
    follow = sub.add_parser("follow", help="evaluate the rules as the journal grows and send alerts")
    check = sub.add_parser("check", help="one evaluation; exit 1 while an alert is firing")
    for parser in (follow, check):
        parser.add_argument("journal")
        parser.add_argument("--rules", required=True, help="alerts TOML (docs/operations.md)")
    follow.add_argument("--poll-s", type=float, help="seconds between polls (default: poll_s or 0.25)")
    check.add_argument("--no-send", action="store_true", help="evaluate only; deliver nothing")
    listing = sub.add_parser("list", help="firing alerts and silences in force")
    silence = sub.add_parser("silence", help="hold back a rule's alerts (all keys, or --key) for a while")
    silence.add_argument("rule")
    silence.add_argument("--key", help="only this key (a currency, strategy, job...)")
    silence.add_argument("--for", dest="duration", required=True, help="e.g. 30m, 2h, 1d")
    silence.add_argument("--reason", default="")
    unsilence = sub.add_parser("unsilence", help="end a silence now")
    unsilence.add_argument("silence_id", type=int)
    ack = sub.add_parser("ack", help="acknowledge an alert (stops its repeats)")
    ack.add_argument("alert_id", type=int)
    ack.add_argument("--by", help="who (default: the login name)")
    listing.add_argument(
        "--all", action="store_true", help="resolved alerts too, and every journaled ack and silence"
    )
    listing.add_argument(
        "--json",
        type=output_file,
        metavar="PATH",
        nargs="?",
        const="-",
        help="write the alerts, silences (and --all's operations) (alone or '-': stdout, no table)",
    )
    listing.add_argument(
        "--csv",
        type=output_file,
        metavar="PATH",
        help="write one row per alert, silence and operation ('-': stdout, no table)",
    )
    for parser in (silence, unsilence):
        parser.add_argument("--by", help="who (default: the login name)")
    acted_on = {
        silence: "the silence set (its id, rule, key, until, by)",
        unsilence: "the silence ended",
        ack: "the alert acknowledged (its id and fields)",
        follow: "at the stop: what was sent, failed, held back, and the alerts firing",
    }
    for parser, what in acted_on.items():
        parser.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                            help=f"write {what} as JSON (alone or '-': stdout)")  # fmt: skip
    check.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                       help="write the alerts fired, resolved and firing and the delivery counts as JSON "
                       "(alone or '-': stdout, no table; same exit status)")  # fmt: skip
    check.add_argument(
        "--csv",
        type=output_file,
        metavar="PATH",
        help="write one row per alert fired, resolved and firing ('-': stdout, no table)",
    )
    for parser in (listing, silence, unsilence, ack):
        parser.add_argument("--rules", required=True, help="alerts TOML (its state file is used)")
