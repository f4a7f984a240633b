"""One line of text per journal event, money and prices formatted from their fixed-point
values (the screens' tables), and the full decoded event (the why-chain's detail pane)."""

from __future__ import annotations

import msgspec

from domain.events import (
    CashAdopted,
    DayClosed,
    Event,
    FeeTakenInKind,
    LedgerPosted,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PositionAdopted,
    RiskVerdict,
    StateSnapshotted,
    TargetsDecided,
)
from domain.instruments import Instrument
from tui.format import decimal, money, pct_e8

__all__ = ["describe", "event_fields", "full_text", "instrument_ids_of", "side_text", "verdict_text"]

_SIDES = {1: "buy", -1: "sell"}


def side_text(side: int) -> str:
    return _SIDES.get(side, str(side))


def _symbol(instruments: dict[int, Instrument], instrument_id: int) -> str:
    inst = instruments.get(instrument_id)
    return inst.symbol if inst is not None else f"#{instrument_id}"


def _px(instruments: dict[int, Instrument], instrument_id: int, px_raw: int) -> str:
    inst = instruments.get(instrument_id)
    return decimal(px_raw, inst.price_digits) if inst is not None else str(px_raw)


def _qty(instruments: dict[int, Instrument], instrument_id: int, qty_raw: int) -> str:
    inst = instruments.get(instrument_id)
    return decimal(qty_raw, inst.qty_digits) if inst is not None else str(qty_raw)


def verdict_text(event: RiskVerdict) -> str:
    """``rule action: observed -> after (limit L)`` in the verdict's unit."""
    if event.unit == "e8_nav":
        observed, after, limit = pct_e8(event.observed), pct_e8(event.observed_after), pct_e8(event.limit)
    else:
        observed, after, limit = (
            f"{value:,}" for value in (event.observed, event.observed_after, event.limit)
        )
    text = f"{event.rule} {event.action}: {observed}"
    if event.observed_after not in (-1, event.observed):
        text += f" -> {after}"
    text += f" (limit {limit}, {event.unit})"
    return text + (f" {event.detail}" if event.detail else "")


def describe(event: Event, instruments: dict[int, Instrument], currency: str) -> str:
    """A compact line for tables; unknown kinds fall back to their fields."""
    holding = _holding_change(event, instruments)
    if holding is not None:
        return holding
    if isinstance(event, OrderSubmitted):
        iid = event.instrument_id
        return (
            f"{event.order_id} {side_text(event.side)} {_qty(instruments, iid, event.qty_raw)} "
            f"{_symbol(instruments, iid)} {event.order_type} "
            f"@decision {_px(instruments, iid, event.decision_px_raw)} ({event.strategy_id})"
        )
    if isinstance(event, OrderFilled):
        iid, ccy = event.instrument_id, event.currency
        return (
            f"{event.order_id} {side_text(event.side)} {_qty(instruments, iid, event.fill_qty_raw)} "
            f"{_symbol(instruments, iid)} @ {_px(instruments, iid, event.fill_px_raw)}"
            f" = {money(event.notional_minor, ccy)}, fee {money(event.commission_minor, ccy)}"
        )
    if isinstance(event, OrderRejected):
        return f"{event.order_id} rejected: {event.reason}"
    if isinstance(event, RiskVerdict):
        return f"step {event.step} {verdict_text(event)}"
    if isinstance(event, TargetsDecided):
        weights = ", ".join(
            f"{_symbol(instruments, iid)} {pct_e8(w)}"
            for iid, w in zip(event.instrument_ids, event.weights_e8, strict=True)
        )
        return f"{event.strategy_id} step {event.step} targets: {weights or '(none)'}"
    if isinstance(event, DayClosed):
        ccy = event.currency
        return (
            f"day {event.day} NAV {money(event.nav_minor, ccy)} cash "
            f"{money(event.cash_minor, ccy)} gross {money(event.gross_exposure_minor, ccy)}"
        )
    if isinstance(event, LedgerPosted):
        return f"{event.txn_id} {event.memo} ({len(event.postings)} postings)"
    if isinstance(event, StateSnapshotted):
        snapshot = event.snapshot
        return (
            f"day {event.day}: {len(snapshot.positions)} positions, {len(snapshot.open_orders)} open orders"
        )
    return ", ".join(f"{key}={value}" for key, value in event_fields(event) if key != "ts_ns")


def _holding_change(event: Event, instruments: dict[int, Instrument]) -> str | None:
    """A holding changed without a fill: a fee in kind, a position or cash adopted."""
    if isinstance(event, FeeTakenInKind):
        iid, ccy = event.instrument_id, event.currency
        return (
            f"{event.order_id} fee in kind {_qty(instruments, iid, event.qty_raw)} "
            f"{_symbol(instruments, iid)} @ {_px(instruments, iid, event.px_raw)}"
            f" = {money(event.value_minor, ccy)}"
        )
    if isinstance(event, PositionAdopted):
        iid, ccy = event.instrument_id, event.currency
        return (
            f"adopted from {event.venue}: {_qty(instruments, iid, event.qty_raw)} "
            f"{_symbol(instruments, iid)} @ {_px(instruments, iid, event.px_raw)}"
            f" = {money(event.value_minor, ccy)}"
        )
    if isinstance(event, CashAdopted):
        return f"adopted from {event.venue}: cash {money(event.amount_minor, event.currency)}"
    return None


def event_fields(event: Event) -> list[tuple[str, object]]:
    """Every field of the decoded event, in declaration order."""
    return [(name, getattr(event, name)) for name in event.__struct_fields__]


def instrument_ids_of(event: Event) -> set[int]:
    """The instruments an event names (for the journal tail's instrument filter)."""
    ids: set[int] = set()
    single = getattr(event, "instrument_id", None)
    if isinstance(single, int):
        ids.add(single)
    many = getattr(event, "instrument_ids", None)
    if isinstance(many, list):
        ids.update(many)
    return ids


def full_text(event: Event) -> str:
    """The decoded event as ``field: value`` lines (the why-chain's detail)."""
    return "\n".join(f"{name}: {value!r}" for name, value in msgspec.structs.asdict(event).items())
