"""Journal events: frozen, tagged, versioned msgspec Structs decoded through one union.

Events are past tense. ``INPUT_KINDS`` are facts from outside the kernel (the run's
configuration, the data set it reads, later venue messages and operator commands);
everything else is *derived* by the kernel and must replay byte for byte.

All prices, quantities and money are fixed-point integers (see ``domain.fixed``);
weights and rates are integers in units of 1e-8 (``RATE_SCALE``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from domain.instruments import Instrument

__all__ = [
    "ALERT_OPERATION_KINDS",
    "INPUT_KINDS",
    "UPCASTERS",
    "AlertAcknowledged",
    "AlertSilenced",
    "AdoptionReceived",
    "AlertUnsilenced",
    "AnyEvent",
    "BarsReceived",
    "ClockAdvanced",
    "FundingReceived",
    "MarkPriceReceived",
    "CommandReceived",
    "CashAdopted",
    "CorporateActionApplied",
    "DatasetReferenced",
    "DayClosed",
    "Event",
    "InputQuarantined",
    "InstrumentsDefined",
    "KernelSnapshot",
    "KillSwitchCommandRefused",
    "KillSwitchFlattened",
    "KillSwitchRearmed",
    "KillSwitchSnapshot",
    "KillSwitchTripped",
    "LedgerPosted",
    "ModelLoaded",
    "ModelRegistered",
    "OrderAccepted",
    "OrderCancelRequested",
    "OrderCancelled",
    "OrderExpired",
    "OrderFilled",
    "OrderRejected",
    "OrderReplaceRejected",
    "OrderReplaced",
    "OrderSubmitted",
    "OperatorCommanded",
    "PositionAdopted",
    "MarginCalled",
    "InstrumentDelisted",
    "PositionLiquidated",
    "OptionExpired",
    "ParentCreated",
    "ChildDeferred",
    "ParentDone",
    "RouterSnapshot",
    "RouterParentSnapshot",
    "RouterChildSnapshot",
    "RouterBucketSnapshot",
    "PositionSnapshot",
    "OpenOrderSnapshot",
    "PostingRecord",
    "SellableSnapshot",
    "QuoteReceived",
    "RiskVerdict",
    "RunFinished",
    "RightsIssueApplied",
    "RunStarted",
    "SleeveMark",
    "SleeveSnapshot",
    "SleevesMarked",
    "CurrenciesMarked",
    "CurrencyMark",
    "FxConverted",
    "FeeTakenInKind",
    "StateSnapshotted",
    "StrategyCommanded",
    "TaxLotSnapshot",
    "FutureSettled",
    "TargetsDecided",
    "VenueGuardSnapshot",
    "VenueMessage",
    "VenueMessageReceived",
    "VenueReconciled",
    "VenueConnection",
    "VenueHeartbeat",
    "VenueMessageRefused",
    "decode_event",
    "encode_event",
    "encode_event_into",
    "event_kind",
]


class Event(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", forbid_unknown_fields=True, gc=False
):
    """Base of every journaled event. ``ts_ns`` is the event time, UTC nanoseconds.

    ``gc=False``: events are frozen and hold only scalars, strings, lists and other frozen
    structs built before them, so they cannot be part of a reference cycle; leaving them
    out of the cycle collector's tracking saves its passes over the many events a run makes.
    """

    ts_ns: int


# --- inputs -------------------------------------------------------------------------------


class RunStarted(Event, frozen=True, tag="run.started.v1"):
    """First record of every journal: the run's identity, seed and full configuration."""

    run_id: str
    seed: int
    engine_version: str
    config_json: str  # canonical JSON (sorted keys) of the run configuration


class DatasetReferenced(Event, frozen=True, tag="dataset.referenced.v1"):
    """The lake data set the run reads, by content hash. Replay refuses other bytes."""

    uri: str
    content_hash: str
    frequency: str
    calendar: str  # exchange_calendars code (XNYS, XSHG) or 24x7
    steps: int
    instruments: int
    first_ts_ns: int
    last_ts_ns: int


# --- derived: set-up ------------------------------------------------------------------------


class InstrumentsDefined(Event, frozen=True, tag="instruments.defined.v1"):
    instruments: list[Instrument]


# --- derived: decisions and risk -------------------------------------------------------------


class TargetsDecided(Event, frozen=True, tag="strategy.targets_decided.v1"):
    """A strategy's decision: target weights (1e-8) over the named instruments."""

    strategy_id: str
    step: int
    instrument_ids: list[int]
    weights_e8: list[int]


class RiskVerdict(Event, frozen=True, tag="risk.verdict.v2"):
    """One rule's verdict on one decision. ``action`` is pass, clip, scale or reject.

    ``unit`` says what ``limit`` / ``observed`` / ``observed_after`` count: ``e8_nav``
    (portfolio rules, 1e-8 of NAV), ``minor`` (order notional), ``qty_raw`` (order size),
    ``e8_price`` (price band). ``observed`` is the worst measure before the rule acted,
    ``observed_after`` after it (-1: not recorded, in events upcast from v1).
    """

    strategy_id: str
    step: int
    rule: str
    action: str
    unit: str
    limit: int
    observed: int
    observed_after: int
    instrument_ids: list[int] = []
    group_ids: list[int] = []  # breaching sector/country ids; perp or net side 0 long, 1 short
    detail: str = ""


