"""Parent orders from target deltas, and their child slice schedules in whole lots.

TWAP spreads a parent evenly over N slices of a window, VWAP along a volume profile, POV follows
a participation rate of the volume observed so far. All three allocate whole lots by cumulative
floors (``floor(total x cumulative share)``), so the slices always sum to the parent exactly, and
then merge slices below the venue's minimum notional into the next one (the remainder joins the
last slice). Pure integer arithmetic; times are arguments.
"""

from __future__ import annotations

import msgspec
import numpy as np
import numpy.typing as npt

from domain.fixed import RATE_SCALE, Rounding, div_round

__all__ = [
    "ParentOrder",
    "Slice",
    "SliceRules",
    "allocate_lots",
    "parents_from_deltas",
    "pov_child_qty",
    "pov_schedule",
    "twap_schedule",
    "vwap_schedule",
]

IntArray = npt.NDArray[np.int64]


class ParentOrder(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    parent_id: str
    strategy_id: str
    instrument_id: int
    side: int  # +1 buy, -1 sell
    qty_raw: int  # > 0, whole lots
    decision_px_raw: int
    algo: str  # "twap" | "vwap" | "pov" | "market"


class Slice(msgspec.Struct, frozen=True, array_like=True):
    ts_ns: int
    qty_raw: int


class SliceRules(msgspec.Struct, frozen=True, kw_only=True):
    """Venue facts for one instrument: lot size, and the notional of one lot at the reference
    price with the venue's minimum order notional (both minor units; 0 = no minimum)."""

    lot_raw: int
    lot_notional_minor: int
    min_notional_minor: int = 0

    def min_lots(self) -> int:
        if self.min_notional_minor <= 0 or self.lot_notional_minor <= 0:
            return 1
        return max(1, div_round(self.min_notional_minor, self.lot_notional_minor, Rounding.CEILING))


def parents_from_deltas(
    strategy_id: str,
    day: int,
    counter_start: int,
    instrument_ids: list[int],
    delta_qty_raw: list[int],
    decision_px_raw: list[int],
    algo: str,
) -> tuple[list[ParentOrder], int]:
    """One parent per non-zero delta (ids ``{strategy}-{day}-P{n}``); returns the next counter."""
    parents: list[ParentOrder] = []
    counter = counter_start
    rows = zip(instrument_ids, delta_qty_raw, decision_px_raw, strict=True)
    for iid, delta, px in sorted(rows, key=lambda row: (row[1] > 0, row[0])):  # sells first
        if delta == 0:
            continue
        parent_id = f"{strategy_id}-{day}-P{counter}"
        counter += 1
        parents.append(
            ParentOrder(
                parent_id=parent_id,
                strategy_id=strategy_id,
                instrument_id=iid,
                side=1 if delta > 0 else -1,
                qty_raw=abs(delta),
                decision_px_raw=px,
                algo=algo,
            )
        )
    return parents, counter


def allocate_lots(total_lots: int, weights: IntArray, min_lots: int) -> IntArray:
    """Lots per bin proportional to non-negative integer ``weights``; bins below ``min_lots`` carry
    into the next bin, the carry at the end joins the last non-empty bin. Sums to ``total_lots``."""
    weights = np.asarray(weights, dtype=np.int64)
    if weights.ndim != 1 or weights.shape[0] == 0:
        raise ValueError("weights: expected a non-empty 1-d array")
    if int(weights.min()) < 0:
        raise ValueError("weights: must be >= 0")
    total_weight = int(weights.sum())
    if total_weight == 0:
        weights = np.ones_like(weights)
        total_weight = int(weights.shape[0])
    cumulative = [total_lots * int(c) // total_weight for c in np.cumsum(weights).tolist()]
    result = np.zeros(weights.shape[0], dtype=np.int64)
    carry, previous, last = 0, 0, -1
    for k, reached in enumerate(cumulative):
        carry += reached - previous
        previous = reached
        if carry >= min_lots:
            result[k], carry, last = carry, 0, k
    if carry:
        result[last if last >= 0 else weights.shape[0] - 1] += carry
    assert int(result.sum()) == total_lots
    return result


def _slices(times_ns: list[int], lots: IntArray, lot_raw: int) -> list[Slice]:
    return [Slice(ts, n * lot_raw) for ts, n in zip(times_ns, lots.tolist(), strict=True) if n]


def _whole_lots(qty_raw: int, rules: SliceRules) -> int:
    if qty_raw <= 0 or qty_raw % rules.lot_raw:
        raise ValueError(
            f"parent quantity {qty_raw} must be a positive whole number of lots of {rules.lot_raw}"
        )
    return qty_raw // rules.lot_raw


def twap_schedule(qty_raw: int, rules: SliceRules, start_ns: int, end_ns: int, slices: int) -> list[Slice]:
    """``slices`` equal slices at ``start + k x (end - start) / slices``; empty if the whole parent
    is below the venue minimum notional (nothing sendable)."""
    if slices <= 0 or end_ns < start_ns:
        raise ValueError("twap: need slices > 0 and end_ns >= start_ns")
    lots = _whole_lots(qty_raw, rules)
    if lots < rules.min_lots():
        return []
    times = [start_ns + (end_ns - start_ns) * k // slices for k in range(slices)]
    return _slices(
        times, allocate_lots(lots, np.ones(slices, dtype=np.int64), rules.min_lots()), rules.lot_raw
    )


def vwap_schedule(
    qty_raw: int, rules: SliceRules, bin_ts_ns: list[int], volume_profile: IntArray
) -> list[Slice]:
    """Slices at the bins' times in proportion to the (historical) volume profile."""
    profile = np.asarray(volume_profile, dtype=np.int64)
    if len(bin_ts_ns) != profile.shape[0]:
        raise ValueError("vwap: one timestamp per profile bin")
    lots = _whole_lots(qty_raw, rules)
    if lots < rules.min_lots():
        return []
    return _slices(list(bin_ts_ns), allocate_lots(lots, profile, rules.min_lots()), rules.lot_raw)


def pov_child_qty(
    remaining_raw: int, observed_volume_raw: int, participation_e8: int, rules: SliceRules
) -> int:
    """The next POV child: ``participation x observed volume`` in whole lots, at most what remains;
    0 while below the venue minimum (the caller keeps accumulating observed volume)."""
    if not 0 < participation_e8 <= RATE_SCALE:
        raise ValueError("pov: participation_e8 must be in (0, 1e8]")
    allowed = observed_volume_raw * participation_e8 // RATE_SCALE
    lots = min(allowed, remaining_raw) // rules.lot_raw
    if lots < rules.min_lots() and lots * rules.lot_raw < remaining_raw:
        return 0
    return lots * rules.lot_raw


def pov_schedule(
    qty_raw: int, rules: SliceRules, bin_ts_ns: list[int], volume_raw: IntArray, participation_e8: int
) -> tuple[list[Slice], int]:
    """POV over observed per-bin volumes (sim / tests): slices plus the quantity left unfilled."""
    remaining = qty_raw
    _whole_lots(qty_raw, rules)
    observed = 0
    slices: list[Slice] = []
    for ts, volume in zip(bin_ts_ns, np.asarray(volume_raw, dtype=np.int64).tolist(), strict=True):
        observed += volume
        child = pov_child_qty(remaining, observed, participation_e8, rules)
        if child:
            slices.append(Slice(ts, child))
            remaining -= child
            observed -= div_round(child * RATE_SCALE, participation_e8, Rounding.CEILING)
        if remaining == 0:
            break
    return slices, remaining
