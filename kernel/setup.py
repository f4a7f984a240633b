"""One run setup: everything a kernel runs on, built and checked once before a journal opens.

The composition root builds a ``RunSetup`` from a run's configuration (``sim.backtest``), and
replay builds the same object from the journaled configuration; the kernel is constructed from
it (``Kernel(setup, sink)``) and from nothing else. A new market feature adds one field here, with
a default that leaves earlier runs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.events import OperatorCommanded
from domain.market import Panel
from domain.markets import CN_FEE_TABLES, CnFeeTables, PdtRule
from domain.riskrules import KillSwitchConfig, RiskPolicy, VolTarget
from kernel.borrow import BorrowConfig
from kernel.corporate_actions import CorporateActionConfig
from kernel.futures import FuturesConfig
from kernel.liquidation import PerpMargin
from kernel.options import OptionModel
from kernel.router import ExecutionConfig
from kernel.strategy import Strategy
from kernel.venue import VenuePort

__all__ = ["RunSetup"]


@dataclass(frozen=True)
class RunSetup:
    """What one kernel runs on: the data, the strategy, the venue and every run setting."""

    panel: Panel
    strategy: Strategy
    venue: VenuePort
    currency: str
    initial_cash_minor: int = 0
    policy: RiskPolicy = field(default_factory=RiskPolicy)
    kill_switch: KillSwitchConfig = field(default_factory=KillSwitchConfig)
    operator_commands: tuple[OperatorCommanded, ...] = ()
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
