"""The decision pipeline of one step: risk over the whole intent vector, then execution
(weights -> whole-lot orders). Pure functions over plain data; the loop journals results."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from domain.events import RiskVerdict
from domain.fixed import RATE_SCALE, Rounding, div_round
from domain.instruments import Instrument, notional_minor, qty_for_value
from domain.ledger import Position
from domain.risk import RiskLimits, RuleOutcome, check_gross_leverage, check_name_cap

__all__ = ["OrderIntent", "apply_risk", "plan_orders", "reject_unpriced"]


class OrderIntent(msgspec.Struct, frozen=True):
    instrument_id: int
    side: int
    qty_raw: int
    decision_px_raw: int


def reject_unpriced(targets: dict[int, int], prices: dict[int, int]) -> tuple[dict[int, int], RuleOutcome]:
    """Non-zero targets on names that have never traded cannot be sized: reject them."""
    unpriced = [iid for iid, weight in sorted(targets.items()) if weight and prices[iid] <= 0]
    kept = {iid: weight for iid, weight in targets.items() if iid not in unpriced}
    largest = max((abs(targets[iid]) for iid in unpriced), default=0)
    detail = f"{len(unpriced)} names have no price yet" if unpriced else ""
    return kept, RuleOutcome("priced", "reject" if unpriced else "pass", 0, largest, unpriced, detail)


def apply_risk(
    targets: dict[int, int],
    current_weights: dict[int, int],
    limits: RiskLimits,
) -> tuple[dict[int, int], list[RuleOutcome]]:
    """Check the implied full vector (targets over current weights); returns allowed targets.

    Rules run in a fixed order: per-name cap (clip), then gross leverage (scale). Names
    held but not targeted keep their current weight for the gross check and are scaled
    with the rest when the vector is over the limit.
    """
    implied = dict(current_weights)
    implied.update(targets)
    ids = sorted(implied)
    weights = [implied[iid] for iid in ids]
    weights, name_outcome = check_name_cap(ids, weights, limits.name_max_e8)
    weights, gross_outcome = check_gross_leverage(ids, weights, limits.gross_max_e8)
    allowed = dict(zip(ids, weights, strict=True))
    changed = {iid for iid in ids if allowed[iid] != implied[iid]}
    result = {iid: allowed[iid] for iid in ids if iid in targets or iid in changed}
    return result, [name_outcome, gross_outcome]


def verdict_events(
    ts_ns: int, strategy_id: str, step: int, outcomes: Sequence[RuleOutcome]
) -> list[RiskVerdict]:
    return [
        RiskVerdict(
            ts_ns=ts_ns,
            strategy_id=strategy_id,
            step=step,
            rule=o.rule,
            action=o.action,
            limit_e8=o.limit_e8,
            observed_e8=o.observed_e8,
            instrument_ids=o.instrument_ids,
            detail=o.detail,
        )
        for o in outcomes
    ]


def current_weights(
    positions: dict[int, Position], prices: dict[int, int], instruments: dict[int, Instrument], nav_minor: int
) -> dict[int, int]:
    """Signed weights (1e-8 of NAV) of the held positions at the given prices."""
    if nav_minor <= 0:
        return {}
    weights = {}
    for iid, position in sorted(positions.items()):
        value = notional_minor(instruments[iid], position.qty_raw, prices[iid], Rounding.HALF_EVEN)
        weights[iid] = div_round(value * RATE_SCALE, nav_minor, Rounding.HALF_EVEN)
    return weights


def plan_orders(
    targets: dict[int, int],
    positions: dict[int, Position],
    prices: dict[int, int],
    instruments: dict[int, Instrument],
    nav_minor: int,
) -> list[OrderIntent]:
    """Whole-lot orders that move each targeted position to its weight; sells before buys."""
    intents: list[OrderIntent] = []
    for iid in sorted(targets):
        px = prices[iid]
        value = div_round(targets[iid] * max(nav_minor, 0), RATE_SCALE, Rounding.DOWN)
        target_qty = 0
        if value:
            assert px > 0, "targets without a price are rejected by the risk stage"
            target_qty = qty_for_value(instruments[iid], abs(value), px) * (1 if value > 0 else -1)
        delta = target_qty - positions.get(iid, Position()).qty_raw
        if delta:
            intents.append(OrderIntent(iid, 1 if delta > 0 else -1, abs(delta), px))
    intents.sort(key=lambda intent: (intent.side, intent.instrument_id))
    return intents
