"""The execution router: target deltas become parent orders worked as TWAP, VWAP or POV
children over the following steps of the panel.

The loop hands the router a decision's order intents (instead of sending them as one market
order each). The router journals ``ParentCreated`` with the planned slices, keeps the slices in
kernel state (``ExecutionBook``, snapshotted with the day), and at each due step sends a market
child through the kernel's own submit path (so market rules, T+1 and lot checks apply), with
``OrderSubmitted.parent_id`` naming the parent.

The router learns what happened to its children from the events the kernel journals (a tap on
the kernel's sink): a parent's fill is the sum of its children's fills, never a counter of its
own. Times are panel steps; the per-venue rate limit runs on the steps' event timestamps.

Rules, in the order the loop applies them at a step (after fills, after a decision):

* a new decision by a strategy cancels its open children (the kernel does) and ends its working
  parents (``ParentDone`` reason ``cancelled``): those of the names it has a view on
  (``supersede = "named"``), or all of them (``"all"``, how runs behaved before the setting);
* a child open ``child_timeout_steps`` after it was sent is cancelled; its unfilled remainder
  joins the parent's next pending slice (none pending: the parent will end ``exhausted``); a
  child the venue expired (A-share day order) rolls its remainder the same way. With
  ``on_timeout = "replace"`` a timed-out child of a TWAP/VWAP parent with a slice still pending
  is instead amended (``OrderReplaced``) to its quantity plus that slice, which is taken off the
  plan, and its timeout starts again; a refused replace falls back to the cancel;
* a rejected child is tried again after a backoff (``RetryPolicy`` numbers read as steps), at
  most ``retry_max`` times; after that its quantity joins the next pending slice;
* when the venue's token bucket is empty the due child is journaled as ``ChildDeferred`` and
  tried at the next step;
* a parent ends (``ParentDone``) when nothing of it is pending or open: ``filled`` when its
  children filled its quantity, else ``exhausted``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from domain.events import (
    ChildDeferred,
    Event,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
    ParentCreated,
    ParentDone,
    RouterBucketSnapshot,
    RouterChildSnapshot,
    RouterParentSnapshot,
    RouterSnapshot,
)
from domain.execution import (
    ParentOrder,
    RetryPolicy,
    SliceRules,
    TokenBucket,
    allocate_lots,
    backoff_ns,
    bucket_full,
    parents_from_deltas,
    pov_child_qty,
    try_acquire,
    twap_schedule,
)
from domain.fixed import RATE_SCALE, Rounding, div_round
from domain.instruments import Instrument
from domain.market import Panel

if TYPE_CHECKING:
    from kernel.pipeline import OrderIntent

__all__ = ["ALGOS", "SUPERSEDE", "ExecutionBook", "ExecutionConfig", "Router", "RouterError"]

ALGOS = ("market", "twap", "vwap", "pov")
ON_TIMEOUT = ("cancel", "replace")
# What a strategy's new decision cancels of its working orders (and the router's parents):
# "named", those of the names it gives a target (NaN is no view) or sends an order for; "all",
# every one of them, a name left at NaN included (runs before the setting: sim.backtest's
# LATER_DEFAULTS).
SUPERSEDE = ("named", "all")
_NO_STEP = 1 << 62
_NS_PER_SECOND = 1_000_000_000


class RouterError(RuntimeError):
    """The router's bookkeeping broke an invariant (a parent over-filled, an unknown child)."""


class ExecutionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[execution]`` table of a backtest. ``algo = "market"`` (the default) sends each
    target delta as one market order, exactly as the kernel did before the router existed."""

    algo: str = "market"
    slices: int = 4  # TWAP/VWAP: number of slices
    window_steps: int = 20  # TWAP/VWAP/POV: the parent works over this many steps after the decision
    vwap_lookback_sessions: int = 5  # VWAP: profile from this many sessions before the decision
    participation_e8: int = 10_000_000  # POV: share of the observed volume (1e-8; 10%)
    rate_capacity: int = 0  # per-venue token bucket burst, children; 0 = no rate limit
    rate_per_second: int = 1  # tokens earned per second of event time
    child_timeout_steps: int = 0  # cancel a child still open this many steps after sending; 0 = never
    retry_max: int = 0  # retries of a rejected child
    retry_backoff_steps: int = 1  # delay before the first retry
    retry_backoff_factor: int = 2  # each later retry waits this many times longer
    retry_backoff_cap_steps: int = 60  # longest delay
    on_timeout: str = "cancel"  # cancel | replace: what a child timeout does (see the module doc)
    supersede: str = "all"  # all | named: which working orders a new decision cancels (SUPERSEDE)

    def __post_init__(self) -> None:
        for name, choices in (("algo", ALGOS), ("on_timeout", ON_TIMEOUT), ("supersede", SUPERSEDE)):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"execution.{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}"
                )
        for name in ("slices", "rate_per_second", "retry_backoff_steps", "retry_backoff_factor"):
            if getattr(self, name) < 1:
                raise ValueError(f"execution.{name} must be at least 1, got {getattr(self, name)}")
        for name in (
            "window_steps",
            "vwap_lookback_sessions",
            "rate_capacity",
            "child_timeout_steps",
            "retry_max",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"execution.{name} must not be negative, got {getattr(self, name)}")
        if not 0 < self.participation_e8 <= RATE_SCALE:
            raise ValueError(f"execution.participation_e8 must be in (0, 1e8], got {self.participation_e8}")
        if self.rate_per_second > _NS_PER_SECOND:
            raise ValueError(f"execution.rate_per_second must be at most 1e9, got {self.rate_per_second}")
        if self.retry_backoff_cap_steps < self.retry_backoff_steps:
            raise ValueError("execution.retry_backoff_cap_steps must be >= retry_backoff_steps")

    def retry_policy(self) -> RetryPolicy:
        """``domain.execution.RetryPolicy`` with its durations read as steps."""
        return RetryPolicy(
            attempts_max=self.retry_max,
            base_ns=self.retry_backoff_steps,
            factor=self.retry_backoff_factor,
            cap_ns=self.retry_backoff_cap_steps,
        )

    def refill_interval_ns(self) -> int:
        return div_round(_NS_PER_SECOND, self.rate_per_second, Rounding.DOWN)


# --- the book: router state kept in kernel state ----------------------------------------------


@dataclass
class Child:
    order_id: str
    qty_raw: int
    sent_step: int
    attempt: int
    filled_raw: int = 0
    status: str = "open"  # open | closed (filled, cancelled, expired) | rejected
    handled: bool = False  # the router has acted on its closing


@dataclass
class WorkingParent:
    order: ParentOrder
    start_step: int
    end_step: int
    pending: list[list[int]]  # [step, qty_raw, attempt], by step
    children: list[Child] = field(default_factory=list)
    observed_raw: int = 0
    observed_step: int = 0
    sent_raw: int = 0
    attempt: int = 0
    hold_until: int = 0

    @property
    def filled_raw(self) -> int:
        return sum(child.filled_raw for child in self.children)

    def unallocated_raw(self) -> int:
        """Quantity neither pending nor committed to a child (open children count whole)."""
        committed = sum(c.qty_raw if c.status == "open" else c.filled_raw for c in self.children)
        return self.order.qty_raw - committed - sum(entry[1] for entry in self.pending)


class ExecutionBook:
    """Working parents (insertion order = creation order), their children, venue buckets."""

    def __init__(self) -> None:
        self.parent_counter = 0
        self.parents: dict[str, WorkingParent] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self.child_parent: dict[str, str] = {}  # open or unhandled child -> parent

    def snapshot(self) -> RouterSnapshot | UnsetType:
        if not self.parent_counter and not self.buckets:
            return UNSET
        return RouterSnapshot(
            parent_counter=self.parent_counter,
            parents=[
                RouterParentSnapshot(
                    parent_id=p.order.parent_id,
                    strategy_id=p.order.strategy_id,
                    instrument_id=p.order.instrument_id,
                    side=p.order.side,
                    qty_raw=p.order.qty_raw,
                    decision_px_raw=p.order.decision_px_raw,
                    algo=p.order.algo,
                    start_step=p.start_step,
                    end_step=p.end_step,
                    pending=[(s, q, a) for s, q, a in p.pending],
                    children=[
                        RouterChildSnapshot(
                            c.order_id, c.qty_raw, c.filled_raw, c.sent_step, c.attempt, c.status, c.handled
                        )
                        for c in p.children
                    ],
                    observed_raw=p.observed_raw,
                    observed_step=p.observed_step,
                    sent_raw=p.sent_raw,
                    attempt=p.attempt,
                    hold_until=p.hold_until,
                )
                for p in self.parents.values()
            ],
            buckets=[
                RouterBucketSnapshot(venue, b.capacity, b.refill_interval_ns, b.tokens, b.refilled_ts_ns)
                for venue, b in sorted(self.buckets.items())
            ],
        )

    @classmethod
    def restore(cls, snapshot: RouterSnapshot | UnsetType) -> ExecutionBook:
        book = cls()
        if isinstance(snapshot, UnsetType):
            return book
        book.parent_counter = snapshot.parent_counter
        for p in snapshot.parents:
            order = ParentOrder(
                parent_id=p.parent_id,
                strategy_id=p.strategy_id,
                instrument_id=p.instrument_id,
                side=p.side,
                qty_raw=p.qty_raw,
                decision_px_raw=p.decision_px_raw,
                algo=p.algo,
            )
            children = [
                Child(c.order_id, c.qty_raw, c.sent_step, c.attempt, c.filled_raw, c.status, c.handled)
                for c in p.children
            ]
            book.parents[p.parent_id] = WorkingParent(
                order=order,
                start_step=p.start_step,
                end_step=p.end_step,
                pending=[[s, q, a] for s, q, a in p.pending],
                children=children,
                observed_raw=p.observed_raw,
                observed_step=p.observed_step,
                sent_raw=p.sent_raw,
                attempt=p.attempt,
                hold_until=p.hold_until,
            )
            for child in children:
                if child.status == "open" or not child.handled:
                    book.child_parent[child.order_id] = p.parent_id
        for b in snapshot.buckets:
            book.buckets[b.venue] = TokenBucket(
                capacity=b.capacity,
                refill_interval_ns=b.refill_interval_ns,
                tokens=b.tokens,
                refilled_ts_ns=b.refilled_ts_ns,
            )
        return book


# --- the router --------------------------------------------------------------------------------


class EventSink(Protocol):
    def append(self, event: Event) -> int: ...


SubmitFn = Callable[[int, int, str, int, int, int, int, str], None]
CancelFn = Callable[[int, str, str], None]
ReplaceFn = Callable[[int, str, int, str], bool]  # (step, order id, new total qty, reason) -> amended


class Tap:
    """The kernel's sink seen through the router: every event goes to ``sink``; the router
    notes what happens to its children."""

    def __init__(self, sink: EventSink, router: Router) -> None:
        self._sink = sink
        self._router = router

    def append(self, event: Event) -> int:
        seq = self._sink.append(event)
        self._router.observe(event)
        return seq


class Router:
    """Works parent orders for one kernel. ``book`` lives in the kernel's state."""

    def __init__(
        self,
        *,
        config: ExecutionConfig,
        panel: Panel,
        instruments: dict[int, Instrument],
        columns: dict[int, int],
        book: ExecutionBook,
        sink: EventSink,
        submit: SubmitFn,
        cancel: CancelFn,
        replace: ReplaceFn | None = None,
    ) -> None:
        if config.algo == "market":
            raise RouterError("the router works twap, vwap and pov parents; market orders go direct")
        self._config = config
        self._panel = panel
        self._instruments = instruments
        self._columns = columns
        self.book = book
        self._sink = sink
        self._submit = submit
        self._cancel = cancel
        self._replace = replace
        if config.on_timeout == "replace" and replace is None:
            raise RouterError("execution.on_timeout = 'replace' needs a venue path that amends orders")
        self._retry = config.retry_policy()
        self._dirty = True  # closures to act on (also: state restored from a snapshot)
        day = panel.day
        starts = np.ones(panel.steps, dtype=np.bool_)
        starts[1:] = day[1:] != day[:-1]
        self._session_starts = np.flatnonzero(starts).astype(np.int64)
        self._session_of_step = np.cumsum(starts) - 1  # session index of each step

    def tap(self, sink: EventSink) -> Tap:
        return Tap(sink, self)

    # --- what happened to the children (from the journaled events) ------------------------

    def observe(self, event: Event) -> None:
        if isinstance(event, OrderSubmitted):
            if event.parent_id:
                self._register(event)
            return
        if isinstance(event, OrderReplaced):
            self._replaced(event)
            return
        if not isinstance(event, OrderFilled | OrderCancelled | OrderExpired | OrderRejected):
            return
        parent_id = self.book.child_parent.get(event.order_id)
        if parent_id is None:
            return
        child = self._child(parent_id, event.order_id)
        if isinstance(event, OrderFilled):
            child.filled_raw += event.fill_qty_raw
            parent = self.book.parents[parent_id]
            if child.filled_raw > child.qty_raw or parent.filled_raw > parent.order.qty_raw:
                raise RouterError(f"{event.order_id}: fills exceed the child or its parent {parent_id}")
            if event.leaves_qty_raw == 0:
                child.status = "closed"
        else:
            child.status = "rejected" if isinstance(event, OrderRejected) else "closed"
        if child.status != "open":
            self._dirty = True

    def _replaced(self, event: OrderReplaced) -> None:
        parent_id = self.book.child_parent.get(event.order_id)
        if parent_id is not None:
            self._child(parent_id, event.order_id).qty_raw = event.qty_raw

    def _register(self, event: OrderSubmitted) -> None:
        parent = self.book.parents.get(event.parent_id)
        if parent is None:
            raise RouterError(f"child {event.order_id} names unknown parent {event.parent_id}")
        parent.children.append(
            Child(event.order_id, event.qty_raw, self._sending_step, self._sending_attempt)
        )
        self.book.child_parent[event.order_id] = event.parent_id

    def _child(self, parent_id: str, order_id: str) -> Child:
        for child in self.book.parents[parent_id].children:
            if child.order_id == order_id:
                return child
        raise RouterError(f"parent {parent_id} has no child {order_id}")

    # --- scheduling ----------------------------------------------------------------------

    def next_due(self, floor: int) -> int:
        """The first step at or after ``floor`` at which the router has work."""
        if self._dirty:
            return floor
        due = _NO_STEP
        timeout = self._config.child_timeout_steps
        for parent in self.book.parents.values():
            if parent.pending:
                due = min(due, parent.pending[0][0])
            if parent.order.algo == "pov" and parent.observed_step < parent.end_step:
                due = min(due, max(parent.observed_step + 1, parent.hold_until))
            if timeout:
                for child in parent.children:
                    if child.status == "open":
                        due = min(due, child.sent_step + timeout)
        return max(due, floor) if due < _NO_STEP else _NO_STEP

    def cancel_parents(self, ts_ns: int, detail: str) -> None:
        """End every working parent (the kernel has cancelled their open children), e.g. when
        the kill switch trips."""
        for parent_id, parent in list(self.book.parents.items()):
            if any(child.status == "open" for child in parent.children):
                raise RouterError(f"{parent_id}: children still open when its parents were cancelled")
            parent.pending.clear()
            self._done(ts_ns, parent, "cancelled", detail)

    # --- decisions -----------------------------------------------------------------------

    def on_decision(
        self,
        step: int,
        ts_ns: int,
        strategy_id: str,
        intents: list[OrderIntent],
        names: AbstractSet[int] | None = None,
    ) -> bool:
        """End the strategy's working parents of ``names`` (None: of every name; the kernel has
        cancelled their open children), then take each intent as a parent. True when parents
        were created."""
        for parent_id, parent in list(self.book.parents.items()):
            if parent.order.strategy_id != strategy_id:
                continue
            if names is not None and parent.order.instrument_id not in names:
                continue
            if any(child.status == "open" for child in parent.children):
                raise RouterError(f"{parent_id}: children still open after the decision's cancels")
            if not parent.pending and parent.filled_raw == parent.order.qty_raw:
                self._done(ts_ns, parent, "filled")  # its last fill came at this very step
            else:
                parent.pending.clear()
                self._done(ts_ns, parent, "cancelled", "superseded by a new decision")
        if not intents:
            return False
        self._dirty = True  # new parents: look at them this step (a POV without a window ends now)
        day = int(self._panel.day[step])
        parents, self.book.parent_counter = parents_from_deltas(
            strategy_id,
            day,
            self.book.parent_counter,
            [i.instrument_id for i in intents],
            [i.qty_raw * i.side for i in intents],
            [i.decision_px_raw for i in intents],
            self._config.algo,
        )
        end = min(step + self._config.window_steps, self._panel.steps - 1)
        for order in parents:
            pending = self._plan(order, step, end)
            self.book.parents[order.parent_id] = WorkingParent(
                order=order, start_step=step, end_step=end, pending=pending, observed_step=step
            )
            self._sink.append(
                ParentCreated(
                    ts_ns=ts_ns,
                    parent_id=order.parent_id,
                    strategy_id=order.strategy_id,
                    instrument_id=order.instrument_id,
                    side=order.side,
                    qty_raw=order.qty_raw,
                    decision_px_raw=order.decision_px_raw,
                    algo=order.algo,
                    step=step,
                    end_step=end,
                    slices=[(s, q) for s, q, _ in pending],
                )
            )
        return bool(parents)

    def _plan(self, order: ParentOrder, start: int, end: int) -> list[list[int]]:
        """Pending slices [step, qty_raw, 0] of a TWAP/VWAP parent (POV plans none). An odd-lot
        remainder (an A-share sell of a position that is not whole lots) joins the last slice."""
        if order.algo == "pov":
            return []
        inst = self._instruments[order.instrument_id]
        lot = inst.lot_raw
        lots, odd = divmod(order.qty_raw, lot)
        rules = SliceRules(lot_raw=lot, lot_notional_minor=0)
        slices = self._config.slices
        if lots == 0:
            return [[start, order.qty_raw, 0]]
        if order.algo == "twap":
            planned = [(s.ts_ns, s.qty_raw) for s in twap_schedule(lots * lot, rules, start, end, slices)]
        else:
            bins = self.bin_starts(start, end)
            weights = self.vwap_weights(order.instrument_id, start, end)
            counts = allocate_lots(lots, weights, 1)
            planned = [(s, n * lot) for s, n in zip(bins, counts.tolist(), strict=True) if n]
        merged: dict[int, int] = {}
        for s, q in planned:
            merged[s] = merged.get(s, 0) + q
        pending = [[s, q, 0] for s, q in sorted(merged.items())]
        pending[-1][1] += odd
        return pending

    def bin_starts(self, start: int, end: int) -> list[int]:
        """First step of each of the ``slices`` equal bins of ``[start, end]`` (the TWAP times)."""
        slices = self._config.slices
        return [start + (end - start) * k // slices for k in range(slices)]

    def vwap_weights(self, instrument_id: int, start: int, end: int) -> np.ndarray:
        """Per bin: the historical volume of its steps' bars-of-session, summed over the
        ``vwap_lookback_sessions`` sessions before the decision's (proportional to the average
        profile; only data before the decision). All zero (no history): equal bins."""
        profile = self.volume_profile(instrument_id, start)
        bins = self.bin_starts(start, end)
        edges = [*bins[1:], end + 1]
        weights = np.zeros(len(bins), dtype=np.int64)
        for k, (first, stop) in enumerate(zip(bins, edges, strict=True)):
            for s in range(first, max(stop, first)):
                position = s - int(self._session_starts[self._session_of_step[s]])
                if position < profile.shape[0]:
                    weights[k] += int(profile[position])
        return weights

    def volume_profile(self, instrument_id: int, step: int) -> np.ndarray:
        """Volume per bar-of-session, summed over the K sessions before ``step``'s session."""
        session = int(self._session_of_step[step])
        first = max(0, session - self._config.vwap_lookback_sessions)
        column = self._columns[instrument_id]
        starts = self._session_starts
        lengths = [
            int((starts[s + 1] if s + 1 < starts.shape[0] else self._panel.steps) - starts[s])
            for s in range(first, session)
        ]
        profile = np.zeros(max(lengths, default=0), dtype=np.int64)
        volume = np.where(self._panel.valid[:, column], self._panel.volume[:, column], 0)
        for s, length in zip(range(first, session), lengths, strict=True):
            profile[:length] += volume[int(starts[s]) : int(starts[s]) + length]
        return profile

    # --- the work of one step ------------------------------------------------------------

    def work(self, step: int) -> bool:
        """Act at ``step``: closures, timeouts, due slices, POV children, ended parents. True
        when orders were sent or cancelled."""
        if self.next_due(step) > step:
            return False
        self._dirty = False
        ts_ns = int(self._panel.ts_ns[step])
        acted = False
        for parent in list(self.book.parents.values()):
            acted |= self._timeouts(step, parent)
            self._closures(step, parent)
            if parent.order.algo == "pov":
                acted |= self._pov(step, ts_ns, parent)
            elif parent.pending and parent.pending[0][0] <= step:
                acted |= self._send_due(step, ts_ns, parent)
            self._closures(step, parent)  # a child rejected just now
            if self._finished(parent):
                self._end(ts_ns, parent)
        self._dirty = False
        return acted

    def _timeouts(self, step: int, parent: WorkingParent) -> bool:
        timeout = self._config.child_timeout_steps
        if not timeout:
            return False
        acted = False
        for child in parent.children:
            if child.status == "open" and child.sent_step + timeout <= step:
                if not self._amend(step, parent, child, timeout):
                    self._cancel(
                        step, child.order_id, f"ROUTER_CHILD_TIMEOUT: open {timeout} steps after sending"
                    )
                acted = True
        return acted

    def _amend(self, step: int, parent: WorkingParent, child: Child, timeout: int) -> bool:
        """``on_timeout = "replace"``: grow the timed-out child by the parent's next pending slice
        (taken off the plan) and restart its timeout. False when there is nothing to add (POV,
        no slice pending) or the venue refused the replace: the caller cancels."""
        if self._config.on_timeout != "replace" or parent.order.algo == "pov" or not parent.pending:
            return False
        assert self._replace is not None
        slice_step, slice_qty, _ = parent.pending[0]
        qty = child.qty_raw + slice_qty
        reason = (
            f"ROUTER_CHILD_TIMEOUT: open {timeout} steps after sending; amended to include the "
            f"slice of step {slice_step}"
        )
        if not self._replace(step, child.order_id, qty, reason):
            return False
        if child.qty_raw != qty:
            raise RouterError(f"{child.order_id}: replaced, but its quantity is {child.qty_raw}, not {qty}")
        del parent.pending[0]
        child.sent_step = step
        if parent.unallocated_raw() < 0:
            raise RouterError(f"{parent.order.parent_id}: the amended child exceeds the parent quantity")
        return True

    def _closures(self, step: int, parent: WorkingParent) -> None:
        """Act once on each closed child: roll an unfilled remainder, retry a rejection."""
        for child in parent.children:
            if child.status == "open" or child.handled:
                continue
            child.handled = True
            self.book.child_parent.pop(child.order_id, None)
            unfilled = child.qty_raw - child.filled_raw
            if not unfilled:
                continue
            if parent.order.algo == "pov":
                if child.status == "rejected":
                    parent.attempt += 1
                    delay = backoff_ns(self._retry, parent.attempt)
                    parent.hold_until = step + delay if delay is not None else _NO_STEP
                continue  # the quantity is unallocated again; later volume sizes it
            if child.status == "rejected":
                delay = backoff_ns(self._retry, child.attempt + 1)
                if delay is not None:
                    self._add_pending(parent, step + delay, unfilled, child.attempt + 1)
                    continue
            later = [entry for entry in parent.pending if entry[0] > step]
            if later:
                later[0][1] += unfilled
            elif parent.pending:
                parent.pending[0][1] += unfilled

    @staticmethod
    def _add_pending(parent: WorkingParent, step: int, qty: int, attempt: int) -> None:
        for entry in parent.pending:
            if entry[0] == step:
                entry[1] += qty
                entry[2] = max(entry[2], attempt)
                return
        parent.pending.append([step, qty, attempt])
        parent.pending.sort(key=lambda entry: entry[0])

    def _acquire(self, step: int, ts_ns: int, parent: WorkingParent, qty: int) -> bool:
        """A token from the venue's bucket, or ``ChildDeferred`` to the next step."""
        capacity = self._config.rate_capacity
        if not capacity:
            return True
        venue = self._instruments[parent.order.instrument_id].venue
        bucket = self.book.buckets.get(venue)
        if bucket is None:
            bucket = bucket_full(capacity, self._config.refill_interval_ns(), ts_ns)
        bucket, granted, wait_ns = try_acquire(bucket, ts_ns)
        self.book.buckets[venue] = bucket
        if granted:
            return True
        self._sink.append(
            ChildDeferred(
                ts_ns=ts_ns,
                parent_id=parent.order.parent_id,
                qty_raw=qty,
                step=step,
                retry_step=step + 1,
                reason=f"RATE_LIMIT: venue {venue} has no token; next in {wait_ns} ns",
            )
        )
        return False

    def _send_due(self, step: int, ts_ns: int, parent: WorkingParent) -> bool:
        due = [entry for entry in parent.pending if entry[0] <= step]
        qty = sum(entry[1] for entry in due)
        attempt = max(entry[2] for entry in due)
        parent.pending = [entry for entry in parent.pending if entry[0] > step]
        if qty <= 0:
            return False
        if not self._acquire(step, ts_ns, parent, qty):
            if step + 1 < self._panel.steps:
                self._add_pending(parent, step + 1, qty, attempt)
            return False
        self._send(step, ts_ns, parent, qty, attempt)
        return True

    def _send(self, step: int, ts_ns: int, parent: WorkingParent, qty: int, attempt: int) -> None:
        if parent.unallocated_raw() < qty:
            raise RouterError(f"{parent.order.parent_id}: slices exceed the parent quantity")
        self._sending_step, self._sending_attempt = step, attempt
        o = parent.order
        self._submit(step, ts_ns, o.strategy_id, o.instrument_id, o.side, qty, o.decision_px_raw, o.parent_id)

    def _pov(self, step: int, ts_ns: int, parent: WorkingParent) -> bool:
        """Count the volume of the bars since the last look; send ``participation x observed``
        less what was already sent (``pov_child_qty`` on the volume not yet used), in whole lots,
        within the parent's unallocated quantity. Cumulative children never exceed
        ``participation x`` the volume observed since the parent started."""
        if parent.observed_step < step:
            column = self._columns[parent.order.instrument_id]
            last = min(step, parent.end_step)
            rows = slice(parent.observed_step + 1, last + 1)
            valid = self._panel.valid[rows, column]
            parent.observed_raw += int(self._panel.volume[rows, column][valid].sum())
            parent.observed_step = last
        if step < parent.hold_until or step > parent.end_step or parent.attempt > self._config.retry_max:
            return False
        free = parent.unallocated_raw()
        if free <= 0:
            return False
        inst = self._instruments[parent.order.instrument_id]
        rules = SliceRules(lot_raw=inst.lot_raw, lot_notional_minor=0)
        participation = self._config.participation_e8
        used = div_round(parent.sent_raw * RATE_SCALE, participation, Rounding.CEILING)
        qty = pov_child_qty(free, max(parent.observed_raw - used, 0), participation, rules)
        allowance = parent.observed_raw * participation // RATE_SCALE - parent.sent_raw
        if not qty and free < inst.lot_raw and free <= allowance:
            qty = free  # an odd-lot remainder (A-share sell), once the volume covers it
        if not qty or not self._acquire(step, ts_ns, parent, qty):
            return False
        parent.sent_raw += qty
        self._send(step, ts_ns, parent, qty, parent.attempt)
        if parent.children[-1].status == "open":
            parent.attempt = 0
        return True

    def _finished(self, parent: WorkingParent) -> bool:
        if parent.pending or any(c.status == "open" for c in parent.children):
            return False
        if parent.order.algo != "pov":
            return True
        return (
            parent.observed_step >= parent.end_step
            or parent.unallocated_raw() == 0
            or parent.attempt > self._config.retry_max
        )

    def _end(self, ts_ns: int, parent: WorkingParent) -> None:
        filled = parent.filled_raw
        if filled == parent.order.qty_raw:
            self._done(ts_ns, parent, "filled")
        else:
            self._done(
                ts_ns, parent, "exhausted", f"schedule ended with {parent.order.qty_raw - filled} unfilled"
            )

    def _done(self, ts_ns: int, parent: WorkingParent, reason: str, detail: str = "") -> None:
        for child in parent.children:
            self.book.child_parent.pop(child.order_id, None)
        del self.book.parents[parent.order.parent_id]
        self._sink.append(
            ParentDone(
                ts_ns=ts_ns,
                parent_id=parent.order.parent_id,
                qty_raw=parent.order.qty_raw,
                filled_qty_raw=parent.filled_raw,
                children=len(parent.children),
                reason=reason,
                detail=detail,
            )
        )

    _sending_step = 0
    _sending_attempt = 0
