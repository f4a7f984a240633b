"""Journal events folded into what the cockpit's screens show.

Nothing here computes trading state: NAV, cash and exposure are the kernel's ``DayClosed``
marks, positions its day snapshots, verdicts and kill-switch trips its own events. The folds
only *index* the journal -- the order funnel (each order's latest transition) and the links
of a why-chain (fill -> order -> risk verdicts -> decision) are pure event look-ups.

Two folds, both incremental (a growing journal is folded from where they stopped):

* ``Overview``: the command centre's few kinds (run, data set, instruments, day closes,
  snapshots, kill switch, run end), read with ``Journal.records_of_kinds`` -- only those
  payloads are copied and decoded, so a 1,000,000-record journal opens in well under a second.
* ``Detail``: orders, fills, decisions and verdicts, folded over every record after the
  first screen is up.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from domain.events import (
    BarsReceived,
    CurrenciesMarked,
    DatasetReferenced,
    DayClosed,
    FeeTakenInKind,
    InputQuarantined,
    InstrumentsDefined,
    KillSwitchCommandRefused,
    KillSwitchFlattened,
    KillSwitchRearmed,
    KillSwitchTripped,
    OperatorCommanded,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
    ParentCreated,
    RiskVerdict,
    RunFinished,
    RunStarted,
    TargetsDecided,
    VenueConnection,
    VenueHeartbeat,
    VenueReconciled,
)
from domain.instruments import Instrument
from kernel.journal import Record

__all__ = [
    "DETAIL_KINDS",
    "INPUT_CLOCK_KINDS",
    "OVERVIEW_KINDS",
    "VERDICTS_KEPT",
    "ChainLink",
    "Detail",
    "OrderLine",
    "Overview",
]

OVERVIEW_KINDS = frozenset(
    {
        "run.started.v1",
        "dataset.referenced.v1",
        "instruments.defined.v1",
        "day.closed.v1",
        "book.currencies_marked.v1",  # a book of several currencies: the first day's rates
        "state.snapshotted.v1",
        "killswitch.operator_commanded.v1",
        "killswitch.tripped.v1",
        "killswitch.flattened.v1",
        "killswitch.rearmed.v1",
        "killswitch.command_refused.v1",
        "run.finished.v1",
        *("market.bars_received.v1", "clock.advanced.v1", "operator.command_received.v1"),
        "input.quarantined.v1",
        *("venue.connection.v1", "venue.reconciled.v1", "venue.heartbeat.v1"),
    }
)
INPUT_CLOCK_KINDS = frozenset({"clock.advanced.v1", "operator.command_received.v1", "input.quarantined.v1"})
"""A live source's inputs stamped with the edge's clock when they came (paper, live)."""
DETAIL_KINDS = frozenset(
    {
        "strategy.targets_decided.v1",
        "risk.verdict.v2",
        "order.submitted.v1",
        "order.accepted.v1",
        "order.rejected.v1",
        "order.filled.v1",
        "order.fee_in_kind.v1",
        "order.cancelled.v1",
        "order.expired.v1",
        "order.replaced.v1",
        "order.parent_created.v1",
        "killswitch.tripped.v1",
    }
)
VERDICTS_KEPT = 40  # latest risk verdicts the command centre lists


def _verdicts() -> deque[tuple[int, RiskVerdict]]:
    return deque(maxlen=VERDICTS_KEPT)


@dataclass
class Overview:
    """Run identity, the day closes (NAV, cash, gross exposure), the last snapshot, the kill
    switch and how far the journal has been read."""

    run: RunStarted | None = None
    config: dict[str, object] = field(default_factory=dict)
    dataset: DatasetReferenced | None = None
    instruments: dict[int, Instrument] = field(default_factory=dict)
    closes: list[tuple[int, DayClosed]] = field(default_factory=list)
    first_rates: CurrenciesMarked | None = None  # several currencies: the first close's rates
    last_rates: CurrenciesMarked | None = None  # and the last close's
    last_snapshot: Record | None = None  # decoded only when the positions screen asks
    kill_state: str = "armed"
    last_trip: tuple[int, KillSwitchTripped] | None = None
    kill_events: list[tuple[int, str]] = field(default_factory=list)
    operator_commands: list[tuple[int, OperatorCommanded]] = field(default_factory=list)
    finished: RunFinished | None = None
    tail_verdicts: deque[tuple[int, RiskVerdict]] = field(default_factory=lambda: _verdicts())
    records: int = 0  # journal length folded so far
    last_ts_ns: int = 0  # event time of the last record folded
    # a live source's inputs (paper, live): the data's staleness is read from these
    last_bars: Record | None = None  # the last BarsReceived, decoded only when shown
    bars_records: int = 0
    empty_passes: int = 0  # clock.advanced records (steps passed with no bar) since the last bars
    newest_input_ns: int = 0  # the latest edge-clock stamp of an input (clock, command, quarantine)
    quarantined: Counter[str] = field(default_factory=Counter)  # inputs refused, by reason
    # a live session's venue: the last connection change of each stream, drops, reconciliations
    connection: dict[str, tuple[int, VenueConnection]] = field(default_factory=dict)
    disconnects: int = 0
    last_reconciled: tuple[int, VenueReconciled] | None = None
    # its heartbeats (paper.heartbeat_s): the last one, how many, how many went unanswered
    last_heartbeat: VenueHeartbeat | None = None
    heartbeats: int = 0
    heartbeats_failed: int = 0

    @property
    def currency(self) -> str:
        return str(self.config.get("currency", "USD"))

    @property
    def live_source(self) -> bool:
        """A run fed by a live source (a paper session): its configuration has a ``paper`` table."""
        return bool(self.config.get("paper")) or self.bars_records > 0

    def bars_event(self) -> BarsReceived | None:
        if self.last_bars is None:
            return None
        event = self.last_bars.event()
        return event if isinstance(event, BarsReceived) else None

    def apply(self, record: Record) -> None:
        if record.kind == "state.snapshotted.v1":
            self.last_snapshot = record  # kept undecoded: one a day, only the last is read
            return
        if self._apply_input(record):
            return
        event = record.event()
        if isinstance(event, DayClosed | CurrenciesMarked):
            self._apply_close(record.seq, event)
        elif isinstance(event, RunStarted):
            self.run = event
            self.config = json.loads(event.config_json)
        elif isinstance(event, DatasetReferenced):
            self.dataset = event
        elif isinstance(event, InstrumentsDefined):
            self.instruments.update((inst.instrument_id, inst) for inst in event.instruments)
        elif isinstance(event, RunFinished):
            self.finished = event
        elif isinstance(event, InputQuarantined):
            self.quarantined[event.reason] += 1
        elif isinstance(event, VenueConnection | VenueReconciled | VenueHeartbeat):
            self._apply_venue(record.seq, event)
        else:
            self._apply_kill_switch(record.seq, event)

    def _apply_close(self, seq: int, event: DayClosed | CurrenciesMarked) -> None:
        if isinstance(event, DayClosed):
            self.closes.append((seq, event))
        else:  # a book of several currencies: its rates (the first close's, the last's)
            self.first_rates = self.first_rates or event
            self.last_rates = event

    def _apply_input(self, record: Record) -> bool:
        """A live source's input, folded without decoding it (True) but for a quarantine,
        whose reason is counted (False: decoded by ``apply``)."""
        if record.kind == "market.bars_received.v1":
            self.last_bars = record  # kept undecoded: one a step, only the last is read
            self.bars_records += 1
            self.empty_passes = 0
            return True
        if record.kind not in INPUT_CLOCK_KINDS:
            return False
        self.newest_input_ns = max(self.newest_input_ns, record.ts_ns)
        if record.kind == "clock.advanced.v1":
            self.empty_passes += 1
        return record.kind != "input.quarantined.v1"

    def _apply_venue(self, seq: int, event: VenueConnection | VenueReconciled | VenueHeartbeat) -> None:
        self.newest_input_ns = max(self.newest_input_ns, event.ts_ns)
        if isinstance(event, VenueHeartbeat):
            self.last_heartbeat = event
            self.heartbeats += 1
            self.heartbeats_failed += not event.ok
            return
        if isinstance(event, VenueReconciled):
            self.last_reconciled = (seq, event)
            return
        self.connection[event.stream] = (seq, event)
        self.disconnects += event.state == "disconnected"

    def _apply_kill_switch(self, seq: int, event: object) -> None:
        if isinstance(event, KillSwitchTripped):
            self.kill_state = "halted"
            self.last_trip = (seq, event)
            self.kill_events.append((seq, f"tripped: {event.trigger} ({event.reason})"))
        elif isinstance(event, KillSwitchFlattened):
            self.kill_events.append((seq, "flattened: the book is flat, still halted"))
        elif isinstance(event, KillSwitchRearmed):
            self.kill_state = "armed"
            self.kill_events.append((seq, f"re-armed by {event.operator}"))
        elif isinstance(event, KillSwitchCommandRefused):
            self.kill_events.append((seq, f"command {event.command} refused: {event.reason}"))
        elif isinstance(event, OperatorCommanded):
            self.operator_commands.append((seq, event))
            text = f"operator {event.operator}: {event.command} {event.note}"
            self.kill_events.append((seq, text.rstrip()))

    def limit_e8(self, rule: str) -> int:
        """The risk policy's limit (1e-8 of NAV) of a portfolio rule, 0 when not set."""
        risk = self.config.get("risk")
        if not isinstance(risk, dict):
            return 0
        table = risk.get(rule)
        return int(table.get("limit_e8", 0)) if isinstance(table, dict) else 0

    def kill_switch_limits(self) -> dict[str, object]:
        table = self.config.get("kill_switch")
        return dict(table) if isinstance(table, dict) else {}