def _risk_verdict_v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """v1 had 1e-8-of-NAV ``limit_e8`` / ``observed_e8`` and no after-measure or groups."""
    raw["kind"] = "risk.verdict.v2"
    raw["unit"] = "e8_nav"
    raw["limit"] = raw.pop("limit_e8")
    raw["observed"] = raw.pop("observed_e8")
    raw["observed_after"] = -1
    return raw


# --- derived: orders ------------------------------------------------------------------------


class OrderSubmitted(Event, frozen=True, tag="order.submitted.v1"):
    order_id: str
    strategy_id: str
    instrument_id: int
    side: int  # +1 buy, -1 sell
    order_type: str  # "market" | "limit"
    qty_raw: int
    limit_px_raw: int  # 0 for market orders
    decision_px_raw: int  # the price the decision was sized at
    parent_id: str = ""  # the router's parent order this child slices ("" = sent directly)


class OrderAccepted(Event, frozen=True, tag="order.accepted.v1"):
    order_id: str


class OrderRejected(Event, frozen=True, tag="order.rejected.v1"):
    order_id: str
    reason: str


class OrderFilled(Event, frozen=True, tag="order.filled.v1"):
    order_id: str
    instrument_id: int
    side: int
    fill_qty_raw: int
    fill_px_raw: int
    leaves_qty_raw: int
    notional_minor: int
    commission_minor: int
    currency: str


class FeeTakenInKind(Event, frozen=True, tag="order.fee_in_kind.v1"):
    """A venue's fee taken out of the holding itself, not paid in cash: Binance spot, without
    BNB, takes a buy's fee in the asset bought. Journaled before the ``OrderFilled`` of the
    trade it belongs to (the venue's ``fee`` message comes first, while the order is open).

    ``qty_raw`` leaves the position (the venue's fee rounded up to the instrument's quantity
    unit, so the book never holds more than the venue); ``value_minor`` is that quantity at
    the fill price ``px_raw`` (half-even), booked as commission. The quantity leaves like a
    sale at that price (``domain.ledger.fee_in_kind_postings``): no cash moves."""

    order_id: str
    instrument_id: int
    qty_raw: int
    px_raw: int
    value_minor: int
    currency: str


class OrderCancelled(Event, frozen=True, tag="order.cancelled.v1"):
    order_id: str
    reason: str


class OrderCancelRequested(Event, frozen=True, tag="order.cancel_requested.v1"):
    """A cancel sent to a venue that answers later (live): the order stays working until the
    venue's ``cancelled`` message (a fill may still come first); a ``cancel_rejected`` ends the
    request."""

    order_id: str
    reason: str


class OrderExpired(Event, frozen=True, tag="order.expired.v1"):
    order_id: str
    reason: str = ""  # e.g. a day order unfilled at the close, and why


class ParentCreated(Event, frozen=True, tag="order.parent_created.v1"):
    """The execution router took one target delta as a parent order and planned its slices.

    ``slices`` are (step, qty_raw) in panel steps; POV plans none (it sizes each child from the
    volume observed since ``step``). The parent works until ``end_step`` at the latest."""

    parent_id: str
    strategy_id: str
    instrument_id: int
    side: int
    qty_raw: int
    decision_px_raw: int
    algo: str  # twap | vwap | pov
    step: int
    end_step: int
    slices: list[tuple[int, int]] = []


class ChildDeferred(Event, frozen=True, tag="order.child_deferred.v1"):
    """A due child the router did not send at ``step`` (e.g. the venue's rate limit); it is
    tried again at ``retry_step``."""

    parent_id: str
    qty_raw: int
    step: int
    retry_step: int
    reason: str


class ParentDone(Event, frozen=True, tag="order.parent_done.v1"):
    """A parent order ended. ``reason``: filled, cancelled (a new decision) or exhausted (its
    schedule ended with quantity unfilled). ``filled_qty_raw`` is the sum of its children's fills."""

    parent_id: str
    qty_raw: int
    filled_qty_raw: int
    children: int
    reason: str
    detail: str = ""


# --- derived: ledger and day boundaries -----------------------------------------------------


class PostingRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    account: str
    currency: str
    amount_minor: int


class LedgerPosted(Event, frozen=True, tag="ledger.posted.v1"):
    """One double-entry transaction; its postings sum to zero per currency."""

    txn_id: str
    memo: str
    postings: list[PostingRecord]


class DayClosed(Event, frozen=True, tag="day.closed.v1"):
    """Mark-to-market at the last step of a trading day."""

    day: int  # YYYYMMDD of the session
    step: int
    nav_minor: int
    cash_minor: int
    gross_exposure_minor: int
    currency: str


class PositionSnapshot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    instrument_id: int
    qty_raw: int
    cost_minor: int


class OpenOrderSnapshot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    order_id: str
    strategy_id: str
    instrument_id: int
    side: int
    order_type: str
    qty_raw: int
    filled_qty_raw: int
    limit_px_raw: int
    status: str
    filled_notional_minor: int = 0
    submitted_ts_ns: int = 0


class SellableSnapshot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    instrument_id: int
    day: int
    holding: int
    bought_today: int
    reserved: int


