"""Post-trade execution quality, pure functions over one parent's fills.

Signs: positive is a cost to us (bought above / sold below the reference). Values are in raw
``qty x price`` units of the instrument (convert with ``shortfall_minor``); ratios are 1e-8
(``10_000`` e8 is one basis point).

Implementation shortfall (Perold) against the decision price:
``side x sum(q_i x (p_i - p_decision)) + side x (Q - sum q_i) x (p_close - p_decision)``:
the execution cost of what filled plus the opportunity cost of what did not. The same against the
arrival price (the market when the parent reached the router) isolates the router's own cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from domain.fixed import RATE_SCALE, Rounding, div_round
from domain.instruments import Instrument, notional_minor

__all__ = ["ExecutionQuality", "execution_quality", "shortfall_minor", "summarise"]


class ExecutionQuality(msgspec.Struct, frozen=True, kw_only=True):
    parent_id: str
    side: int
    intended_qty_raw: int
    filled_qty_raw: int
    fill_ratio_e8: int
    avg_fill_px_raw: int  # half-even; 0 without fills
    decision_px_raw: int
    arrival_px_raw: int
    execution_cost_decision_raw: int  # qty x price units
    execution_cost_arrival_raw: int
    opportunity_cost_raw: int  # unfilled x (close - decision), signed as a cost
    shortfall_decision_raw: int  # execution_cost_decision + opportunity_cost
    slippage_arrival_e8: int  # (avg fill - arrival) / arrival, signed as a cost; half-even
    slippage_decision_e8: int


def _ratio_e8(numerator: int, denominator: int) -> int:
    return div_round(numerator * RATE_SCALE, denominator, Rounding.HALF_EVEN) if denominator > 0 else 0


def execution_quality(
    parent_id: str,
    side: int,
    intended_qty_raw: int,
    fill_qty_raw: Sequence[int],
    fill_px_raw: Sequence[int],
    decision_px_raw: int,
    arrival_px_raw: int,
    close_px_raw: int,
) -> ExecutionQuality:
    """Quality of one parent: fills (quantity, price) against decision, arrival and close prices."""
    if side not in (1, -1) or intended_qty_raw <= 0:
        raise ValueError(f"{parent_id}: need side +-1 and intended quantity > 0")
    if len(fill_qty_raw) != len(fill_px_raw) or any(q <= 0 for q in fill_qty_raw):
        raise ValueError(f"{parent_id}: one positive quantity per fill price")
    filled = sum(fill_qty_raw)
    if filled > intended_qty_raw:
        raise ValueError(f"{parent_id}: filled {filled} > intended {intended_qty_raw}")
    value = sum(q * p for q, p in zip(fill_qty_raw, fill_px_raw, strict=True))
    avg = div_round(value, filled, Rounding.HALF_EVEN) if filled else 0
    cost_decision = side * (value - filled * decision_px_raw)
    cost_arrival = side * (value - filled * arrival_px_raw)
    opportunity = side * (intended_qty_raw - filled) * (close_px_raw - decision_px_raw)
    return ExecutionQuality(
        parent_id=parent_id,
        side=side,
        intended_qty_raw=intended_qty_raw,
        filled_qty_raw=filled,
        fill_ratio_e8=_ratio_e8(filled, intended_qty_raw),
        avg_fill_px_raw=avg,
        decision_px_raw=decision_px_raw,
        arrival_px_raw=arrival_px_raw,
        execution_cost_decision_raw=cost_decision,
        execution_cost_arrival_raw=cost_arrival,
        opportunity_cost_raw=opportunity,
        shortfall_decision_raw=cost_decision + opportunity,
        slippage_arrival_e8=_ratio_e8(cost_arrival, filled * arrival_px_raw) if filled else 0,
        slippage_decision_e8=_ratio_e8(cost_decision, filled * decision_px_raw) if filled else 0,
    )


def shortfall_minor(instrument: Instrument, value_raw: int) -> int:
    """A ``qty x price`` raw value in the instrument's currency minor units (half-even)."""
    return notional_minor(instrument, 1, value_raw, Rounding.HALF_EVEN)


def summarise(qualities: Sequence[ExecutionQuality]) -> dict[str, int]:
    """Totals over parents (an order, a strategy, a day): costs add; ratios are quantity- or
    value-weighted (slippage weighted by filled value at the reference price)."""
    intended = sum(q.intended_qty_raw for q in qualities)
    filled = sum(q.filled_qty_raw for q in qualities)
    arrival_value = sum(q.filled_qty_raw * q.arrival_px_raw for q in qualities)
    decision_value = sum(q.filled_qty_raw * q.decision_px_raw for q in qualities)
    cost_arrival = sum(q.execution_cost_arrival_raw for q in qualities)
    cost_decision = sum(q.execution_cost_decision_raw for q in qualities)
    return {
        "parents": len(qualities),
        "fill_ratio_e8": _ratio_e8(filled, intended),
        "shortfall_decision_raw": sum(q.shortfall_decision_raw for q in qualities),
        "execution_cost_arrival_raw": cost_arrival,
        "slippage_arrival_e8": _ratio_e8(cost_arrival, arrival_value),
        "slippage_decision_e8": _ratio_e8(cost_decision, decision_value),
    }
