"""The step loop: one step per distinct timestamp, inputs applied in a fixed order.

At each step that matters — a strategy's scheduled decision, a step at which an open
order can fill, or the last step of a session day — the kernel, in this order:

1. matches open orders against the step's bar (venue fills -> positions and ledger);
2. asks the strategy for target weights (seeing data up to this step only), checks them
   against the risk limits and turns the allowed deltas into whole-lot orders;
3. at a day's last step marks to market (``DayClosed``) and snapshots its state.

Steps where none of these can happen produce no events, so they are skipped: a
5,000-name universe or a million one-minute bars cost one Python iteration per step that
matters, not per bar.
"""

from __future__ import annotations

from collections.abc import Callable
from math import isfinite
from typing import Protocol

import numpy as np

from domain.events import (
    DayClosed,
    Event,
    InstrumentsDefined,
    LedgerPosted,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    RunFinished,
    StateSnapshotted,
    TargetsDecided,
)
from domain.fixed import RATE_SCALE, Rounding
from domain.instruments import notional_minor
from domain.ledger import Position, apply_postings, capital_postings, cash_account, fill_postings
from domain.market import Panel
from domain.markets import funding_payment_minor, funding_postings
from domain.orders import evolve, new_order
from domain.risk import RiskLimits
from kernel.markets import MarketRules
from kernel.pipeline import apply_risk, current_weights, plan_orders, reject_unpriced, verdict_events
from kernel.router import ExecutionConfig, Router
from kernel.state import KernelState
from kernel.strategy import MarketView, Strategy
from kernel.venue import NO_ACTIVITY, VenuePort

__all__ = ["EventSink", "Kernel", "KernelError", "ProgressFn"]

ProgressFn = Callable[[int], None]  # called with the number of steps done so far


class EventSink(Protocol):
    def append(self, event: Event) -> int: ...


class KernelError(RuntimeError):
    """The kernel was given inputs it cannot run on."""


def _funding_by_step(panel: Panel) -> dict[int, list[tuple[int, int, int]]]:
    """Funding rows grouped by the first step at or after their time (later ones dropped)."""
    steps = np.searchsorted(panel.ts_ns, panel.funding_ts_ns, side="left")
    grouped: dict[int, list[tuple[int, int, int]]] = {}
    rows = zip(
        steps.tolist(),
        panel.funding_instrument_id.tolist(),
        panel.funding_rate_e8.tolist(),
        panel.funding_ts_ns.tolist(),
        strict=True,
    )
    for step, iid, rate_e8, ts_ns in rows:
        if step < panel.steps:
            grouped.setdefault(step, []).append((iid, rate_e8, ts_ns))
    return grouped


