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
from operator import is_

import numpy as np

from domain.events import (
    AdoptionReceived,
    CurrenciesMarked,
    DayClosed,
    FxConverted,
    InstrumentsDefined,
    ModelLoaded,
    OperatorCommanded,
    RunFinished,
    SleevesMarked,
    StateSnapshotted,
    StrategyCommanded,
    TargetsDecided,
    VenueMessageReceived,
)
from domain.fixed import RATE_SCALE, Rounding
from domain.fx import FxError, to_base_minor
from domain.ledger import capital_postings, cash_account, conversion_postings
from domain.market import Panel
from domain.orders import Order
from domain.riskrules import RuleVerdict, initial_state
from kernel.account import BuyingPower, currency_conflicts
from kernel.adoption import Adoptions, adopt
from kernel.carry import Carry
from kernel.corporate_actions import CorporateActionBook
from kernel.currencies import CurrencyBook, FxConversion, conversion_amounts
from kernel.delisting import Delistings
from kernel.desk import EventSink, OrderDesk
from kernel.futures import FuturesBook
from kernel.killswitch import KILL_SWITCH_STRATEGY, KillSwitch
from kernel.liquidation import Liquidation
from kernel.margin import MarginBook, MarginError
from kernel.markets import MarketRules, next_a_share_steps
from kernel.marks import mark_refusal, mark_step
from kernel.options import expiry_settlement, greek_guard
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
from kernel.router import Router
from kernel.schedules import (
    Decisions,
    OperatorCommands,
    ScheduleError,
    apply_strategy_command,
    data_end,
    utc_text,
)
from kernel.setup import RunSetup
from kernel.sleeve_orders import BookTargets, SleeveTargets
from kernel.sleeves import Sleeve, SleeveBook, SleeveError
from kernel.state import KernelState
from kernel.strategy import (
    MarketView,
    Notional,
    Shares,
    Strategy,
    strategy_decision,
    strategy_limit_prices,
    strategy_models,
)
from kernel.targets import TargetError, targets_e8
from kernel.valuation import Valuation
from kernel.venue import NO_ACTIVITY, CancelRequestPort
from kernel.venue_inbox import VenueInbox, defer_working

__all__ = ["KILL_SWITCH_STRATEGY", "EventSink", "Kernel", "KernelError", "ProgressFn"]

ProgressFn = Callable[[int], None]  # called with the number of steps done so far


class KernelError(RuntimeError):
    """The kernel was given inputs it cannot run on."""


def _conversions_by_step(panel: Panel, conversions: Sequence[FxConversion]) -> dict[int, list[FxConversion]]:
    """Currency conversions grouped by the first step at or after their time, in time order."""
    grouped: dict[int, list[FxConversion]] = {}
    for conversion in sorted(conversions, key=lambda item: item.ts_ns):
        step = int(np.searchsorted(panel.ts_ns, conversion.ts_ns, side="left"))
        if step >= panel.steps:
            raise KernelError(
                f"fx conversion {conversion.source}->{conversion.target} at {utc_text(conversion.ts_ns)} "
                f"is after {data_end(panel)}"
            )
        grouped.setdefault(step, []).append(conversion)
    return grouped


