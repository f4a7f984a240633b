"""Kernel state: balances, positions, open orders and counters; snapshot and restore."""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from domain.events import (
    DayTradeSnapshot,
    KernelSnapshot,
    KillSwitchSnapshot,
    OpenOrderSnapshot,
    PositionSnapshot,
    PostingRecord,
    SellableSnapshot,
    TaxLotSnapshot,
    VenueGuardSnapshot,
)
from domain.execution import SequenceGuard
from domain.ledger import Position
from domain.markets import DayTradeBook, DayTradeRecord, Lots, SellableBook, TaxLot
from domain.orders import Order, OrderStatus
from domain.riskrules import KillState, KillSwitchState
from kernel.router import ExecutionBook
from kernel.sleeves import Sleeve

__all__ = ["KernelState"]


class KernelState:
    """Mutable state owned by one kernel. Iteration orders are explicit (sorted or insertion)."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.balances: dict[str, int] = {}
        # Accounts kept in a currency other than ``currency`` (a book of several currencies,
        # ``kernel.currencies``): the snapshot records each balance in its own currency.
        self.account_currency: dict[str, str] = {}
        self.positions: dict[int, Position] = {}
        self.open_orders: dict[str, Order] = {}  # insertion order = submission order
        self.order_counter = 0
        self.txn_counter = 0
        self.next_step = 0
        self.last_targets: dict[int, int] = {}
        self.sellable: dict[int, SellableBook] = {}  # A-share T+1 books by instrument
        self.kill: KillSwitchState | None = None  # set by the kernel at its first step
        self.nav_closes: list[int] = []  # last day-close NAVs (volatility targeting's window + 1)
        self.tax_lots: dict[int, Lots] = {}  # A-share lots for the dividend tax at the sale
        self.execution = ExecutionBook()  # the execution router's working parents
        self.day_trades = DayTradeBook()  # US PDT counter (``kernel.pdt``)
        self.venue_guard: SequenceGuard | None = None  # an asynchronous venue's sequence guard
        self.sleeves: list[Sleeve] = []  # per-strategy books of a multi-strategy run (kernel.sleeves)
        # Strategies an operator paused: not in the snapshot (``KernelSnapshot`` takes no more
        # fields); a replay from a snapshot folds them from the journal's strategy.commanded.
        self.paused: set[str] = set()
        # Orders with a cancel sent to a venue that answers later (``OrderCancelRequested``) and
        # not yet answered: not in the snapshot either; folded from the journal on restore.
        self.cancel_requested: set[str] = set()
        # The snapshot's balance records (``_balance_records``): (the balances dict they are
        # of, its accounts sorted, account -> last record).
        self._records: tuple[dict[str, int], list[str], dict[str, PostingRecord]] = ({}, [], {})

    def snapshot(self) -> KernelSnapshot:
        return KernelSnapshot(
            next_step=self.next_step,
            order_counter=self.order_counter,
            txn_counter=self.txn_counter,
            balances=self._balance_records(),
            positions=[
                PositionSnapshot(iid, p.qty_raw, p.cost_minor) for iid, p in sorted(self.positions.items())
            ],
            open_orders=[
                OpenOrderSnapshot(
                    o.order_id,
                    o.strategy_id,
                    o.instrument_id,
                    o.side,
                    o.order_type,
                    o.qty_raw,
                    o.filled_qty_raw,
                    o.limit_px_raw,
                    o.status.value,
                    o.filled_notional_minor,
                    o.submitted_ts_ns,
                )
                for o in self.open_orders.values()
            ],
            last_targets=sorted(self.last_targets.items()),
            sellable=[
                SellableSnapshot(iid, b.day, b.holding, b.bought_today, b.reserved)
                for iid, b in sorted(self.sellable.items())
            ],
            kill_switch=_kill_snapshot(self.kill),
            nav_closes=list(self.nav_closes),
            tax_lots=[
                TaxLotSnapshot(iid, lot.acquired_day, lot.qty, list(lot.dividends))
                for iid, lots in sorted(self.tax_lots.items())
                for lot in lots
            ],
            router=self.execution.snapshot(),
            day_trades=[DayTradeSnapshot(*msgspec.structs.astuple(r)) for r in self.day_trades.records],
            venue_guard=_guard_snapshot(self.venue_guard),
            sleeves=[sleeve.snapshot() for sleeve in self.sleeves],
        )

    def _balance_records(self) -> list[PostingRecord]:
        """Every balance as a posting record, sorted by account. A daily snapshot repeats most
        of them unchanged, so each account's last record is kept and reused while its amount
        and currency are the same (the same bytes, fewer objects built)."""
        balances, ccy, currencies = self.balances, self.currency, self.account_currency
        kept = self._records
        if kept[0] is not balances or len(kept[1]) != len(balances):  # accounts only grow
            kept = self._records = (balances, sorted(balances), kept[2] if kept[0] is balances else {})
        records = kept[2]
        out = []
        for account in kept[1]:
            amount = balances[account]
            record = records.get(account)
            currency = currencies.get(account, ccy)
            if record is None or record.amount_minor != amount or record.currency != currency:
                record = records[account] = PostingRecord(account, currency, amount)
            out.append(record)
        return out

    @classmethod
    def restore(cls, snapshot: KernelSnapshot, currency: str) -> KernelState:
        state = cls(currency)
        state.next_step = snapshot.next_step
        state.order_counter = snapshot.order_counter
        state.txn_counter = snapshot.txn_counter
        state.balances = {p.account: p.amount_minor for p in snapshot.balances}
        state.account_currency = {p.account: p.currency for p in snapshot.balances if p.currency != currency}
        state.positions = {p.instrument_id: Position(p.qty_raw, p.cost_minor) for p in snapshot.positions}
        state.open_orders = {
            o.order_id: Order(
                order_id=o.order_id,
                strategy_id=o.strategy_id,
                instrument_id=o.instrument_id,
                side=o.side,
                order_type=o.order_type,
                qty_raw=o.qty_raw,
                limit_px_raw=o.limit_px_raw,
                filled_qty_raw=o.filled_qty_raw,
                filled_notional_minor=o.filled_notional_minor,
                status=OrderStatus(o.status),
                submitted_ts_ns=o.submitted_ts_ns,
            )
            for o in snapshot.open_orders
        }
        state.last_targets = dict(snapshot.last_targets)
        state.sellable = {
            b.instrument_id: SellableBook(
                day=b.day, holding=b.holding, bought_today=b.bought_today, reserved=b.reserved
            )
            for b in snapshot.sellable or []
        }
        state.kill = _kill_restore(snapshot.kill_switch)
        state.nav_closes = list(snapshot.nav_closes)
        for lot in snapshot.tax_lots:
            held = state.tax_lots.get(lot.instrument_id, ())
            state.tax_lots[lot.instrument_id] = (
                *held,
                TaxLot(lot.acquired_day, lot.qty, tuple((day, amount) for day, amount in lot.dividends)),
            )
        state.execution = ExecutionBook.restore(snapshot.router)
        state.day_trades = DayTradeBook(
            records=tuple(DayTradeRecord(*msgspec.structs.astuple(r)) for r in snapshot.day_trades)
        )
        if not isinstance(snapshot.venue_guard, UnsetType):
            guard = snapshot.venue_guard
            held_messages = {message.venue_seq: message for message in guard.held}
            state.venue_guard = SequenceGuard(next_seq=guard.next_seq, held=held_messages)
        state.sleeves = [Sleeve.restore(sleeve) for sleeve in snapshot.sleeves]
        return state


def _guard_snapshot(guard: SequenceGuard | None) -> VenueGuardSnapshot | UnsetType:
    if guard is None:
        return UNSET
    return VenueGuardSnapshot(next_seq=guard.next_seq, held=[guard.held[seq] for seq in sorted(guard.held)])


def _kill_snapshot(kill: KillSwitchState | None) -> KillSwitchSnapshot | None:
    if kill is None:
        return None
    return KillSwitchSnapshot(**{**msgspec.structs.asdict(kill), "state": kill.state.value})


def _kill_restore(snapshot: KillSwitchSnapshot | None) -> KillSwitchState | None:
    if snapshot is None:
        return None
    return KillSwitchState(**{**msgspec.structs.asdict(snapshot), "state": KillState(snapshot.state)})
