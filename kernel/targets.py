"""A strategy's decision as 1e-8 target weights, the unit the risk stage and the journal use.

Weights (floats, fractions of the strategy's capital) become integers half-even. Share counts
(``Shares``) and values (``Notional``) become the weight that, sized back by the order planner
(``kernel.pipeline.plan_orders``: value toward zero, then whole lots toward zero), gives the
same whole-lot position: the value is rounded up in magnitude to the minor unit, and the weight
up in magnitude to 1e-8 of the strategy's capital (for a strategy of several, the kernel's
scaling by its budget also rounds up). The excess is at most about two 1e-8 of the book's NAV,
so the position is exact while that is less than one lot's value (a 100 million NAV and a lot
worth more than 2 units of currency).
"""

from __future__ import annotations

from collections.abc import Mapping
from math import isfinite

import numpy as np

from domain.fixed import RATE_SCALE, Rounding, div_round, minor_digits
from domain.instruments import Instrument, notional_minor
from kernel.strategy import Decision, Notional, Shares

__all__ = ["WEIGHT_E8_MAX", "TargetError", "targets_e8", "weight_for_value"]

WEIGHT_E8_MAX = 2**63 - 1
"""The largest target weight (1e-8) a journal's event holds (a signed 64-bit integer: about 9.2e10
times the strategy's capital). Beyond it a decision is refused here, before it is journaled; the
risk stage's bound (20x NAV) refuses far less."""


class TargetError(ValueError):
    """A decision the kernel cannot turn into targets (named in the message)."""


def targets_e8(
    decision: Decision,
    ids: list[int],
    instruments: dict[int, Instrument],
    prices: dict[int, int],
    nav_minor: int,
    budget_e8: int = RATE_SCALE,
    nav_by_instrument: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """``{instrument_id: weight 1e-8}`` of a decision. A weight of one is worth the book's
    ``nav_minor`` times the strategy's ``budget_e8`` (used by ``Shares`` / ``Notional``, whose
    values are in each instrument's own currency); ``nav_by_instrument``: the NAV in each
    instrument's currency (a book of several currencies)."""
    if isinstance(decision, Shares):
        array, kind = decision.qty, "Shares"
    elif isinstance(decision, Notional):
        array, kind = decision.value, "Notional"
    else:
        array, kind = decision, "weight"
    values = _checked(array, len(ids), kind)
    targets: dict[int, int] = {}
    for iid, amount in zip(ids, values, strict=True):
        if amount != amount:  # NaN: no target for this name
            continue
        if isinstance(decision, Shares | Notional):
            value = _value_minor(decision, instruments[iid], prices[iid], amount)
            nav = nav_minor if nav_by_instrument is None else nav_by_instrument[iid]
            weight = weight_for_value(value, nav, budget_e8)
        else:
            weight = round(amount * RATE_SCALE)
        if abs(weight) > WEIGHT_E8_MAX:  # msgspec could not journal it (an OverflowError, part-way)
            symbol, times, most = instruments[iid].symbol, weight / RATE_SCALE, WEIGHT_E8_MAX / RATE_SCALE
            raise TargetError(
                f"{symbol}: a {kind} target of {amount:g} is a weight of {times:.3g} times the strategy's "
                f"capital, beyond what a journal holds ({most:.3g})"
            )
        targets[iid] = weight
    return targets


def weight_for_value(value_minor: int, nav_minor: int, budget_e8: int = RATE_SCALE) -> int:
    """The 1e-8 weight of ``budget_e8`` of ``nav_minor`` worth ``value_minor``, rounded up in
    magnitude (one division, so a small budget loses no precision)."""
    if value_minor == 0:
        return 0
    if nav_minor <= 0:
        raise TargetError(f"the book's NAV is {nav_minor} (not positive): values cannot be sized")
    magnitude = div_round(abs(value_minor) * RATE_SCALE * RATE_SCALE, nav_minor * budget_e8, Rounding.CEILING)
    return magnitude if value_minor > 0 else -magnitude


def _value_minor(decision: Shares | Notional, instrument: Instrument, px_raw: int, amount: float) -> int:
    if isinstance(decision, Notional):
        scale: int = 10 ** minor_digits(instrument.currency)
        return round(amount * scale)
    qty_scale: int = 10**instrument.qty_digits
    qty_raw = round(amount * qty_scale)
    if qty_raw == 0:
        return 0
    if px_raw <= 0:
        raise TargetError(f"a share target for {instrument.symbol} before its first price")
    magnitude = notional_minor(instrument, abs(qty_raw), px_raw, Rounding.CEILING)
    return magnitude if qty_raw > 0 else -magnitude


def _checked(array: object, size: int, kind: str) -> list[float]:
    what = f"{kind} targets must be {size} numbers in the universe's column order (NaN: no target)"
    try:
        raw = np.asarray(array)
        values = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as error:  # strings, a dict, ragged lists: not Python's message alone
        shown = " ".join(str(error).split())
        raise TargetError(f"{what}, got {type(array).__name__}: {shown}") from None
    if raw.dtype == np.bool_:  # a mask is not a target: True would be a weight of 1, 1 share...
        raise TargetError(f"{what}, got booleans (a mask?)")
    if values.shape != (size,):
        raise TargetError(f"{kind} targets of shape {values.shape} for {size} names")
    listed: list[float] = values.tolist()
    for value in listed:
        if value == value and not isfinite(value):
            raise TargetError(f"a non-finite {kind} target")
    return listed
