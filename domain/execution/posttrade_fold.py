"""Post-trade execution quality folded from journal events: one row per parent order.

The same fold feeds ``tape report`` (in memory, over a whole journal) and the ledger
projections (incrementally, batch by batch, with the per-parent state kept in the
``execution_quality`` table), so the two cannot disagree. Everything is computed from the
journal alone; the definitions (see docs/projections.md, "execution_quality"):

* **parent**: ``OrderSubmitted.parent_id`` when set (router children are grouped), otherwise
  the order itself. All children of a parent must share strategy, instrument and side.
* **intended quantity**: the sum of the children's quantities (the journal has no parent
  event; a router that re-sends a cancelled child's remainder as a new child counts it twice);
  a replace (``OrderReplaced``) changes it by the child's new less its previous quantity.
* **decision price**: ``decision_px_raw`` of the parent's first child (the price the decision
  was sized at: the last close the strategy saw).
* **arrival price**: the price of the parent's first fill -- the market the parent met when it
  reached the venue (for the simulator: the next bar's open after the fill model's slippage).
  A parent without fills has no arrival; the decision price stands in for it.
* **close price** (for the opportunity cost of the unfilled quantity): the parent's last fill
  price; a parent without fills uses the decision price, so its opportunity cost is zero (the
  journal carries no market prices of its own).
* **day**: the session of the first child's submission -- the ``DayClosed.day`` of the first
  day close journaled after it (the kernel closes a day after that day's decisions); 0 while
  that session has not closed yet.

Money is in the currency's minor unit. The execution cost is what the fills' notionals (as
journaled, ``OrderFilled.notional_minor``) cost against the same quantity at the reference
price: ``side x (sum notional_i - notional(filled, reference))``; the opportunity cost is
``side x (notional(unfilled, close) - notional(unfilled, reference))``. Positive is a cost.
Notionals round half-even (``domain.instruments.notional_minor``); ratios are 1e-8, half-even,
and ``slippage_*_e8`` is the execution cost over the filled quantity's notional at the
reference price (``10_000`` e8 = 1 bp). Totals (``summarise_rows``) add the per-parent money
and weight the ratios by notional at the reference price (the fill ratio of a total is the
filled over the intended notional at the decision price, so names with different lot sizes
add up), so a total's money always equals the sum of its rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import msgspec

from domain.events import (
    DayClosed,
    Event,
    InstrumentsDefined,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
)
from domain.fixed import RATE_SCALE, Rounding, div_round
from domain.instruments import Instrument, notional_minor

__all__ = [
    "ExecutionFold",
    "ExecutionRow",
    "ExecutionTotals",
    "ParentExecution",
    "add_child",
    "add_fill",
    "amend_child",
    "close_child",
    "execution_row",
    "open_parent",
    "ROW_COLUMNS",
    "STATE_COLUMNS",
    "parent_key",
    "state_of_row",
    "summarise_rows",
]


class ParentExecution(msgspec.Struct, frozen=True, kw_only=True):
    """The running state of one parent: everything later events need (and nothing derived)."""

    parent_id: str
    strategy_id: str
    instrument_id: int
    currency: str
    side: int
    day: int  # 0 until the session of the first child closes
    children: int
    open_children: int
    intended_qty_raw: int
    filled_qty_raw: int
    filled_notional_minor: int
    decision_px_raw: int
    first_fill_px_raw: int  # 0 before the first fill
    last_fill_px_raw: int
    first_seq: int
    updated_seq: int


class ExecutionRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the ``execution_quality`` table (column order = field order)."""

    parent_id: str
    strategy_id: str
    instrument_id: int
    currency: str
    side: int
    day: int
    status: str  # "open" while a child can still fill, else "done"
    children: int
    open_children: int
    intended_qty_raw: int
    filled_qty_raw: int
    fill_ratio_e8: int
    decision_px_raw: int
    first_fill_px_raw: int
    last_fill_px_raw: int
    arrival_px_raw: int
    close_px_raw: int
    filled_notional_minor: int
    intended_notional_minor: int  # the intended quantity at the decision price
    decision_notional_minor: int  # the filled quantity at the decision price
    arrival_notional_minor: int
    execution_cost_decision_minor: int
    execution_cost_arrival_minor: int
    opportunity_cost_decision_minor: int
    opportunity_cost_arrival_minor: int
    shortfall_decision_minor: int
    shortfall_arrival_minor: int
    slippage_decision_e8: int
    slippage_arrival_e8: int
    first_seq: int
    updated_seq: int


ROW_COLUMNS: tuple[str, ...] = ExecutionRow.__struct_fields__
STATE_COLUMNS: tuple[str, ...] = ParentExecution.__struct_fields__


def parent_key(event: OrderSubmitted) -> str:
    return event.parent_id or event.order_id