class KillSwitchSnapshot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``domain.riskrules.KillSwitchState`` as snapshot data (``state`` is its enum value)."""

    state: str
    trigger: str
    reason: str
    since_ts_ns: int
    day: int
    day_start_nav_minor: int
    last_nav_minor: int
    peak_nav_minor: int
    consecutive_rejects: int
    last_data_ts_ns: int


class TaxLotSnapshot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An A-share lot for the dividend tax at the sale: (record_day, amount_minor) received."""

    instrument_id: int
    acquired_day: int
    qty: int
    dividends: list[tuple[int, int]]


class RouterChildSnapshot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    order_id: str
    qty_raw: int
    filled_raw: int
    sent_step: int
    attempt: int
    status: str  # open | closed | rejected
    handled: bool


class RouterParentSnapshot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    parent_id: str
    strategy_id: str
    instrument_id: int
    side: int
    qty_raw: int
    decision_px_raw: int
    algo: str
    start_step: int
    end_step: int
    pending: list[tuple[int, int, int]]  # (step, qty_raw, attempt) of slices not yet sent
    children: list[RouterChildSnapshot]
    observed_raw: int = 0  # POV: volume observed since start
    observed_step: int = 0  # POV: last step whose volume is counted
    sent_raw: int = 0  # POV: child quantity sent so far
    attempt: int = 0  # POV: rejected tries in a row
    hold_until: int = 0  # POV: no child before this step (retry backoff)


class RouterBucketSnapshot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    venue: str
    capacity: int
    refill_interval_ns: int
    tokens: int
    refilled_ts_ns: int


class RouterSnapshot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The execution router's working parents and per-venue token buckets."""

    parent_counter: int
    parents: list[RouterParentSnapshot] = []
    buckets: list[RouterBucketSnapshot] = []


class DayTradeSnapshot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A US PDT day-trade record (``domain.markets.DayTradeRecord``) of a session in the window."""

    day: int
    instrument_id: int
    opening: int
    closing: int
    trades: int
    day_trades: int
    armed: bool


class SleeveSnapshot(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One strategy's share of a multi-strategy book (``kernel.sleeves``)."""

    strategy_id: str
    budget_e8: int
    capital_minor: int
    cash_minor: int
    positions: list[tuple[int, int]]  # (instrument_id, qty_raw), sorted