@dataclass
class OrderLine:
    """One order's latest state, from its journaled transitions."""

    order_id: str
    strategy_id: str
    instrument_id: int
    side: int
    order_type: str
    qty_raw: int
    limit_px_raw: int
    decision_px_raw: int
    parent_id: str
    submitted_seq: int
    ts_ns: int
    status: str = "submitted"
    accepted: bool = False
    filled_raw: int = 0
    notional_minor: int = 0
    commission_minor: int = 0
    currency: str = ""
    reason: str = ""
    seqs: list[int] = field(default_factory=list)  # every event of the order, in journal order


_TERMINAL = {
    "order.rejected.v1": "rejected",
    "order.cancelled.v1": "cancelled",
    "order.expired.v1": "expired",
}


@dataclass(frozen=True)
class ChainLink:
    """One step of a why-chain: the event's seq and its role."""

    seq: int
    role: str  # decision, verdict, parent, order, fill, trip


@dataclass
class Detail:
    """Orders (funnel and blotter), fills, decisions and verdicts: the why-chain index."""

    orders: dict[str, OrderLine] = field(default_factory=dict)
    fills: list[tuple[int, OrderFilled]] = field(default_factory=list)
    decisions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # strategy -> (seq, step)
    verdicts_by_decision: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    latest_verdicts: deque[tuple[int, RiskVerdict]] = field(default_factory=lambda: _verdicts())
    verdict_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    parents: dict[str, int] = field(default_factory=dict)  # parent id -> seq of its creation
    trips: list[int] = field(default_factory=list)  # seqs of kill-switch trips
    records: int = 0

    def apply_all(self, records: Iterable[Record]) -> None:
        for record in records:
            self.apply(record)

    def apply(self, record: Record) -> None:
        event = record.event()
        seq = record.seq
        if isinstance(event, RiskVerdict):
            self.latest_verdicts.append((seq, event))
            self.verdict_counts[(event.rule, event.action)] += 1
            self.verdicts_by_decision.setdefault((event.strategy_id, event.step), []).append(seq)
        elif isinstance(event, TargetsDecided):
            self.decisions.setdefault(event.strategy_id, []).append((seq, event.step))
        elif isinstance(event, OrderSubmitted):
            self.orders[event.order_id] = OrderLine(
                event.order_id,
                event.strategy_id,
                event.instrument_id,
                event.side,
                event.order_type,
                event.qty_raw,
                event.limit_px_raw,
                event.decision_px_raw,
                event.parent_id,
                seq,
                event.ts_ns,
                seqs=[seq],
            )
        elif isinstance(event, ParentCreated):
            self.parents[event.parent_id] = seq
        elif isinstance(event, KillSwitchTripped):
            self.trips.append(seq)
        else:
            self._apply_transition(seq, record.kind, event)

    def _apply_transition(self, seq: int, kind: str, event: object) -> None:
        order_id = getattr(event, "order_id", None)
        line = self.orders.get(order_id) if isinstance(order_id, str) else None
        if line is None:
            return
        line.seqs.append(seq)
        if isinstance(event, OrderFilled):
            self.fills.append((seq, event))
            line.filled_raw += event.fill_qty_raw
            line.notional_minor += event.notional_minor
            line.commission_minor += event.commission_minor
            line.currency = event.currency
            line.status = "filled" if event.leaves_qty_raw == 0 else "partial"
        elif isinstance(event, FeeTakenInKind):  # the venue's fee, out of the asset bought
            line.commission_minor += event.value_minor
        elif isinstance(event, OrderAccepted):
            line.accepted = True
            line.status = "accepted" if line.status == "submitted" else line.status
        elif isinstance(event, OrderReplaced):
            line.qty_raw = event.qty_raw
            line.limit_px_raw = event.limit_px_raw
        elif isinstance(event, (OrderRejected, OrderCancelled, OrderExpired)):
            line.status = _TERMINAL[kind]
            line.reason = event.reason

    # --- questions the screens ask ----------------------------------------------------------

    def funnel(self) -> list[tuple[str, int]]:
        """Submitted -> accepted -> filled / partly filled / working / cancelled / expired /
        rejected, by each order's latest transition."""
        statuses = Counter(line.status for line in self.orders.values())
        accepted = sum(1 for line in self.orders.values() if line.accepted)
        working = statuses["submitted"] + statuses["accepted"]
        return [
            ("submitted", len(self.orders)),
            ("accepted", accepted),
            ("filled", statuses["filled"]),
            ("partly filled", statuses["partial"]),
            ("working (no fill yet)", working),
            ("cancelled", statuses["cancelled"]),
            ("expired", statuses["expired"]),
            ("rejected", statuses["rejected"]),
        ]

    def rejection_reasons(self) -> list[tuple[str, int]]:
        """Rejections counted by reason (the text before its first ':', the numbers dropped)."""
        reasons = Counter(
            line.reason.split(":", 1)[0].strip() or "(no reason)"
            for line in self.orders.values()
            if line.status == "rejected"
        )
        return sorted(reasons.items(), key=lambda item: (-item[1], item[0]))

    def decision_before(self, strategy_id: str, seq: int) -> tuple[int, int] | None:
        """The strategy's last decision (seq, step) journaled before ``seq``."""
        decisions = self.decisions.get(strategy_id, [])
        index = bisect.bisect_left(decisions, (seq, -1)) - 1
        return decisions[index] if index >= 0 else None

    def why_order(self, order_id: str) -> list[ChainLink]:
        """Walk back from an order: the decision that sized it and that decision's verdicts
        (or the kill-switch trip for an order the kernel sent itself), its router parent,
        then the order's own events, oldest first."""
        line = self.orders.get(order_id)
        if line is None:
            return []
        links: list[ChainLink] = []
        anchor = self.parents.get(line.parent_id, line.submitted_seq)
        decision = self.decision_before(line.strategy_id, anchor)
        if decision is not None:
            links.append(ChainLink(decision[0], "decision"))
            verdicts = self.verdicts_by_decision.get((line.strategy_id, decision[1]), [])
            links.extend(ChainLink(seq, "verdict") for seq in verdicts)
        elif self.trips:
            index = bisect.bisect_left(self.trips, anchor) - 1
            if index >= 0:
                links.append(ChainLink(self.trips[index], "trip"))
        if line.parent_id in self.parents:
            links.append(ChainLink(self.parents[line.parent_id], "parent"))
        links.extend(ChainLink(seq, "order" if seq == line.submitted_seq else "event") for seq in line.seqs)
        return links

    def why_fill(self, seq: int) -> list[ChainLink]:
        """The why-chain of the order a fill belongs to, with that fill marked."""
        for fill_seq, fill in reversed(self.fills):
            if fill_seq == seq:
                links = self.why_order(fill.order_id)
                return [ChainLink(link.seq, "fill" if link.seq == seq else link.role) for link in links]
        return []

    def last_fill_of(self, instrument_id: int) -> int | None:
        for seq, fill in reversed(self.fills):
            if fill.instrument_id == instrument_id:
                return seq
        return None