def _ratio_e8(numerator: int, denominator: int) -> int:
    return div_round(numerator * RATE_SCALE, denominator, Rounding.HALF_EVEN) if denominator > 0 else 0


def open_parent(seq: int, event: OrderSubmitted, instrument: Instrument) -> ParentExecution:
    """A parent whose first child is ``event`` (journal seq ``seq``)."""
    if event.side not in (1, -1) or event.qty_raw <= 0:
        raise ValueError(f"order {event.order_id}: need side +-1 and quantity > 0")
    if instrument.instrument_id != event.instrument_id:
        raise ValueError(f"order {event.order_id}: instrument {instrument.instrument_id} is not its own")
    return ParentExecution(
        parent_id=parent_key(event),
        strategy_id=event.strategy_id,
        instrument_id=event.instrument_id,
        currency=instrument.currency,
        side=event.side,
        day=0,  # set by the next DayClosed
        children=1,
        open_children=1,
        intended_qty_raw=event.qty_raw,
        filled_qty_raw=0,
        filled_notional_minor=0,
        decision_px_raw=event.decision_px_raw,
        first_fill_px_raw=0,
        last_fill_px_raw=0,
        first_seq=seq,
        updated_seq=seq,
    )


def add_child(parent: ParentExecution, seq: int, event: OrderSubmitted) -> ParentExecution:
    """Another child of ``parent``: its quantity adds to the intended quantity."""
    facts = (event.strategy_id, event.instrument_id, event.side)
    if facts != (parent.strategy_id, parent.instrument_id, parent.side):
        raise ValueError(
            f"order {event.order_id}: strategy/instrument/side {facts} differ from its parent "
            f"{parent.parent_id} {(parent.strategy_id, parent.instrument_id, parent.side)}"
        )
    if event.qty_raw <= 0:
        raise ValueError(f"order {event.order_id}: quantity must be positive")
    return msgspec.structs.replace(
        parent,
        children=parent.children + 1,
        open_children=parent.open_children + 1,
        intended_qty_raw=parent.intended_qty_raw + event.qty_raw,
        updated_seq=seq,
    )


def add_fill(parent: ParentExecution, seq: int, fill: OrderFilled) -> ParentExecution:
    """A fill of one of the parent's children; a fill with no leaves ends that child."""
    if (fill.instrument_id, fill.side) != (parent.instrument_id, parent.side):
        raise ValueError(f"fill of {fill.order_id}: instrument/side differ from parent {parent.parent_id}")
    if fill.fill_qty_raw <= 0:
        raise ValueError(f"fill of {fill.order_id}: quantity must be positive")
    filled = parent.filled_qty_raw + fill.fill_qty_raw
    if filled > parent.intended_qty_raw:
        raise ValueError(f"parent {parent.parent_id}: filled {filled} > intended {parent.intended_qty_raw}")
    updated = msgspec.structs.replace(
        parent,
        filled_qty_raw=filled,
        filled_notional_minor=parent.filled_notional_minor + fill.notional_minor,
        first_fill_px_raw=parent.first_fill_px_raw or fill.fill_px_raw,
        last_fill_px_raw=fill.fill_px_raw,
        updated_seq=seq,
    )
    return close_child(updated, seq) if fill.leaves_qty_raw == 0 else updated


def amend_child(parent: ParentExecution, seq: int, event: OrderReplaced) -> ParentExecution:
    """One of the parent's children was amended: the intended quantity follows its new total."""
    intended = parent.intended_qty_raw + event.qty_raw - event.prev_qty_raw
    if event.qty_raw <= 0 or intended < parent.filled_qty_raw:
        raise ValueError(
            f"replace of {event.order_id} to {event.qty_raw}: parent {parent.parent_id} would intend "
            f"{intended}, below its filled {parent.filled_qty_raw}"
        )
    return msgspec.structs.replace(parent, intended_qty_raw=intended, updated_seq=seq)


def close_child(parent: ParentExecution, seq: int) -> ParentExecution:
    """One child reached a terminal state (filled, cancelled, rejected, expired)."""
    if parent.open_children <= 0:
        raise ValueError(f"parent {parent.parent_id}: a child ended but none is open")
    return msgspec.structs.replace(parent, open_children=parent.open_children - 1, updated_seq=seq)


