"""The simulated venue: accepts orders, fills them against bars through the Numba kernels,
and turns the results into ``OrderFilled`` events with money computed in integers."""

from __future__ import annotations

import msgspec
import numpy as np

from domain.events import (
    OrderAccepted,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderReplaceRejected,
)
from domain.fixed import Rounding, apply_rate
from domain.instruments import Instrument, notional_minor
from domain.market import Panel
from domain.markets import (
    Board,
    CommissionSchedule,
    CorporateAction,
    PriceLimits,
    check_price_limit,
    check_suspended,
    cn_instrument_limits,
    commission_total_minor,
    ex_right_reference_price,
    locked_reason,
    opened_at_limit_reason,
)
from domain.orders import Order
from kernel.corporate_actions import actions_of
from kernel.markets import is_cn_a_share, next_a_share_steps
from kernel.venue import NO_ACTIVITY
from sim._match_nb import LIMIT, MARKET, match_step_nb, next_fill_step_nb
from sim.fill_models import FillModel

__all__ = ["SimVenue"]

_ORDER_TYPES = {"market": MARKET, "limit": LIMIT}
_RATE = 100_000_000  # 1e-8 units, as the Numba kernels' RATE
_INT64_MAX = 2**63 - 1
SMALL_BATCH = 8
"""Up to this many open orders a step are matched in plain Python (``_match_small``): for
the one or two orders of most steps, building the kernels' arrays costs more than matching."""


