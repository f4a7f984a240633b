"""The simulated venue: accepts orders, fills them against bars through the Numba kernels,
and turns the results into ``OrderFilled`` events with money computed in integers."""

from __future__ import annotations

import numpy as np

from domain.events import OrderAccepted, OrderFilled, OrderRejected
from domain.fixed import Rounding, apply_rate
from domain.instruments import Instrument, notional_minor
from domain.market import Panel
from domain.orders import Order
from kernel.venue import NO_ACTIVITY
from sim._match_nb import LIMIT, MARKET, match_step_nb, next_fill_step_nb
from sim.fill_models import FillModel

__all__ = ["SimVenue"]

_ORDER_TYPES = {"market": MARKET, "limit": LIMIT}


class SimVenue:
    """Bar-based matching: market orders at the next bar's open, limits on trade-through."""

    def __init__(self, panel: Panel, fill_model: FillModel) -> None:
        self._panel = panel
        self._model = fill_model
        self._column = {inst.instrument_id: col for col, inst in enumerate(panel.instruments)}
        self._instruments = {inst.instrument_id: inst for inst in panel.instruments}
        self._lot_tick = {i.instrument_id: (i.lot_raw, i.tick_raw) for i in panel.instruments}
        self._next_valid = next_valid_steps(panel.valid)

    def submit(self, step: int, order: Order) -> OrderAccepted | OrderRejected:
        ts_ns = int(self._panel.ts_ns[step])
        reason = self._reject_reason(order)
        if reason:
            return OrderRejected(ts_ns=ts_ns, order_id=order.order_id, reason=reason)
        return OrderAccepted(ts_ns=ts_ns, order_id=order.order_id)

    def _reject_reason(self, order: Order) -> str:
        instrument = self._instruments.get(order.instrument_id)
        if instrument is None:
            return f"UNKNOWN_INSTRUMENT: instrument_id={order.instrument_id}"
        if order.order_type not in _ORDER_TYPES:
            return f"UNSUPPORTED_ORDER_TYPE: {order.order_type}"
        if order.qty_raw % instrument.lot_raw:
            return f"LOT_SIZE: qty_raw={order.qty_raw}, lot_raw={instrument.lot_raw}"
        if order.order_type == "limit" and (
            order.limit_px_raw <= 0 or order.limit_px_raw % instrument.tick_raw
        ):
            return f"TICK_SIZE: limit_px_raw={order.limit_px_raw}, tick_raw={instrument.tick_raw}"
        return ""

    def _arrays(self, orders: list[Order]) -> np.ndarray:  # type: ignore[type-arg]
        """Order fields as rows of one int64 array: side, type, limit, leaves, column, lot, tick."""
        column = self._column
        facts = self._lot_tick
        rows = [
            (
                o.side,
                _ORDER_TYPES[o.order_type],
                o.limit_px_raw,
                o.leaves_qty_raw,
                column[o.instrument_id],
                *facts[o.instrument_id],
            )
            for o in orders
        ]
        return np.array(rows, dtype=np.int64).T.copy()

    def match(self, step: int, orders: list[Order]) -> list[OrderFilled]:
        if not orders:
            return []
        sides, types, limits, qty_open, columns, lots, ticks = self._arrays(orders)
        panel = self._panel
        out_px = np.zeros(len(orders), dtype=np.int64)
        out_qty = np.zeros(len(orders), dtype=np.int64)
        match_step_nb(
            sides,
            types,
            limits,
            qty_open,
            columns,
            lots,
            ticks,
            panel.open[step],
            panel.high[step],
            panel.low[step],
            panel.volume[step],
            panel.valid[step],
            self._model.slippage_e8,
            self._model.participation_e8,
            out_px,
            out_qty,
        )
        ts_ns = int(panel.ts_ns[step])
        fills = []
        for order, px, qty in zip(orders, out_px.tolist(), out_qty.tolist(), strict=True):
            if qty:
                fills.append(self._fill(ts_ns, order, qty, px))
        return fills

    def _fill(self, ts_ns: int, order: Order, qty: int, px: int) -> OrderFilled:
        instrument: Instrument = self._instruments[order.instrument_id]
        notional = notional_minor(instrument, qty, px, Rounding.HALF_EVEN)
        commission = max(
            apply_rate(notional, self._model.commission_e8, Rounding.HALF_UP),
            self._model.commission_min_minor if self._model.commission_e8 else 0,
        )
        return OrderFilled(
            ts_ns=ts_ns,
            order_id=order.order_id,
            instrument_id=order.instrument_id,
            side=order.side,
            fill_qty_raw=qty,
            fill_px_raw=px,
            leaves_qty_raw=order.leaves_qty_raw - qty,
            notional_minor=notional,
            commission_minor=commission,
            currency=instrument.currency,
        )

    def next_activity(self, step: int, orders: list[Order]) -> int:
        if not orders:
            return NO_ACTIVITY
        if all(o.order_type == "market" for o in orders):
            # A market order fills at the next bar of its instrument.
            if step + 1 >= self._panel.steps:
                return NO_ACTIVITY
            row = self._next_valid[step + 1]
            found = min(int(row[self._column[o.instrument_id]]) for o in orders)
            return NO_ACTIVITY if found < 0 else found
        sides, types, limits, _, columns, _, _ = self._arrays(orders)
        panel = self._panel
        found = next_fill_step_nb(sides, types, limits, columns, step, panel.low, panel.high, panel.valid)
        return NO_ACTIVITY if found < 0 else int(found)


def next_valid_steps(valid: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """For each (step, column): the first step >= it with a bar, or -1."""
    steps = valid.shape[0]
    index = np.where(valid, np.arange(steps)[:, None], steps)
    index = np.minimum.accumulate(index[::-1], axis=0)[::-1]
    return np.where(index == steps, -1, index).astype(np.int64)
