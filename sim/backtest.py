"""Wire a data set, a strategy, the simulated venue and the kernel into a journaled run."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from domain.events import DatasetReferenced, Event, OperatorCommanded, RunStarted, StrategyCommanded
from domain.fixed import RATE_SCALE, Rounding, from_decimal_text, minor_digits
from domain.futures import is_daily_settled
from domain.market import Panel
from domain.markets import (
    CalendarNotCovered,
    CnFeeRows,
    PdtRule,
    check_covered,
    cn_fee_tables,
    listing_sessions_asked,
)
from domain.riskrules import (
    OPERATOR_COMMANDS,
    KillSwitchConfig,
    RiskPolicy,
    VolTarget,
    policy_from_mapping,
    policy_to_mapping,
)
from kernel.account import AccountConfig
from kernel.borrow import BorrowConfig
from kernel.corporate_actions import CorporateActionConfig
from kernel.currencies import DEFAULT_STALE_DAYS_MAX, FxConversion, FxSetup
from kernel.futures import FuturesBook, FuturesConfig
from kernel.journal import Journal, JournalError
from kernel.liquidation import PerpMargin, perp_brackets
from kernel.loop import Kernel, KernelError
from kernel.margin import checked_money_minor
from kernel.markets import MarketRules, is_cn_a_share
from kernel.options import OptionModel
from kernel.outbox import OutboxVenue
from kernel.router import ExecutionConfig
from kernel.run_status import run_status
from kernel.schedules import STRATEGY_COMMANDS
from kernel.setup import RunSetup, StrategySlot
from kernel.sleeves import allocate
from kernel.store import memory_journal, open_journal, remove_journal
from kernel.strategy import Strategy
from kernel.venue import VenuePort
from lake.sessions import step_grid
from lake.store import DatasetRef, dataset_ref, load_panel, read_manifest
from sim.fill_models import FillModel
from sim.recorded_venue import RecordedVenue, RecordingError, read_recording
from sim.venue import SimVenue

__all__ = [
    "ENGINE_VERSION",
    "BacktestConfig",
    "BacktestResult",
    "FxConfig",
    "FxConversionConfig",
    "OperatorCommandConfig",
    "PaperConfig",
    "StrategyConfig",
    "Window",
    "build_setup",
    "run_panel",
    "window_notice",
    "windowed",
    "journal_inputs",
    "refuse_used_journal",
    "run_backtest",
]

ENGINE_VERSION = "tape-kernel/2"  # 2: risk policy + kill switch (risk.verdict.v2)


class StrategyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A strategy of the run: a built-in or installed one by ``name`` (the ``tape.strategies``
    entry-point group), or any importable class or factory by ``entry``
    (``"package.module:Name"``), called with ``params``. ``budget`` (decimal text, a fraction of
    the book) is for a strategy of several (``[[strategies]]``)."""

    name: str = ""
    entry: str = ""
    params: dict[str, Any] = {}
    budget: str = ""
    risk: RiskPolicy | None = None  # its own policy within its budget ([[strategies]] only)

    def __post_init__(self) -> None:
        if self.risk is not None:
            policy_from_mapping(policy_to_mapping(self.risk), prefix=f"strategies.{self.label}.risk.")
        if bool(self.name) == bool(self.entry):
            raise ValueError(
                'a strategy needs a name (an installed strategy) or an entry ("package.module:Name"), '
                f"not {'both' if self.name else 'neither'}"
            )
        if self.entry and (self.entry.count(":") != 1 or not all(self.entry.split(":"))):
            raise ValueError(f'strategy entry must read "package.module:Name", got {self.entry!r}')
        if self.budget:
            self.budget_e8()

    @property
    def label(self) -> str:
        return self.name or self.entry

    def budget_e8(self) -> int:
        """The budget as a 1e-8 fraction; exact (no more than eight decimals), in (0, 1]."""
        try:
            value = from_decimal_text(self.budget, 8, Rounding.DOWN)
            if value != from_decimal_text(self.budget, 8, Rounding.CEILING):
                raise ValueError("more than eight decimals")
        except (ArithmeticError, ValueError):
            raise ValueError(
                f"strategy {self.label}: budget must be a decimal in (0, 1] with at most eight "
                f"decimals, got {self.budget!r}"
            ) from None
        if not 0 < value <= RATE_SCALE:
            raise ValueError(f"strategy {self.label}: budget {self.budget} is outside (0, 1]")
        return value


class OperatorCommandConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An operator command scheduled in a backtest: applied at the first step at or after
    ``at`` (ISO 8601 with a UTC offset, e.g. ``2024-03-04T15:00:00Z``)."""

    at: str
    command: str
    operator: str = "operator"
    note: str = ""
    strategy: str = ""  # pause / resume: the strategy they name

    def __post_init__(self) -> None:
        known = OPERATOR_COMMANDS + STRATEGY_COMMANDS
        if self.command not in known:
            raise ValueError(f"operator_commands: command must be one of {known}, got {self.command!r}")
        if (self.command in STRATEGY_COMMANDS) != bool(self.strategy):
            raise ValueError(
                f"operator_commands: {self.command!r} "
                + (
                    "names a strategy (strategy = ...)"
                    if self.command in STRATEGY_COMMANDS
                    else "takes no strategy"
                )
            )
        self.ts_ns()

    def ts_ns(self) -> int:
        return utc_ns(self.at, "operator_commands")

    def event(self) -> OperatorCommanded | StrategyCommanded:
        if self.strategy:
            return StrategyCommanded(
                ts_ns=self.ts_ns(), command=self.command, strategy_id=self.strategy,
                operator=self.operator, note=self.note,
            )  # fmt: skip
        return OperatorCommanded(
            ts_ns=self.ts_ns(), command=self.command, operator=self.operator, note=self.note
        )


def utc_ns(at: str, table: str) -> int:
    """``at`` (ISO 8601 with a UTC offset) in ns since the epoch; ``ValueError`` naming ``table``."""
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise ValueError(f"{table}: 'at' is not an ISO 8601 time: {at!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{table}: 'at' needs a UTC offset (e.g. 'Z'): {at!r}")
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def _money_minor(text: str, currency: str, key: str) -> int:
    """Decimal text -> minor units of ``currency``, exactly (more digits is an error)."""
    try:
        digits = minor_digits(currency)
    except ValueError as error:
        raise ValueError(f"{key}: {error}") from None
    try:
        value = from_decimal_text(text, digits, Rounding.DOWN)
        exact = value == from_decimal_text(text, digits, Rounding.CEILING)
    except (ArithmeticError, ValueError):
        raise ValueError(f"{key}: {text!r} is not a decimal amount") from None
    if not exact:
        raise ValueError(f"{key}: {text!r} has more digits than {currency}'s minor unit")
    return checked_money_minor(value, text, currency, key)


class FxConversionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[fx.conversions]]``: convert ``amount`` (decimal text) of ``source`` cash into
    ``target`` at the first step at or after ``at`` (ISO 8601 with a UTC offset), at that
    session day's rates into the base (``kernel.currencies``)."""

    at: str
    source: str
    target: str
    amount: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.source == self.target:
            raise ValueError(f"fx.conversions: source and target are both {self.source}")
        _money_minor("0", self.target, "fx.conversions.target")  # a known currency
        if self.amount_minor() <= 0:
            raise ValueError(f"fx.conversions: amount must be positive, got {self.amount!r}")
        self.ts_ns()

    def amount_minor(self) -> int:
        return _money_minor(self.amount, self.source, "fx.conversions.amount")

    def ts_ns(self) -> int:
        return utc_ns(self.at, "fx.conversions")

    def conversion(self) -> FxConversion:
        return FxConversion(self.ts_ns(), self.source, self.target, self.amount_minor(), self.note)


class FxConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[fx]``: a book of several currencies. ``initial_cash``: cash per currency beside the
    base's ``initial_cash`` (decimal text by currency code); ``conversions``: explicit
    conversions; ``stale_days_max``: how many calendar days a rate of the data set's fx table
    stays the day's rate (``domain.fx``)."""

    stale_days_max: int = DEFAULT_STALE_DAYS_MAX
    initial_cash: dict[str, str] = {}
    conversions: list[FxConversionConfig] = []

    def setup(self, base: str) -> FxSetup:
        if base in self.initial_cash:
            raise ValueError(f"fx.initial_cash.{base}: {base} is the base currency; its cash is initial_cash")
        cash = tuple(
            (currency, _money_minor(text, currency, f"fx.initial_cash.{currency}"))
            for currency, text in sorted(self.initial_cash.items())
        )
        negative = [currency for currency, amount in cash if amount < 0]
        if negative:
            raise ValueError(f"fx.initial_cash: negative cash in {negative}")
        return FxSetup(
            stale_days_max=self.stale_days_max,
            initial_cash=cash,
            conversions=tuple(item.conversion() for item in self.conversions),
        )


VENUE_KINDS = ("sim", "recorded", "live", "paper")


class VenueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[venue]``: the simulated venue (default), or a recorded asynchronous venue session
    (``kind = "recorded"``, ``recording`` = a JSON-lines file of venue messages, see
    ``sim.recorded_venue``). The received messages are journaled as inputs, so replay needs
    only the journal: the recording file is read by the run, never by its replay.
    ``kind = "live"``: a venue's own orders and fills (``tape live``, ``kernel.outbox``), with
    the ``[paper]`` table's exchange, steps and symbols and the ``[live]`` table's keys and
    reconciliation policy; its replay reads the journaled venue messages the same way.
    ``kind = "paper"``: ``tape paper``'s broker at the edge (``venues.paper_broker``): orders
    reach a simulated venue after the ``[paper]`` latency and fill at the quoted bid / ask
    (``paper.quotes``), else on the bars; its answers are journaled as a live venue's are."""

    kind: str = "sim"
    recording: str = ""
    pending_max: int = 1024

    def __post_init__(self) -> None:
        if self.kind not in VENUE_KINDS:
            raise ValueError(f"venue.kind must be one of {VENUE_KINDS}, got {self.kind!r}")
        if self.kind == "recorded" and not self.recording:
            raise ValueError('venue.recording: a recorded venue needs its recording file (kind = "recorded")')
        if self.kind == "sim" and self.recording:
            raise ValueError('venue.recording is only read with kind = "recorded"')
        if self.pending_max < 0:
            raise ValueError(f"venue.pending_max must not be negative, got {self.pending_max}")


LIVE_POLICIES = {
    "on_difference": ("halt", "flatten", "adopt", "warn"),
    "unknown_orders": ("leave", "cancel"),
    "unsent": ("reject", "send"),
    "venue": ("binance", "ib"),
}
LIVE_MARKETS = ("spot", "usdm")


class LiveConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[live]``: where ``tape live`` finds the venue's keys, and what it does with what
    reconciliation finds (``docs/runbook.md``). Keys never go in the configuration: ``keys_env``
    names environment variables (``{keys_env}_API_KEY``, ``{keys_env}_SECRET``), or
    ``secrets_file`` a TOML file (``api_key``, ``secret``) that only its owner may read.

    * ``on_difference``, for what no other setting settled: ``halt`` (new risk stops: a
      journaled halt command), ``flatten`` (the same as a journaled flatten: the kill switch
      closes the book), ``adopt`` (a spot account: the book takes on the venue's balances,
      ``kernel.adoption``; what cannot be adopted halts) or ``warn``;
    * ``unknown_orders``: open orders at the venue that this session did not send: ``leave``
      them (reported) or ``cancel`` them;
    * ``unsent``: an order journaled before a crash that never reached the venue: ``reject`` it
      (the decision is stale; the next decision sizes again) or ``send`` it now.

    ``venue``: ``binance`` (spot, through ccxt; the keys above) or ``ib`` (Interactive Brokers
    through ib_async: TWS or IB Gateway at ``host``:``port`` as API client ``client_id``, trading
    ``account`` — "" = the gateway's only account). IB has no API keys: the gateway holds the
    login, so ``keys_env`` / ``secrets_file`` are not read for it (docs/live_ib.md). A paper
    run on IB bars (``paper.exchange = "ib"``) reads this table's connection only: ``venue``,
    ``host``, ``port``, ``client_id``, ``account`` (``BacktestConfig._check_ib_bars``)."""

    venue: str = "binance"
    host: str = "127.0.0.1"
    port: int = 7497  # TWS paper trading's default API port (IB Gateway: 4002 paper, 4001 live)
    client_id: int = 1
    account: str = ""
    keys_env: str = "TAPE_BINANCE"
    secrets_file: str = ""
    on_difference: str = "halt"
    unknown_orders: str = "leave"
    unsent: str = "reject"
    testnet: bool = False  # ccxt's sandbox mode (the venue's test network)
    market: str = "spot"  # "spot" (a cash account) or "usdm" (USD-M perpetuals: shorts, margin)

    def __post_init__(self) -> None:
        if self.market not in LIVE_MARKETS:
            raise ValueError(f"live.market must be one of {LIVE_MARKETS}, got {self.market!r}")
        for key, allowed in LIVE_POLICIES.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"live.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if not self.keys_env and not self.secrets_file:
            raise ValueError("live: name keys_env (environment variables) or secrets_file")
        if self.keys_env and not self.keys_env.replace("_", "").isalnum():
            raise ValueError(f"live.keys_env must be a variable name prefix, got {self.keys_env!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"live.port must be a TCP port (1-65535), got {self.port}")
        if self.client_id < 0:
            raise ValueError(f"live.client_id must be >= 0, got {self.client_id}")
        if self.venue == "ib" and self.market != "spot":
            raise ValueError('live.market = "usdm" is Binance USD-M perpetuals: not with venue = "ib"')
        if self.venue == "ib" and self.secrets_file:
            raise ValueError(
                "live.secrets_file: IB has no API keys (TWS / IB Gateway holds the login); leave it out"
            )


class Window(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The session days a run trades (ISO dates, inclusive; "" = the data set's first or last).
    Bars before ``start`` are history the strategies see but nothing trades on; bars after
    ``end`` are not loaded at all, so nothing in the run can read past it."""

    start: str = ""
    end: str = ""

    def __post_init__(self) -> None:
        first, last = self.days()
        if first and last and first > last:
            raise ValueError(f"window: start {self.start} is after end {self.end}")

    def days(self) -> tuple[int, int]:
        """(first, last) as YYYYMMDD integers, 0 where open."""
        return _yyyymmdd(self.start, "window.start"), _yyyymmdd(self.end, "window.end")


def _yyyymmdd(text: str, key: str) -> int:
    if not text:
        return 0
    try:
        return int(date.fromisoformat(text).strftime("%Y%m%d"))
    except ValueError:
        raise ValueError(f"{key} must be a date (YYYY-MM-DD), got {text!r}") from None


class PaperConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A paper run (``tape paper``): the strategies trade bars arriving from a venue's market
    data against the simulated venue. The data set is the history the strategies warm up on;
    the live steps are the grid of the data set's calendar and frequency from ``start`` to
    ``end`` (ISO times, UTC; ``tape paper`` resolves ``start = "now"`` and journals the time)."""

    exchange: str = "binance"  # the ccxt exchange whose market data is read
    start: str = "now"
    end: str = ""
    grace_s: float = 5.0  # after a step's bar close, how long its bars may still arrive
    clock: str = "wall"  # "wall", or "venue": the exchange's server time (a local exchange replaying history)
    symbols: dict[str, str] = {}  # instrument symbol -> the venue's symbol (default: the same)
    # [venue] kind = "paper" (venues.paper_broker): an order reaches the simulated venue at the
    # first input stamped at or after its send + latency_ms + a seeded jitter in
    # [0, latency_jitter_ms] (the run's seed and the order id draw it); quotes: watch the venue's
    # best bid / ask, journal them, fill buys at the ask and sells at the bid.
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    quotes: bool = False
    heartbeat_s: float = 0.0  # every this many seconds (wall), a timed round trip to the venue; 0: none
    # With heartbeats: this many unanswered in a row halt the session (or flatten, with the kill
    # switch's flatten_on_trip) through a journaled health command (venues.health); 0: never.
    # A round trip over kill_switch.latency_ns_max does the same.
    heartbeat_misses: int = 3
    # An operator command stamped before the first live step (on the venue's clock, before its
    # first bar: a start reconciliation's halt) applies at that step; false: at a history step
    # the session never runs, i.e. never (how sessions before this setting ran).
    hold_early_commands: bool = True
    # A perpetuals session (Binance USD-M): journal the venue's mark prices and value positions
    # at them (kernel.marks); false values them at the bar's close, as a backtest does.
    marks: bool = True

    def __post_init__(self) -> None:
        if self.heartbeat_s < 0:
            raise ValueError(f"paper.heartbeat_s must be >= 0, got {self.heartbeat_s}")
        if self.heartbeat_misses < 0:
            raise ValueError(f"paper.heartbeat_misses must be >= 0, got {self.heartbeat_misses}")
        if self.latency_ms < 0 or self.latency_jitter_ms < 0:
            raise ValueError("paper.latency_ms and paper.latency_jitter_ms must be >= 0")
        if self.clock not in ("wall", "venue"):
            raise ValueError(f"paper.clock must be 'wall' or 'venue', got {self.clock!r}")
        if self.grace_s < 0:
            raise ValueError(f"paper.grace_s must be >= 0, got {self.grace_s}")
        if not self.end:
            raise ValueError("paper.end: give the time the run's last step closes (ISO, UTC)")
        end_ns = _utc_ns(self.end, "paper.end")
        if self.start != "now" and end_ns <= _utc_ns(self.start, "paper.start"):
            raise ValueError(f"paper.end ({self.end}) must be after paper.start ({self.start})")

    def span_ns(self) -> tuple[int, int]:
        """(start, end) as UTC nanoseconds."""
        return _utc_ns(self.start, "paper.start"), _utc_ns(self.end, "paper.end")


def _utc_ns(text: str, key: str) -> int:
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{key} must be an ISO time (e.g. 2026-12-05T21:00:00Z), got {text!r}") from None
    if stamp.tzinfo is None:
        raise ValueError(f"{key} must name its time zone (e.g. a trailing Z for UTC), got {text!r}")
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1_000


class BacktestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One backtest, as read from TOML. Money is decimal text, rates are 1e-8 integers."""

    run_id: str
    dataset: str
    journal: str
    strategy: StrategyConfig | None = None  # one strategy trading the whole book
    strategies: list[StrategyConfig] = []  # or several, each with a budget ([[strategies]])
    seed: int = 0
    currency: str = "USD"
    initial_cash: str = "1000000"
    journal_backend: str | None = None
    risk: RiskPolicy = RiskPolicy()
    fill: FillModel = FillModel()
    kill_switch: KillSwitchConfig = KillSwitchConfig()
    operator_commands: list[OperatorCommandConfig] = []
    # A-share fee rates for days the built-in tables do not cover (the user's values; see
    # docs/markets.md). Left out of the journaled config when empty, so older runs replay.
    cn_fees: CnFeeRows = CnFeeRows()
    perp_margin: PerpMargin | None = None  # perpetual maintenance margin and liquidation; None: off
    vol_target: VolTarget | None = None  # scale decisions by target / realised NAV vol; None: off
    borrow: BorrowConfig | None = None  # short borrow fees (annual rates); None: off
    # SEC Section 31 fee + FINRA TAF on US equity sells. Their dated tables start 2023-02-27 /
    # 2024-01-01; a run starting earlier fails unless this is set to false explicitly.
    us_regulatory_fees: bool = True
    execution: ExecutionConfig = ExecutionConfig()
    pdt: PdtRule | None = None  # US pattern-day-trader rule of the broker; None: off
    futures: FuturesConfig | None = None  # futures settlement prices; None: from the data set
    option_model: OptionModel | None = None  # greek inputs (vol, rate) for [risk.greeks]; None: off
    # Rights issues in the data set's actions: "lapse" (default) or "subscribe" (docs/markets.md).
    corporate_actions: CorporateActionConfig = CorporateActionConfig()
    venue: VenueConfig = VenueConfig()
    window: Window | None = None  # the session days traded (walk-forward folds); None: all
    account: AccountConfig = AccountConfig()  # "margin" (as before) or "cash" (kernel.account)
    paper: PaperConfig | None = None  # a paper run's live steps and market data (tape paper)
    fx: FxConfig | None = None  # cash per currency and conversions (kernel.currencies); None: none
    # tape live: keys and reconciliation policy ([venue] kind = "live"); tape paper on IB bars:
    # the gateway's connection only
    live: LiveConfig | None = None

    def __post_init__(self) -> None:
        # Range checks (limits within [1, 20x], actions a rule can take) with the key named.
        policy_from_mapping(policy_to_mapping(self.risk), prefix="risk.")
        if (self.strategy is None) == (not self.strategies):
            raise ValueError("give one [strategy] table, or several [[strategies]] tables (not both)")
        if self.strategy is not None and self.strategy.risk is not None:
            raise ValueError("strategy.risk: a single [strategy]'s policy is the book's; write it as [risk]")
        if self.strategy is not None and self.strategy.budget:
            raise ValueError(
                "strategy.budget: a single [strategy] trades the whole book; budgets are for [[strategies]]"
            )
        if self.strategies:
            self.budgets_e8()
        if self.paper is not None and self.window is not None:
            raise ValueError("paper: a paper run trades from paper.start; leave [window] out")
        self._check_live()
        if self.fx is not None:
            self.fx.setup(self.currency)

    def _check_live(self) -> None:
        if self.venue.kind == "live" and self.paper is None:
            raise ValueError('venue.kind = "live" trades the [paper] table\'s steps: add [paper]')
        usdm = self.live is not None and self.live.market == "usdm"
        if self.venue.kind == "live" and not self.account.cash and not usdm:
            raise ValueError(
                'a live spot venue lends nothing: set [account] type = "cash" (no shorts, paid from cash)'
            )
        if usdm and self.account.cash:
            raise ValueError(
                'live.market = "usdm" trades perpetuals on margin: leave out [account] type = "cash"'
            )
        self._check_paper_venue()
        if self.live is not None and self.venue.kind != "live":
            self._check_ib_bars()

    def _check_ib_bars(self) -> None:
        """A paper session on IB bars (``paper.exchange = "ib"``) reads ``[live]``'s connection
        (venue, host, port, client_id, account) and nothing else of it (docs/live_ib.md)."""
        assert self.live is not None
        if self.paper is None or self.paper.exchange != "ib" or self.live.venue != "ib":
            raise ValueError(
                '[live] is read with [venue] kind = "live", or for its IB connection with '
                'paper.exchange = "ib" and live.venue = "ib"'
            )
        unread = [
            key for key in ("on_difference", "unknown_orders", "unsent", "testnet")
            if getattr(self.live, key) != getattr(LiveConfig(), key)
        ]  # fmt: skip
        if unread:
            raise ValueError(
                f"live.{', live.'.join(unread)}: read by tape live only; a paper session on IB bars "
                "reads [live]'s connection (venue, host, port, client_id, account)"
            )

    def _check_paper_venue(self) -> None:
        """``[venue] kind = "paper"`` (the paper broker) and the ``[paper]`` keys only it reads."""
        if self.venue.kind == "paper" and self.paper is None:
            raise ValueError('venue.kind = "paper" is tape paper\'s broker: add [paper]')
        if self.venue.kind == "paper" and (
            self.fill.commission_min_minor
            or self.fill.commission_per_share_e8
            or self.fill.commission_max_e8
            or self.fill.participation_e8
        ):
            raise ValueError(
                'venue.kind = "paper" charges fill.commission_e8 (or maker_e8 / taker_e8) of each fill and '
                "fills whole orders: leave commission_min_minor, commission_per_share_e8, "
                "commission_max_e8 and participation_e8 at 0"
            )
        if (
            self.paper is not None
            and (self.paper.latency_ms or self.paper.latency_jitter_ms or self.paper.quotes)
            and self.venue.kind != "paper"
        ):
            raise ValueError(
                'paper.latency_ms, latency_jitter_ms and quotes are read with [venue] kind = "paper" only'
            )

    def strategy_configs(self) -> list[StrategyConfig]:
        return [self.strategy] if self.strategy is not None else list(self.strategies)

    def budgets_e8(self) -> list[int]:
        """Each strategy's budget (1e-8): as written, or — when no strategy gives one — equal
        shares, split exactly. Budgets given must be given for all and sum to one."""
        configs = self.strategy_configs()
        given = [config.budget for config in configs if config.budget]
        if not given:
            return allocate(RATE_SCALE, [1] * len(configs))
        if len(given) != len(configs):
            missing = [config.label for config in configs if not config.budget]
            raise ValueError(f"strategies {missing} have no budget; give every strategy a budget, or none")
        budgets = [config.budget_e8() for config in configs]
        if sum(budgets) != RATE_SCALE:
            total = sum(budgets) / RATE_SCALE
            raise ValueError(f"strategy budgets {given} sum to {total:g}; they must sum to 1")
        return budgets

    def initial_cash_minor(self) -> int:
        return from_decimal_text(self.initial_cash, minor_digits(self.currency), Rounding.HALF_EVEN)

    def canonical_json(self) -> str:
        """Sorted-key JSON of the config. Settings added after the journal format was fixed are
        left out while they hold their default (``LATER_DEFAULTS``), so a config that does not
        use them journals the same bytes as before they existed; a non-default value is recorded."""
        data = msgspec.to_builtins(self)
        for path, default in LATER_DEFAULTS:
            *parents, name = path
            for table in _tables(data, parents):
                if name in table and table[name] == default:
                    del table[name]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def journaled_json(self, panel: Panel) -> str:
        """The configuration a run journals (``RunStarted.config_json``): ``canonical_json``, and
        ``account.futures_margin_at`` stated whenever it decides the run -- daily-settled futures
        in a margin account whose check runs (requirements set, or the data set's margin rows) --
        even at its default, which ``canonical_json`` leaves out. So a run's journal without it
        is one the setting did not touch or one from before it, and ``from_journal`` reads it
        with the legacy value (``JOURNAL_LEGACY``); a run of any other kind journals the bytes
        it did before the setting."""
        text = self.canonical_json()
        account = self.account
        margined = account.margined or (bool(panel.margin_rows) and not account.cash)
        if not (margined and any(map(is_daily_settled, panel.instruments))):
            return text
        data = json.loads(text)
        data.setdefault("account", {})["futures_margin_at"] = account.futures_margin_at
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_journal(cls, text: str) -> BacktestConfig:
        """A run's journaled configuration (``journaled_json``), to re-derive the run: as
        ``from_json``, with each ``JOURNAL_LEGACY`` setting the journal does not state read with
        its legacy value, as the run behaved (an ``[account]`` table left out of it included)."""
        data = json.loads(text)
        for path, legacy in JOURNAL_LEGACY:
            *parents, name = path
            table = data
            for parent in parents:
                table = table.setdefault(parent, {})
            table.setdefault(name, legacy)
        return cls.from_json(json.dumps(data))

    @classmethod
    def from_json(cls, text: str) -> BacktestConfig:
        """A journaled configuration. A setting it leaves out takes the value that
        ``LATER_DEFAULTS`` says it was journaled without — which is how runs behaved before the
        setting existed, even where a new run's default is now another."""
        data = json.loads(text)
        for path, legacy in LATER_DEFAULTS:
            *parents, name = path
            for table in _tables(data, parents):
                if name not in table:
                    table[name] = legacy
        return msgspec.convert(data, cls)


def _tables(data: dict[str, Any], parents: list[str]) -> list[dict[str, Any]]:
    """The tables a ``LATER_DEFAULTS`` path names: ``"*"`` is every table of a list."""
    tables: list[Any] = [data]
    for parent in parents:
        found: list[Any] = []
        for table in tables:
            value = table.get(parent) if isinstance(table, dict) else None
            if parent == "*" and isinstance(table, list):
                found.extend(table)
            elif isinstance(value, dict | list):
                found.append(value)
        tables = found
    return [table for table in tables if isinstance(table, dict)]


# Settings added after the journal format was fixed, with the value that leaves them out of the
# journaled configuration (``BacktestConfig.canonical_json``) and that a journaled configuration
# without them is read with (``BacktestConfig.from_json``): how runs behaved before the setting
# existed. A run with that value journals the same bytes as before, and an old journal replays
# as it ran even where a new run's default differs (``fill.at_limit``). A new setting adds one
# row; a nested row applies only while its table is journaled.
LATER_DEFAULTS: tuple[tuple[tuple[str, ...], object], ...] = (
    (("strategies",), []),
    (("strategy",), None),
    (("strategy", "entry"), ""),
    (("strategy", "budget"), ""),
    (("strategy", "risk"), None),
    (("us_regulatory_fees",), True),
    (("cn_fees",), msgspec.to_builtins(CnFeeRows())),
    (("perp_margin",), None),
    (("vol_target",), None),
    (("borrow",), None),
    (("pdt",), None),
    (("futures",), None),
    (("option_model",), None),
    # runs before [execution] sent market orders; before execution.supersede a decision
    # cancelled all its strategy's working orders
    (("execution",), {**msgspec.to_builtins(ExecutionConfig()), "supersede": "all"}),
    (("execution", "on_timeout"), "cancel"),
    (("venue",), msgspec.to_builtins(VenueConfig())),
    (("corporate_actions",), msgspec.to_builtins(CorporateActionConfig())),
    (("window",), None),
    (("account",), msgspec.to_builtins(AccountConfig())),
    (("paper",), None),
    (("operator_commands", "*", "strategy"), ""),
    (("fill", "at_limit"), "fill"),  # runs before fill.at_limit filled at the limit; new ones skip
    (("fx",), None),
    (("corporate_actions", "reform"), "bonus"),  # data sets before it carried no reform rows
    (("paper", "marks"), False),  # sessions before it valued perpetuals at the bar's close
    (("live",), None),
    (("live", "market"), "spot"),  # USD-M perpetuals (tape live): spot only before it
    (("account", "initial_e8"), 0),  # margin requirements (kernel.margin): none before them
    (("account", "maintenance_e8"), 0),
    (("account", "margin_call"), "liquidate"),
    (("account", "futures_margin"), []),
    (("account", "venues"), {}),  # one account type for every market before it
    (("account", "maintenance_check"), "close"),  # maintenance judged at each close before it
    (("account", "delisted"), "hold"),  # a delisted name's position was held before it
    # left out of a configuration at its new default; a run's journal states it wherever it
    # decides the run, and one without it replays with the legacy value (``JOURNAL_LEGACY``)
    (("account", "futures_margin_at"), "settlement"),
    (("paper", "latency_ms"), 0),  # the paper broker (venue.kind = "paper"): none before it
    (("paper", "latency_jitter_ms"), 0),
    (("paper", "quotes"), False),
    (("paper", "heartbeat_s"), 0.0),  # no heartbeats before it
    (("paper", "heartbeat_misses"), 0),  # heartbeats were only journaled before it
    (("paper", "hold_early_commands"), False),  # an early command was scheduled at a history step
    (("live", "venue"), "binance"),  # [live] before Interactive Brokers: Binance spot
    (("live", "host"), "127.0.0.1"),
    (("live", "port"), 7497),
    (("live", "client_id"), 1),
    (("live", "account"), ""),
    # a decision cancelled every working order of its strategy before it, a name it left at NaN
    # included; new runs cancel those of the names it has a view on (kernel.router.SUPERSEDE)
    (("execution", "supersede"), "all"),
)


# Settings whose new default a run's journal states wherever it decides the run
# (``BacktestConfig.journaled_json``) but a configuration leaves out (``LATER_DEFAULTS``), with
# the legacy value a run's journal without them is re-derived with (``from_journal``): how runs
# behaved before the setting. Used where the legacy value cannot be a ``LATER_DEFAULTS`` row:
# every configuration with an ``[account]`` table would then journal the new default and change
# its bytes, and a run whose default ``[account]`` table is left out could not say it at all.
JOURNAL_LEGACY: tuple[tuple[tuple[str, ...], object], ...] = (
    # the maintenance check at a close valued futures at the last close, not the settlement
    (("account", "futures_margin_at"), "close"),
)


@dataclass(frozen=True)
class BacktestResult:
    journal: Path
    records: int
    last_hash: str
    nav_minor: int
    steps: int


def build_setup(
    config: BacktestConfig,
    strategy: Strategy | Sequence[Strategy],
    *,
    expected_hash: str | None = None,
    replaying: bool = False,
    queued: bool = False,
    loaded: Panel | None = None,
) -> RunSetup:
    """Load the data set (checking its hash) and build the run's setup: the one place a
    configuration becomes what a kernel runs on. ``replaying``: for a replay, a recorded venue
    is built without its file (replay reads the journaled messages). ``strategy``: the run's
    strategy, or the strategies built from ``config.strategy_configs()`` in that order.
    ``queued``: the rows the run trades start empty, for a queue source to fill them as bars
    arrive (``kernel.stream``); the rows before the window's start are its history.
    ``loaded``: the data set's panel as ``lake.store.load_panel`` read it, with that hash
    (a sweep worker reads it once for all its runs)."""
    panel, start_step = run_panel(config, expected_hash=expected_hash, loaded=loaded)
    if config.paper is not None:
        queued = True  # a paper run's bars arrive one at a time, in the run and in its replay
    if queued:
        panel = panel.emptied(start_step)
    if not replaying:  # a replay re-derives what the run did, where it stopped included
        check_listing_calendar(config, panel, start_step)
    try:  # fail before any journal is opened: fee tables or futures settlement prices missing
        fee_tables = cn_fee_tables(config.cn_fees.rows)
        by_id = {inst.instrument_id: inst for inst in panel.instruments}
        rules = MarketRules(
            by_id,
            fee_tables,
            us_regulatory_fees=config.us_regulatory_fees,
            first_day=int(panel.day[0]) if panel.steps else 0,
        )
        # A replay re-derives what the run did, where it stopped included; a new run starts only
        # if its A-shares can pay their fees from the first session it trades.
        gap = rules.cn_fee_gap(panel, start_step) if panel.steps and not replaying else None
        if gap is not None:
            raise ValueError(gap)
        margin = config.perp_margin is not None and config.perp_margin.enabled
        if margin:  # its refusals (a tier, a symbol, a fee) before the journal, as a config's
            perp_brackets(config.perp_margin, by_id)
        columns = {iid: col for col, iid in enumerate(by_id)}
        FuturesBook(panel, by_id, columns, config.futures, perp_margin=margin)
    except ValueError as error:
        raise KernelError(f"{config.run_id}: {error}") from None
    if isinstance(strategy, Sequence):
        configured = len(config.strategy_configs())
        if len(strategy) != configured:
            raise KernelError(f"{config.run_id}: {len(strategy)} strategies for {configured} configured")
        if config.strategies:
            policies = [item.risk for item in config.strategies]
            slots = tuple(map(StrategySlot, strategy, config.budgets_e8(), policies))
            single = None
        else:
            slots, single = (), strategy[0]
    else:
        slots, single = (), strategy
    return RunSetup(
        panel=panel,
        strategy=single,
        strategies=slots,
        venue=_venue(config, panel, replaying),
        policy=config.risk,
        currency=config.currency,
        initial_cash_minor=config.initial_cash_minor(),
        kill_switch=config.kill_switch,
        operator_commands=tuple(command.event() for command in config.operator_commands),
        vol_target=config.vol_target,
        borrow=config.borrow,
        cn_fees=fee_tables,
        margin=config.perp_margin,
        us_regulatory_fees=config.us_regulatory_fees,
        execution=config.execution,
        pdt=config.pdt,
        futures=config.futures,
        option_model=config.option_model,
        corporate_actions=config.corporate_actions,
        start_step=start_step,
        account=config.account,
        queued=queued,
        fx=(config.fx or FxConfig()).setup(config.currency),
        hold_early_commands=config.paper is not None and config.paper.hold_early_commands,
    )


def check_listing_calendar(config: BacktestConfig, panel: Panel, start_step: int) -> None:
    """Raise ``CalendarNotCovered`` before a journal opens when the run would count an
    A-share's first sessions after listing (its price band, ``cn_instrument_limits``) on a day
    the XSHG calendar does not know, with the data set's own holidays (``Panel.holidays``).
    Before, the run wrote its journal and stopped there, mid-run. Only the days the bands are
    counted on are asked: a set whose bars run past the calendar without a listing in them
    runs as before."""
    days: list[int] = panel.day[start_step:].tolist()
    if len(days) == 0:
        return
    for instrument in panel.instruments:
        if not is_cn_a_share(instrument):
            continue
        asked = listing_sessions_asked(instrument.listing_day, days)
        if asked is None:
            continue
        try:
            check_covered("XSHG", asked, holidays=panel.holidays)
        except CalendarNotCovered as error:
            raise CalendarNotCovered(
                f"{config.run_id}: {instrument.symbol} lists on {instrument.listing_day}, and its price "
                f"band in its first sessions is counted in XSHG sessions up to {asked}; {error.reason}",
                error.hint,
            ) from None


def run_panel(
    config: BacktestConfig, *, expected_hash: str | None = None, loaded: Panel | None = None
) -> tuple[Panel, int]:
    """The panel a run steps over, loaded from its data set (checking its hash) unless
    ``loaded`` is given, and the first step it trades: the data set's bars up to the window's
    last day, or a paper run's history and, after it, its live steps (empty until their bars
    arrive, ``paper_panel``)."""
    panel = loaded if loaded is not None else load_panel(Path(config.dataset), expected_hash=expected_hash)[0]
    panel, start_step = windowed(config, panel)
    if config.paper is not None:
        panel = paper_panel(config, panel)
        start_step = int(np.searchsorted(panel.ts_ns, config.paper.span_ns()[0], side="left"))
    return panel, start_step


def paper_panel(config: BacktestConfig, history: Panel) -> Panel:
    """The data set's bars before ``paper.start`` (the history) and, after them, the paper run's
    live steps on the data set's calendar and frequency."""
    assert config.paper is not None
    if config.paper.start == "now":
        raise KernelError(f"{config.run_id}: paper.start is not resolved (tape paper sets the time)")
    start_ns, end_ns = config.paper.span_ns()
    manifest = read_manifest(Path(config.dataset))
    calendar, frequency = str(manifest["calendar"]), str(manifest["frequency"])
    kept = int(np.searchsorted(history.ts_ns, start_ns, side="left"))  # bars from start on arrive live
    if kept == 0:
        raise KernelError(
            f"{config.run_id}: the data set has no bar before paper.start ({config.paper.start})"
        )
    history = history.head(kept)
    last = int(history.ts_ns[-1])
    try:
        ts, day = step_grid(calendar, frequency, max(start_ns, last + 1), end_ns, history.holidays)
    except ValueError as error:
        raise KernelError(f"{config.run_id}: {error}") from None
    if ts.size == 0:
        raise KernelError(
            f"{config.run_id}: no {frequency} step of {calendar} between paper.start and paper.end "
            "after the data set's last bar"
        )
    return history.extended(ts, day)


def windowed(config: BacktestConfig, panel: Panel) -> tuple[Panel, int]:
    """The panel up to the window's last day, and the first step it trades."""
    if config.window is None:
        return panel, 0
    first, last = config.window.days()
    end = int(np.searchsorted(panel.day, last, side="right")) if last else panel.steps
    start = int(np.searchsorted(panel.day, first, side="left")) if first else 0
    if start >= end:
        raise KernelError(
            f"{config.run_id}: the window {config.window.start or '...'} to {config.window.end or '...'} "
            f"holds no session of the data set "
            f"({_iso_day(int(panel.day[0]))} to {_iso_day(int(panel.day[-1]))})"
        )
    return panel.head(end), start


def window_notice(config: BacktestConfig, panel: Panel) -> str | None:
    """One line saying that the ``[window]`` reaches past the data set (``panel``: all of it,
    before ``windowed`` cuts it), so the run trades only the sessions the data has; None for a
    window within the data, or none. A window holding no session at all is ``windowed``'s to
    refuse."""
    if config.window is None or panel.steps == 0:
        return None
    first, last = config.window.days()
    data_first, data_last = int(panel.day[0]), int(panel.day[-1])
    if not ((first and first < data_first) or (last and last > data_last)):
        return None
    start = int(np.searchsorted(panel.day, first, side="left")) if first else 0
    end = int(np.searchsorted(panel.day, last, side="right")) if last else panel.steps
    if start >= end:
        return None
    return (
        f"{config.run_id}: the window {config.window.start or '...'} to {config.window.end or '...'} "
        f"is wider than the data set ({_iso_day(data_first)} to {_iso_day(data_last)}): the run trades "
        f"{_iso_day(int(panel.day[start]))} to {_iso_day(int(panel.day[end - 1]))}"
    )


def _idle_notice(config: BacktestConfig, strategy_id: str) -> str:
    """One line saying that a strategy's schedule has no step in the run: it never decides."""
    where = "the window" if config.window is not None else "the data set"
    return (
        f"{config.run_id}: strategy {strategy_id}'s schedule has no step in {where}: it never "
        "decides (is an indicator's warm-up longer than the data?)"
    )


def _supersede_notice(config: BacktestConfig) -> str:
    """One line saying that a book of several markets cancels across them: under ``[execution]
    supersede = "all"`` (the default, how runs behaved before the setting) a decision at one
    market's close cancels the working orders another market has not had a session to fill."""
    return (
        f"{config.run_id}: the data set trades on several calendars and [execution] supersede = "
        '"all": each decision cancels its strategy\'s working orders in every market, those of the '
        'names it gives no view on (NaN) included; set supersede = "named" to keep them '
        '(docs/strategy_sdk.md, "Targets")'
    )


def _iso_day(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


def _venue(config: BacktestConfig, panel: Panel, replaying: bool) -> VenuePort:
    venue = config.venue
    if venue.kind == "sim":
        return SimVenue(panel, config.fill)
    if venue.kind in ("live", "paper"):  # the edge turns sending on once it is connected
        return OutboxVenue(pending_max=venue.pending_max, sending=False)
    try:
        messages = [] if replaying else read_recording(Path(venue.recording))
        return RecordedVenue(panel, messages, pending_max=venue.pending_max)
    except RecordingError as error:
        raise KernelError(f"{config.run_id}: {error}") from None


def refuse_used_journal(journal: Journal, path: Path | str) -> None:
    """A run journals into an empty journal only: raise ``JournalError`` naming what ``path``
    holds. A run that never finished (stopped or crashed part-way) is not carried on, since a
    backtest derives the same records again from the start; the refusal says how to run again."""
    records = len(journal)
    if not records:
        return
    if run_status(journal).finished:
        raise JournalError(f"{path} already holds {records} records; choose a new journal path")
    raise JournalError(
        f"{path} already holds {records} records of a run that never finished (stopped or crashed "
        f"part-way); a backtest starts again from its first step: remove it (rm -r {path}) or "
        "choose a new journal path (--journal)"
    )


def journal_inputs(journal: Journal, config: BacktestConfig, ref: DatasetRef, panel: Panel) -> None:
    """A run's first two records, its inputs: the configuration and the data set it reads."""
    ts0 = int(panel.ts_ns[0])
    journal.append(
        RunStarted(
            ts_ns=ts0,
            run_id=config.run_id,
            seed=config.seed,
            engine_version=ENGINE_VERSION,
            config_json=config.journaled_json(panel),
        )
    )
    journal.append(
        DatasetReferenced(
            ts_ns=ts0,
            uri=config.dataset,
            content_hash=ref.content_hash,
            frequency=ref.frequency,
            calendar=ref.calendar,
            steps=panel.steps,
            instruments=len(panel.instruments),
            first_ts_ns=ts0,
            last_ts_ns=int(panel.ts_ns[-1]),
        )
    )


def run_backtest(
    config: BacktestConfig,
    strategy: Strategy | Sequence[Strategy],
    *,
    progress: Callable[[int, int], None] | None = None,
    on_append: Callable[[Event], None] | None = None,
    in_memory: bool = False,
    loaded: Panel | None = None,
    notice: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Run one backtest into a new journal. An existing, non-empty journal is never overwritten.
    ``on_append`` sees each event as it is journaled (``sim.metrics.RunFold``); ``in_memory``
    keeps the journal in this process only (``kernel.store.memory_journal``): the same records
    and chain head, nothing written at ``config.journal``; ``loaded``: the data set's panel,
    already read with the hash its manifest states now (``build_setup``); ``progress(done,
    total)``: the steps it trades so far, of all it trades (a ``[window]``'s, not the data set's);
    ``notice(line)``: told, before the run, of a ``[window]`` wider than the data set
    (``window_notice``)."""
    ref = dataset_ref(Path(config.dataset))
    if notice is not None and config.window is not None:
        if loaded is None:  # the whole data set, to say where it ends (build_setup cuts it)
            loaded = load_panel(Path(config.dataset), expected_hash=ref.content_hash)[0]
        said = window_notice(config, loaded)
        if said is not None:
            notice(said)
    setup = build_setup(config, strategy, expected_hash=ref.content_hash, loaded=loaded)
    panel = setup.panel
    created = not in_memory and not Path(config.journal).exists()
    if in_memory:
        journal = memory_journal(on_append)
    else:
        journal = open_journal(
            config.journal, backend=config.journal_backend, writable=True, on_append=on_append
        )
    refused = False  # before its first record: the journal this call created is removed
    try:
        refuse_used_journal(journal, config.journal)
        kernel = Kernel(setup, journal)  # its refusals (a schedule, a currency) before any record
        if notice is not None:
            for sid in kernel.idle_strategies(setup.start_step):
                notice(_idle_notice(config, sid))
            if ref.calendar == "mixed" and config.execution.supersede == "all":
                notice(_supersede_notice(config))
        journal_inputs(journal, config, ref, panel)
        kernel.begin()
        start, span = setup.start_step, panel.steps - setup.start_step
        kernel.run(start, progress=None if progress is None else lambda done: progress(done - start, span))
        kernel.finish()
        journal.commit()
        nav = kernel.nav_minor(panel.steps - 1)
        return BacktestResult(Path(config.journal), len(journal), journal.last_hash.hex(), nav, panel.steps)
    except Exception:  # a refusal; a stop (a signal) keeps what is there, as a stop mid-run does
        # before its first record, not its first commit: a strategy refused at step 5 leaves
        # the records it appended (committed by close) as an unfinished run
        refused = created and journal.next_seq == 0
        raise
    finally:
        journal.close()
        if refused:  # a refusal (a currency without rates, a schedule) leaves no empty journal
            remove_journal(config.journal)
