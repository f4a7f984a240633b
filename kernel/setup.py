"""One run setup: everything a kernel runs on, built and checked once before a journal opens.

The composition root builds a ``RunSetup`` from a run's configuration (``sim.backtest``), and
replay builds the same object from the journaled configuration; the kernel is constructed from
it (``Kernel(setup, sink)``) and from nothing else. A new market feature adds one field here, with
a default that leaves earlier runs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.events import OperatorCommanded, StrategyCommanded
from domain.fixed import RATE_SCALE
from domain.market import Panel
from domain.markets import CN_FEE_TABLES, CnFeeTables, PdtRule
from domain.riskrules import KillSwitchConfig, RiskPolicy, VolTarget
from kernel.account import AccountConfig
from kernel.borrow import BorrowConfig
from kernel.corporate_actions import CorporateActionConfig
from kernel.currencies import FxSetup
from kernel.futures import FuturesConfig
from kernel.killswitch import KILL_SWITCH_STRATEGY
from kernel.liquidation import LIQUIDATION_STRATEGY_ID, PerpMargin
from kernel.margin import MARGIN_CALL_STRATEGY_ID
from kernel.options import EXPIRY_STRATEGY, OptionModel
from kernel.router import ExecutionConfig
from kernel.strategy import Strategy
from kernel.venue import VenuePort

__all__ = ["RESERVED_STRATEGY_IDS", "RunSetup", "StrategySlot"]


@dataclass(frozen=True)
class StrategySlot:
    """One strategy of a book, its budget (the fraction of the book it trades, 1e-8) and, if
    given, its own risk policy: applied to its targets within its budget before the book's."""

    strategy: Strategy
    budget_e8: int = RATE_SCALE
    policy: RiskPolicy | None = None


RESERVED_STRATEGY_IDS = frozenset(
    {KILL_SWITCH_STRATEGY, LIQUIDATION_STRATEGY_ID, EXPIRY_STRATEGY, MARGIN_CALL_STRATEGY_ID}
)
"""Strategy ids of the orders the kernel sends itself (flattening, liquidation, option expiry,
a margin call's forced sales)."""


@dataclass(frozen=True)
class RunSetup:
    """What one kernel runs on: the data, the strategies, the venue and every run setting.

    Give one ``strategy`` (it trades the whole book), or ``strategies``: several, each with a
    budget, the budgets summing to one (``kernel.sleeves``)."""

    panel: Panel
    venue: VenuePort
    currency: str
    strategy: Strategy | None = None
    strategies: tuple[StrategySlot, ...] = ()
    initial_cash_minor: int = 0
    policy: RiskPolicy = field(default_factory=RiskPolicy)
    kill_switch: KillSwitchConfig = field(default_factory=KillSwitchConfig)
    operator_commands: tuple[OperatorCommanded | StrategyCommanded, ...] = ()  # at their times
    vol_target: VolTarget | None = None  # scale decisions by target / realised NAV vol (None: off)
    borrow: BorrowConfig | None = None  # short borrow fees (None: off)
    cn_fees: CnFeeTables = CN_FEE_TABLES  # A-share fee rates (config [cn_fees] merged in front)
    margin: PerpMargin | None = None  # perpetual liquidation (None: off)
    us_regulatory_fees: bool = True  # SEC Section 31 / FINRA TAF on US equity sells
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    pdt: PdtRule | None = None  # US pattern-day-trader rule of the run's broker (None: off)
    futures: FuturesConfig | None = None  # settlement methods of daily-settled futures
    option_model: OptionModel | None = None  # inputs of the greek limits (kernel.options)
    corporate_actions: CorporateActionConfig = field(default_factory=CorporateActionConfig)
    start_step: int = 0  # the first step traded; earlier steps are history (a window's start)
    account: AccountConfig = field(default_factory=AccountConfig)  # cash or margin (kernel.account)
    queued: bool = False  # rows from start_step on arrive one at a time (kernel.stream; paper, live)
    fx: FxSetup = field(default_factory=FxSetup)  # cash per currency, conversions (kernel.currencies)
    # An operator command that arrives stamped before start_step (a session on the venue's clock
    # before its first bar) waits for start_step; before this setting it was scheduled at a
    # history step, which a session never runs, so it was dropped.
    hold_early_commands: bool = False

    def __post_init__(self) -> None:
        if self.strategy is not None:
            # A single strategy trades the whole book; its one slot is derived (and re-derived by
            # ``dataclasses.replace``), so only a hand-written list of several slots conflicts.
            derived = len(self.strategies) == 1 and self.strategies[0].budget_e8 == RATE_SCALE
            if self.strategies and not derived:
                raise ValueError("give one strategy, or several strategies with budgets, not both")
            object.__setattr__(self, "strategies", (StrategySlot(self.strategy),))
        elif not self.strategies:
            raise ValueError("a run setup needs one strategy, or several strategies with budgets")
        ids = [slot.strategy.strategy_id for slot in self.strategies]
        if len(set(ids)) != len(ids):
            raise ValueError(f"strategy ids must be unique in one book, got {ids}")
        reserved = sorted(set(ids) & RESERVED_STRATEGY_IDS)
        if reserved:
            raise ValueError(f"strategy ids {reserved} are reserved for the kernel's own orders")
        for slot in self.strategies:
            if not 0 < slot.budget_e8 <= RATE_SCALE:
                raise ValueError(
                    f"{slot.strategy.strategy_id}: budget {slot.budget_e8 / RATE_SCALE:g} is outside (0, 1]"
                )
        if not 0 <= self.start_step < max(self.panel.steps, 1):
            raise ValueError(f"start step {self.start_step} is outside the panel's {self.panel.steps} steps")
        total = sum(slot.budget_e8 for slot in self.strategies)
        if total != RATE_SCALE:
            raise ValueError(f"strategy budgets sum to {total / RATE_SCALE:g}; they must sum to 1")
