"""The step loop: one step per distinct timestamp, inputs applied in a fixed order.

At each step that matters — a strategy's scheduled decision, a step at which an open
order can fill, or the last step of a session day — the kernel, in this order:

1. matches open orders against the step's bar (venue fills -> positions and ledger), or, with
   an asynchronous venue, takes the messages it received (``kernel.venue_inbox``); at a
   day's last step, day orders of that session (A-shares) then expire with their reason;
2. applies perpetual funding and operator commands due at this step;
3. asks the strategy for target weights (seeing data up to this step only), gates them by
   the kill switch, checks them against the risk policy's portfolio rules, turns the allowed
   deltas into whole-lot orders and checks those against the order rules;
4. while the kill switch is flattening, closes every position;
5. at a day's last step settles futures (variation margin at the settlement price,
   ``kernel.futures``), marks to market (``DayClosed``), feeds the mark to the kill switch
   and snapshots its state.

Steps where none of these can happen produce no events, so they are skipped: a
5,000-name universe or a million one-minute bars cost one Python iteration per step that
matters, not per bar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import isfinite
from typing import Protocol

import msgspec
import numpy as np

from domain.events import (
    DayClosed,
    Event,
    InstrumentsDefined,
    KillSwitchFlattened,
    KillSwitchTripped,
    LedgerPosted,
    OperatorCommanded,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderReplaceRejected,
    OrderSubmitted,
    RunFinished,
    StateSnapshotted,
    TargetsDecided,
    VenueMessageReceived,
)
from domain.fixed import RATE_SCALE, Rounding
from domain.futures import position_value_minor
from domain.instruments import notional_minor
from domain.ledger import Position, apply_postings, capital_postings, cash_account
from domain.market import Panel
from domain.markets import CN_FEE_TABLES, CnFeeTables, PdtRule, funding_payment_minor, funding_postings
from domain.orders import Order, evolve, new_order
from domain.riskrules import (
    BookDataAged,
    KillState,
    KillSwitchConfig,
    KillSwitchEvent,
    NavMarked,
    Observation,
    RiskPolicy,
    RuleVerdict,
    VenueResponded,
    VolTarget,
    initial_state,
    update_kill_switch,
)
from domain.riskrules import evolve_kill_switch as evolve_kill
from kernel.borrow import BorrowConfig, borrow_postings
from kernel.corporate_actions import CorporateActionBook, CorporateActionConfig
from kernel.futures import FuturesBook, FuturesConfig
from kernel.liquidation import Liquidation, PerpMargin
from kernel.markets import MarketRules
from kernel.options import OptionModel, expiry_settlement, greek_guard
from kernel.pdt import PdtGuard
from kernel.pipeline import (
    OrderIntent,
    RiskError,
    RiskStage,
    current_weights,
    halt_targets,
    plan_orders,
    reject_unpriced,
    verdict_events,
    vol_target_targets,
)
from kernel.router import ExecutionConfig, Router
from kernel.state import KernelState
from kernel.strategy import MarketView, Strategy, strategy_limit_prices
from kernel.venue import NO_ACTIVITY, VenuePort
from kernel.venue_inbox import VenueInbox, leaves_probe

__all__ = ["KILL_SWITCH_STRATEGY", "EventSink", "Kernel", "KernelError", "ProgressFn"]

KILL_SWITCH_STRATEGY = "kill-switch"
"""The strategy id of the orders the kill switch sends to flatten the book."""

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


def _last_valid_steps(valid: np.ndarray) -> np.ndarray:
    """For each (step, column): the last step <= it with a bar, or -1."""
    index = np.where(valid, np.arange(valid.shape[0])[:, None], -1)
    return np.maximum.accumulate(index, axis=0).astype(np.int64)


def _commands_by_step(
    panel: Panel, commands: Sequence[OperatorCommanded]
) -> dict[int, list[OperatorCommanded]]:
    """Operator commands grouped by the first step at or after their time, in time order."""
    grouped: dict[int, list[OperatorCommanded]] = {}
    ordered = sorted(commands, key=lambda command: command.ts_ns)
    for command in ordered:
        step = int(np.searchsorted(panel.ts_ns, command.ts_ns, side="left"))
        if step >= panel.steps:
            raise KernelError(
                f"operator command {command.command!r} at {command.ts_ns} is after the data's end"
            )
        grouped.setdefault(step, []).append(command)
    return grouped


class Kernel:
    def __init__(
        self,
        *,
        panel: Panel,
        strategy: Strategy,
        venue: VenuePort,
        policy: RiskPolicy,
        sink: EventSink,
        currency: str,
        state: KernelState | None = None,
        kill_switch: KillSwitchConfig | None = None,
        operator_commands: Sequence[OperatorCommanded] = (),
        vol_target: VolTarget | None = None,
        borrow: BorrowConfig | None = None,
        cn_fees: CnFeeTables = CN_FEE_TABLES,
        margin: PerpMargin | None = None,
        us_regulatory_fees: bool = True,
        execution: ExecutionConfig | None = None,
        pdt: PdtRule | None = None,
        futures: FuturesConfig | None = None,
        venue_messages: Sequence[VenueMessageReceived] | None = None,
        option_model: OptionModel | None = None,
        corporate_actions: CorporateActionConfig | None = None,
    ) -> None:
        self._panel = panel
        self._strategy = strategy
        self._venue = venue
        self._sink = sink
        self._currency = currency
        self.state = state if state is not None else KernelState(currency)
        if self.state.kill is None:
            self.state.kill = initial_state(int(panel.ts_ns[0]))
        self._kill_config = kill_switch if kill_switch is not None else KillSwitchConfig()
        self._kill_watch_nav = bool(
            self._kill_config.daily_loss_max_minor or self._kill_config.drawdown_max_e8
        )
        # Stale data is judged on the instruments a decision holds or names: their newest bar.
        self._last_bar = _last_valid_steps(panel.valid) if self._kill_config.stale_data_ns_max else None
        self._kill_watch_venue = bool(
            self._kill_config.consecutive_rejects_max or self._kill_config.latency_ns_max
        )
        self._instruments = {inst.instrument_id: inst for inst in panel.instruments}
        self._risk = RiskStage(policy, self._instruments)
        self._vol_target = vol_target
        self._borrow = borrow
        self._column = {inst.instrument_id: col for col, inst in enumerate(panel.instruments)}
        self._ids = [inst.instrument_id for inst in panel.instruments]
        first_day = int(panel.day[0]) if panel.steps else 0
        try:
            self._rules = MarketRules(
                self._instruments, cn_fees, us_regulatory_fees=us_regulatory_fees, first_day=first_day
            )
        except ValueError as error:
            raise KernelError(str(error)) from None
        try:
            self._pdt = PdtGuard(pdt, self._instruments, currency) if pdt is not None else None
        except ValueError as error:
            raise KernelError(str(error)) from None
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
        self._commands = _commands_by_step(panel, operator_commands)
        self._command_mask = np.zeros(panel.steps, dtype=np.bool_)
        self._command_mask[list(self._commands)] = True
        self._liquidation = (
            Liquidation(self, self._instruments, margin) if margin is not None and margin.enabled else None
        )
        self._corporate = CorporateActionBook(panel, self._instruments, self._rules, corporate_actions)
        self._futures = self._make_futures(futures)
        try:  # greek limits on the option book (kernel.options); None when off
            self._greeks = greek_guard(policy, option_model, panel.instruments, first_day)
        except ValueError as error:
            raise KernelError(str(error)) from None
        self._expiries = expiry_settlement(self, option_model, panel, self._day_end)
        self._router: Router | None = None
        if execution is not None and execution.algo != "market":
            self._router = self._make_router(execution)
        # An asynchronous venue's messages (replay: the journaled ones); None for the simulator.
        try:
            self._inbox = VenueInbox.attach(self, venue, venue_messages, router=self._router is not None)
        except ValueError as error:
            raise KernelError(str(error)) from None

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
            self._decide_mask[window]
            | self._day_end[window]
            | self._funding_mask[window]
            | self._command_mask[window]
            | self._corporate.mask[window]
        )
        static = (interesting + start_step).tolist()
        venue_next = self._venue_next(start_step - 1)
        router_next = self._router.next_due(start_step) if self._router is not None else NO_ACTIVITY
        count = len(static)
        index = 0
        visited = start_step - 1
        while True:
            step = static[index] if index < count else NO_ACTIVITY
            step = min(step, venue_next, router_next)
            if self._liquidation is not None:  # a margin breach between visited steps
                step = self._liquidation.next_breach(visited + 1, min(step, end))
            if step >= end:
                break
            if index < count and static[index] == step:
                index += 1
            venue_next = self._step(step, venue_next)
            visited = step
            router_next = self._router.next_due(step + 1) if self._router is not None else NO_ACTIVITY
            if progress is not None and self._day_end[step]:
                progress(step + 1)
        self.state.next_step = end

    def _step(self, step: int, venue_next: int) -> int:
        """One step that matters: market events, decision, day end. Returns the venue's next
        activity step."""
        venue_next = self._step_market(step, venue_next)
        if self._day_end[step] and self.state.open_orders:
            # Day orders of the session end at its close, before a decision taken at the close.
            self._expire_day_orders(step)
            if self._router is not None:
                self._router.work(step)  # expired children roll their remainders
            venue_next = self._venue_next(step)
        if self._decide_mask[step] and self._decide(step):
            venue_next = self._venue_next(step)
        if self._router is not None and self._router.work(step):
            venue_next = self._venue_next(step)
        if self._flattening() and self._flatten(step):
            venue_next = self._venue_next(step)
        if self._day_end[step]:
            self.state.next_step = step + 1
            if self._expiries is not None:  # options expiring this session, before the mark
                self._settle_expiries(step)
            self._close_day(step)
            venue_next = self._venue_next(step)
        return venue_next

    def _step_market(self, step: int, venue_next: int) -> int:
        """What happens to the book before a decision: corporate actions on their ex-date,
        fills, liquidations, funding, operator commands."""
        if self._corporate.mask[step] and self._apply_corporate_actions(step):
            venue_next = self._venue_next(step - 1)  # cancelled orders no longer fill here
        if venue_next <= step:
            self._match(step)
            venue_next = self._venue_next(step)
        if self._liquidation is not None and self._liquidation.check(step):
            venue_next = self._venue_next(step)
        if step in self._funding:
            self._apply_funding(step)
        if step in self._commands:
            for command in self._commands[step]:
                self._sink.append(command)
                self._kill_observe(command, step)
        return venue_next

    # --- kill switch ---------------------------------------------------------------------

    def _observe_data_age(self, step: int, ts_ns: int, targets: dict[int, int]) -> None:
        assert self._last_bar is not None
        names = sorted(set(targets) | set(self.state.positions))
        oldest: tuple[int, int] | None = None
        for iid in names:
            last = int(self._last_bar[step, self._column[iid]])
            if last >= 0 and (oldest is None or int(self._panel.ts_ns[last]) < oldest[0]):
                oldest = (int(self._panel.ts_ns[last]), iid)
        if oldest is not None:
            self._kill_observe(BookDataAged(ts_ns=ts_ns, instrument_id=oldest[1], data_ts_ns=oldest[0]), step)

    def _armed(self) -> bool:
        kill = self.state.kill
        return kill is None or kill.state is KillState.ARMED

    def _flattening(self) -> bool:
        kill = self.state.kill
        return kill is not None and kill.state is KillState.FLATTENING

    def _kill_observe(self, observation: Observation, step: int) -> list[KillSwitchEvent]:
        """Fold one observation into the kill switch; journal the events it decides. A trip
        cancels every working order (the kill switch's own excepted) and the router's parents."""
        state = self.state.kill
        assert state is not None
        state, events = update_kill_switch(state, self._kill_config, observation)
        self.state.kill = state
        for event in events:
            self._sink.append(event)
            if isinstance(event, KillSwitchTripped):
                self._cancel_working(step, event.ts_ns, f"kill switch tripped ({event.trigger})")
        return events

    def _cancel_working(self, step: int, ts_ns: int, reason: str) -> None:
        for order_id, order in list(self.state.open_orders.items()):
            if order.strategy_id != KILL_SWITCH_STRATEGY:
                self._cancel(order_id, order, step, ts_ns, reason)
        if self._router is not None:
            self._router.cancel_parents(ts_ns, reason)

    def _flatten(self, step: int) -> bool:
        """Close every position with market orders (once none of ours are working); report
        the book flat when it is. True when orders were submitted."""
        state = self.state
        ts_ns = int(self._panel.ts_ns[step])
        if not state.positions:
            self._kill_flattened(ts_ns)
            return False
        if any(o.strategy_id == KILL_SWITCH_STRATEGY for o in state.open_orders.values()):
            return False
        for order_id, order in list(state.open_orders.items()):
            self._cancel(order_id, order, step, ts_ns, "kill switch: flattening the book")
        prices = self._prices(step)
        intents = sorted(
            (
                OrderIntent(iid, -1 if position.qty_raw > 0 else 1, abs(position.qty_raw), prices[iid])
                for iid, position in state.positions.items()
            ),
            key=lambda intent: (intent.side, intent.instrument_id),
        )
        for intent in intents:
            self._submit(
                step,
                ts_ns,
                KILL_SWITCH_STRATEGY,
                intent.instrument_id,
                intent.side,
                intent.qty_raw,
                intent.decision_px_raw,
            )
        return True

    def _kill_flattened(self, ts_ns: int) -> None:
        state = self.state.kill
        assert state is not None
        event = KillSwitchFlattened(ts_ns=ts_ns)
        self._sink.append(event)
        self.state.kill = evolve_kill(state, event)

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
        """Positions' values in NAV: notional, or a daily-settled future's unsettled P&L."""
        row = self._panel.last_close[step]
        return {
            iid: position_value_minor(self._instruments[iid], pos, int(row[self._column[iid]]))
            for iid, pos in sorted(self.state.positions.items())
        }

    def _exposures(self, step: int) -> dict[int, int]:
        """Positions' signed notionals at the last close (gross exposure)."""
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
        if self._inbox is not None:
            return self._inbox.next_step(step)
        if not self.state.open_orders:
            return NO_ACTIVITY
        return self._venue.next_activity(step, list(self.state.open_orders.values()))

    def _match(self, step: int) -> None:
        if self._inbox is not None:
            self._inbox.deliver(step)
            return
        fills = self._venue.match(step, list(self.state.open_orders.values()))
        day = int(self._panel.day[step])
        for fill in fills:
            self._apply_fill(fill, day)

    def _apply_fill(self, fill: OrderFilled, day: int) -> None:
        state = self.state
        order = evolve(state.open_orders[fill.order_id], fill)
        position = state.positions.get(fill.instrument_id, Position())
        if self._pdt is not None:
            state.day_trades = self._pdt.on_fill(state.day_trades, day, fill, position.qty_raw)
        postings, position = self._futures.fill_postings(position, fill)  # futures: no notional
        postings.extend(self._rules.fee_postings(day, fill))
        postings.extend(self._corporate.on_fill(state, day, fill))  # A-share dividend tax at the sale
        self._rules.on_fill(state.sellable, day, fill)
        self._sink.append(fill)
        if postings:  # a future's opening fill without commission moves no money
            self._post(fill.ts_ns, f"fill {fill.order_id}", postings)
        if position.qty_raw:
            state.positions[fill.instrument_id] = position
        else:
            state.positions.pop(fill.instrument_id, None)
        if order.is_open:
            state.open_orders[fill.order_id] = order
        else:
            del state.open_orders[fill.order_id]
        if not state.positions and self._flattening():
            self._kill_flattened(fill.ts_ns)

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
        view = MarketView(self._panel, step)
        weights = self._strategy.decide(view)
        if weights is None:
            return False
        limit_px = strategy_limit_prices(self._strategy, view)
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
        if self._kill_watch_nav:
            self._kill_observe(NavMarked(ts_ns=ts_ns, day=int(self._panel.day[step]), nav_minor=nav), step)
        if self._last_bar is not None:
            self._observe_data_age(step, ts_ns, targets)
        prices = self._prices(step)
        held = current_weights(self.state.positions, prices, self._instruments, nav)
        allowed, verdicts = self._pre_trade(step, sid, targets, held, prices)
        self.state.last_targets.update(allowed)
        self._cancel_open(step, ts_ns, sid)
        intents = plan_orders(allowed, self.state.positions, prices, self._instruments, nav)
        if self._greeks is not None:
            intents = self._greek_limits(step, sid, intents, prices, verdicts)
        intents, order_verdicts, limit_px = self._risk.orders(intents, limit_px)
        verdicts.extend(order_verdicts)
        for verdict in verdict_events(ts_ns, sid, step, verdicts):
            self._sink.append(verdict)
        if self._router is not None:
            return self._router.on_decision(step, ts_ns, sid, intents)
        armed = self._armed()
        for index, intent in enumerate(intents):
            if armed and not self._armed():
                self._drop_after_trip(ts_ns, sid, step, intents[index:])
                break
            self._submit(
                step,
                ts_ns,
                sid,
                intent.instrument_id,
                intent.side,
                intent.qty_raw,
                intent.decision_px_raw,
                limit_px=limit_px.get(intent.instrument_id, 0),
            )
        return bool(intents)

    def _pre_trade(
        self, step: int, sid: str, targets: dict[int, int], held: dict[int, int], prices: dict[int, int]
    ) -> tuple[dict[int, int], list[RuleVerdict]]:
        """The decision's targets through priced -> vol target -> kill switch -> portfolio rules."""
        priced, priced_verdict = reject_unpriced(targets, prices)
        verdicts = [priced_verdict]
        if self._vol_target is not None:
            priced, vol_verdict = vol_target_targets(priced, self.state.nav_closes, self._vol_target)
            verdicts.append(vol_verdict)
        kill = self.state.kill
        if kill is not None and kill.state is not KillState.ARMED:
            flatten = kill.state is KillState.FLATTENING
            reason = (
                f"kill switch {kill.state.value} since {kill.since_ts_ns} ({kill.trigger}): {kill.reason}"
            )
            priced, kill_verdict = halt_targets(priced, held, flatten, reason)
            verdicts.append(kill_verdict)
        try:
            allowed, portfolio_verdicts = self._risk.portfolio(priced, held)
        except RiskError as error:
            raise KernelError(f"{sid} at step {step}: {error}") from None
        verdicts.extend(portfolio_verdicts)
        return allowed, verdicts

    def _drop_after_trip(self, ts_ns: int, sid: str, step: int, intents: list[OrderIntent]) -> None:
        """The kill switch tripped while this decision's orders were being sent: the rest are
        not sent, and a verdict names them."""
        ids = sorted({intent.instrument_id for intent in intents})
        detail = f"kill switch tripped while sending: {len(intents)} orders not sent"
        verdict = RuleVerdict(
            rule="kill_switch",
            action="reject",
            unit="orders",
            limit=0,
            observed=len(intents),
            observed_after=0,
            instrument_ids=ids,
            detail=detail,
        )
        for event in verdict_events(ts_ns, sid, step, [verdict]):
            self._sink.append(event)

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
        for order_id, order in list(self.state.open_orders.items()):
            if order.strategy_id == strategy_id:
                self._cancel(order_id, order, step, ts_ns, "superseded by a new decision")

    def _cancel(self, order_id: str, order: Order, step: int, ts_ns: int, reason: str) -> None:
        event = OrderCancelled(ts_ns=ts_ns, order_id=order_id, reason=reason)
        self._sink.append(event)
        evolve(order, event)
        self._rules.on_closed(self.state.sellable, self._session_of_order(step), order)
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
        self,
        step: int,
        ts_ns: int,
        sid: str,
        iid: int,
        side: int,
        qty: int,
        px: int,
        parent_id: str = "",
        limit_px: int = 0,
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
            order_type="limit" if limit_px else "market",
            qty_raw=qty,
            limit_px_raw=limit_px,
            decision_px_raw=px,
            parent_id=parent_id,
        )
        self._sink.append(submitted)
        order = new_order(submitted)
        live_day = self._session_of_order(step)
        reason = self._rules.check(state.sellable, live_day, order)
        if not reason and self._pdt is not None:
            held = state.positions.get(iid, Position()).qty_raw
            reason = self._pdt.check(state.day_trades, live_day, order, held, lambda: self.nav_minor(step))
        ack: OrderAccepted | OrderRejected | None
        if reason:
            ack = OrderRejected(ts_ns=ts_ns, order_id=order.order_id, reason=reason)
        else:
            ack = self._venue.submit(step, order)
        if ack is None:  # an asynchronous venue: the answer comes as a venue message
            state.open_orders[order.order_id] = order
            self._rules.on_accepted(state.sellable, live_day, order)
            return
        self._sink.append(ack)
        order = evolve(order, ack)
        if order.is_open:
            state.open_orders[order.order_id] = order
            self._rules.on_accepted(state.sellable, live_day, order)
        if self._kill_watch_venue:
            accepted = isinstance(ack, OrderAccepted)
            venue = self._instruments[iid].venue
            self._kill_observe(
                VenueResponded(ts_ns=ts_ns, venue=venue, accepted=accepted, latency_ns=0), step
            )

    def _close_at(
        self,
        ts_ns: int,
        day: int,
        strategy_id: str,
        instrument_id: int,
        qty_raw: int,
        px_raw: int,
        notional_minor: int,
    ) -> None:
        """Close a position outside the venue (a liquidation, an option's expiry): a journaled
        market order, accepted and filled at ``px_raw`` at once, so positions, fills and the
        ledger stay one story. ``qty_raw`` is the signed position closed."""
        state = self.state
        state.order_counter += 1
        side = -1 if qty_raw > 0 else 1
        submitted = OrderSubmitted(
            ts_ns=ts_ns,
            order_id=f"{strategy_id}-{day}-{state.order_counter:06d}",
            strategy_id=strategy_id,
            instrument_id=instrument_id,
            side=side,
            order_type="market",
            qty_raw=abs(qty_raw),
            limit_px_raw=0,
            decision_px_raw=px_raw,
        )
        accepted = OrderAccepted(ts_ns=ts_ns, order_id=submitted.order_id)
        self._sink.append(submitted)
        self._sink.append(accepted)
        state.open_orders[submitted.order_id] = evolve(new_order(submitted), accepted)
        fill = OrderFilled(
            ts_ns=ts_ns,
            order_id=submitted.order_id,
            instrument_id=instrument_id,
            side=side,
            fill_qty_raw=abs(qty_raw),
            fill_px_raw=px_raw,
            leaves_qty_raw=0,
            notional_minor=notional_minor,
            commission_minor=0,
            currency=self._instruments[instrument_id].currency,
        )
        self._apply_fill(fill, day)

    def _accrue_borrow(self, step: int) -> None:
        """Short borrow fees from this session to the next (``kernel.borrow``)."""
        assert self._borrow is not None
        panel = self._panel
        day = int(panel.day[step])
        next_day = int(panel.day[step + 1]) if step + 1 < panel.steps else day
        ts_ns = int(panel.ts_ns[step])
        for iid, position in sorted(self.state.positions.items()):
            close = int(panel.last_close[step, self._column[iid]])
            postings, memo = borrow_postings(
                self._borrow, self._instruments[iid], position, close, day, next_day
            )
            if postings:
                self._post(ts_ns, memo, postings)

    def _close_day(self, step: int) -> None:
        if self._borrow is not None:
            self._accrue_borrow(step)
        if self._futures.active:  # daily settlement: variation margin at the settlement price
            self._futures.settle(step, self.state.positions, self._post, self._sink.append)
        ts_ns = int(self._panel.ts_ns[step])
        values = self._position_values(step)
        exposures = self._exposures(step) if self._futures.active else values
        cash = self.state.balances.get(cash_account(self._currency), 0)
        self._sink.append(
            DayClosed(
                ts_ns=ts_ns,
                day=int(self._panel.day[step]),
                step=step,
                nav_minor=cash + sum(values.values()),
                cash_minor=cash,
                gross_exposure_minor=sum(abs(v) for v in exposures.values()),
                currency=self._currency,
            )
        )
        if self._kill_watch_nav:
            self._kill_observe(
                NavMarked(ts_ns=ts_ns, day=int(self._panel.day[step]), nav_minor=cash + sum(values.values())),
                step,
            )
        if self._vol_target is not None:
            closes = self.state.nav_closes
            closes.append(cash + sum(values.values()))
            del closes[: max(0, len(closes) - self._vol_target.window - 1)]
        if self._flattening():
            self._flatten(step)
        self._sink.append(
            StateSnapshotted(ts_ns=ts_ns, day=int(self._panel.day[step]), snapshot=self.state.snapshot())
        )

    def _apply_corporate_actions(self, step: int) -> bool:
        """Ex-date and pay-date effects at the session's first step (``kernel.corporate_actions``)."""
        return self._corporate.apply(step, self.state, self._rules, self._sink.append, self._post)

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
            replace=self._replace_order,
        )
        self._sink = router.tap(self._sink)
        return router

    def _cancel_order(self, step: int, order_id: str, reason: str) -> None:
        """Cancel one open order (the router's child timeout), releasing reserved sellable."""
        self._cancel(order_id, self.state.open_orders[order_id], step, int(self._panel.ts_ns[step]), reason)

    def _make_futures(self, config: FuturesConfig | None) -> FuturesBook:
        """Daily settlement of the run's futures (``kernel.futures``)."""
        try:
            return FuturesBook(
                self._panel,
                self._instruments,
                self._column,
                config,
                perp_margin=self._liquidation is not None,
            )
        except ValueError as error:
            raise KernelError(str(error)) from None

    def _replace_order(self, step: int, order_id: str, qty_raw: int, reason: str) -> bool:
        """Amend one open order to a new total quantity (the router's child timeout with
        ``on_timeout = "replace"``). The market rules see the new open quantity as if it were
        sent now (T+1 sellable, lots); the venue answers ``OrderReplaced`` or
        ``OrderReplaceRejected``. True when the order was amended."""
        state = self.state
        order = state.open_orders[order_id]
        ts_ns = int(self._panel.ts_ns[step])
        day = self._session_of_order(step)
        self._rules.on_closed(state.sellable, day, order)  # release the open quantity, then re-check
        amended = msgspec.structs.replace(order, qty_raw=qty_raw)
        refusal = self._rules.check(state.sellable, day, leaves_probe(amended))
        answer: OrderReplaced | OrderReplaceRejected
        if refusal:
            answer = OrderReplaceRejected(
                ts_ns=ts_ns,
                order_id=order_id,
                qty_raw=qty_raw,
                limit_px_raw=order.limit_px_raw,
                reason=refusal,
            )
        else:
            answer = self._venue.replace(step, order, qty_raw, order.limit_px_raw)
        if isinstance(answer, OrderReplaced):
            answer = msgspec.structs.replace(answer, reason=reason)
            order = evolve(order, answer)
            state.open_orders[order_id] = order
        self._sink.append(answer)
        self._rules.on_accepted(state.sellable, day, leaves_probe(order))
        return isinstance(answer, OrderReplaced)

    # --- options -------------------------------------------------------------------------

    def _greek_limits(
        self,
        step: int,
        sid: str,
        intents: list[OrderIntent],
        prices: dict[int, int],
        verdicts: list[RuleVerdict],
    ) -> list[OrderIntent]:
        """The greek limits over the post-trade option book (``kernel.options``); their verdicts
        follow the portfolio rules' in ``verdicts``."""
        assert self._greeks is not None
        try:
            intents, greek_verdicts = self._greeks.apply(
                int(self._panel.day[step]), intents, self.state.positions, prices
            )
        except ValueError as error:
            raise KernelError(f"{sid} at step {step}: {error}") from None
        verdicts.extend(greek_verdicts)
        return intents

    def _settle_expiries(self, step: int) -> None:
        assert self._expiries is not None
        try:
            self._expiries.settle(step)
        except ValueError as error:
            raise KernelError(str(error)) from None
