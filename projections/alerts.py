"""Alert rules evaluated from the journal, like a projection: a fold with a checkpoint.

Each rule folds the records it cares about (by kind, decoded only then) and reports
*observations*: ``(rule, key, breached, message)``. The engine turns them into alerts with
de-duplication: an alert *fires* when its (rule, key) becomes breached and is not already
firing, and *resolves* when it is observed clear again. Between the two nothing new is raised,
however often the condition is seen. Three rules look at the present rather than the journal:
``staleness`` (the age of the journal's last record at ``now_ns``), ``failed_jobs`` (the
scheduler's job log, passed in as ``JobOutcome`` rows by the caller) and ``reconciliation``
(the JSON report a ``tape reconcile --json`` job leaves).

State lives in one SQLite file (``AlertStore``): the checkpoint, the rules' fold state, every
alert (firing and resolved), silences, acknowledgements and every delivery attempt. The
operators' acknowledgements and silences are first journaled, as ``alert.acknowledged.v1``,
``alert.silenced.v1`` and ``alert.unsilenced.v1`` records in an *alerts journal* of Tape's own
hash-chained format beside the state file (``operations_journal_path``), and the state holds
their fold (its own checkpoint on that journal), so a lost or rebuilt state gets them back and
``tape verify`` checks who did what. A batch of
records, its alerts and the new checkpoint commit in one transaction, so a restarted
``tape alerts follow`` neither re-raises nor loses an alert. Deliveries work from the store like
an outbox (``AlertStore.outbox``): an alert is sent to each route until a send succeeds; a
silenced alert is held back and sent if still firing when the silence ends; an unacknowledged
firing alert is re-sent every ``repeat_s`` when that is set.

Nothing here reads the clock: callers pass ``now_ns`` (wall clock in ``cli``, fixed in tests).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from domain.events import (
    ALERT_OPERATION_KINDS,
    AlertAcknowledged,
    AlertSilenced,
    AlertUnsilenced,
    AnyEvent,
    BarsReceived,
    DayClosed,
    KillSwitchRearmed,
    KillSwitchTripped,
    OrderAccepted,
    OrderRejected,
    OrderSubmitted,
    VenueMessageReceived,
)
from domain.fixed import minor_digits, to_decimal
from kernel.journal import Journal, JournalError, Record
from kernel.store import open_journal

__all__ = [
    "RULE_KINDS",
    "SEVERITIES",
    "STATE_SCHEMA_VERSION",
    "Alert",
    "AlertConfigError",
    "AlertEngine",
    "AlertOperation",
    "EvaluationReport",
    "AlertStateError",
    "AlertStore",
    "BarLagRule",
    "JobOutcome",
    "JobOutcomes",
    "Observation",
    "Outbox",
    "Held",
    "Pending",
    "ReconciliationRule",
    "Rule",
    "Silence",
    "VenueLatencyRule",
    "rules_from_config",
    "observations_of",
    "operations_journal_path",
    "severity_at_least",
]

SEVERITIES = ("info", "warning", "critical")
BPS = 10_000


class AlertConfigError(ValueError):
    """The alert rules or routes cannot be used as written (named in the message)."""


class AlertStateError(Exception):
    """The alert state file belongs to another journal or has another schema."""


def severity_at_least(severity: str, minimum: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)


@dataclass(frozen=True)
class Observation:
    rule: str
    key: str
    breached: bool
    message: str
    seq: int  # the journal record that showed it (-1: not from the journal)
    ts_ns: int  # that record's event time (or the evaluation time)


@dataclass(frozen=True)
class JobOutcome:
    """The final attempt of one scheduled job run (``cli.scheduler``'s job log)."""

    job: str
    run_id: int
    outcome: str  # "ok" | "failed" | "timeout"
    finished_ns: int
    detail: str = ""


class JobOutcomes(list[JobOutcome]):
    """The final runs read from a scheduler's job log (``source``, its path), or none and
    ``error``: why the log could not be read (missing, not a job log)."""

    def __init__(self, outcomes: Iterable[JobOutcome] = (), *, source: str = "", error: str = "") -> None:
        super().__init__(outcomes)
        self.source, self.error = source, error


class Rule(Protocol):
    name: str
    severity: str
    kinds: frozenset[str]  # record kinds it folds (decoded only for these)

    def observe(self, seq: int, event: AnyEvent) -> list[Observation]: ...
    def observe_now(self, now_ns: int, jobs: Sequence[JobOutcome]) -> list[Observation]: ...
    def state(self) -> dict[str, Any]: ...
    def load(self, state: Mapping[str, Any]) -> None: ...


def _tag(cls: type) -> str:
    """The journal kind of an event class (its msgspec tag)."""
    return str(cls.__struct_config__.tag)  # type: ignore[attr-defined]


def _pct(bps: int) -> str:
    return f"{bps / 100:.2f}%"


def _money(minor: int, currency: str) -> str:
    try:
        return f"{to_decimal(minor, minor_digits(currency)):,} {currency}"
    except (KeyError, ValueError):
        return f"{minor:,} minor {currency}"


class _NoNow:
    """Mixin: a rule that only looks at the journal."""

    def observe_now(self, now_ns: int, jobs: Sequence[JobOutcome]) -> list[Observation]:
        return []


class DrawdownRule(_NoNow):
    """Day-close NAV below its running peak by ``limit_bps`` or more; key = currency."""

    kinds = frozenset({_tag(DayClosed)})

    def __init__(self, name: str, severity: str, limit_bps: int) -> None:
        self.name, self.severity, self.limit_bps = name, severity, limit_bps
        self.peak: dict[str, int] = {}

    def observe(self, seq: int, event: AnyEvent) -> list[Observation]:
        assert isinstance(event, DayClosed)
        peak = max(self.peak.get(event.currency, event.nav_minor), event.nav_minor)
        self.peak[event.currency] = peak
        drawdown_bps = (peak - event.nav_minor) * BPS // peak if peak > 0 else 0
        message = (
            f"drawdown {_pct(drawdown_bps)} from peak {_money(peak, event.currency)} "
            f"(limit {_pct(self.limit_bps)}) at the close of {event.day}: "
            f"NAV {_money(event.nav_minor, event.currency)}"
        )
        breached = drawdown_bps >= self.limit_bps
        return [Observation(self.name, event.currency, breached, message, seq, event.ts_ns)]

    def state(self) -> dict[str, Any]:
        return {"peak": self.peak}

    def load(self, state: Mapping[str, Any]) -> None:
        self.peak = dict(state.get("peak", {}))


class DailyLossRule(_NoNow):
    """Day-close NAV below the previous day's close by ``limit_bps`` or more; key = currency.
    The first day close of a journal has no previous close and is not judged."""

    kinds = frozenset({_tag(DayClosed)})

    def __init__(self, name: str, severity: str, limit_bps: int) -> None:
        self.name, self.severity, self.limit_bps = name, severity, limit_bps
        self.last: dict[str, int] = {}

    def observe(self, seq: int, event: AnyEvent) -> list[Observation]:
        assert isinstance(event, DayClosed)
        previous = self.last.get(event.currency)
        self.last[event.currency] = event.nav_minor
        if previous is None or previous <= 0:
            return []
        loss_bps = (previous - event.nav_minor) * BPS // previous
        message = (
            f"daily loss {_pct(max(loss_bps, 0))} on {event.day} (limit {_pct(self.limit_bps)}): "
            f"NAV {_money(previous, event.currency)} -> {_money(event.nav_minor, event.currency)}"
        )
        breached = loss_bps >= self.limit_bps
        return [Observation(self.name, event.currency, breached, message, seq, event.ts_ns)]

    def state(self) -> dict[str, Any]:
        return {"last": self.last}

    def load(self, state: Mapping[str, Any]) -> None:
        self.last = dict(state.get("last", {}))


class RejectRateRule(_NoNow):
    """Share of rejected orders among the last ``window_orders`` answered ones (accepted or
    rejected), per strategy, at least ``limit_bps`` once ``min_orders`` are answered."""

    kinds = frozenset(_tag(cls) for cls in (OrderSubmitted, OrderAccepted, OrderRejected))
    window_orders_max = 10_000

    def __init__(self, name: str, severity: str, limit_bps: int, window_orders: int, min_orders: int) -> None:
        if not 0 < min_orders <= window_orders <= self.window_orders_max:
            raise AlertConfigError(
                f"rule {name}: need 0 < min_orders <= window_orders <= {self.window_orders_max}"
            )
        self.name, self.severity, self.limit_bps = name, severity, limit_bps
        self.window_orders, self.min_orders = window_orders, min_orders
        self.open: dict[str, str] = {}  # order id -> strategy, until answered
        self.answers: dict[str, deque[int]] = {}  # strategy -> 1 rejected / 0 accepted

    def observe(self, seq: int, event: AnyEvent) -> list[Observation]:
        if isinstance(event, OrderSubmitted):
            self.open[event.order_id] = event.strategy_id
            return []
        assert isinstance(event, OrderAccepted | OrderRejected)
        strategy = self.open.pop(event.order_id, "unknown")
        window = self.answers.setdefault(strategy, deque(maxlen=self.window_orders))
        window.append(1 if isinstance(event, OrderRejected) else 0)
        if len(window) < self.min_orders:
            return []
        rate_bps = sum(window) * BPS // len(window)
        message = (
            f"reject rate {_pct(rate_bps)} of the last {len(window)} orders of {strategy} "
            f"(limit {_pct(self.limit_bps)})"
        )
        if isinstance(event, OrderRejected):
            message += f"; last reject {event.order_id}: {event.reason}"
        return [Observation(self.name, strategy, rate_bps >= self.limit_bps, message, seq, event.ts_ns)]

    def state(self) -> dict[str, Any]:
        return {"open": self.open, "answers": {k: list(v) for k, v in self.answers.items()}}

    def load(self, state: Mapping[str, Any]) -> None:
        self.open = dict(state.get("open", {}))
        self.answers = {k: deque(v, maxlen=self.window_orders) for k, v in state.get("answers", {}).items()}


class KillSwitchRule(_NoNow):
    """The kill switch tripped (any trigger, or an operator's halt); resolved by a rearm."""

    kinds = frozenset(_tag(cls) for cls in (KillSwitchTripped, KillSwitchRearmed))

    def __init__(self, name: str, severity: str) -> None:
        self.name, self.severity = name, severity

    def observe(self, seq: int, event: AnyEvent) -> list[Observation]:
        if isinstance(event, KillSwitchRearmed):
            message = f"kill switch rearmed by {event.operator}"
            return [Observation(self.name, "book", False, message, seq, event.ts_ns)]
        assert isinstance(event, KillSwitchTripped)
        action = "halt and flatten" if event.flatten else "halt"
        message = (
            f"kill switch tripped ({event.trigger}, {action}): {event.reason} "
            f"[observed {event.observed}, limit {event.limit}]"
        )
        return [Observation(self.name, "book", True, message, seq, event.ts_ns)]

    def state(self) -> dict[str, Any]:
        return {}

    def load(self, state: Mapping[str, Any]) -> None:
        return None


class _LatencyWindow(_NoNow):
    """A rolling window of the last ``window`` latencies (ns) of one kind; breached while its
    ``percentile`` (nearest rank; 100 = the slowest) is ``limit_ms`` or more, judged once
    ``min_samples`` are in it. Subclasses say which records carry a latency."""

    key = ""
    what = ""
    window_max = 10_000

    def __init__(
        self, name: str, severity: str, limit_ms: float, window: int, min_samples: int, percentile: int
    ):
        if not 0 < min_samples <= window <= self.window_max:
            raise AlertConfigError(f"rule {name}: need 0 < min_samples <= window <= {self.window_max}")
        if not 0 < percentile <= 100:
            raise AlertConfigError(f"rule {name}: percentile must lie in 1..100, got {percentile}")
        self.name, self.severity = name, severity
        self.limit_ns, self.window, self.min_samples, self.percentile = (
            int(limit_ms * 1e6),
            window,
            min_samples,
            percentile,
        )
        self.samples: deque[int] = deque(maxlen=window)

    def _sample(self, seq: int, ts_ns: int, latency_ns: int, about: str) -> list[Observation]:
        self.samples.append(latency_ns)
        if len(self.samples) < self.min_samples:
            return []
        ranked = sorted(self.samples)
        rank = max(1, -(-self.percentile * len(ranked) // 100))  # nearest rank, ceil(p * n / 100)
        quantile = ranked[rank - 1]
        message = (
            f"{self.what} p{self.percentile} {_ms(quantile)} over the last {len(ranked)} "
            f"(limit {_ms(self.limit_ns)}, slowest {_ms(ranked[-1])}); latest {about}: {_ms(latency_ns)}"
        )
        return [Observation(self.name, self.key, quantile >= self.limit_ns, message, seq, ts_ns)]

    def state(self) -> dict[str, Any]:
        return {"samples": list(self.samples)}

    def load(self, state: Mapping[str, Any]) -> None:
        self.samples = deque(state.get("samples", []), maxlen=self.window)


def _ms(ns: int) -> str:
    return f"{ns / 1e6:,.0f} ms"


class VenueLatencyRule(_LatencyWindow):
    """An asynchronous venue's answer latency: from an order's submission (``order.submitted``'s
    time, as the order's ``submitted_ts_ns``; or the edge's ``sent`` message, where it journals
    one: the round trip from the send) to the venue's time on its first ack or reject
    (``venue.message_received``), as the kernel's kill switch measures it; key ``venue``.
    Orders a synchronous venue answers in the same step have no venue message and no latency."""

    kinds = frozenset(
        _tag(cls) for cls in (OrderSubmitted, VenueMessageReceived, OrderAccepted, OrderRejected)
    )
    key = "venue"
    what = "venue answer latency"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.submitted: dict[str, int] = {}  # order id -> submission time, until its first answer

    def observe(self, seq: int, event: AnyEvent) -> list[Observation]:
        if isinstance(event, OrderSubmitted):
            self.submitted[event.order_id] = event.ts_ns
            return []
        if isinstance(event, OrderAccepted | OrderRejected):
            self.submitted.pop(event.order_id, None)  # answered (a synchronous venue: no latency)
            return []
        assert isinstance(event, VenueMessageReceived)
        message = event.message
        if message.kind == "sent" and message.order_id in self.submitted:
            self.submitted[message.order_id] = message.ts_ns  # the edge's send: the round trip starts
            return []
        if message.kind not in ("ack", "reject"):
            return []
        sent_ns = self.submitted.pop(message.order_id, None)
        if sent_ns is None:
            return []  # a duplicate, or an answer to an order this journal never sent
        about = f"{message.kind} of {message.order_id}"
        return self._sample(seq, event.ts_ns, message.ts_ns - sent_ns, about)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "submitted": self.submitted}

    def load(self, state: Mapping[str, Any]) -> None:
        super().load(state)
        self.submitted = dict(state.get("submitted", {}))


class BarLagRule(_LatencyWindow):
    """A live or paper feed's bar arrival lag: ``market.bars_received``'s arrival stamp
    (``received_ns``) minus the bars' close (the record's time); key ``bars``. Records without
    an arrival stamp (``received_ns`` 0: a feed with no clock, a backtest) are not counted."""

    kinds = frozenset({_tag(BarsReceived)})
    key = "bars"
    what = "bar arrival lag"

    def observe(self, seq: int, event: AnyEvent) -> list[Observation]:
        assert isinstance(event, BarsReceived)
        if event.received_ns <= 0:
            return []
        return self._sample(seq, event.ts_ns, event.received_ns - event.ts_ns, f"bars closing at seq {seq}")


class StalenessRule:
    """No journal record newer than ``max_age_s`` at evaluation time (a feed or a run that
    stopped writing). Clears when a newer record arrives. Needs ``now_ns`` from the caller;
    the alert's event time is the newest record's time plus ``max_age_s``."""

    kinds = frozenset[str]()
    tracks_every_record = True

    def __init__(self, name: str, severity: str, max_age_s: float) -> None:
        self.name, self.severity, self.max_age_ns = name, severity, int(max_age_s * 1e9)
        self.last_ts_ns: int | None = None
        self.last_seq = -1

    def see(self, seq: int, ts_ns: int) -> None:
        if self.last_ts_ns is None or ts_ns >= self.last_ts_ns:
            self.last_ts_ns, self.last_seq = ts_ns, seq

    def observe(self, seq: int, event: AnyEvent) -> list[Observation]:
        return []

    def observe_now(self, now_ns: int, jobs: Sequence[JobOutcome]) -> list[Observation]:
        if self.last_ts_ns is None:
            return []
        age_s = (now_ns - self.last_ts_ns) / 1e9
        message = (
            f"journal's newest record (seq {self.last_seq}) is {age_s:,.0f} s old "
            f"(limit {self.max_age_ns / 1e9:,.0f} s)"
        )
        breached = now_ns - self.last_ts_ns > self.max_age_ns
        # its event time: when the journal went stale by its own clock (not when that was seen)
        stale_at = self.last_ts_ns + self.max_age_ns if breached else now_ns
        return [Observation(self.name, "journal", breached, message, self.last_seq, stale_at)]

    def state(self) -> dict[str, Any]:
        return {"last_ts_ns": self.last_ts_ns, "last_seq": self.last_seq}

    def load(self, state: Mapping[str, Any]) -> None:
        self.last_ts_ns = state.get("last_ts_ns")
        self.last_seq = int(state.get("last_seq", -1))


class FailedJobsRule(_NoNow):
    """A scheduled job whose latest run failed (after its retries); key = job name. Clears
    when the job's next run succeeds."""

    kinds = frozenset[str]()

    def __init__(self, name: str, severity: str) -> None:
        self.name, self.severity = name, severity

    def observe(self, seq: int, event: AnyEvent) -> list[Observation]:
        return []

    def observe_now(self, now_ns: int, jobs: Sequence[JobOutcome]) -> list[Observation]:
        latest: dict[str, JobOutcome] = {}
        for outcome in jobs:
            if outcome.job not in latest or outcome.run_id > latest[outcome.job].run_id:
                latest[outcome.job] = outcome
        observations = []
        for job in sorted(latest):
            outcome = latest[job]
            breached = outcome.outcome != "ok"
            message = f"job {job} run {outcome.run_id}: {outcome.outcome}"
            if outcome.detail:
                message += f" ({outcome.detail})"
            observations.append(Observation(self.name, job, breached, message, -1, outcome.finished_ns))
        source = getattr(jobs, "source", "")
        if source:  # a job log nobody can read hides every failed job: that fires too
            error = getattr(jobs, "error", "")
            message = (
                f"job log {source} cannot be read ({error}): failed jobs cannot be seen"
                if error
                else f"job log {source} read"
            )
            observations.append(Observation(self.name, f"job log {source}", bool(error), message, -1, now_ns))
        return observations

    def state(self) -> dict[str, Any]:
        return {}

    def load(self, state: Mapping[str, Any]) -> None:
        return None


class ReconciliationRule(_NoNow):
    """The report ``tape reconcile JOURNAL --json PATH`` writes (``projections.reconcile``):
    breached while it lists a difference; key = the report's path. A report not written yet
    says nothing (the job's own failure is ``failed_jobs``); one that cannot be read is
    breached: a reconciliation nobody can check is not a clean one."""

    kinds = frozenset[str]()
    lines_in_message_max = 5

    def __init__(self, name: str, severity: str, report: Path) -> None:
        self.name, self.severity, self.report = name, severity, report

    def observe(self, seq: int, event: AnyEvent) -> list[Observation]:
        return []

    def observe_now(self, now_ns: int, jobs: Sequence[JobOutcome]) -> list[Observation]:
        if not self.report.exists():
            return []
        key = str(self.report)
        try:
            data = json.loads(self.report.read_text(encoding="utf-8"))
            lines = list(data["lines"])
            differing = [line for line in lines if not line["ok"]]
            message = self._message(data, lines, differing)
        except (OSError, ValueError, KeyError, TypeError) as error:
            text = f"reconciliation report {key} cannot be read: {type(error).__name__}: {error}"
            return [Observation(self.name, key, True, text, -1, now_ns)]
        return [Observation(self.name, key, bool(differing), message, -1, now_ns)]

    def _message(self, data: Mapping[str, Any], lines: list[Any], differing: list[Any]) -> str:
        where = f"{data['journal']} at {data.get('day') or 'its end'} (seq {data.get('cut_seq')})"
        if not differing:
            return f"reconciliation of {where}: {len(lines)} lines match"
        shown = [_reconcile_line(line) for line in differing[: self.lines_in_message_max]]
        more = len(differing) - len(shown)
        return (
            f"reconciliation of {where}: {len(differing)} of {len(lines)} lines differ: "
            + "; ".join(shown)
            + (f"; and {more} more" if more else "")
        )

    def state(self) -> dict[str, Any]:
        return {}

    def load(self, state: Mapping[str, Any]) -> None:
        return None


def _reconcile_line(line: Mapping[str, Any]) -> str:
    figures = [
        f"{source} {line[source]}"
        for source in ("journal", "ledger", "statement")
        if line.get(source) is not None
    ]
    text = f"{line['item']} {line['key']}".strip() + " " + ", ".join(figures)
    return text + (f" ({line['note']})" if line.get("note") else "")


RULE_KINDS = (
    "drawdown", "daily_loss", "reject_rate", "kill_switch", "staleness", "failed_jobs", "reconciliation",
    "venue_latency", "bar_lag",
)  # fmt: skip
_DEFAULT_SEVERITY = {
    "drawdown": "critical",
    "daily_loss": "critical",
    "reject_rate": "warning",
    "kill_switch": "critical",
    "staleness": "warning",
    "failed_jobs": "warning",
    "reconciliation": "critical",
    "venue_latency": "warning",
    "bar_lag": "warning",
}
_LATENCY_PARAMETERS: dict[str, type] = {
    "limit_ms": float,
    "window": int,
    "min_samples": int,
    "percentile": int,
}
_PARAMETERS: dict[str, dict[str, type]] = {
    "drawdown": {"limit_bps": int},
    "daily_loss": {"limit_bps": int},
    "reject_rate": {"limit_bps": int, "window_orders": int, "min_orders": int},
    "kill_switch": {},
    "staleness": {"max_age_s": float},
    "failed_jobs": {},
    "reconciliation": {"report": Path},
    "venue_latency": _LATENCY_PARAMETERS,
    "bar_lag": _LATENCY_PARAMETERS,
}
_LATENCY_DEFAULTS = {"window": 20, "min_samples": 5, "percentile": 90}
_OPTIONAL = {
    "reject_rate": {"window_orders": 20, "min_orders": 5},
    "venue_latency": _LATENCY_DEFAULTS,
    "bar_lag": _LATENCY_DEFAULTS,
}


def _rule_from(table: Mapping[str, Any], base: Path | None) -> Rule:
    kind = table.get("kind")
    if kind not in RULE_KINDS:
        raise AlertConfigError(f"[[rules]] kind must be one of {RULE_KINDS}, got {kind!r}")
    name = str(table.get("name", kind))
    severity = table.get("severity", _DEFAULT_SEVERITY[kind])
    if severity not in SEVERITIES:
        raise AlertConfigError(f"rule {name}: severity must be one of {SEVERITIES}, got {severity!r}")
    wanted = _PARAMETERS[kind]
    unknown = set(table) - set(wanted) - {"kind", "name", "severity"}
    if unknown:
        raise AlertConfigError(
            f"rule {name}: unknown keys {sorted(unknown)} (a {kind} rule takes {sorted(wanted)})"
        )
    values: dict[str, Any] = dict(_OPTIONAL.get(kind, {}))
    for key, kind_of in wanted.items():
        if key not in table and key not in values:
            raise AlertConfigError(f"rule {name}: {key} is required")
        value = table.get(key, values.get(key))
        if kind_of is Path:
            values[key] = _path_value(name, key, value, base)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise AlertConfigError(f"rule {name}: {key} must be a positive number, got {value!r}")
        if kind_of is int and not isinstance(value, int):
            raise AlertConfigError(f"rule {name}: {key} must be an integer, got {value!r}")
        values[key] = kind_of(value)
    return _build_rule(kind, name, severity, values)


def _path_value(name: str, key: str, value: object, base: Path | None) -> Path:
    """A file a rule reads; relative to the rules file's folder (``base``)."""
    if not isinstance(value, str) or not value.strip():
        raise AlertConfigError(f"rule {name}: {key} must be a file path, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() or base is None else base / path


def _build_rule(kind: str, name: str, severity: str, values: dict[str, Any]) -> Rule:
    if kind == "drawdown":
        return DrawdownRule(name, severity, values["limit_bps"])
    if kind == "daily_loss":
        return DailyLossRule(name, severity, values["limit_bps"])
    if kind == "reject_rate":
        return RejectRateRule(
            name, severity, values["limit_bps"], values["window_orders"], values["min_orders"]
        )
    if kind == "kill_switch":
        return KillSwitchRule(name, severity)
    if kind == "staleness":
        return StalenessRule(name, severity, values["max_age_s"])
    if kind == "reconciliation":
        return ReconciliationRule(name, severity, values["report"])
    if kind in ("venue_latency", "bar_lag"):
        latency = VenueLatencyRule if kind == "venue_latency" else BarLagRule
        return latency(
            name, severity, values["limit_ms"], values["window"], values["min_samples"], values["percentile"]
        )
    return FailedJobsRule(name, severity)


def rules_from_config(tables: Sequence[Mapping[str, Any]], base: Path | None = None) -> list[Rule]:
    """The ``[[rules]]`` tables of an alerts TOML as rules; names must be unique. Files a rule
    reads (``reconciliation``'s ``report``) are relative to ``base``, the rules file's folder."""
    rules = [_rule_from(table, base) for table in tables]
    names = [rule.name for rule in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AlertConfigError(f"rule names must be unique (give a `name`): {duplicates}")
    if not rules:
        raise AlertConfigError("no [[rules]] defined")
    return rules


# --- state ------------------------------------------------------------------------------------

STATE_SCHEMA_VERSION = 1
SQLITE_INT_MAX = 2**63 - 1  # SQLite's INTEGER; a silence's end past it is folded as "forever"
_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL, key TEXT NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL,
    status TEXT NOT NULL,               -- firing | resolved
    fired_seq INTEGER NOT NULL, fired_ts_ns INTEGER NOT NULL, fired_at_ns INTEGER NOT NULL,
    resolved_seq INTEGER, resolved_message TEXT, resolved_at_ns INTEGER,
    acked_by TEXT, acked_at_ns INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_firing ON alerts (rule, key) WHERE status = 'firing';
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY, rule TEXT NOT NULL, key TEXT NOT NULL,  -- key '' = every key
    until_ns INTEGER NOT NULL, reason TEXT NOT NULL, created_at_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL, route TEXT NOT NULL,
    phase TEXT NOT NULL,                -- fire | repeat | resolve
    at_ns INTEGER NOT NULL, ok INTEGER NOT NULL, error TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_alert ON deliveries (alert_id, route, phase);
CREATE TABLE IF NOT EXISTS settled (                -- resolved alerts the outbox is done with
    alert_id INTEGER PRIMARY KEY, at_ns INTEGER NOT NULL, note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS acks (                   -- folded from the alerts journal
    rule TEXT NOT NULL, key TEXT NOT NULL, fired_seq INTEGER NOT NULL, fired_ts_ns INTEGER NOT NULL,
    acked_by TEXT NOT NULL, acked_at_ns INTEGER NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (rule, key, fired_seq, fired_ts_ns)
);
"""

AlertOperation = AlertAcknowledged | AlertSilenced | AlertUnsilenced
"""What the alerts journal holds (``domain.events.ALERT_OPERATION_KINDS``)."""


def operations_journal_path(state: Path | str) -> Path:
    """The alerts journal beside a state file: ``alerts.state.sqlite`` ->
    ``alerts.state.journal.sqlite`` (Tape's journal format, SQLite backend)."""
    state = Path(state)
    return state.with_name(f"{state.stem}.journal.sqlite")


@dataclass(frozen=True)
class Alert:
    id: int
    rule: str
    key: str
    severity: str
    message: str
    status: str
    fired_seq: int
    fired_ts_ns: int
    fired_at_ns: int
    resolved_seq: int | None
    resolved_message: str | None
    resolved_at_ns: int | None
    acked_by: str | None
    acked_at_ns: int | None


@dataclass(frozen=True)
class Silence:
    id: int
    rule: str
    key: str
    until_ns: int
    reason: str
    created_at_ns: int

    def matches(self, alert: Alert, now_ns: int) -> bool:
        return self.until_ns > now_ns and self.rule == alert.rule and self.key in ("", alert.key)

    def held_at(self, alert: Alert, at_ns: int) -> bool:
        """In force at ``at_ns`` (set at or before it, ending after it) and matching ``alert``."""
        return self.created_at_ns <= at_ns and self.matches(alert, at_ns)


@dataclass(frozen=True)
class Pending:
    """One notification to send: ``phase`` fire, repeat or resolve of ``alert`` to ``route``."""

    alert: Alert
    route: str
    phase: str


@dataclass(frozen=True)
class Held:
    """A notification a silence keeps from ``route``: for now (``final`` False: sent when the
    silence ends, if still due) or for good (``final``: the alert resolved while silenced)."""

    alert: Alert
    route: str
    reason: str
    final: bool


@dataclass
class Outbox:
    """What ``AlertStore.outbox`` found: notifications due now, in order (per alert and route:
    fire before resolve); those a silence holds back; alerts no route takes (below every
    route's ``min_severity``); and resolved alerts every route is done with (``settled``,
    with how: a note per route), which the caller records with ``AlertStore.settle``."""

    due: list[Pending]
    held: list[Held]
    unrouted: list[Alert]
    settled: list[tuple[Alert, str]]


# An alert's acknowledgement is the state's own (written before acknowledgements were journaled)
# or the journaled one of the same alert (rule, key and what fired it: a rebuilt state's ids may
# differ, what fired an alert does not).
_ALERT_SELECT = (
    "SELECT a.id, a.rule, a.key, a.severity, a.message, a.status, a.fired_seq, a.fired_ts_ns, "
    "a.fired_at_ns, a.resolved_seq, a.resolved_message, a.resolved_at_ns, "
    "COALESCE(a.acked_by, k.acked_by), COALESCE(a.acked_at_ns, k.acked_at_ns) FROM alerts a "
    "LEFT JOIN acks k ON k.rule = a.rule AND k.key = a.key AND k.fired_seq = a.fired_seq "
    "AND k.fired_ts_ns = a.fired_ts_ns"
)


class AlertStore:
    """The alert state file (SQLite): checkpoint, rule state, alerts, silences, deliveries."""

    def __init__(self, path: Path | str, journal_id: str) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_DDL)
        stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not stored:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("schema", str(STATE_SCHEMA_VERSION)),
                        ("journal", journal_id),
                        ("checkpoint", "-1"),
                        ("rule_state", "{}"),
                    ],
                )
            stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if stored["schema"] != str(STATE_SCHEMA_VERSION):
            raise AlertStateError(
                f"{self.path}: alert state schema {stored['schema']}, expected {STATE_SCHEMA_VERSION}"
            )
        if journal_id and stored["journal"] != journal_id:
            raise AlertStateError(
                f"{self.path} holds the alert state of journal {stored['journal']}, not {journal_id}; "
                "set `state = ...` in the rules file to one state file per journal"
            )
        if "operations" not in stored:  # a state written before operations were journaled
            with self._transaction():
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('operations', '-1')")
        self.operations_path = operations_journal_path(self.path)
        self._operations_seen: tuple[int, ...] | None = None

    def _transaction(self) -> _Tx:
        return _Tx(self._db)

    def close(self) -> None:
        self._db.close()

    # --- checkpoint and fold state ---

    @property
    def checkpoint_seq(self) -> int:
        return int(self._meta("checkpoint"))

    def rule_state(self) -> dict[str, Any]:
        return dict(json.loads(self._meta("rule_state")))

    def _meta(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        assert row is not None, key
        return str(row[0])

    def commit_batch(
        self,
        checkpoint_seq: int,
        rule_state: dict[str, Any],
        transitions: list[Observation],
        at_ns: int,
        severities: Mapping[str, str],
    ) -> tuple[list[Alert], list[Alert]]:
        """Apply observations (firing and resolving alerts) and move the checkpoint, atomically.
        Returns (alerts fired, alerts resolved)."""
        fired: list[int] = []
        resolved: list[int] = []
        with self._transaction():
            for observation in transitions:
                self._apply(observation, at_ns, severities[observation.rule], fired, resolved)
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (str(checkpoint_seq),))
            self._db.execute(
                "UPDATE meta SET value = ? WHERE key = 'rule_state'",
                (json.dumps(rule_state, sort_keys=True),),
            )
        return [self.alert(i) for i in fired], [self.alert(i) for i in resolved]

    def _apply(
        self, observation: Observation, at_ns: int, severity: str, fired: list[int], resolved: list[int]
    ) -> None:
        row = self._db.execute(
            "SELECT id FROM alerts WHERE rule = ? AND key = ? AND status = 'firing'",
            (observation.rule, observation.key),
        ).fetchone()
        if observation.breached and row is None:
            cursor = self._db.execute(
                "INSERT INTO alerts (rule, key, severity, message, status, fired_seq, fired_ts_ns, "
                "fired_at_ns)"
                " VALUES (?, ?, ?, ?, 'firing', ?, ?, ?)",
                (
                    observation.rule,
                    observation.key,
                    severity,
                    observation.message,
                    observation.seq,
                    observation.ts_ns,
                    at_ns,
                ),
            )
            assert cursor.lastrowid is not None
            fired.append(cursor.lastrowid)
        elif not observation.breached and row is not None:
            self._db.execute(
                "UPDATE alerts SET status = 'resolved', resolved_seq = ?, resolved_message = ?, "
                "resolved_at_ns = ? WHERE id = ?",
                (observation.seq, observation.message, at_ns, row[0]),
            )
            resolved.append(int(row[0]))

    # --- reading ---

    def alert(self, alert_id: int) -> Alert:
        row = self._db.execute(f"{_ALERT_SELECT} WHERE a.id = ?", (alert_id,)).fetchone()
        if row is None:
            raise AlertStateError(f"no alert {alert_id} in {self.path}")
        return Alert(*row)

    def alerts(self, *, firing_only: bool = False) -> list[Alert]:
        where = "WHERE a.status = 'firing'" if firing_only else ""
        rows = self._db.execute(f"{_ALERT_SELECT} {where} ORDER BY a.id").fetchall()
        return [Alert(*row) for row in rows]

    def silences(self, now_ns: int | None = None) -> list[Silence]:
        rows = self._db.execute(
            "SELECT id, rule, key, until_ns, reason, created_at_ns FROM silences ORDER BY id"
        ).fetchall()
        silences = [Silence(*row) for row in rows]
        return [s for s in silences if now_ns is None or s.until_ns > now_ns]

    # --- operator actions: journaled, then folded ---

    def acknowledge(self, alert_id: int, by: str, now_ns: int) -> Alert:
        """Journal ``alert.acknowledged.v1`` (once: an alert acknowledged already is left as it
        is) and fold it; returns the alert as it is now."""
        with self._operations_writer() as journal:
            alert = self.alert(alert_id)
            if alert.acked_by is None:
                self._record(
                    journal,
                    AlertAcknowledged(
                        ts_ns=now_ns,
                        alert_id=alert.id,
                        rule=alert.rule,
                        key=alert.key,
                        fired_seq=alert.fired_seq,
                        fired_ts_ns=alert.fired_ts_ns,
                        operator=by,
                    ),
                )
        return self.alert(alert_id)

    def silence(self, rule: str, key: str, until_ns: int, reason: str, now_ns: int, by: str = "") -> int:
        """Journal ``alert.silenced.v1`` (the next silence id) and fold it; returns its id."""
        if not now_ns < until_ns <= SQLITE_INT_MAX:
            raise AlertStateError(f"a silence must end after now and before the year 2262, not at {until_ns}")
        with self._operations_writer() as journal:
            (last,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM silences").fetchone()
            silence_id = int(last) + 1
            self._record(
                journal,
                AlertSilenced(
                    ts_ns=now_ns,
                    silence_id=silence_id,
                    rule=rule,
                    key=key,
                    until_ns=until_ns,
                    reason=reason,
                    operator=by,
                ),
            )
        return silence_id

    def unsilence(self, silence_id: int, now_ns: int, by: str = "") -> None:
        """Journal ``alert.unsilenced.v1`` for a silence in force and fold it."""
        with self._operations_writer() as journal:
            active = self._db.execute(
                "SELECT 1 FROM silences WHERE id = ? AND until_ns > ?", (silence_id, now_ns)
            ).fetchone()
            if active is None:
                raise AlertStateError(f"no active silence {silence_id} in {self.path}")
            self._record(journal, AlertUnsilenced(ts_ns=now_ns, silence_id=silence_id, operator=by))

    @property
    def _lock_path(self) -> Path:
        return self.operations_path.with_name(self.operations_path.name + ".lock")

    @contextmanager
    def _operations_writer(self) -> Iterator[Journal]:
        """The alerts journal, opened for appending under an exclusive lock (one writer at a time:
        ``tape alerts ack`` and the cockpit may act at once), folded up to its end first."""
        fd = os.open(self._lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open_journal(self.operations_path, writable=True, records_per_commit_max=1) as journal:
                self._fold_operations(journal)
                yield journal
        finally:
            os.close(fd)  # releases the lock

    @contextmanager
    def _operations_reader(self) -> Iterator[Journal | None]:
        """The alerts journal read-only under a shared lock, so a journal being created is never
        read half made (None: none written yet). Writers make the lock file first; a journal
        with none was written by other means and is read as it is."""
        try:
            fd: int | None = os.open(self._lock_path, os.O_RDONLY)
        except FileNotFoundError:
            fd = None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_SH)
            if not self.operations_path.exists():
                yield None
                return
            try:
                journal = open_journal(self.operations_path)
            except JournalError as error:
                raise AlertStateError(f"alerts journal: {error}") from None
            with journal:
                yield journal
        finally:
            if fd is not None:
                os.close(fd)

    def _record(self, journal: Journal, event: AlertOperation) -> None:
        journal.append(event)
        journal.commit()
        self._fold_operations(journal)

    def sync_operations(self) -> int:
        """Fold what the alerts journal holds past the state's checkpoint on it (another
        process's acknowledgement, or one journaled before a crash kept it out of the state);
        returns how many records were folded. A journal unchanged on disk is not reopened."""
        seen = _file_marks(self.operations_path)
        if seen is None or seen == self._operations_seen:
            return 0
        self._operations_seen = seen  # a journal that cannot be read is named once per change
        with self._operations_reader() as journal:
            return 0 if journal is None else self._fold_operations(journal)

    @property
    def operations_seq(self) -> int:
        """The last alerts-journal record folded into this state (-1: none)."""
        return int(self._meta("operations"))

    def _fold_operations(self, journal: Journal) -> int:
        start = self.operations_seq + 1
        if len(journal) < start:
            raise AlertStateError(
                f"{self.path} has folded {start} records of the alerts journal {self.operations_path}, "
                f"which holds {len(journal)}: it was replaced; move the state file aside to rebuild it"
            )
        try:
            records = list(journal.records(start))
        except JournalError as error:
            raise AlertStateError(f"alerts journal: {error}") from None
        if not records:
            return 0
        with self._transaction():
            for record in records:
                if record.kind in ALERT_OPERATION_KINDS:
                    self._fold_operation(record.seq, record.event())
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'operations'", (str(records[-1].seq),))
        return len(records)

    def _fold_operation(self, seq: int, event: AnyEvent) -> None:
        if isinstance(event, AlertAcknowledged):
            self._db.execute(
                "INSERT OR IGNORE INTO acks (rule, key, fired_seq, fired_ts_ns, acked_by, acked_at_ns, seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event.rule, event.key, event.fired_seq, event.fired_ts_ns, event.operator, event.ts_ns, seq),
            )
        elif isinstance(event, AlertSilenced):
            self._db.execute(
                "INSERT OR IGNORE INTO silences (id, rule, key, until_ns, reason, created_at_ns) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    event.silence_id,
                    event.rule,
                    event.key,
                    min(event.until_ns, SQLITE_INT_MAX),  # one journaled before --for was bounded
                    event.reason,
                    event.ts_ns,
                ),
            )
        elif isinstance(event, AlertUnsilenced):
            self._db.execute(
                "UPDATE silences SET until_ns = ? WHERE id = ? AND until_ns > ?",
                (event.ts_ns, event.silence_id, event.ts_ns),
            )

    def operations(self) -> list[tuple[int, AlertOperation]]:
        """Every acknowledgement and silence the alerts journal holds, as (seq, event)."""
        if not self.operations_path.exists():
            return []
        try:
            with open_journal(self.operations_path) as journal:
                found = [
                    (record.seq, record.event()) for record in journal.records_of_kinds(ALERT_OPERATION_KINDS)
                ]
        except JournalError as error:
            raise AlertStateError(f"alerts journal {self.operations_path}: {error}") from None
        return [(seq, event) for seq, event in found if isinstance(event, AlertOperation)]

    # --- outbox ---

    def outbox(
        self,
        routes: Mapping[str, str],
        now_ns: int,
        *,
        repeat_s: float,
        retry_s: float,
        notify_resolved: bool,
    ) -> Outbox:
        """What is due to each route now, what a silence holds back, and which resolved alerts
        every route is done with. ``routes``: route name -> its minimum severity.

        Every alert is told to every route whose ``min_severity`` it reaches: ``fire`` once,
        then (``notify_resolved``) ``resolve`` once it resolved; an alert that resolved before a
        route was told of it (it fired and cleared in one batch of records, or its sends failed
        until then) is due as ``fire`` then ``resolve``, in that order. A silence in force holds
        back the fire (and repeats); an alert that resolved while a silence held it back is not
        sent to a route not yet told of it (``Held.final``). Sends that failed are retried after
        ``retry_s``. With no routes nothing is due and nothing settles (``--no-send``)."""
        found = Outbox([], [], [], [])
        if not routes:
            return found
        active = self.silences(now_ns)
        every = self.silences()
        # Firing alerts, and resolved ones the outbox is not done with (history it has settled
        # is not scanned again; a route added later is told of what fires from then on).
        candidates = self._db.execute(
            f"{_ALERT_SELECT} WHERE a.status = 'firing' OR a.id NOT IN (SELECT alert_id FROM settled) "
            "ORDER BY a.id"
        ).fetchall()
        for row in candidates:
            alert = Alert(*row)
            notes: list[str] = []  # how each route is done with it
            eligible = [
                r for r, minimum in sorted(routes.items()) if severity_at_least(alert.severity, minimum)
            ]
            open_routes = 0
            for route in eligible:
                phases, done = self._route_phases(alert, route, repeat_s, notify_resolved, now_ns)
                if done is None and alert.status == "resolved" and phases[0] == "fire":
                    resolved_at = alert.resolved_at_ns if alert.resolved_at_ns is not None else now_ns
                    held = next((s for s in every if s.held_at(alert, resolved_at)), None)
                    if held is not None:  # it resolved while silenced: this route is not told
                        found.held.append(Held(alert, route, _silence_text(held), final=True))
                        done = f"{route}: resolved while silence {held.id} held it back"
                if done is not None:
                    notes.append(done)
                    continue
                open_routes += 1
                self._queue(found, alert, route, phases, active, now_ns, retry_s)
            if not eligible:
                found.unrouted.append(alert)
                notes.append(f"no route takes {alert.severity} alerts")
            if alert.status == "resolved" and not open_routes:
                found.settled.append((alert, "; ".join(notes)))
        return found

    def _queue(
        self,
        found: Outbox,
        alert: Alert,
        route: str,
        phases: list[str],
        active: Sequence[Silence],
        now_ns: int,
        retry_s: float,
    ) -> None:
        """``phases`` of ``alert`` due to ``route``, unless a silence in force holds back its fire
        or repeat (a resolve is sent regardless) or a send failed less than ``retry_s`` ago."""
        if not phases:
            return
        silence = next((s for s in active if s.matches(alert, now_ns)), None)
        if silence is not None and phases[0] != "resolve":
            found.held.append(Held(alert, route, _silence_text(silence), final=False))
        elif not self._recently_failed(alert.id, route, now_ns, retry_s):
            found.due.extend(Pending(alert, route, phase) for phase in phases)

    def _route_phases(
        self, alert: Alert, route: str, repeat_s: float, notify_resolved: bool, now_ns: int
    ) -> tuple[list[str], str | None]:
        """The phases due to ``route`` before silences and retries, and for a resolved alert the
        route is done with, a note saying how (None: not done)."""
        sent_at, resolve_sent = self._db.execute(
            "SELECT MAX(at_ns), MAX(phase = 'resolve') FROM deliveries "
            "WHERE alert_id = ? AND route = ? AND ok = 1",
            (alert.id, route),
        ).fetchone()
        if alert.status == "resolved":
            if sent_at is None:
                return (["fire", "resolve"] if notify_resolved else ["fire"]), None
            if resolve_sent or not notify_resolved:
                return [], f"{route}: sent"
            return ["resolve"], None
        if sent_at is None:
            return ["fire"], None
        if repeat_s > 0 and alert.acked_by is None and now_ns - sent_at >= repeat_s * 1e9:
            return ["repeat"], None
        return [], None

    def settle(self, settled: Sequence[tuple[Alert, str]], at_ns: int) -> None:
        """Record resolved alerts the outbox is done with (``Outbox.settled``): not scanned again."""
        if not settled:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO settled (alert_id, at_ns, note) VALUES (?, ?, ?)",
                [(alert.id, at_ns, note) for alert, note in settled],
            )

    def _recently_failed(self, alert_id: int, route: str, now_ns: int, retry_s: float) -> bool:
        row = self._db.execute(
            "SELECT MAX(at_ns) FROM deliveries WHERE alert_id = ? AND route = ? AND ok = 0",
            (alert_id, route),
        ).fetchone()
        return row[0] is not None and now_ns - row[0] < retry_s * 1e9

    def record_delivery(self, pending: Pending, at_ns: int, error: str = "") -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO deliveries (alert_id, route, phase, at_ns, ok, error) VALUES (?, ?, ?, ?, ?, ?)",
                (pending.alert.id, pending.route, pending.phase, at_ns, 0 if error else 1, error),
            )

    def deliveries(self) -> list[tuple[int, str, str, int, int, str]]:
        return list(
            self._db.execute("SELECT alert_id, route, phase, at_ns, ok, error FROM deliveries ORDER BY id")
        )


def _silence_text(silence: Silence) -> str:
    return f"silence {silence.id}" + (f" ({silence.reason})" if silence.reason else "")


def _file_marks(path: Path) -> tuple[int, ...] | None:
    """Size and change time of a SQLite journal and its write-ahead log (None: no journal)."""
    marks: list[int] = []
    for part in (path, path.with_name(path.name + "-wal")):
        try:
            info = part.stat()
        except FileNotFoundError:
            if part == path:
                return None
            continue
        marks.extend((info.st_size, info.st_mtime_ns))
    return tuple(marks)


class _Tx:
    """``with``: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


# --- engine -----------------------------------------------------------------------------------


@dataclass
class EvaluationReport:
    records: int
    fired: list[Alert]
    resolved: list[Alert]


class AlertEngine:
    """The rules folded over the journal from the store's checkpoint (see the module doc)."""

    batch_records_max = 10_000

    def __init__(self, rules: Sequence[Rule], store: AlertStore) -> None:
        self.rules = list(rules)
        self.store = store
        self._by_kind: dict[str, list[Rule]] = {}
        for rule in self.rules:
            for kind in rule.kinds:
                self._by_kind.setdefault(kind, []).append(rule)
        self._trackers = [r for r in self.rules if isinstance(r, StalenessRule)]
        self._severities = {rule.name: rule.severity for rule in self.rules}
        state = store.rule_state()
        for rule in self.rules:
            rule.load(state.get(rule.name, {}))

    def _state(self) -> dict[str, Any]:
        return {rule.name: rule.state() for rule in self.rules}

    def evaluate(
        self, journal: Journal | None, now_ns: int, jobs: Sequence[JobOutcome] = ()
    ) -> EvaluationReport:
        """Fold the records after the checkpoint (in committed batches; ``None``: no journal
        to read yet), then the rules that look at the present (``now_ns``, ``jobs``)."""
        report = EvaluationReport(0, [], [])
        if journal is not None:
            self._catch_up(journal, now_ns, report)
        present = [o for rule in self.rules for o in rule.observe_now(now_ns, jobs)]
        if present:
            self._commit(self.store.checkpoint_seq, present, now_ns, report)
        return report

    def _catch_up(self, journal: Journal, now_ns: int, report: EvaluationReport) -> None:
        start = self.store.checkpoint_seq + 1
        batch: list[Observation] = []
        last_seq = start - 1
        for record in journal.records(start):
            batch.extend(self._observe(record))
            last_seq = record.seq
            report.records += 1
            if report.records % self.batch_records_max == 0:
                self._commit(last_seq, batch, now_ns, report)
                batch = []
        if last_seq >= start and (batch or report.records % self.batch_records_max):
            self._commit(last_seq, batch, now_ns, report)

    def _observe(self, record: Record) -> list[Observation]:
        for tracker in self._trackers:
            tracker.see(record.seq, record.ts_ns)
        rules = self._by_kind.get(record.kind)
        if rules is None:
            return []
        event = record.event()
        return [o for rule in rules for o in rule.observe(record.seq, event)]

    def _commit(
        self, checkpoint: int, batch: list[Observation], now_ns: int, report: EvaluationReport
    ) -> None:
        fired, resolved = self.store.commit_batch(checkpoint, self._state(), batch, now_ns, self._severities)
        report.fired.extend(fired)
        report.resolved.extend(resolved)


def observations_of(rules: Iterable[Rule], records: Iterable[Record]) -> list[Observation]:
    """Every observation the rules make over ``records`` (no store, no de-duplication)."""
    rules = list(rules)
    found: list[Observation] = []
    for record in records:
        for rule in rules:
            if isinstance(rule, StalenessRule):
                rule.see(record.seq, record.ts_ns)
            if record.kind in rule.kinds:
                found.extend(rule.observe(record.seq, record.event()))
    return found
