"""Kernel state: balances, positions, open orders and counters; snapshot and restore."""

from __future__ import annotations

from domain.events import (
    KernelSnapshot,
    OpenOrderSnapshot,
    PositionSnapshot,
    PostingRecord,
    SellableSnapshot,
)
from domain.ledger import Position
from domain.markets import SellableBook
from domain.orders import Order, OrderStatus
from kernel.router import ExecutionBook

__all__ = ["KernelState"]


class KernelState:
    """Mutable state owned by one kernel. Iteration orders are explicit (sorted or insertion)."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.balances: dict[str, int] = {}
        self.positions: dict[int, Position] = {}
        self.open_orders: dict[str, Order] = {}  # insertion order = submission order
        self.order_counter = 0
        self.txn_counter = 0
        self.next_step = 0
        self.last_targets: dict[int, int] = {}
        self.sellable: dict[int, SellableBook] = {}  # A-share T+1 books by instrument
        self.execution = ExecutionBook()  # the execution router's working parents

    def snapshot(self) -> KernelSnapshot:
        ccy = self.currency
        return KernelSnapshot(
            next_step=self.next_step,
            order_counter=self.order_counter,
            txn_counter=self.txn_counter,
            balances=[PostingRecord(a, ccy, b) for a, b in sorted(self.balances.items())],
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
                )
                for o in self.open_orders.values()
            ],
            last_targets=sorted(self.last_targets.items()),
            sellable=[
                SellableSnapshot(iid, b.day, b.holding, b.bought_today, b.reserved)
                for iid, b in sorted(self.sellable.items())
            ],
            router=self.execution.snapshot(),
        )

    @classmethod
    def restore(cls, snapshot: KernelSnapshot, currency: str) -> KernelState:
        state = cls(currency)
        state.next_step = snapshot.next_step
        state.order_counter = snapshot.order_counter
        state.txn_counter = snapshot.txn_counter
        state.balances = {p.account: p.amount_minor for p in snapshot.balances}
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
            )
            for o in snapshot.open_orders
        }
        state.last_targets = dict(snapshot.last_targets)
        state.sellable = {
            b.instrument_id: SellableBook(
                day=b.day, holding=b.holding, bought_today=b.bought_today, reserved=b.reserved
            )
            for b in snapshot.sellable
        }
        state.execution = ExecutionBook.restore(snapshot.router)
        return state
