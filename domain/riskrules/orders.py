"""Pre-trade order rules over the step's sized orders: price band, quantity, notional.

Runs after ``evaluate_intent`` and the kernel's lot sizing, in the fixed order
``ORDER_RULE_ORDER``. Orders are signed quantity deltas; an order rule only ever shrinks an order
toward zero (or rejects it), so it never adds risk to the current book. A risk-reducing order
clipped here leaves the book between its current and its target weights (the next step carries on).

Numbers that may exceed int64 (``qty x notional``) are computed with Python integers on the
breaching orders only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from domain.fixed import RATE_SCALE, Rounding, div_round, floor_to_lot
from domain.riskrules.policy import OrderLimit, PriceBand, RiskPolicy, RuleAction
from domain.riskrules.pretrade import RuleVerdict

__all__ = [
    "ORDER_RULE_ORDER",
    "OrderBatch",
    "OrderCheckResult",
    "band_allowance_raw",
    "evaluate_orders",
    "make_orders",
]

IntArray = npt.NDArray[np.int64]

ORDER_RULE_ORDER = ("price_band", "order_qty", "order_notional")


class OrderBatch(NamedTuple):
    instrument_ids: IntArray
    qty_raw: IntArray  # signed: + buy, - sell
    notional_minor: IntArray  # |qty| x px x multiplier in minor units (>= 0)
    px_raw: IntArray  # limit (or decision) price
    last_px_raw: IntArray  # last traded price; <= 0 = none (the band cannot apply)
    lot_raw: IntArray


class OrderCheckResult(NamedTuple):
    qty_raw: IntArray
    px_raw: IntArray
    notional_minor: IntArray
    verdicts: list[RuleVerdict]


def make_orders(
    instrument_ids: object,
    qty_raw: object,
    notional_minor: object,
    px_raw: object,
    last_px_raw: object,
    lot_raw: object,
) -> OrderBatch:
    arrays = [
        np.ascontiguousarray(a, dtype=np.int64)
        for a in (instrument_ids, qty_raw, notional_minor, px_raw, last_px_raw, lot_raw)
    ]
    names = OrderBatch._fields
    length = arrays[0].shape[0]
    for name, array in zip(names, arrays, strict=True):
        if array.shape != (length,):
            raise ValueError(f"{name}: shape {array.shape} != ({length},)")
    batch = OrderBatch(*arrays)
    if length and int(batch.notional_minor.min()) < 0:
        raise ValueError("notional_minor: must be >= 0")
    if length and int(batch.lot_raw.min()) <= 0:
        raise ValueError("lot_raw: must be positive")
    if length and int(batch.px_raw[batch.qty_raw != 0].min(initial=1)) <= 0:
        raise ValueError("px_raw: orders need a positive price")
    return batch


def band_allowance_raw(last_px_raw: IntArray, band_e8: int) -> IntArray:
    """``floor(last x band / 1e8)`` exactly, split so that no product leaves int64."""
    whole, part = np.divmod(last_px_raw, RATE_SCALE)
    result: IntArray = whole * band_e8 + (part * band_e8) // RATE_SCALE
    return result


def _verdict(
    rule: str, action: str, unit: str, limit: int, before: int, after: int, ids: list[int], detail: str = ""
) -> RuleVerdict:
    return RuleVerdict(
        rule=rule,
        action=action,
        unit=unit,
        limit=limit,
        observed=before,
        observed_after=after,
        instrument_ids=ids,
        detail=detail,
    )


def _rescaled_notional(notional: int, qty_new: int, qty_old: int) -> int:
    """Notional of the shrunk order, rounded up (never understated)."""
    return div_round(notional * abs(qty_new), abs(qty_old), Rounding.CEILING) if qty_new else 0


def _deviation_e8(px: int, last: int) -> int:
    return div_round(abs(px - last) * RATE_SCALE, last, Rounding.CEILING)


def _price_band(
    batch: OrderBatch, qty: IntArray, px: IntArray, notional: IntArray, band: PriceBand
) -> RuleVerdict:
    if band.band_e8 == 0:
        return _verdict("price_band", "pass", "e8_price", 0, 0, 0, [], "disabled")
    last = batch.last_px_raw
    allowance = band_allowance_raw(np.maximum(last, 0), band.band_e8)
    priced = (last > 0) & (qty != 0)
    deviation = np.abs(px - last)
    breach = np.flatnonzero(priced & (deviation > allowance))
    worst = 0
    if priced.any():
        ratio = np.where(priced, deviation / np.where(priced, last, 1), 0.0)
        at = int(np.argmax(ratio))
        worst = _deviation_e8(int(px[at]), int(last[at]))
    if breach.shape[0] == 0:
        return _verdict("price_band", "pass", "e8_price", band.band_e8, worst, worst, [])
    for i in breach.tolist():
        if band.action is RuleAction.REJECT:
            qty[i], notional[i] = 0, 0
            continue
        low, high = int(last[i] - allowance[i]), int(last[i] + allowance[i])
        clipped = min(max(int(px[i]), low), high)
        notional[i] = div_round(int(notional[i]) * clipped, int(px[i]), Rounding.CEILING)
        px[i] = clipped
    after = max((_deviation_e8(int(px[i]), int(last[i])) for i in breach.tolist() if qty[i]), default=0)
    ids = batch.instrument_ids[breach].tolist()
    return _verdict("price_band", band.action.value, "e8_price", band.band_e8, worst, after, ids)


def _order_qty(batch: OrderBatch, qty: IntArray, notional: IntArray, rule: OrderLimit) -> RuleVerdict:
    before = int(np.abs(qty).max(initial=0))
    if rule.limit == 0 or before <= rule.limit:
        detail = "disabled" if rule.limit == 0 else ""
        return _verdict("order_qty", "pass", "qty_raw", rule.limit, before, before, [], detail)
    breach = np.flatnonzero(np.abs(qty) > rule.limit)
    for i in breach.tolist():
        old = int(qty[i])
        new = 0
        if rule.action is RuleAction.CLIP:
            new = floor_to_lot(rule.limit, int(batch.lot_raw[i])) * (1 if old > 0 else -1)
        notional[i] = _rescaled_notional(int(notional[i]), new, old)
        qty[i] = new
    after = int(np.abs(qty).max(initial=0))
    ids = batch.instrument_ids[breach].tolist()
    return _verdict("order_qty", rule.action.value, "qty_raw", rule.limit, before, after, ids)


def _order_notional(batch: OrderBatch, qty: IntArray, notional: IntArray, rule: OrderLimit) -> RuleVerdict:
    before = int(notional.max(initial=0))
    if rule.limit == 0 or before <= rule.limit:
        detail = "disabled" if rule.limit == 0 else ""
        return _verdict("order_notional", "pass", "minor", rule.limit, before, before, [], detail)
    breach = np.flatnonzero(notional > rule.limit)
    for i in breach.tolist():
        old, value = int(qty[i]), int(notional[i])
        new = 0
        if rule.action is RuleAction.CLIP:
            fitting = div_round(abs(old) * rule.limit, value, Rounding.FLOOR)
            new = floor_to_lot(fitting, int(batch.lot_raw[i])) * (1 if old > 0 else -1)
        notional[i] = _rescaled_notional(value, new, old)
        qty[i] = new
    after = int(notional.max(initial=0))
    ids = batch.instrument_ids[breach].tolist()
    return _verdict("order_notional", rule.action.value, "minor", rule.limit, before, after, ids)


def evaluate_orders(batch: OrderBatch, policy: RiskPolicy) -> OrderCheckResult:
    """Order rules in ``ORDER_RULE_ORDER``; one verdict per rule. Inputs are not mutated."""
    qty = batch.qty_raw.copy()
    px = batch.px_raw.copy()
    notional = batch.notional_minor.copy()
    verdicts = [
        _price_band(batch, qty, px, notional, policy.price_band),
        _order_qty(batch, qty, notional, policy.order_qty),
        _order_notional(batch, qty, notional, policy.order_notional),
    ]
    assert bool(np.all(np.abs(qty) <= np.abs(batch.qty_raw)))
    assert bool(np.all(np.sign(qty) * np.sign(batch.qty_raw) >= 0)), "an order rule flipped a side"
    return OrderCheckResult(qty, px, notional, verdicts)