class Kernel:
    """The step loop over one ``RunSetup``; orders, fills and postings go through the desk."""

    def __init__(
        self,
        setup: RunSetup,
        sink: EventSink,
        *,
        state: KernelState | None = None,
        venue_messages: Sequence[VenueMessageReceived] | None = None,
        arrived: int | None = None,
    ) -> None:
        """``arrived``: the rows of ``setup.panel`` that hold data when rows arrive one at a time
        (a queue source, ``kernel.stream``); None when the data set gives them all."""
        panel = setup.panel
        currency = setup.currency
        self.setup = setup
        self._panel = panel
        self._slots = setup.strategies
        self.state = state if state is not None else KernelState(currency)
        if self.state.kill is None:
            self.state.kill = initial_state(int(panel.ts_ns[0]))
        instruments = {inst.instrument_id: inst for inst in panel.instruments}
        self._instruments = instruments
        self._risk = RiskStage(setup.policy, instruments)
        self._vol_target = setup.vol_target
        # the first day that can trade: rows before start_step only warm up
        first_day = int(panel.day[setup.start_step]) if panel.steps else 0
        try:
            rules = MarketRules(
                instruments, setup.cn_fees, us_regulatory_fees=setup.us_regulatory_fees, first_day=first_day
            )
            pdt = PdtGuard(setup.pdt, instruments, currency) if setup.pdt is not None else None
        except ValueError as error:
            raise KernelError(str(error)) from None
        try:  # each currency's rate into the base on every day traded (kernel.currencies)
            self._currencies = CurrencyBook(currency, panel, instruments, setup.fx, setup.start_step)
        except FxError as error:
            raise KernelError(str(error)) from None
        self._arrived = panel.steps if arrived is None else arrived
        self._decisions, self._commands = self._own_steps(streaming=arrived is not None)
        self._day_end = panel.day_end_mask()
        self._conversions = _conversions_by_step(panel, setup.fx.conversions)
        self._conversion_mask = np.zeros(panel.steps, dtype=np.bool_)
        self._conversion_mask[list(self._conversions)] = True
        several = self._currencies if self._currencies.several else None
        self.valuation = Valuation(self.state, panel, instruments, currency, several)
        columns = self.valuation.columns
        margin = setup.margin if setup.margin is not None and setup.margin.enabled else None
        self._corporate = CorporateActionBook(panel, instruments, rules, setup.corporate_actions)
        if len(self._slots) > 1 and (self._corporate.ex_by_step or self._corporate.pay_by_step):
            raise KernelError(
                "corporate actions in a book of several strategies are not built yet: "
                "run the strategies on a data set without actions, or one strategy per run"
            )
        try:
            self._futures = FuturesBook(
                panel, instruments, columns, setup.futures, perp_margin=margin is not None
            )
        except ValueError as error:
            raise KernelError(str(error)) from None
        self.desk = OrderDesk(
            state=self.state,
            sink=sink,
            panel=panel,
            day_end=self._day_end,
            instruments=instruments,
            rules=rules,
            venue=setup.venue,
            futures=self._futures,
            corporate=self._corporate,
            pdt=pdt,
            equity=self.valuation.nav_minor,
            a_share_steps=next_a_share_steps(panel) if arrived is None else None,
        )
        desk = self.desk
        self._liquidation = (
            Liquidation(desk, panel, columns, instruments, margin) if margin is not None else None
        )
        self._carry = Carry(desk, panel, instruments, columns, setup.borrow)
        try:  # greek limits on the option book (kernel.options); None when off
            self._greeks = greek_guard(setup.policy, setup.option_model, panel.instruments, first_day)
        except ValueError as error:
            raise KernelError(str(error)) from None
        self._expiries = expiry_settlement(desk, setup.option_model, panel, self._day_end)
        self._refuse_for_currencies(arrived is not None)
        self._router: Router | None = None
        if setup.execution.algo != "market":
            # The router works parent orders through the desk and reads its children's fates
            # from the order events the desk journals.
            self._router = Router(
                config=setup.execution,
                panel=panel,
                instruments=instruments,
                columns=columns,
                book=self.state.execution,
                sink=sink,
                submit=desk.submit,
                cancel=desk.cancel_at,
                replace=desk.replace,
            )
            desk.watch_orders(self._router)
        self._buying_power = self._cash_account(setup, rules)
        self._margin = self._margin_book(setup)
        self._delistings = Delistings(panel, self._day_end, setup.account.delisted)
        # Steps of an intraday maintenance check ([account] maintenance_check = "bar"): every
        # step inside a session (the close keeps its own check, after settlement); a step of
        # rows still to arrive is judged when it runs.
        self._margin_bars = np.zeros(panel.steps, dtype=np.bool_)
        if self._margin is not None and setup.account.maintenance_check == "bar":
            self._margin_bars = ~self._day_end
        self._kill = KillSwitch(setup.kill_switch, desk, panel, columns, self._router)
        desk.watch(self._kill)
        self._sleeves = self._sleeve_book() if len(self._slots) > 1 else None
        self._adoptions = Adoptions(
            panel, instruments, self._currencies.currencies, sleeves=self._sleeves is not None
        )
        self._sleeve_targets = SleeveTargets(self._slots, instruments) if self._sleeves is not None else None
        # An asynchronous venue's messages (replay: the journaled ones); None for the simulator.
        try:
            self._inbox = VenueInbox.attach(
                desk, panel, setup.venue, venue_messages, router=self._router is not None
            )
        except ValueError as error:
            raise KernelError(str(error)) from None
        # The venue's answer to next_activity within the current step: (step, the open orders
        # it was asked about, the answer); ``_step`` forgets it (``_venue_next_in_step``).
        self._venue_asked: tuple[int, list[Order], int] = (-1, [], NO_ACTIVITY)
        self._start_stream(arrived)

    def _own_steps(self, *, streaming: bool) -> tuple[Decisions, OperatorCommands]:
        """The strategies' decision steps and the operator commands' (``kernel.schedules``)."""
        try:
            decisions = Decisions(self._slots, self._panel, streaming=streaming)
            ids = [slot.strategy.strategy_id for slot in self._slots]
            return decisions, OperatorCommands(self._panel, self.setup.operator_commands, ids)
        except ScheduleError as error:
            raise KernelError(str(error)) from None

    def _refuse_for_currencies(self, streaming: bool) -> None:
        """What a book of several currencies does not do yet, refused by name."""
        refused = self._currencies.refusals(
            sleeves=len(self._slots) > 1,
            greeks=self._greeks is not None,
            streaming=streaming,
        )
        if refused:
            names = ", ".join(self._currencies.currencies)
            raise KernelError(
                f"a book of several currencies ({names}) with {' or '.join(refused)} is not built yet"
            )

    def _start_stream(self, arrived: int | None) -> None:
        """Rows arriving one at a time: refuse what that does not drive yet, then take the rows
        that hold data already (history before the first live row)."""
        self._venue_rows = getattr(self.setup.venue, "rows_arrived", None)
        self._asks_cancels = isinstance(self.setup.venue, CancelRequestPort)
        if arrived is None:
            return
        if self._router is not None:
            raise KernelError(
                "an execution algorithm on rows arriving one at a time is not built (use algo = market)"
            )
        if self._inbox is not None and not self._asks_cancels:
            raise KernelError(
                "a recorded venue on rows arriving one at a time is not built (use the simulator)"
            )
        self.rows_arrived(0, arrived)

    def rows_arrived(self, start: int, end: int) -> None:
        """Rows ``start .. end-1`` of the panel now hold data (a queue source filled them): the
        strategies' schedules, the venue's fill search and the kill switch's newest bars extend
        over them. Steps up to ``end - 1`` may then be run."""
        if not 0 <= start <= end <= self._panel.steps or start != min(start, self._arrived):
            raise KernelError(
                f"rows {start}..{end - 1} arrived out of order (rows before {self._arrived} hold data)"
            )
        self._arrived = end
        if end == start:
            return
        try:
            self._decisions.extend(start, end)
        except ValueError as error:
            raise KernelError(str(error)) from None
        if self._venue_rows is not None:
            self._venue_rows(start, end)
        self._kill.rows_arrived(start, end)

    def idle_strategies(self, start: int) -> list[str]:
        """The strategies whose schedule has no decision step at or after ``start`` (a backtest's
        first traded step): they never decide (an indicator's warm-up longer than the data)."""
        return [
            slot.strategy.strategy_id
            for slot, steps in zip(self._slots, self._decisions.by_slot, strict=True)
            if not steps[start:].any()
        ]

    @property
    def arrived(self) -> int:
        """Rows of the panel that hold data (all of them for a data set)."""
        return self._arrived

    def venue_goes_live(self) -> None:
        """A resumed live session: the journaled venue messages were re-derived; the venue's
        own come in from here on."""
        if self._inbox is not None:
            self._inbox.go_live()

    def add_funding(self, ts_ns: int, instrument_id: int, rate_e8: int, mark_px_raw: int) -> int:
        """A perpetual's funding a live venue settled at ``ts_ns`` (``FundingReceived``): booked at
        the first step at or after that time not yet run, like a data set's funding row, at the
        venue's mark. Returns the step."""
        step = max(int(np.searchsorted(self._panel.ts_ns, ts_ns, side="left")), self.state.next_step)
        if step >= self._panel.steps:
            raise KernelError(f"funding at {ts_ns} is after the run's last step")  # journaled (LATE_FUNDING)
        try:
            self._carry.add_funding(step, instrument_id, rate_e8, ts_ns, mark_px_raw)
        except ValueError as error:
            raise KernelError(str(error)) from None
        return step

    def add_mark(self, ts_ns: int, instrument_id: int, mark_px_raw: int) -> int:
        """A perpetual's mark price a live venue published at ``ts_ns`` (``MarkPriceReceived``):
        positions in it are valued at this mark from the first step at or after that time not yet
        run (``kernel.marks``). Returns the step."""
        step = mark_step(self._panel.ts_ns, ts_ns, self.state.next_step)
        inst = self._instruments.get(instrument_id)
        refusal = mark_refusal(ts_ns, step, self._panel.steps, instrument_id, inst, mark_px_raw)
        if refusal is not None:
            raise KernelError(refusal)
        self.valuation.marks.add(step, instrument_id, mark_px_raw)
        return step

    def add_adoption(self, received: AdoptionReceived) -> int:
        """Holdings a live venue's reconciliation adopted (``AdoptionReceived``): booked at the
        first step at or after its time not yet run, and not before the run's first step
        (``setup.start_step``: a session's history rows only warm up), at that step's last
        close (``kernel.adoption``). Returns the step."""
        try:
            # never before the first step this run trades (a session's history only warms up)
            return self._adoptions.add(received, max(self.state.next_step, self.setup.start_step))
        except ValueError as error:
            raise KernelError(str(error)) from None

    def pending_adoptions(self) -> tuple[AdoptionReceived, ...]:
        """Adoptions taken (``add_adoption``) whose step has not run yet."""
        return self._adoptions.pending(self.state.next_step)

    def add_command(self, command: OperatorCommanded | StrategyCommanded) -> int:
        """An operator command that arrived while running: applied at the first step not yet run
        (``kernel.schedules.OperatorCommands.add``) — with ``setup.hold_early_commands``, not
        before the run's first step. Returns the step."""
        try:
            floor = self.setup.start_step if self.setup.hold_early_commands else 0
            return self._commands.add(command, max(self.state.next_step, floor))
        except ScheduleError as error:
            raise KernelError(str(error)) from None

    def _cash_account(self, setup: RunSetup, rules: MarketRules) -> BuyingPower | None:
        """A cash account's buying-power check (``kernel.account``); None for a margin account."""
        if not setup.account.any_cash:
            return None
        if self._router is not None:
            raise KernelError("a cash account with an execution algorithm is not built (use algo = market)")
        shared = currency_conflicts(setup.account, self._instruments)
        if shared:
            raise KernelError(
                "account.venues: a cash and a margin market settle in the same currency: "
                f"{'; '.join(shared)}; one balance cannot be both "
                "(separate ledgers per account are not built)"
            )
        quote = getattr(setup.venue, "commission_quote", None)
        return BuyingPower(setup.account, self._instruments, quote, rules.fee_total)

    def _margin_book(self, setup: RunSetup) -> MarginBook | None:
        """A margin account's explicit requirements (``kernel.margin``); None without them."""
        account = setup.account
        published = self._panel.margin_rows  # the data set's futures margin rows
        if not account.margined and not (published and not account.cash):
            return None
        panel = self._panel
        quote = getattr(setup.venue, "commission_quote", None)
        try:
            book = MarginBook(
                self._instruments,
                futures_margin=account.futures_margin,
                stock_initial_e8=account.initial_e8,
                stock_maintenance_e8=account.maintenance_e8,
                policy=account.margin_call,
                currency=setup.currency,
                commission=quote,
                unmargined=frozenset(
                    iid for iid, inst in self._instruments.items() if account.type_of(inst) == "cash"
                ),
                dataset_rows=published,
            )
            traded = panel.valid[setup.start_step :]
            days = panel.day[setup.start_step :]
            first_days = {
                inst.instrument_id: int(days[traded[:, col]][0])
                for col, inst in enumerate(panel.instruments)
                if traded[:, col].any()
            }
            book.covers(first_days)
        except MarginError as error:
            raise KernelError(str(error)) from None
        return book

    def _sleeve_book(self) -> SleeveBook:
        """Several strategies share the book: each keeps its sleeve (``kernel.sleeves``)."""
        if not self.state.sleeves:
            self.state.sleeves = [Sleeve(slot.strategy.strategy_id, slot.budget_e8) for slot in self._slots]
        book = SleeveBook(self.state.sleeves, cash_account(self.setup.currency))
        self.desk.watch_ledger(book)
        return book

    # --- run -----------------------------------------------------------------------------

    def begin(self, initial_cash_minor: int | None = None) -> None:
        """First derived events of a fresh run: the instruments, the model artifacts the
        strategies loaded (``kernel.strategy.ModelBacked``) and the capital deposit (the setup's
        initial cash unless given)."""
        cash = self.setup.initial_cash_minor if initial_cash_minor is None else initial_cash_minor
        ts_ns = int(self._panel.ts_ns[0])
        self.desk.journal(InstrumentsDefined(ts_ns=ts_ns, instruments=list(self._panel.instruments)))
        for slot in self._slots:  # the frozen models each strategy scored the panel with
            for model in strategy_models(slot.strategy):
                self.desk.journal(
                    ModelLoaded(
                        ts_ns=ts_ns,
                        strategy_id=slot.strategy.strategy_id,
                        artifact=model.artifact,
                        model_kind=model.model_kind,
                        predictions_hash=model.predictions_hash,
                        predictions=model.predictions,
                    )
                )
        self.desk.post(ts_ns, "capital", capital_postings(cash, self.setup.currency))
        for currency, amount in self.setup.fx.initial_cash:  # cash in other currencies ([fx])
            self.desk.post(ts_ns, "capital", capital_postings(amount, currency))

    def run(
        self, start_step: int = 0, end_step: int | None = None, progress: ProgressFn | None = None
    ) -> None:
        """Run steps ``start_step .. end_step-1`` (default: to the end of the panel)."""
        end = self._panel.steps if end_step is None else end_step
        window = slice(start_step, end)
        interesting = np.flatnonzero(
            self._decisions.any[window]
            | self._day_end[window]
            | self._carry.funding_mask[window]
            | self._commands.mask[window]
            | self._adoptions.mask[window]
            | self._conversion_mask[window]
            | self._corporate.mask[window]
            | self._margin_bars[window]
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

    def run_arrived(self, start: int, end: int, progress: ProgressFn | None = None) -> None:
        """Run the steps of rows that just arrived (``rows_arrived``): ``run`` over them, with
        one row — a queue source's usual case — decided without building the window's list."""
        if end - start != 1 or self._liquidation is not None or self._router is not None:
            self.run(start, end, progress)
            return
        venue_next = self._venue_next(start - 1)
        if (
            venue_next <= start
            or self._decisions.any[start]
            or self._day_end[start]
            or self._carry.funding_mask[start]
            or self._commands.mask[start]
            or self._adoptions.mask[start]
            or self._conversion_mask[start]
            or self._corporate.mask[start]
            or self._margin_bars[start]
        ):
            self._step(start, venue_next)
            if progress is not None and self._day_end[start]:
                progress(end)
        self.state.next_step = end

    def _step(self, step: int, venue_next: int) -> int:
        """One step that matters: market events, decision, day end. Returns the venue's next
        activity step."""
        self._venue_asked = (-1, [], NO_ACTIVITY)  # rows may have arrived since the last step
        venue_next = self._step_market(step, venue_next)
        if self._margin_bars[step] and self._margin_at_bar(step):
            venue_next = self._venue_next_in_step(step)
        if self._day_end[step] and self.state.open_orders:
            # Day orders of the session end at its close, before a decision taken at the close.
            self.desk.expire_day_orders(step)
            if self._router is not None:
                self._router.work(step)  # expired children roll their remainders
            venue_next = self._venue_next_in_step(step)
        if self._decisions.any[step] and self._decide(step):
            venue_next = self._venue_next_in_step(step)
        if self._router is not None and self._router.work(step):
            venue_next = self._venue_next_in_step(step)
        if self._kill.flattening and self._kill.flatten(step, self.valuation.prices(step)):
            venue_next = self._venue_next_in_step(step)
        if self._day_end[step]:
            self.state.next_step = step + 1
            if self._expiries is not None:  # options expiring this session, before the mark
                try:
                    self._expiries.settle(step)
                except ValueError as error:
                    raise KernelError(str(error)) from None
            self._close_day(step)
            venue_next = self._venue_next_in_step(step)
        return venue_next

    def _step_market(self, step: int, venue_next: int) -> int:
        """What happens to the book before a decision: corporate actions on their ex-date,
        fills, liquidations, funding, operator commands."""
        if self._corporate.mask[step] and self._corporate.apply(step, self.desk):
            venue_next = self._venue_next_in_step(step - 1)  # cancelled orders no longer fill here
        if venue_next <= step:
            if self._inbox is not None:
                self._inbox.deliver(step)
            else:
                self.desk.match(step)
            venue_next = self._venue_next_in_step(step)
        if self._liquidation is not None and self._liquidation.check(step):
            venue_next = self._venue_next_in_step(step)
        self._carry.funding(step)
        if self._commands.mask[step] or self._adoptions.mask[step]:
            self._commanded(step)
        if self._conversion_mask[step]:
            for conversion in self._conversions[step]:
                self._convert(step, conversion)
        return venue_next

    def _commanded(self, step: int) -> None:
        """The operator commands due at ``step``, then the holdings adopted from the venue
        (``kernel.adoption``)."""
        if self._commands.mask[step]:
            for command in self._commands.by_step[step]:
                self.desk.journal(command)
                if isinstance(command, StrategyCommanded):  # pause / resume one strategy
                    apply_strategy_command(self.state.paused, command)
                else:
                    self._kill.observe(command, step)
        if self._adoptions.mask[step]:
            prices = self.valuation.prices(step)
            for received in self._adoptions.by_step[step]:
                adopt(self.desk, prices, step, int(self._panel.ts_ns[step]), received)

    def _convert(self, step: int, conversion: FxConversion) -> None:
        """An explicit conversion at the session day's rates: ``FxConverted``, then its postings
        (each leg balanced in its own currency)."""
        try:
            target_minor, source_rate, target_rate = conversion_amounts(self._currencies, conversion, step)
        except FxError as error:
            raise KernelError(str(error)) from None
        ts_ns = int(self._panel.ts_ns[step])
        source, target = conversion.source, conversion.target
        self.desk.journal(
            FxConverted(
                ts_ns=ts_ns,
                day=int(self._panel.day[step]),
                step=step,
                source=source,
                target=target,
                source_minor=conversion.amount_minor,
                target_minor=target_minor,
                source_rate_e8=source_rate,
                target_rate_e8=target_rate,
                base=self.setup.currency,
                note=conversion.note,
            )
        )
        postings = conversion_postings(source, conversion.amount_minor, target, target_minor)
        self.desk.post(ts_ns, f"fx {source}->{target}", postings)

    def _venue_next(self, step: int) -> int:
        if self._inbox is not None:
            return self._inbox.next_step(step)
        if not self.state.open_orders:
            return NO_ACTIVITY
        return self.setup.venue.next_activity(step, list(self.state.open_orders.values()))

    def _venue_next_in_step(self, step: int) -> int:
        """``_venue_next`` within one ``_step``: asked again about the very same open orders (the
        day close after a decision or a fill, when the close sent nothing), the venue's answer
        earlier in the step is given again (``next_activity`` is a function of the step and the
        orders, ``kernel.venue.VenuePort``). ``_step`` forgets it: rows may arrive between steps."""
        if self._inbox is not None:
            return self._inbox.next_step(step)
        if not self.state.open_orders:
            return NO_ACTIVITY
        orders = list(self.state.open_orders.values())
        asked = self._venue_asked
        if asked[0] == step and len(asked[1]) == len(orders) and all(map(is_, asked[1], orders)):
            return asked[2]
        found = self.setup.venue.next_activity(step, orders)
        self._venue_asked = (step, orders, found)
        return found

    # --- decision ------------------------------------------------------------------------

    def _decide(self, step: int) -> bool:
        """Each strategy scheduled at ``step``, in the setup's order; True when orders were
        submitted."""
        paused = self.state.paused
        if self._sleeves is None:
            strategy = self._slots[0].strategy
            return strategy.strategy_id not in paused and self._decide_one(step, strategy, None)
        submitted = False
        for index, slot in enumerate(self._slots):
            if self._decisions.by_slot[index][step] and slot.strategy.strategy_id not in paused:
                sleeve = self._sleeves.sleeve(slot.strategy.strategy_id)
                submitted = self._decide_one(step, slot.strategy, sleeve) or submitted
        return submitted

    def _decide_one(self, step: int, strategy: Strategy, sleeve: Sleeve | None) -> bool:
        """Decision, risk and execution of one strategy at ``step``; True when orders were
        submitted. With a ``sleeve`` (several strategies) its weights are fractions of its
        budget, the risk policy sees the combined book, and its orders move its own positions."""
        view = MarketView(self._panel, step)
        decision = strategy_decision(strategy, view)
        if decision is None:
            return False
        limit_px = strategy_limit_prices(strategy, view)
        sid = strategy.strategy_id
        values = self.valuation.position_values(step)
        nav = self.valuation.nav_minor(step, values)
        prices = self.valuation.prices(step)
        budget = RATE_SCALE if sleeve is None else sleeve.budget_e8
        navs = self.valuation.nav_by_instrument(step, nav)  # several currencies: NAV in each
        try:
            targets = targets_e8(
                decision, self.valuation.ids, self._instruments, prices, nav, budget, nav_by_instrument=navs
            )
        except TargetError as error:
            raise KernelError(f"{sid} at step {step}: {error}") from None
        if not targets:
            return False
        named = set(targets)  # the names it has a view on (NaN: none), before the sleeve's book
        desk = self.desk
        ts_ns = int(self._panel.ts_ns[step])
        ids = sorted(targets)
        desk.journal(
            TargetsDecided(
                ts_ns=ts_ns,
                strategy_id=sid,
                step=step,
                instrument_ids=ids,
                weights_e8=[targets[i] for i in ids],
            )
        )
        self._kill.observe_nav(step, ts_ns, nav)
        self._kill.observe_data_age(step, ts_ns, targets)
        held = self.valuation.notional_weights(values, nav)  # the notionals of the NAV above
        if held is None:
            held = current_weights(self.state.positions, prices, self._instruments, nav, navs)
        positions = self.state.positions
        others: dict[int, int] = {}
        own_verdicts: list[RuleVerdict] = []
        if sleeve is not None:  # its own policy, then the book's targets (kernel.sleeve_orders)
            round_up = isinstance(decision, Shares | Notional)  # sized up, so whole lots stay whole
            as_book = self._as_book(step, sleeve, round_up, targets, held, prices, nav)
            positions, others, targets, own_verdicts = (
                as_book.positions, as_book.others, as_book.book, as_book.verdicts
            )  # fmt: skip
        allowed, verdicts = self._pre_trade(step, sid, targets, held, prices)
        verdicts[:0] = own_verdicts
        self.state.last_targets.update(allowed)
        # A new decision supersedes the strategy's orders still open: those of the names it has a
        # view on or may send an order for ("named"), or all of them ("all", runs before the
        # setting), a name left at NaN included (kernel.router.SUPERSEDE).
        names = None if self.setup.execution.supersede == "all" else named | allowed.keys()
        desk.cancel_where(
            step,
            ts_ns,
            "superseded by a new decision",
            keep=lambda order: (
                order.strategy_id != sid or (names is not None and order.instrument_id not in names)
            ),
        )
        if others:  # this sleeve's share of the allowed book
            allowed = {iid: weight - others.get(iid, 0) for iid, weight in allowed.items()}
        intents = plan_orders(allowed, positions, prices, self._instruments, nav, navs)
        if self._greeks is not None:
            intents = self._greek_limits(step, sid, intents, prices, verdicts)
        intents, order_verdicts, limit_px = self._risk.orders(intents, limit_px, self._in_base(step))
        verdicts.extend(order_verdicts)
        intents, limit_px = self._account_checks(step, intents, limit_px, nav, prices, verdicts)
        for verdict in verdict_events(ts_ns, sid, step, verdicts):
            desk.journal(verdict)
        if self._router is not None:
            return self._router.on_decision(step, ts_ns, sid, intents, names)
        self._send(step, ts_ns, sid, intents, limit_px)
        return bool(intents)

    def _in_base(self, step: int) -> Callable[[int, int], int] | None:
        """Several currencies: (instrument id, an amount in its currency's minor units) -> the
        amount in the base at the step's rate, rounded up (an order's value against a limit in
        the base is never understated); None for a book of one currency (nothing converts)."""
        book = self._currencies
        if not book.several:
            return None
        currency_of = {iid: inst.currency for iid, inst in self._instruments.items()}
        return lambda iid, amount: book.to_base(amount, currency_of[iid], step, Rounding.CEILING)

    def _account_checks(
        self,
        step: int,
        intents: list[OrderIntent],
        limit_px: dict[int, int],
        nav: int,
        prices: dict[int, int],
        verdicts: list[RuleVerdict],
    ) -> tuple[list[OrderIntent], dict[int, int]]:
        """The account's own checks after the risk policy: a live venue's names with an order
        still working wait (``defer_working``); a cash account's buying power, a margin
        account's initial requirement; their verdicts are appended to ``verdicts``."""
        if self._asks_cancels:
            intents, deferred = defer_working(intents, self.state.open_orders)
            verdicts.extend(deferred)
        if self._buying_power is not None:  # a cash account: paid from free cash, no shorts
            holdings = {iid: position.qty_raw for iid, position in self.state.positions.items()}
            balances = self.state.balances
            cash = {ccy: balances.get(cash_account(ccy), 0) for ccy in self._currencies.currencies}
            intents, limit_px, paid = self._buying_power.check(
                self.desk.session_of_order(step), intents, limit_px, cash, holdings, self.state.open_orders
            )  # fmt: skip
            verdicts.extend(paid)
        if self._margin is not None:  # a margin account's initial requirement (kernel.margin)
            intents, margined = self._margin_check(step, intents, limit_px, nav, prices)
            verdicts.extend(margined)
        return intents, limit_px

    def _margin_check(
        self,
        step: int,
        intents: list[OrderIntent],
        limit_px: dict[int, int],
        nav: int,
        prices: dict[int, int],
    ) -> tuple[list[OrderIntent], list[RuleVerdict]]:
        assert self._margin is not None
        holdings = {iid: position.qty_raw for iid, position in self.state.positions.items()}
        try:
            return self._margin.check(
                self.desk.session_of_order(step),
                intents,
                limit_px,
                nav,
                holdings,
                prices,
                self.state.open_orders,
                self._margin_to_base(step),
            )
        except MarginError as error:
            raise KernelError(f"step {step}: {error}") from None

    def _as_book(
        self,
        step: int,
        sleeve: Sleeve,
        round_up: bool,
        targets: dict[int, int],
        held: dict[int, int],
        prices: dict[int, int],
        nav: int,
    ) -> BookTargets:
        assert self._sleeve_targets is not None
        try:
            return self._sleeve_targets.as_book(sleeve, targets, held, prices, nav, round_up=round_up)
        except RiskError as error:
            raise KernelError(f"{sleeve.strategy_id} at step {step}: {error}") from None

    def _send(
        self, step: int, ts_ns: int, sid: str, intents: list[OrderIntent], limit_px: dict[int, int]
    ) -> None:
        """Submit a decision's orders; if the kill switch trips meanwhile, the rest are not sent."""
        desk = self.desk
        armed = self._kill.armed
        for index, intent in enumerate(intents):
            if armed and not self._kill.armed:
                for event in self._kill.refused_after_trip(ts_ns, sid, step, intents[index:]):
                    desk.journal(event)
                break
            desk.submit(
                step,
                ts_ns,
                sid,
                intent.instrument_id,
                intent.side,
                intent.qty_raw,
                intent.decision_px_raw,
                limit_px=limit_px.get(intent.instrument_id, 0),
            )

    def _pre_trade(
        self, step: int, sid: str, targets: dict[int, int], held: dict[int, int], prices: dict[int, int]
    ) -> tuple[dict[int, int], list[RuleVerdict]]:
        """The decision's targets through priced -> vol target -> kill switch -> portfolio rules."""
        priced, priced_verdict = reject_unpriced(targets, prices)
        verdicts = [priced_verdict]
        if self._vol_target is not None:
            priced, vol_verdict = vol_target_targets(priced, self.state.nav_closes, self._vol_target)
            verdicts.append(vol_verdict)
        halted = self._kill.halt_reason()
        if halted is not None:
            flatten, reason = halted
            priced, kill_verdict = halt_targets(priced, held, flatten, reason)
            verdicts.append(kill_verdict)
        try:
            allowed, portfolio_verdicts = self._risk.portfolio(priced, held)
        except RiskError as error:
            raise KernelError(f"{sid} at step {step}: {error}") from None
        verdicts.extend(portfolio_verdicts)
        return allowed, verdicts

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

    # --- day close -----------------------------------------------------------------------

    def _close_day(self, step: int) -> None:
        desk = self.desk
        self._carry.accrue_borrow(step)
        settled: dict[int, int] = {}
        if self._futures.active:  # daily settlement: variation margin at the settlement price
            settled = self._futures.settle(step, self.state.positions, desk.post, desk.journal)
        ts_ns = int(self._panel.ts_ns[step])
        day = int(self._panel.day[step])
        if self._margin is not None:  # the maintenance check after settlement (kernel.margin)
            equity, judged_px = self._margin_marks(step, settled)
            try:
                self._margin.close(
                    desk, step, ts_ns, day, equity, judged_px, self._margin_halt,
                    to_base=self._margin_to_base(step),
                )  # fmt: skip
            except MarginError as error:
                raise KernelError(f"day {day}: {error}") from None
        if self._delistings.active:  # delisting events and "sell_before" orders (kernel.delisting)
            self._delistings.close(desk, step, ts_ns, day, self.valuation.prices(step))
        values = self.valuation.position_values(step)
        exposures = self.valuation.exposures(step) if self._futures.active else values
        if self.valuation.currencies is None:
            cash = self.valuation.cash_minor()
            nav = cash + sum(values.values())
            gross = sum(map(abs, exposures.values()))
            marks = None
        else:  # several currencies: each converted once at the day's rate, summed in the base
            marks = self.valuation.currency_marks(step, values)
            cash = self.valuation.currencies.cash_base_minor(step, marks)
            nav = sum(mark.nav_base_minor for mark in marks)
            gross = self._gross_base(step, exposures)
        base = self.setup.currency
        desk.journal(
            DayClosed(
                ts_ns=ts_ns, day=day, step=step, nav_minor=nav, cash_minor=cash,
                gross_exposure_minor=gross, currency=base,
            )
        )  # fmt: skip
        if marks is not None:
            desk.journal(CurrenciesMarked(ts_ns=ts_ns, day=day, step=step, base=base, currencies=marks))
        if self._sleeves is not None:
            self._mark_sleeves(step, ts_ns, day, cash, values)
        self._kill.observe_nav(step, ts_ns, nav)
        if self._vol_target is not None:
            closes = self.state.nav_closes
            closes.append(nav)
            del closes[: max(0, len(closes) - self._vol_target.window - 1)]
        if self._kill.flattening:
            self._kill.flatten(step, self.valuation.prices(step))
        desk.journal(StateSnapshotted(ts_ns=ts_ns, day=day, snapshot=self.state.snapshot()))

    def _margin_marks(self, step: int, settled: dict[int, int]) -> tuple[int, dict[int, int]]:
        """The equity and marks the maintenance check at the close ``step`` judges. With
        ``[account] futures_margin_at = "settlement"`` (the default) each future settled this
        session counts at its settlement price: its value in the equity is 0 (its reference is
        the settled value) and its requirement is on the settled notional, so the equity is the
        settled cash a clearing house judges; ``"close"`` (runs before the setting): the NAV and
        the last closes, a future at ``(close - settle) x qty x multiplier``."""
        prices = self.valuation.prices(step)
        if not settled or self.setup.account.futures_margin_at == "close":
            return self.valuation.nav_minor(step), prices
        values = self.valuation.position_values(step)
        at_settlement = {**values, **dict.fromkeys(settled, 0)}
        return self.valuation.nav_minor(step, at_settlement), {**prices, **settled}

    def _margin_at_bar(self, step: int) -> bool:
        """The intraday maintenance check (``kernel.margin``); True when the account was called."""
        assert self._margin is not None
        day = int(self._panel.day[step])
        try:
            called = self._margin.intrabar(
                self.desk,
                step,
                int(self._panel.ts_ns[step]),
                day,
                self.valuation.nav_minor(step),
                self.valuation.prices(step),
                self._margin_halt,
                halted=not self._kill.armed,
                to_base=self._margin_to_base(step),
            )
        except MarginError as error:
            raise KernelError(f"day {day}: {error}") from None
        return called is not None

    def _margin_to_base(self, step: int) -> Callable[[int, str], int] | None:
        """Margin requirements into the base at the step's rates (several currencies), or None."""
        if not self._currencies.several:
            return None
        book, base = self._currencies, self.setup.currency
        return lambda amount, currency: to_base_minor(amount, currency, base, book.rate_e8(currency, step))

    def _margin_halt(self, step: int, ts_ns: int, reason: str, limit: int, observed: int) -> None:
        self._kill.trip(step, ts_ns, "margin_call", limit, observed, reason)

    def _gross_base(self, step: int, exposures: dict[int, int]) -> int:
        """Gross exposure in the base: each position's exposure converted (half-even)."""
        book = self._currencies
        base = self.setup.currency
        total = 0
        for iid, exposure in exposures.items():
            currency = self._instruments[iid].currency
            total += abs(to_base_minor(exposure, currency, base, book.rate_e8(currency, step)))
        return total

    def _mark_sleeves(self, step: int, ts_ns: int, day: int, cash: int, values: dict[int, int]) -> None:
        assert self._sleeves is not None
        held = {iid: position.qty_raw for iid, position in self.state.positions.items()}
        try:
            marks = self._sleeves.mark(cash, held, values)
        except SleeveError as error:
            raise KernelError(f"day {day}: {error}") from None
        currency = self.setup.currency
        self.desk.journal(SleevesMarked(ts_ns=ts_ns, day=day, step=step, currency=currency, sleeves=marks))

    def finish(self) -> None:
        """The run's last record, at the last row that arrived (the panel's last, for a data set)."""
        step = self._arrived - 1
        self.desk.journal(
            RunFinished(
                ts_ns=int(self._panel.ts_ns[step]),
                steps=self._arrived,
                nav_minor=self.nav_minor(step),
                currency=self.setup.currency,
            )
        )

    def nav_minor(self, step: int) -> int:
        return self.valuation.nav_minor(step)