def execution_row(parent: ParentExecution, instrument: Instrument) -> ExecutionRow:
    """The quality of ``parent`` so far (see the module docstring for the definitions)."""
    side, filled = parent.side, parent.filled_qty_raw
    unfilled = parent.intended_qty_raw - filled
    decision = parent.decision_px_raw
    arrival = parent.first_fill_px_raw if filled else decision
    close = parent.last_fill_px_raw if filled else decision

    def notional(qty: int, px: int) -> int:
        return notional_minor(instrument, qty, px, Rounding.HALF_EVEN)

    decision_notional, arrival_notional = notional(filled, decision), notional(filled, arrival)
    cost_decision = side * (parent.filled_notional_minor - decision_notional)
    cost_arrival = side * (parent.filled_notional_minor - arrival_notional) if filled else 0
    unfilled_close = notional(unfilled, close)
    opportunity_decision = side * (unfilled_close - notional(unfilled, decision))
    opportunity_arrival = side * (unfilled_close - notional(unfilled, arrival))
    return ExecutionRow(
        parent_id=parent.parent_id,
        strategy_id=parent.strategy_id,
        instrument_id=parent.instrument_id,
        currency=parent.currency,
        side=side,
        day=parent.day,
        status="open" if parent.open_children else "done",
        children=parent.children,
        open_children=parent.open_children,
        intended_qty_raw=parent.intended_qty_raw,
        filled_qty_raw=filled,
        fill_ratio_e8=_ratio_e8(filled, parent.intended_qty_raw),
        decision_px_raw=decision,
        first_fill_px_raw=parent.first_fill_px_raw,
        last_fill_px_raw=parent.last_fill_px_raw,
        arrival_px_raw=arrival,
        close_px_raw=close,
        filled_notional_minor=parent.filled_notional_minor,
        intended_notional_minor=notional(parent.intended_qty_raw, decision),
        decision_notional_minor=decision_notional,
        arrival_notional_minor=arrival_notional,
        execution_cost_decision_minor=cost_decision,
        execution_cost_arrival_minor=cost_arrival,
        opportunity_cost_decision_minor=opportunity_decision,
        opportunity_cost_arrival_minor=opportunity_arrival,
        shortfall_decision_minor=cost_decision + opportunity_decision,
        shortfall_arrival_minor=cost_arrival + opportunity_arrival,
        slippage_decision_e8=_ratio_e8(cost_decision, decision_notional),
        slippage_arrival_e8=_ratio_e8(cost_arrival, arrival_notional),
        first_seq=parent.first_seq,
        updated_seq=parent.updated_seq,
    )


def state_of_row(row: ExecutionRow) -> ParentExecution:
    """The running state kept in a row (how the projection resumes a parent)."""
    return ParentExecution(**{name: getattr(row, name) for name in STATE_COLUMNS})


class ExecutionFold:
    """Folds journal events into per-parent state. Pure; where state lives is pluggable.

    In memory (the report) the defaults suffice. The projection passes loaders that read
    parents, instruments and an order's parent from its tables when an earlier batch wrote
    them, so folding a journal in one go or batch by batch gives the same rows.
    """

    def __init__(
        self,
        *,
        load_parent: Callable[[str], ParentExecution | None] = lambda parent_id: None,
        load_instrument: Callable[[int], Instrument | None] = lambda instrument_id: None,
        load_parent_of: Callable[[str], str | None] = lambda order_id: None,
        load_undated: Callable[[], list[ParentExecution]] = list,
    ) -> None:
        self._load_parent = load_parent
        self._load_undated = load_undated
        self._load_instrument = load_instrument
        self._load_parent_of = load_parent_of
        self._parents: dict[str, ParentExecution] = {}
        self._instruments: dict[int, Instrument] = {}
        self._parent_of: dict[str, str] = {}
        self._changed: dict[str, None] = {}  # insertion-ordered set
        self._undated: dict[str, None] = {}  # parents opened since the last day close

    def apply(self, seq: int, event: Event) -> None:
        if isinstance(event, OrderSubmitted):
            self._on_submitted(seq, event)
        elif isinstance(event, OrderFilled):
            self._update(event.order_id, lambda parent: add_fill(parent, seq, event))
        elif isinstance(event, OrderRejected | OrderCancelled | OrderExpired):
            self._update(event.order_id, lambda parent: close_child(parent, seq))
        elif isinstance(event, OrderReplaced):
            self._update(event.order_id, lambda parent: amend_child(parent, seq, event))
        elif isinstance(event, InstrumentsDefined):
            self._instruments.update((inst.instrument_id, inst) for inst in event.instruments)
        elif isinstance(event, DayClosed):
            self._date(seq, event.day)

    def _date(self, seq: int, day: int) -> None:
        """Parents opened before this day close belong to its session (earlier batches' too)."""
        for stored in self._load_undated():
            self._parents.setdefault(stored.parent_id, stored)  # this batch's state wins
            self._undated[stored.parent_id] = None
        for parent_id in self._undated:
            parent = self._parents[parent_id]
            if parent.day == 0:
                self._store(msgspec.structs.replace(parent, day=day, updated_seq=seq))
        self._undated.clear()

    def apply_all(self, events: Iterable[tuple[int, Event]]) -> ExecutionFold:
        for seq, event in events:
            self.apply(seq, event)
        return self

    def _instrument(self, instrument_id: int) -> Instrument:
        found = self._instruments.get(instrument_id) or self._load_instrument(instrument_id)
        if found is None:
            raise ValueError(f"instrument {instrument_id} is not defined before its first order")
        self._instruments[instrument_id] = found
        return found

    def _parent(self, parent_id: str) -> ParentExecution | None:
        found = self._parents.get(parent_id)
        return found if found is not None else self._load_parent(parent_id)

    def _on_submitted(self, seq: int, event: OrderSubmitted) -> None:
        key = parent_key(event)
        if event.parent_id:
            existing = self._parent(key)
        elif key in self._parents:
            raise ValueError(f"order {key} submitted twice")
        else:
            existing = None  # an order sent directly is its own, new parent: no lookup
        if existing is None:
            parent = open_parent(seq, event, self._instrument(event.instrument_id))
            self._undated[parent.parent_id] = None
        else:
            parent = add_child(existing, seq, event)
        self._parent_of[event.order_id] = key
        self._store(parent)

    def _update(self, order_id: str, change: Callable[[ParentExecution], ParentExecution]) -> None:
        key = self._parent_of.get(order_id) or self._load_parent_of(order_id)
        parent = self._parent(key) if key else None
        if key is None or parent is None:
            raise ValueError(f"event for order {order_id} that was never submitted")
        self._parent_of[order_id] = key
        self._store(change(parent))

    def _store(self, parent: ParentExecution) -> None:
        self._parents[parent.parent_id] = parent
        self._changed[parent.parent_id] = None

    def changed_rows(self) -> list[ExecutionRow]:
        """Rows of the parents touched since the last call, in first-touched order."""
        rows = [
            execution_row(self._parents[pid], self._instrument(self._parents[pid].instrument_id))
            for pid in self._changed
        ]
        self._changed.clear()
        return rows

    def rows(self) -> list[ExecutionRow]:
        """Every parent folded so far, ordered by parent id (bytewise, as the tables)."""
        ordered = sorted(self._parents.values(), key=lambda parent: parent.parent_id.encode())
        return [execution_row(parent, self._instrument(parent.instrument_id)) for parent in ordered]


class ExecutionTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Totals over rows of one currency: money adds, ratios are weighted."""

    currency: str
    parents: int
    intended_qty_raw: int
    filled_qty_raw: int
    fill_ratio_e8: int  # filled over intended notional at the decision price
    filled_notional_minor: int
    intended_notional_minor: int
    decision_notional_minor: int
    arrival_notional_minor: int
    execution_cost_decision_minor: int
    execution_cost_arrival_minor: int
    opportunity_cost_decision_minor: int
    shortfall_decision_minor: int
    shortfall_arrival_minor: int
    slippage_decision_e8: int
    slippage_arrival_e8: int


def summarise_rows(rows: Sequence[ExecutionRow]) -> ExecutionTotals:
    """Totals of rows (one strategy, one day, ...). Rows must share a currency: a minor unit
    of one currency does not add to another's."""
    currencies = {row.currency for row in rows}
    if len(currencies) > 1:
        raise ValueError(f"cannot total execution quality across currencies {sorted(currencies)}")
    decision_notional = sum(row.decision_notional_minor for row in rows)
    arrival_notional = sum(row.arrival_notional_minor for row in rows)
    cost_decision = sum(row.execution_cost_decision_minor for row in rows)
    cost_arrival = sum(row.execution_cost_arrival_minor for row in rows)
    return ExecutionTotals(
        currency=currencies.pop() if currencies else "",
        parents=len(rows),
        intended_qty_raw=sum(row.intended_qty_raw for row in rows),
        filled_qty_raw=sum(row.filled_qty_raw for row in rows),
        fill_ratio_e8=_ratio_e8(decision_notional, sum(row.intended_notional_minor for row in rows)),
        filled_notional_minor=sum(row.filled_notional_minor for row in rows),
        intended_notional_minor=sum(row.intended_notional_minor for row in rows),
        decision_notional_minor=decision_notional,
        arrival_notional_minor=arrival_notional,
        execution_cost_decision_minor=cost_decision,
        execution_cost_arrival_minor=cost_arrival,
        opportunity_cost_decision_minor=sum(row.opportunity_cost_decision_minor for row in rows),
        shortfall_decision_minor=sum(row.shortfall_decision_minor for row in rows),
        shortfall_arrival_minor=sum(row.shortfall_arrival_minor for row in rows),
        slippage_decision_e8=_ratio_e8(cost_decision, decision_notional),
        slippage_arrival_e8=_ratio_e8(cost_arrival, arrival_notional),
    )