class Kernel:
    def __init__(
        self,
        *,
        panel: Panel,
        strategy: Strategy,
        venue: VenuePort,
        limits: RiskLimits,
        sink: EventSink,
        currency: str,
        state: KernelState | None = None,
        execution: ExecutionConfig | None = None,
    ) -> None:
        self._panel = panel
        self._strategy = strategy
        self._venue = venue
        self._limits = limits
        self._sink = sink
        self._currency = currency
        self.state = state if state is not None else KernelState(currency)
        self._instruments = {inst.instrument_id: inst for inst in panel.instruments}
        self._column = {inst.instrument_id: col for col, inst in enumerate(panel.instruments)}
        self._ids = [inst.instrument_id for inst in panel.instruments]
        self._rules = MarketRules(self._instruments)
        for inst in panel.instruments:
            if inst.currency != currency:
                raise KernelError(
                    f"{inst.symbol} trades in {inst.currency}; this run settles in {currency} only"
                )
        schedule = np.asarray(strategy.schedule(panel), dtype=np.int64)
        if schedule.size and (schedule[0] < 0 or schedule[-1] >= panel.steps):
            raise KernelError(f"{strategy.strategy_id}: schedule has steps outside the panel")
        self._decide_mask = np.zeros(panel.steps, dtype=np.bool_)
        self._decide_mask[schedule] = True
        self._day_end = panel.day_end_mask()
        self._funding = _funding_by_step(panel)
        self._funding_mask = np.zeros(panel.steps, dtype=np.bool_)
        self._funding_mask[list(self._funding)] = True
        self._router: Router | None = None
        if execution is not None and execution.algo != "market":
            self._router = self._make_router(execution)

    # --- run -----------------------------------------------------------------------------

    def begin(self, initial_cash_minor: int) -> None:
        """First derived events of a fresh run: the instruments and the capital deposit."""
        ts_ns = int(self._panel.ts_ns[0])
        self._sink.append(InstrumentsDefined(ts_ns=ts_ns, instruments=list(self._panel.instruments)))
        self._post(ts_ns, "capital", capital_postings(initial_cash_minor, self._currency))

    def run(
        self, start_step: int = 0, end_step: int | None = None, progress: ProgressFn | None = None
    ) -> None:
        """Run steps ``start_step .. end_step-1`` (default: to the end of the panel)."""
        end = self._panel.steps if end_step is None else end_step
        window = slice(start_step, end)
        interesting = np.flatnonzero(
            self._decide_mask[window] | self._day_end[window] | self._funding_mask[window]
        )
        static = (interesting + start_step).tolist()
        venue_next = self._venue_next(start_step - 1)
        router_next = self._router.next_due(start_step) if self._router is not None else NO_ACTIVITY
        count = len(static)
        index = 0
        while True:
            step = static[index] if index < count else NO_ACTIVITY
            step = min(step, venue_next, router_next)
            if step >= end:
                break
            if index < count and static[index] == step:
                index += 1
            venue_next = self._step(step, venue_next)
            router_next = self._router.next_due(step + 1) if self._router is not None else NO_ACTIVITY
            if progress is not None and self._day_end[step]:
                progress(step + 1)
        self.state.next_step = end

    def _step(self, step: int, venue_next: int) -> int:
        """One step that matters: fills, funding, decision, day end. Returns the venue's next
        activity step."""
        if venue_next <= step:
            self._match(step)
            venue_next = self._venue_next(step)
        if step in self._funding:
            self._apply_funding(step)
        if self._decide_mask[step] and self._decide(step):
            venue_next = self._venue_next(step)
        if self._router is not None and self._router.work(step):
            venue_next = self._venue_next(step)
        if self._day_end[step]:
            if self.state.open_orders:
                self._expire_day_orders(step)
                if self._router is not None:
                    self._router.work(step)  # expired children roll their remainders
                venue_next = self._venue_next(step)
            self.state.next_step = step + 1
            self._close_day(step)
        return venue_next

    def finish(self) -> None:
        step = self._panel.steps - 1
        self._sink.append(
            RunFinished(
                ts_ns=int(self._panel.ts_ns[step]),
                steps=self._panel.steps,
                nav_minor=self.nav_minor(step),
                currency=self._currency,
            )
        )

    # --- valuation -----------------------------------------------------------------------

    def nav_minor(self, step: int) -> int:
        cash = self.state.balances.get(cash_account(self._currency), 0)
        return cash + sum(self._position_values(step).values())

    def _position_values(self, step: int) -> dict[int, int]:
        row = self._panel.last_close[step]
        return {
            iid: notional_minor(
                self._instruments[iid], pos.qty_raw, int(row[self._column[iid]]), Rounding.HALF_EVEN
            )
            for iid, pos in sorted(self.state.positions.items())
        }

    def _prices(self, step: int) -> dict[int, int]:
        row = self._panel.last_close[step].tolist()
        return dict(zip(self._ids, row, strict=True))

    # --- stages --------------------------------------------------------------------------

    def _venue_next(self, step: int) -> int:
        if not self.state.open_orders:
            return NO_ACTIVITY
        return self._venue.next_activity(step, list(self.state.open_orders.values()))

    def _match(self, step: int) -> None:
        fills = self._venue.match(step, list(self.state.open_orders.values()))
        day = int(self._panel.day[step])
        for fill in fills:
            self._apply_fill(fill, day)

    def _apply_fill(self, fill: OrderFilled, day: int) -> None:
        state = self.state
        order = evolve(state.open_orders[fill.order_id], fill)
        position = state.positions.get(fill.instrument_id, Position())
        postings, position = fill_postings(position, fill)
        postings.extend(self._rules.fee_postings(day, fill))
        self._rules.on_fill(state.sellable, day, fill)
        self._sink.append(fill)
        self._post(fill.ts_ns, f"fill {fill.order_id}", postings)
        if position.qty_raw:
            state.positions[fill.instrument_id] = position
        else:
            state.positions.pop(fill.instrument_id, None)
        if order.is_open:
            state.open_orders[fill.order_id] = order
        else:
            del state.open_orders[fill.order_id]

    def _apply_funding(self, step: int) -> None:
        """Perpetual funding for positions held through a funding time inside this step's bar,
        at the bar's close as the mark; cash against funding income or expense."""
        panel = self._panel
        for iid, rate_e8, funding_ts_ns in self._funding[step]:
            position = self.state.positions.get(iid)
            if position is None:
                continue
            inst = self._instruments[iid]
            column = self._column[iid]
            mark = int(
                panel.close[step, column] if panel.valid[step, column] else panel.last_close[step, column]
            )
            amount = funding_payment_minor(inst, position.qty_raw, mark, rate_e8, Rounding.HALF_EVEN)
            postings = funding_postings(amount, inst.currency)
            if postings:
                memo = f"funding {inst.symbol} rate_e8={rate_e8} mark_px_raw={mark} at {funding_ts_ns}"
                self._post(int(panel.ts_ns[step]), memo, postings)

    def _post(self, ts_ns: int, memo: str, postings: list) -> None:  # type: ignore[type-arg]
        state = self.state
        state.txn_counter += 1
        self._sink.append(
            LedgerPosted(ts_ns=ts_ns, txn_id=f"T{state.txn_counter:09d}", memo=memo, postings=postings)
        )
        apply_postings(state.balances, postings)

    def _decide(self, step: int) -> bool:
        """Decision, risk and execution at ``step``; True when orders were submitted."""
        weights = self._strategy.decide(MarketView(self._panel, step))
        if weights is None:
            return False
        targets = self._targets_e8(weights)
        if not targets:
            return False
        ts_ns = int(self._panel.ts_ns[step])
        sid = self._strategy.strategy_id
        ids = sorted(targets)
        self._sink.append(
            TargetsDecided(
                ts_ns=ts_ns,
                strategy_id=sid,
                step=step,
                instrument_ids=ids,
                weights_e8=[targets[i] for i in ids],
            )
        )
        nav = self.nav_minor(step)
        prices = self._prices(step)
        held = current_weights(self.state.positions, prices, self._instruments, nav)
        priced, priced_outcome = reject_unpriced(targets, prices)
        allowed, outcomes = apply_risk(priced, held, self._limits)
        outcomes.insert(0, priced_outcome)
        for verdict in verdict_events(ts_ns, sid, step, outcomes):
            self._sink.append(verdict)
        self.state.last_targets.update(allowed)
        self._cancel_open(step, ts_ns, sid)
        intents = plan_orders(allowed, self.state.positions, prices, self._instruments, nav)
        if self._router is not None:
            return self._router.on_decision(step, ts_ns, sid, intents)
        for intent in intents:
            self._submit(
                step, ts_ns, sid, intent.instrument_id, intent.side, intent.qty_raw, intent.decision_px_raw
            )
        return bool(intents)

    def _targets_e8(self, weights: np.ndarray) -> dict[int, int]:
        """Float weights -> 1e-8 integers, half-even (Python's ``round`` and ``np.rint`` agree
        on every double); NaN means "no target for this name"."""
        if weights.shape != (len(self._ids),):
            raise KernelError(f"strategy returned {weights.shape} weights for {len(self._ids)} names")
        targets = {}
        for iid, weight in zip(self._ids, weights.tolist(), strict=True):
            if weight != weight:  # NaN
                continue
            if not isfinite(weight):
                raise KernelError(f"{self._strategy.strategy_id}: non-finite target weight for {iid}")
            targets[iid] = round(weight * RATE_SCALE)
        return targets

    def _cancel_open(self, step: int, ts_ns: int, strategy_id: str) -> None:
        """A new decision supersedes the strategy's orders still open."""
        day = self._session_of_order(step)
        for order_id, order in list(self.state.open_orders.items()):
            if order.strategy_id != strategy_id:
                continue
            event = OrderCancelled(ts_ns=ts_ns, order_id=order_id, reason="superseded by a new decision")
            self._sink.append(event)
            evolve(order, event)
            self._rules.on_closed(self.state.sellable, day, order)
            del self.state.open_orders[order_id]

    def _session_of_order(self, step: int) -> int:
        """The session an order submitted at ``step`` trades in: an order sent after a
        session's last bar (a decision on the daily close) works in the next session."""
        if self._day_end[step] and step + 1 < self._panel.steps:
            return int(self._panel.day[step + 1])
        return int(self._panel.day[step])

    def _expire_day_orders(self, step: int) -> None:
        """Day orders the venue ends at the close (A-shares): journaled with the reason."""
        day = int(self._panel.day[step])
        for event in self._venue.end_of_day(step, list(self.state.open_orders.values())):
            order = self.state.open_orders[event.order_id]
            self._sink.append(event)
            evolve(order, event)
            self._rules.on_closed(self.state.sellable, day, order)
            del self.state.open_orders[event.order_id]

    def _submit(
        self, step: int, ts_ns: int, sid: str, iid: int, side: int, qty: int, px: int, parent_id: str = ""
    ) -> None:
        state = self.state
        state.order_counter += 1
        day = int(self._panel.day[step])
        submitted = OrderSubmitted(
            ts_ns=ts_ns,
            order_id=f"{sid}-{day}-{state.order_counter:06d}",
            strategy_id=sid,
            instrument_id=iid,
            side=side,
            order_type="market",
            qty_raw=qty,
            limit_px_raw=0,
            decision_px_raw=px,
            parent_id=parent_id,
        )
        self._sink.append(submitted)
        order = new_order(submitted)
        live_day = self._session_of_order(step)
        reason = self._rules.check(state.sellable, live_day, order)
        ack: OrderAccepted | OrderRejected
        if reason:
            ack = OrderRejected(ts_ns=ts_ns, order_id=order.order_id, reason=reason)
        else:
            ack = self._venue.submit(step, order)
        self._sink.append(ack)
        order = evolve(order, ack)
        if order.is_open:
            state.open_orders[order.order_id] = order
            self._rules.on_accepted(state.sellable, live_day, order)

    def _close_day(self, step: int) -> None:
        ts_ns = int(self._panel.ts_ns[step])
        values = self._position_values(step)
        cash = self.state.balances.get(cash_account(self._currency), 0)
        self._sink.append(
            DayClosed(
                ts_ns=ts_ns,
                day=int(self._panel.day[step]),
                step=step,
                nav_minor=cash + sum(values.values()),
                cash_minor=cash,
                gross_exposure_minor=sum(abs(v) for v in values.values()),
                currency=self._currency,
            )
        )
        self._sink.append(
            StateSnapshotted(ts_ns=ts_ns, day=int(self._panel.day[step]), snapshot=self.state.snapshot())
        )

    # --- execution router ----------------------------------------------------------------

    def _make_router(self, execution: ExecutionConfig) -> Router:
        """The router works parent orders through ``_submit``/``_cancel_order`` and reads its
        children's fates from the events the kernel journals (it taps the sink)."""
        router = Router(
            config=execution,
            panel=self._panel,
            instruments=self._instruments,
            columns=self._column,
            book=self.state.execution,
            sink=self._sink,
            submit=self._submit,
            cancel=self._cancel_order,
        )
        self._sink = router.tap(self._sink)
        return router

    def _cancel_order(self, step: int, order_id: str, reason: str) -> None:
        """Cancel one open order (the router's child timeout), releasing reserved sellable."""
        order = self.state.open_orders.pop(order_id)
        event = OrderCancelled(ts_ns=int(self._panel.ts_ns[step]), order_id=order_id, reason=reason)
        self._sink.append(event)
        evolve(order, event)
        self._rules.on_closed(self.state.sellable, self._session_of_order(step), order)