class SimVenue:
    """Bar-based matching: market orders at the next bar's open, limits on trade-through."""

    def __init__(self, panel: Panel, fill_model: FillModel) -> None:
        self._panel = panel
        self._model = fill_model
        self._column = {inst.instrument_id: col for col, inst in enumerate(panel.instruments)}
        self._instruments = {inst.instrument_id: inst for inst in panel.instruments}
        self._lot_tick = {i.instrument_id: (i.lot_raw, i.tick_raw) for i in panel.instruments}
        self._next_valid = next_valid_steps(panel.valid)
        self._arrived: int | None = None  # rows that hold data, when a queue source fills them
        self._cn = {i.instrument_id: Board(i.board) for i in panel.instruments if is_cn_a_share(i)}
        # A-share price limits come from the previous session's close (or an ex-date's
        # ex-rights reference): read when needed, so rows that arrive later count too.
        self._ref = ReferenceCloses(panel, set(self._cn)) if self._cn else None
        self._blocked: dict[str, str] = {}  # order id -> why it could not fill (this session)
        self._live_day: dict[str, int] = {}  # A-share order id -> the session it works in
        self._next_cn_step = next_a_share_steps(panel)
        self._schedules: dict[int, CommissionSchedule] = {}  # instrument id -> commission

    def submit(self, step: int, order: Order) -> OrderAccepted | OrderRejected:
        ts_ns = int(self._panel.ts_ns[step])
        reason = (
            self._reject_reason(order)
            or self._suspended_reason(step, order)
            or self._limit_price_reason(step, order)
            or self._min_notional_reason(step, order)
        )
        if reason:
            return OrderRejected(ts_ns=ts_ns, order_id=order.order_id, reason=reason)
        if order.instrument_id in self._cn:
            self._live_day[order.order_id] = self._session_of_order(step)
        return OrderAccepted(ts_ns=ts_ns, order_id=order.order_id)

    def _suspended_reason(self, step: int, order: Order) -> str | None:
        """An A-share order for a session in which its name is suspended (停牌) is refused
        (``CN_SUSPENDED: day=D``), as the exchange refuses it. Suspended, from the data: the
        session is a session of the data set, the name has no bar in it, and it has a bar both
        before and after it (listed all through; before its first bar or after its last one the
        data cannot tell a suspension from a listing or a delisting, and nothing is refused).
        Only the session's steps and the name's own bars are read; rows that a queue source has
        not delivered yet are unknown, so a streaming run refuses nothing here (a live venue
        answers for itself)."""
        if order.instrument_id not in self._cn or self._arrived is not None:
            return None
        panel = self._panel
        day = self._session_of_order(step)
        first = int(np.searchsorted(panel.day, day, side="left"))
        end = int(np.searchsorted(panel.day, day, side="right"))
        column = self._column[order.instrument_id]
        if panel.valid[first:end, column].any():
            return None
        listed_before = first > 0 and int(panel.last_close[first - 1, column]) > 0
        listed_after = end < panel.steps and int(self._next_valid[end, column]) >= 0
        return check_suspended(listed_before and listed_after, day)

    def _min_notional_reason(self, step: int, order: Order) -> str | None:
        """The venue's minimum order value (``Instrument.min_notional_minor``, e.g. a ccxt
        market's ``limits.cost.min``): at the limit price, or the last close for a market order."""
        instrument = self._instruments[order.instrument_id]
        if instrument.min_notional_minor <= 0:
            return None
        px = order.limit_px_raw or int(self._panel.last_close[step, self._column[order.instrument_id]])
        value = notional_minor(instrument, order.qty_raw, px, Rounding.HALF_EVEN)
        if value >= instrument.min_notional_minor:
            return None
        return f"MIN_NOTIONAL: notional_minor={value}, min_notional_minor={instrument.min_notional_minor}"

    def replace(
        self, step: int, order: Order, qty_raw: int, limit_px_raw: int
    ) -> OrderReplaced | OrderReplaceRejected:
        """Amend a working order at once: the amended order must pass the checks of a new one
        (lot, tick, A-share price band) and stay above its filled quantity."""
        ts_ns = int(self._panel.ts_ns[step])
        amended = msgspec.structs.replace(order, qty_raw=qty_raw, limit_px_raw=limit_px_raw)
        if not order.is_open:
            reason = f"NOT_WORKING: order is {order.status.value}"
        elif qty_raw <= order.filled_qty_raw:
            reason = f"REPLACE_BELOW_FILLED: qty_raw={qty_raw}, filled_qty_raw={order.filled_qty_raw}"
        elif (order.order_type == "market") != (limit_px_raw == 0):
            reason = f"REPLACE_ORDER_TYPE: a {order.order_type} order with limit_px_raw={limit_px_raw}"
        else:
            reason = self._reject_reason(amended) or self._limit_price_reason(step, amended) or ""
        if reason:
            return OrderReplaceRejected(
                ts_ns=ts_ns,
                order_id=order.order_id,
                qty_raw=qty_raw,
                limit_px_raw=limit_px_raw,
                reason=reason,
            )
        return OrderReplaced(
            ts_ns=ts_ns,
            order_id=order.order_id,
            qty_raw=qty_raw,
            prev_qty_raw=order.qty_raw,
            limit_px_raw=limit_px_raw,
        )

    def _session_of_order(self, step: int) -> int:
        """An order sent after a session's last bar works in the next session. In a data set
        that also holds other markets (US closes, crypto hours on the same day), the A-share
        session is over at the day's last step with an A-share bar: an order sent then or
        later works in the next day that has one (a China holiday on which only the other
        markets trade is not an A-share session). A queue source's rows not yet arrived are
        unknown: there the day's last step decides, as in a data set of A-shares only."""
        day = self._panel.day
        if self._next_cn_step is not None and self._arrived is None:
            later = int(self._next_cn_step[step])
            if later >= 0:
                return int(day[later])
        if step + 1 < self._panel.steps and day[step + 1] != day[step]:
            return int(day[step + 1])
        return int(day[step])

    def _reject_reason(self, order: Order) -> str:
        instrument = self._instruments.get(order.instrument_id)
        if instrument is None:
            return f"UNKNOWN_INSTRUMENT: instrument_id={order.instrument_id}"
        if instrument.asset_class == "index":  # a reference series (a calendar, a benchmark)
            return f"NOT_TRADABLE: {instrument.symbol} is an index"
        if order.order_type not in _ORDER_TYPES:
            return f"UNSUPPORTED_ORDER_TYPE: {order.order_type}"
        # A-share quantities follow their board's lot rule, checked by the kernel's market rules
        # before an order reaches the venue: an odd remainder may be sold with the rest (after a
        # bonus issue), a STAR order steps by one share.
        if order.qty_raw % instrument.lot_raw and not is_cn_a_share(instrument):
            return f"LOT_SIZE: qty_raw={order.qty_raw}, lot_raw={instrument.lot_raw}"
        if order.order_type == "limit" and (
            order.limit_px_raw <= 0 or order.limit_px_raw % instrument.tick_raw
        ):
            return f"TICK_SIZE: limit_px_raw={order.limit_px_raw}, tick_raw={instrument.tick_raw}"
        return ""

    def _limits(self, step: int, instrument_id: int) -> PriceLimits | None:
        """Today's A-share price limits from the previous session's close, or on an ex-date
        from the ex-rights reference price (None: no limit). The band follows the board, the
        ST flag and, when the data set's instrument gives a listing day, the IPO sessions
        (``cn_instrument_limits``: STAR's first five sessions have no limit)."""
        if instrument_id not in self._cn or self._ref is None:
            return None
        ref = self._ref.at(step, self._column[instrument_id])
        if ref <= 0:
            return None  # first session in the data: no reference close (nor the issue price)
        day = int(self._panel.day[step])
        return cn_instrument_limits(self._instruments[instrument_id], day, ref, self._panel.holidays)

    def _limit_price_reason(self, step: int, order: Order) -> str | None:
        if order.order_type != "limit" or order.instrument_id not in self._cn:
            return None
        # A limit order placed after this step's bar trades in the next session's band when
        # the step ends a session; the kernel submits at a step's close, so use the next step
        # (in a data set of several markets, the next step with an A-share bar: the session
        # the order works in).
        next_step = min(step + 1, self._panel.steps - 1)
        if self._next_cn_step is not None and self._arrived is None and self._next_cn_step[step] >= 0:
            next_step = int(self._next_cn_step[step])
        limits = self._limits(next_step, order.instrument_id)
        digits = self._instruments[order.instrument_id].price_digits
        return check_price_limit(order.limit_px_raw, limits, digits)

    def _unlocked(self, step: int, orders: list[Order]) -> list[Order]:
        """Orders that can trade at this step; A-share orders against a bar locked at their
        limit cannot, and the reason is kept for their end-of-day expiry."""
        if not self._cn:
            return orders
        panel = self._panel
        skip_at_limit = self._model.at_limit == "skip"
        tradable = []
        for order in orders:
            limits = self._limits(step, order.instrument_id)
            column = self._column[order.instrument_id]
            low, high = int(panel.low[step, column]), int(panel.high[step, column])
            digits = self._instruments[order.instrument_id].price_digits
            reason = (
                locked_reason(order.side, low, high, limits, digits) if panel.valid[step, column] else None
            )
            if reason is None and skip_at_limit and limits is not None and panel.valid[step, column]:
                reason = opened_at_limit_reason(order.side, int(panel.open[step, column]), limits, digits)
            if reason is None:
                tradable.append(order)
            else:
                self._blocked[order.order_id] = reason
        return tradable

    def end_of_day(self, step: int, orders: list[Order]) -> list[OrderExpired]:
        """A-share orders are day orders: what worked in this session and is still open at
        its close expires. (An order restored from a snapshot works in the session it is
        restored into.)"""
        ts_ns = int(self._panel.ts_ns[step])
        day = int(self._panel.day[step])
        ending = [
            o for o in orders if o.instrument_id in self._cn and self._live_day.get(o.order_id, day) <= day
        ]
        expired = [
            OrderExpired(
                ts_ns=ts_ns,
                order_id=o.order_id,
                reason=self._blocked.get(o.order_id, "CN_DAY_ORDER: unfilled at the close"),
            )
            for o in ending
        ]
        still_open = {o.order_id for o in orders} - {o.order_id for o in ending}
        self._live_day = {oid: d for oid, d in self._live_day.items() if oid in still_open}
        self._blocked.clear()
        return expired

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
        orders = self._unlocked(step, orders)
        if not orders:
            return []
        if len(orders) <= SMALL_BATCH:
            matched = self._match_small(step, orders)
            if matched is not None:
                return matched
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

    def _match_small(self, step: int, orders: list[Order]) -> list[OrderFilled] | None:
        """``match_step_nb`` in plain Python, the same arithmetic order by order; None (use the
        kernel) when an order is neither market nor limit or a product could leave int64,
        where the kernel's wrap-around would differ from Python's integers."""
        panel = self._panel
        participation = self._model.participation_e8
        ts_ns = int(panel.ts_ns[step])
        fills = []
        for order in orders:
            column = self._column[order.instrument_id]
            if not panel.valid[step, column]:
                continue
            px = self._small_px(step, column, order)
            if px is None:
                return None
            qty = order.leaves_qty_raw
            if participation > 0:
                volume = int(panel.volume[step, column]) * participation
                if abs(volume) > _INT64_MAX:
                    return None
                lot = self._lot_tick[order.instrument_id][0]
                qty = min(qty, (volume // _RATE // lot) * lot)
            if qty > 0 and px > 0:
                fills.append(self._fill(ts_ns, order, qty, px))
        return fills

    def _small_px(self, step: int, column: int, order: Order) -> int | None:
        """The fill price of one order at ``step`` (<= 0: no fill), as ``match_step_nb``; None
        when the kernel must decide (see ``_match_small``)."""
        panel = self._panel
        side = order.side
        if order.order_type == "market":
            tick = self._lot_tick[order.instrument_id][1]
            numerator = int(panel.open[step, column]) * (_RATE + side * self._model.slippage_e8)
            denominator = _RATE * tick
            if abs(numerator) + denominator > _INT64_MAX:
                return None
            quotient = numerator // denominator
            if side > 0 and quotient * denominator != numerator:
                quotient += 1  # buys round up, sells down: against the trader
            return quotient * tick
        if order.order_type != "limit" or abs(order.limit_px_raw) > _INT64_MAX:
            return None
        limit = order.limit_px_raw
        if side > 0:
            return 0 if int(panel.low[step, column]) > limit else min(int(panel.open[step, column]), limit)
        return 0 if int(panel.high[step, column]) < limit else max(int(panel.open[step, column]), limit)

    def _fill(self, ts_ns: int, order: Order, qty: int, px: int) -> OrderFilled:
        instrument: Instrument = self._instruments[order.instrument_id]
        notional = notional_minor(instrument, qty, px, Rounding.HALF_EVEN)
        model = self._model
        if model.maker_taker:
            maker = order.order_type == "limit" and px == order.limit_px_raw
            commission = apply_rate(notional, model.maker_e8 if maker else model.taker_e8, Rounding.HALF_UP)
        else:
            # The minimum is per order: each fill pays the increase of the order's total.
            before = self._commission_total(instrument, order.filled_notional_minor, order.filled_qty_raw)
            total = self._commission_total(
                instrument, order.filled_notional_minor + notional, order.filled_qty_raw + qty
            )
            commission = total - before
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

    def commission_quote(self, instrument: Instrument, notional_minor: int, qty_raw: int) -> int:
        """The commission of an order of this notional and quantity (a cash account's cost bound,
        ``kernel.account``): the same schedule the fills are charged by."""
        return self._commission_total(instrument, notional_minor, qty_raw)

    def _commission_total(self, instrument: Instrument, notional_minor: int, qty_raw: int) -> int:
        """The commission of an order whose fills add up to this notional and quantity."""
        model = self._model
        if notional_minor <= 0 or not (model.commission_e8 or model.commission_per_share_e8):
            return 0
        schedule = self._schedules.get(instrument.instrument_id)
        if schedule is None:
            schedule = CommissionSchedule(
                currency=instrument.currency,
                rate_e8=model.commission_e8,
                per_share_e8=model.commission_per_share_e8,
                min_minor=model.commission_min_minor,
                max_rate_e8=model.commission_max_e8 or None,
                rounding=Rounding.HALF_UP,
            )
            self._schedules[instrument.instrument_id] = schedule
        return commission_total_minor(schedule, notional_minor, qty_raw, instrument.qty_digits)

    def rows_arrived(self, start: int, end: int) -> None:
        """A queue source filled rows ``start .. end-1``: fills are searched up to ``end`` only,
        and asked again when more rows arrive."""
        self._arrived = end

    def next_activity(self, step: int, orders: list[Order]) -> int:
        if not orders:
            return NO_ACTIVITY
        if self._arrived is not None:
            return self._next_arrived_activity(step, orders)
        if all(o.order_type == "market" for o in orders):
            # A market order fills at the next bar of its instrument.
            if step + 1 >= self._panel.steps:
                return NO_ACTIVITY
            row = self._next_valid[step + 1]
            # A name with no bar left (-1) cannot fill; the others' next bars still count.
            ahead = [step for step in (int(row[self._column[o.instrument_id]]) for o in orders) if step >= 0]
            return min(ahead) if ahead else NO_ACTIVITY
        sides, types, limits, _, columns, _, _ = self._arrays(orders)
        panel = self._panel
        found = next_fill_step_nb(sides, types, limits, columns, step, panel.low, panel.high, panel.valid)
        return NO_ACTIVITY if found < 0 else int(found)

    def _next_arrived_activity(self, step: int, orders: list[Order]) -> int:
        """``next_activity`` over the rows that have arrived: the first of them after ``step`` at
        which an order may fill, or ``NO_ACTIVITY`` until a later row does."""
        arrived = self._arrived
        assert arrived is not None
        if step + 1 >= arrived:
            return NO_ACTIVITY
        panel = self._panel
        if all(o.order_type == "market" for o in orders):
            columns = sorted({self._column[o.instrument_id] for o in orders})
            rows = np.flatnonzero(panel.valid[step + 1 : arrived][:, columns].any(axis=1))
            return NO_ACTIVITY if rows.size == 0 else step + 1 + int(rows[0])
        sides, types, limits, _, columns, _, _ = self._arrays(orders)
        found = next_fill_step_nb(
            sides, types, limits, columns, step,
            panel.low[:arrived], panel.high[:arrived], panel.valid[:arrived],
        )  # fmt: skip
        return NO_ACTIVITY if found < 0 else int(found)


class ReferenceCloses:
    """The close each A-share's price limits are computed from: the close carried to the end of
    the previous session day (0 in the first session), or on an ex-date session (the first
    session on or after a data-set action's ex-date) its ``ex_right_reference_price`` (not for a
    share-structure reform row: its session keeps the previous close).

    Only the session structure (``panel.day``) is read up front; closes are read when asked, so
    the answer for a step depends only on rows before its session, whether they came with the
    data set or arrived one at a time."""

    def __init__(self, panel: Panel, instrument_ids: set[int]) -> None:
        self._panel = panel
        steps = panel.steps
        starts = np.ones(steps, dtype=np.bool_)
        starts[1:] = panel.day[1:] != panel.day[:-1]
        first_of_day = np.maximum.accumulate(np.where(starts, np.arange(steps), 0))
        self._first_of_day = first_of_day
        column = {inst.instrument_id: col for col, inst in enumerate(panel.instruments)}
        instruments = {inst.instrument_id: inst for inst in panel.instruments}
        # (first step of the ex-date session, column) -> its actions in order, and the instrument
        self._ex: dict[tuple[int, int], tuple[list[CorporateAction], Instrument]] = {}
        for action in actions_of(panel):
            # A share-structure reform row is a payment between holders, not a dilution: the
            # exchange sets no ex-rights reference, the previous close stays the reference.
            if action.instrument_id not in instrument_ids or action.reform:
                continue
            first = int(np.searchsorted(panel.day, action.ex_day, side="left"))
            if first >= steps or (first == 0 and action.ex_day < int(panel.day[0])):
                continue
            key = (first, column[action.instrument_id])
            self._ex.setdefault(key, ([], instruments[action.instrument_id]))[0].append(action)

    def at(self, step: int, column: int) -> int:
        first = int(self._first_of_day[step])
        if first == 0:
            return 0
        ref = int(self._panel.last_close[first - 1, column])
        ex = self._ex.get((first, column)) if self._ex else None
        if ex is None:
            return ref
        actions, inst = ex
        for action in actions:  # several actions on one session apply in turn
            if ref <= 0:
                return ref  # no previous close in the data: no limit that session anyway
            ref = ex_right_reference_price(ref, action.to_cn(), inst.price_digits, inst.tick_raw)
        return ref


def next_valid_steps(valid: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """For each (step, column): the first step >= it with a bar, or -1."""
    steps = valid.shape[0]
    index = np.where(valid, np.arange(steps)[:, None], steps)
    index = np.minimum.accumulate(index[::-1], axis=0)[::-1]
    return np.where(index == steps, -1, index).astype(np.int64)