class KernelSnapshot(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Everything the kernel needs to resume at the next step, sorted for determinism.

    Fields added later have defaults and are left out of the encoding while they hold them
    (``omit_defaults``), so runs that do not use them snapshot the same bytes as before.
    ``sellable`` is always written (``None`` only when decoding snapshots older than it).
    """

    next_step: int
    order_counter: int
    txn_counter: int
    balances: list[PostingRecord]  # account balances; they sum to zero per currency
    positions: list[PositionSnapshot]
    open_orders: list[OpenOrderSnapshot]
    last_targets: list[tuple[int, int]]  # (instrument_id, weight_e8) of the last decision
    sellable: list[SellableSnapshot] | None = None  # T+1 books of A-share instruments
    tax_lots: list[TaxLotSnapshot] = []  # A-share lots for the dividend tax at the sale
    kill_switch: KillSwitchSnapshot | None = None  # None: never observed (a fresh run)
    nav_closes: list[int] = []  # last day-close NAVs kept for volatility targeting
    # The execution router's state; UNSET (absent from the bytes) when no router ever ran, so
    # runs with algo = "market" journal exactly what they did before the router existed.
    router: RouterSnapshot | UnsetType = UNSET
    day_trades: list[DayTradeSnapshot] = []  # US PDT day-trade counter (sessions in the window)
    # An asynchronous venue's sequence guard; UNSET (absent) with a synchronous venue.
    venue_guard: VenueGuardSnapshot | UnsetType = UNSET
    sleeves: list[SleeveSnapshot] = []  # per-strategy books of a multi-strategy run
    # No field may be added here: past 15 fields msgspec writes a map16 header and every
    # snapshot's bytes would change. Later state is a fold of the journal (kernel.replay).


class SleeveMark(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One strategy's part of the book at a day close, in the run's currency (minor units)."""

    strategy_id: str
    capital_minor: int  # the part of the initial capital its budget gave it
    cash_minor: int
    value_minor: int  # its positions' share of the book's position values
    nav_minor: int  # cash + value


class SleevesMarked(Event, frozen=True, tag="book.sleeves_marked.v1"):
    """A multi-strategy book at a day close, per strategy: the sleeves' cash, values and NAVs
    sum exactly to the ``DayClosed`` journaled just before."""

    day: int
    step: int
    currency: str
    sleeves: list[SleeveMark]


class CurrencyMark(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One currency of a book at a day close: its cash and position values in its own minor
    units, the rate into the base used, and its NAV in the base (half-even, ``domain.fx``)."""

    currency: str
    rate_e8: int  # one unit of ``currency`` in the base currency, 1e-8 (the base: 1e8)
    cash_minor: int
    value_minor: int  # positions' values in NAV, in this currency
    nav_minor: int  # cash + value, in this currency
    nav_base_minor: int  # nav_minor in the base currency, half-even


class CurrenciesMarked(Event, frozen=True, tag="book.currencies_marked.v1"):
    """A book of several currencies at a day close, per currency (sorted): the ``nav_base_minor``
    sum exactly to the ``nav_minor`` of the ``DayClosed`` journaled just before, and the
    currencies' cash converted one by one (half-even) sum to its ``cash_minor``. Runs in one
    currency journal no such event."""

    day: int
    step: int
    base: str
    currencies: list[CurrencyMark]


class FxConverted(Event, frozen=True, tag="fx.converted.v1"):
    """An explicit conversion of cash at the day's rates (``[[fx.conversions]]``): the
    ``LedgerPosted`` right after moves ``source_minor`` out of ``source`` cash and
    ``target_minor`` into ``target`` cash, each leg balanced in its own currency against
    ``equity:fx_conversion:{CCY}``. ``target_minor = source_minor x source_rate / target_rate``
    in minor units, one division, half-even."""

    day: int
    step: int
    source: str
    target: str
    source_minor: int
    target_minor: int
    source_rate_e8: int  # both rates into the run's base currency on ``day``
    target_rate_e8: int
    base: str
    note: str


class StateSnapshotted(Event, frozen=True, tag="state.snapshotted.v1"):
    """Day-boundary snapshot: replaying the next day starts from here."""

    day: int
    snapshot: KernelSnapshot


# --- derived: kill switch (state machine in domain.riskrules.killswitch) ---------------------


class OperatorCommanded(Event, frozen=True, tag="killswitch.operator_commanded.v1"):
    """An operator's halt / flatten / rearm (in a backtest: scheduled by the run's config)."""

    command: str  # "halt" | "flatten" | "rearm"
    operator: str
    note: str = ""


class StrategyCommanded(Event, frozen=True, tag="strategy.commanded.v1"):
    """An operator paused or resumed one strategy of the book (in a backtest: scheduled by the
    run's config). A paused strategy takes no decisions; its positions and working orders stay
    as they are until it is resumed."""

    command: str  # "pause" | "resume"
    strategy_id: str
    operator: str
    note: str = ""


class KillSwitchTripped(Event, frozen=True, tag="killswitch.tripped.v1"):
    """The kill switch halted new risk (and, with ``flatten``, closes the book): why, with the numbers."""

    trigger: str  # daily_loss | drawdown | consecutive_rejects | latency | stale_data | operator
    flatten: bool
    limit: int
    observed: int
    reason: str


class KillSwitchFlattened(Event, frozen=True, tag="killswitch.flattened.v1"):
    """The kernel reports the book flat; the switch stays halted."""


class KillSwitchRearmed(Event, frozen=True, tag="killswitch.rearmed.v1"):
    operator: str


class KillSwitchCommandRefused(Event, frozen=True, tag="killswitch.command_refused.v1"):
    command: str
    reason: str


class CorporateActionApplied(Event, frozen=True, tag="corporate_action.applied.v1"):
    """A corporate action applied to a holding at the first step of its ex-date session.

    Quantities are raw; ``split_to / split_from`` the share ratio; ``dividend_minor`` the
    pre-tax cash (``pay_day`` 0: paid on the ex-date, else a receivable until then);
    ``cash_in_lieu_minor`` pays the fraction of a share the ratio leaves (at
    ``prev_close_px_raw x split_from / split_to``, releasing ``released_cost_minor`` of the
    cost basis); ``tax_minor`` the
    dividend tax withheld now and ``tax_note`` why it is what it is.
    """

    instrument_id: int
    ex_day: int
    pay_day: int
    split_to: int
    split_from: int
    cash_e8: int
    qty_before_raw: int
    qty_after_raw: int
    cost_minor: int  # cost basis after the action
    dividend_minor: int
    cash_in_lieu_minor: int = 0
    prev_close_px_raw: int = 0
    released_cost_minor: int = 0
    tax_minor: int = 0
    tax_note: str = ""
    currency: str = ""


class RunFinished(Event, frozen=True, tag="run.finished.v1"):
    steps: int
    nav_minor: int
    currency: str


class PositionLiquidated(Event, frozen=True, tag="position.liquidated.v1"):
    """A perpetual position force-closed because the account's margin balance at the bar's
    adverse extreme fell to or below its maintenance margin (cross margin, all perpetuals).

    ``mark_px_raw`` is the price used for the check and the close; ``margin_balance_minor`` and
    ``maintenance_margin_minor`` are the account's, at those marks; ``fee_minor`` is the
    liquidation fee charged on this position's closing notional.
    """

    step: int
    instrument_id: int
    qty_raw: int  # the signed position closed
    mark_px_raw: int
    margin_balance_minor: int
    maintenance_margin_minor: int
    fee_minor: int
    currency: str
    reason: str  # "PERP_LIQUIDATION: ..." with the numbers


class MarginCalled(Event, frozen=True, tag="margin.called.v1"):
    """A margin account's equity fell below the maintenance margin of its positions at a
    session's close (``kernel/margin.py``). ``equity_minor`` is the NAV; the maintenance and
    initial margins are the sums over the margined positions, each position's maintenance in
    ``maintenance_by_position_minor`` (same order as ``instrument_ids``); ``policy`` is what
    follows: ``"liquidate"`` (the kernel's ``margin_call`` orders cut the positions to what the
    equity margins initially) or ``"halt"`` (the kill switch trips)."""

    day: int
    step: int
    equity_minor: int
    maintenance_minor: int
    initial_minor: int
    currency: str
    policy: str
    instrument_ids: list[int]
    maintenance_by_position_minor: list[int]
    reason: str  # "MARGIN_CALL: equity=..., maintenance=..." with the numbers


class InstrumentDelisted(Event, frozen=True, tag="instrument.delisted.v1"):
    """An instrument's delisting date (the data set's ``delistings.parquet``) reached: journaled
    at the close of its last session (``kernel/delisting.py``), only for data sets that carry
    one. ``qty_raw`` is what the book still holds, marked from here on at ``mark_px_raw`` (its
    last close); ``policy`` the run's ``[account] delisted``; ``note`` says what it did."""

    day: int
    step: int
    instrument_id: int
    last_day: int
    qty_raw: int
    mark_px_raw: int
    policy: str
    note: str


class FutureSettled(Event, frozen=True, tag="future.settled.v1"):
    """A futures position marked to the session's settlement price at its close (daily
    settlement, ``kernel/futures.py``). ``variation_minor = settled_value_minor -
    reference_value_minor`` moved between cash and ``income:variation_margin:{CCY}`` (the
    LedgerPosted right after); the values are ``qty x price x multiplier`` in minor units,
    half-even, and the settled value is the position's new reference."""

    day: int
    instrument_id: int
    qty_raw: int
    settle_px_raw: int
    method: str  # "dataset", "close", "vwap_day" or "vwap_last_minutes=N", as used that day
    reference_value_minor: int  # the position's marked value before (last settlement or fills)
    settled_value_minor: int
    variation_minor: int  # credit to the holder's cash (negative: paid)
    currency: str


# --- amend orders; asynchronous venue messages --------------------------------------------------


class OrderReplaced(Event, frozen=True, tag="order.replaced.v1"):
    """The venue amended a working order: ``qty_raw`` is its new total quantity (filled part
    included, always above the filled quantity), ``prev_qty_raw`` the total it replaces,
    ``limit_px_raw`` its new limit (0: market)."""

    order_id: str
    qty_raw: int
    prev_qty_raw: int
    limit_px_raw: int
    reason: str = ""


class OrderReplaceRejected(Event, frozen=True, tag="order.replace_rejected.v1"):
    """The venue refused to amend a working order; the order works on unchanged."""

    order_id: str
    qty_raw: int  # the total quantity that was asked for
    limit_px_raw: int
    reason: str


class VenueMessage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One message of an asynchronous venue session, numbered by the venue (``venue_seq`` from
    1, no gaps in the venue's own order). ``kind``: ack, reject, fill, cancelled, expired,
    cancel_rejected, replaced, replace_rejected; ``fee``, a fee the venue took out of the asset
    bought (``qty_raw`` of it at ``px_raw``, before the fill it belongs to: ``FeeTakenInKind``);
    or ``sent``, the edge's own note that the order
    left for the venue at ``ts_ns`` (its clock), from which the answer's latency is measured.
    ``qty_raw``: the fill quantity, or a replace's new total; ``commission_minor``: the venue's
    charge for a fill."""

    venue_seq: int
    ts_ns: int
    order_id: str
    kind: str
    qty_raw: int = 0
    px_raw: int = 0
    reason: str = ""
    commission_minor: int = 0


class VenueMessageReceived(Event, frozen=True, tag="venue.message_received.v1"):
    """INPUT: a message an asynchronous venue delivered at ``step``, as received (duplicates and
    out-of-order deliveries included). Replay reads these back instead of asking the venue."""

    step: int
    message: VenueMessage


class VenueMessageRefused(Event, frozen=True, tag="venue.message_refused.v1"):
    """A received venue message that was not applied. ``outcome``: duplicate (its sequence was
    seen), overflow (held past a gap that was already ``pending_max`` long), illegal (the
    order's state does not allow it), overfill (more than the order's open quantity, or a
    replace at or below its filled quantity), unknown_order (no open order of that id)."""

    venue_seq: int
    order_id: str
    message_kind: str
    outcome: str
    detail: str = ""


class VenueGuardSnapshot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The venue sequence guard: next expected sequence and the messages held past a gap."""

    next_seq: int
    held: list[VenueMessage] = []


class OptionExpired(Event, frozen=True, tag="option.expired.v1"):
    """An option position cash-settled at its expiry session's close at intrinsic value
    (``kernel.options``); an ``expiry``-strategy fill at ``settle_px_raw`` follows, so positions,
    fills and the ledger stay one story.

    ``settle_px_raw`` = max(0, S - K) for a call, max(0, K - S) for a put (raw, the option's
    ``price_digits``), S the underlying's close ``underlying_px_raw`` (its own digits) on
    ``day``; ``value_minor`` = signed qty x settle price x multiplier (what the holder receives,
    negative for a short in the money).
    """

    step: int
    instrument_id: int
    expiry_day: int
    day: int
    qty_raw: int  # the signed position settled
    strike_raw: int
    underlying_px_raw: int
    settle_px_raw: int
    value_minor: int
    currency: str


class RightsIssueApplied(Event, frozen=True, tag="corporate_action.rights.v1"):
    """A rights issue on a holding at the first step of its ex-date session, after the
    action's ``CorporateActionApplied`` (a separate event: old journals keep their bytes).

    ``entitlement_raw`` shares were offered (``qty_before_raw x rights_to / rights_from``,
    whole shares toward zero); ``decision`` is the run's ``[corporate_actions] rights``;
    ``subscribed_raw`` were bought for ``paid_minor`` (cash, added to the cost basis, now
    ``cost_minor``), ``lapsed_raw`` were not; ``note`` says why (cash short, lapse chosen).
    """

    instrument_id: int
    ex_day: int
    rights_to: int
    rights_from: int
    rights_price_e8: int
    decision: str  # "lapse" | "subscribe"
    qty_before_raw: int  # the holding the entitlement is computed on (before the ex-date)
    entitlement_raw: int
    subscribed_raw: int
    lapsed_raw: int
    paid_minor: int
    qty_after_raw: int  # the holding after the whole action (split and subscribed rights)
    cost_minor: int  # cost basis after the subscription
    note: str
    currency: str


class BarsReceived(Event, frozen=True, tag="market.bars_received.v1"):
    """One step's bars from a live source (paper, live), journaled as they arrive and before the
    kernel applies them, so a replay needs only the journal. ``ts_ns`` is the step's time (the
    bars' own timestamp on the run's grid); ``received_ns`` is when the edge stamped their
    arrival (0 for a feed without a clock, e.g. a test). Prices and volumes are raw integers at
    each instrument's digits; names without a bar at this step are absent."""

    received_ns: int
    instrument_ids: list[int]
    open_raw: list[int]
    high_raw: list[int]
    low_raw: list[int]
    close_raw: list[int]
    volume_raw: list[int]


class ClockAdvanced(Event, frozen=True, tag="clock.advanced.v1"):
    """The clock of a live source reached ``ts_ns`` and steps of the run's grid up to it passed
    with no bars (a session's close runs although its last bar never came); journaled so a
    replay passes the same steps at the same point."""


class FundingReceived(Event, frozen=True, tag="market.funding_received.v1"):
    """INPUT: a perpetual's funding as its venue settled it, for a live source (paper, live):
    ``ts_ns`` is the funding time, ``rate_e8`` the rate (1e-8) and ``mark_px_raw`` the mark price
    the venue settled at (raw, at the instrument's price digits); ``received_ns`` when the edge
    stamped its arrival. Journaled before the kernel applies it; the kernel books it like a
    backtest's funding row (``kernel.carry``) at the first step at or after ``ts_ns`` not yet run,
    with the venue's mark instead of the bar's close."""

    received_ns: int
    instrument_id: int
    rate_e8: int
    mark_px_raw: int


class MarkPriceReceived(Event, frozen=True, tag="market.mark_price_received.v1"):
    """INPUT: a perpetual's mark price as its venue published it, for a live source (paper,
    live): ``ts_ns`` is the venue's time of the mark, ``mark_px_raw`` the mark (raw, at the
    instrument's price digits), ``received_ns`` when the edge stamped its arrival. Journaled
    before the kernel applies it; from the first step at or after ``ts_ns`` not yet run, the
    kernel values the position at this mark instead of the bar's close (``kernel.marks``)."""

    received_ns: int
    instrument_id: int
    mark_px_raw: int


class CommandReceived(Event, frozen=True, tag="operator.command_received.v1"):
    """An operator's command as it reached a live run (the cockpit, the command line), journaled
    before the kernel applies it at its next step (where the kernel journals its
    ``OperatorCommanded``); ``ts_ns`` is when it arrived."""

    command: str  # "halt" | "flatten" | "rearm" | "pause" | "resume"
    operator: str
    note: str = ""
    strategy_id: str = ""  # the strategy a pause or resume names


class VenueReconciled(Event, frozen=True, tag="venue.reconciled.v1"):
    """INPUT: what a live session found when it compared the venue with its book (on start and
    on every reconnect) and what it did. ``differences`` are readable lines (an asset's balance,
    an order the venue holds that the book does not, an order the book holds that the venue
    never got); ``action`` is the configured policy's answer (``none``, ``resent``,
    ``cancelled_unknown``, ``halted``: a difference no action settled, under ``on_difference =
    "halt"``). It changes no state itself: a halt goes in as a journaled operator command."""

    venue: str
    when: str  # start | resume | reconnect
    orders_checked: int
    fills_recovered: int  # fills the venue reported only when asked (missed by the streams)
    differences: list[str]
    action: str


class VenueConnection(Event, frozen=True, tag="venue.connection.v1"):
    """INPUT: a change in a live session's connection to its venue, as the adapter saw it:
    ``state`` is ``disconnected`` (a stream dropped; it backs off and watches again),
    ``reconciled`` (caught up over REST after a drop), ``polling`` (websockets kept failing:
    REST polling instead) or ``bad_message`` (a venue message that could not be read); from
    IB also ``restored`` (1101 / 1102), ``pacing`` (a request refused for its rate, asked again)
    and ``gave_up`` (reconnects exhausted). ``stream``: ``orders``, ``fills``, ``user`` or
    ``rest``; IB's ``ib-server`` (TWS to IB), ``socket`` (the API socket) or ``ib``. No state
    of the kernel changes; the cockpit and the alert rules read them."""

    venue: str
    stream: str
    state: str
    detail: str = ""


class QuoteReceived(Event, frozen=True, tag="market.quote_received.v1"):
    """INPUT: a venue's best bid and ask for one instrument as a paper session received them
    (``ts_ns``: the edge's clock at arrival; ``venue_ts_ns``: the venue's own time of the quote,
    0 when it gives none). The paper broker (``venues.paper_broker``) fills at them: buys at the
    ask, sells at the bid. No state of the kernel changes; a replay copies them."""

    instrument_id: int
    bid_px_raw: int
    bid_qty_raw: int
    ask_px_raw: int
    ask_qty_raw: int
    venue_ts_ns: int = 0


class VenueHeartbeat(Event, frozen=True, tag="venue.heartbeat.v1"):
    """INPUT: a paper or live session's periodic round trip to its venue (``paper.heartbeat_s``:
    a REST time request), stamped with the edge's clock; ``rtt_ns`` is the round trip as the
    edge timed it, 0 with ``ok`` false when the venue did not answer (``detail`` says why). No
    state of the kernel changes; the ops metrics and the cockpit read them."""

    venue: str
    ok: bool
    rtt_ns: int
    detail: str = ""


class AdoptionReceived(Event, frozen=True, tag="venue.adoption_received.v1"):
    """INPUT: what a reconciliation under ``[live] on_difference = "adopt"`` found the venue to
    hold beyond the book (``when``: start, resume, reconnect), for the book to take on at the
    first step not yet run (``kernel.adoption``): ``positions`` as (instrument id, signed raw
    quantity), ``cash`` as (currency, signed minor units). ``residue`` (asset, signed 1e-8) is
    what stays a difference below those units (dust): not booked, remembered by the session so
    later reconciliations expect it."""

    venue: str
    when: str
    positions: list[tuple[int, int]]
    cash: list[tuple[str, int]]
    residue: list[tuple[str, int]] = []


class PositionAdopted(Event, frozen=True, tag="book.position_adopted.v1"):
    """A position change the book took on from the venue (``AdoptionReceived``) at ``step``:
    ``qty_raw`` (signed) valued at the step's last close ``px_raw`` (``value_minor``, half-even),
    against ``equity:adjustment:{CCY}`` (``domain.ledger.adopted_position_postings``). Its
    ``ledger.posted.v1`` (memo ``adopted VENUE``) follows."""

    step: int
    venue: str
    instrument_id: int
    qty_raw: int
    px_raw: int
    value_minor: int
    currency: str


class CashAdopted(Event, frozen=True, tag="book.cash_adopted.v1"):
    """Cash the book took on from the venue (``AdoptionReceived``) at ``step``: ``amount_minor``
    (signed) in ``currency`` against ``equity:adjustment:{CCY}``; its ``ledger.posted.v1``
    (memo ``adopted VENUE``) follows."""

    step: int
    venue: str
    currency: str
    amount_minor: int


class InputQuarantined(Event, frozen=True, tag="input.quarantined.v1"):
    """An input a source refused (out of order, duplicated, off the run's grid, malformed): kept
    with its reason, never applied, so that received = accepted + quarantined."""

    source: str
    reason: str  # a code: OUT_OF_ORDER, DUPLICATE, OFF_GRID, UNKNOWN_INSTRUMENT, BAD_BAR, ...
    detail: str


# --- models: frozen artifacts registered and loaded ----------------------------------------


class ModelRegistered(Event, frozen=True, tag="model.registered.v1"):
    """A model artifact written to (or found already in) a registry, by content hash
    (``models.ml.registry``). ``ts_ns`` is the end of its training window, so registering
    the same artifact journals the same event; ``created`` is False when it was already
    there."""

    artifact: str  # blake2b-128 of the artifact's files (its folder's name)
    model_kind: str  # "lightgbm" | "torch_mlp"
    model_file: str  # model.txt | model.bin
    model_bytes: int
    feature_names: list[str]
    train_start_ts_ns: int
    train_end_ts_ns: int
    lake_content_hash: str
    rows_hash: str  # blake2b of the training rows
    created: bool


class ModelLoaded(Event, frozen=True, tag="model.loaded.v1"):
    """A strategy of the run loaded a model artifact (its bytes verified against ``artifact``)
    and scored the panel with it, journaled when the run begins. A replay loads the artifact the
    journaled parameters name and re-derives this event: other bytes are refused by the load,
    other predictions (another library build) diverge here with both hashes."""

    strategy_id: str
    artifact: str
    model_kind: str
    predictions_hash: str  # blake2b-128 of the (steps, instruments) float64 predictions
    predictions: int  # how many (step, instrument) cells hold a prediction


# --- alert operations (an alerts journal, never a run's) --------------------------------------


class AlertAcknowledged(Event, frozen=True, tag="alert.acknowledged.v1"):
    """An operator acknowledged a firing alert (its repeats stop), as ``tape alerts ack`` or the
    cockpit's ``a`` recorded it in the alerts journal beside the alert state (docs/operations.md).
    The alert is named by its id in that state and by what fired it (``rule``, ``key``, the
    watched journal's ``fired_seq`` and ``fired_ts_ns``), which a rebuilt state matches;
    ``ts_ns`` is when (wall clock). No kernel reads it."""

    alert_id: int
    rule: str
    key: str
    fired_seq: int
    fired_ts_ns: int
    operator: str
    note: str = ""


class AlertSilenced(Event, frozen=True, tag="alert.silenced.v1"):
    """An operator held back a rule's alerts (``key`` "" every key) until ``until_ns`` (UTC ns);
    its end is in the record, so an expiry journals nothing."""

    silence_id: int
    rule: str
    key: str
    until_ns: int
    reason: str
    operator: str


class AlertUnsilenced(Event, frozen=True, tag="alert.unsilenced.v1"):
    """An operator ended silence ``silence_id`` before its time (``ts_ns``)."""

    silence_id: int
    operator: str


AnyEvent = (
    RunStarted
    | DatasetReferenced
    | InstrumentsDefined
    | TargetsDecided
    | RiskVerdict
    | OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCancelled
    | OrderExpired
    | LedgerPosted
    | DayClosed
    | StateSnapshotted
    | RunFinished
    | OperatorCommanded
    | KillSwitchTripped
    | KillSwitchFlattened
    | KillSwitchRearmed
    | KillSwitchCommandRefused
    | PositionLiquidated
    | CorporateActionApplied
    | ParentCreated
    | ChildDeferred
    | ParentDone
    | FutureSettled
    | MarginCalled
    | InstrumentDelisted
    | OrderReplaced
    | OrderReplaceRejected
    | VenueMessageReceived
    | VenueMessageRefused
    | OptionExpired
    | RightsIssueApplied
    | SleevesMarked
    | CurrenciesMarked
    | FxConverted
    | FeeTakenInKind
    | AdoptionReceived
    | PositionAdopted
    | CashAdopted
    | BarsReceived
    | ClockAdvanced
    | FundingReceived
    | MarkPriceReceived
    | CommandReceived
    | InputQuarantined
    | OrderCancelRequested
    | VenueReconciled
    | VenueConnection
    | QuoteReceived
    | VenueHeartbeat
    | ModelRegistered
    | ModelLoaded
    | StrategyCommanded
    | AlertAcknowledged
    | AlertSilenced
    | AlertUnsilenced
)

ALERT_OPERATION_KINDS = frozenset({"alert.acknowledged.v1", "alert.silenced.v1", "alert.unsilenced.v1"})
"""What an alerts journal holds (``tape alerts ack / silence / unsilence``, the cockpit's ``a``)."""

INPUT_KINDS = frozenset(
    {
        "run.started.v1",
        "dataset.referenced.v1",
        "venue.message_received.v1",
        "market.bars_received.v1",
        "clock.advanced.v1",
        "market.funding_received.v1",
        "market.mark_price_received.v1",
        "operator.command_received.v1",
        "venue.adoption_received.v1",
        "input.quarantined.v1",
        "venue.reconciled.v1",
        "venue.connection.v1",
        "market.quote_received.v1",
        "venue.heartbeat.v1",
    }
)

UPCASTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "risk.verdict.v1": _risk_verdict_v1_to_v2,
}
"""Old tag -> pure function turning its payload (a dict) into the next version's payload.

A schema change adds a new tag (``...v2``) and registers ``UPCASTERS["...v1"]``; the chain
is applied until a current tag is reached, so old journals keep replaying.
"""

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[AnyEvent] = msgspec.msgpack.Decoder(AnyEvent)
_raw_decoder = msgspec.msgpack.Decoder(dict[str, Any])
_KIND_OF: dict[type, str] = {cls: cls.__struct_config__.tag for cls in AnyEvent.__args__}
_CURRENT_KINDS = frozenset(_KIND_OF.values())


def event_kind(event: Event) -> str:
    """The versioned tag of an event, e.g. ``order.filled.v1``."""
    return _KIND_OF[type(event)]


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def encode_event_into(event: Event, buffer: bytearray) -> None:
    """Append ``encode_event(event)`` to ``buffer`` (the same bytes, without a bytes object
    per event); on an error the buffer is left as it was."""
    start = len(buffer)
    try:
        _encoder.encode_into(event, buffer, -1)
    except BaseException:
        del buffer[start:]
        raise


def decode_event(payload: bytes) -> AnyEvent:
    """Decode a journal payload, upcasting older versions to the current one."""
    try:
        return _decoder.decode(payload)
    except msgspec.ValidationError:
        raw = _raw_decoder.decode(payload)
        kind = raw.get("kind")
        if kind in _CURRENT_KINDS or kind not in UPCASTERS:
            raise
    for _ in range(len(UPCASTERS) + 1):
        kind = raw["kind"]
        if kind in _CURRENT_KINDS:
            event: AnyEvent = msgspec.convert(raw, AnyEvent)
            return event
        if kind not in UPCASTERS:
            raise msgspec.ValidationError(f"no upcaster from event kind {kind!r}")
        raw = UPCASTERS[kind](dict(raw))
    raise msgspec.ValidationError(f"upcaster chain does not terminate at {raw['kind']!r}")
