"""Greek limits on an option book: cash delta, gamma and vega per underlying and in total.

``make_greek_book`` prices every option once with the Black-Scholes-Merton kernel
(``domain.markets.black_scholes_greeks``, vectorised over the chain) and keeps, per option, its
exposure per raw quantity unit in minor units of the book's currency:

* delta: ``delta x S x multiplier``              (cash delta: value change per unit move, x S)
* gamma: ``gamma x S**2 / 100 x multiplier``     (change of cash delta for a 1% move)
* vega:  ``vega / 100 x multiplier``             (value change per volatility point)

each times ``10**minor_digits / 10**qty_digits``. A book's exposure is the signed sum over its
options of unit exposure x quantity; a rule's measure is ``|sum|`` per underlying (the worst one
is reported) or over the whole book.

``evaluate_greeks`` runs the rules in ``GREEK_RULE_ORDER`` over the target quantities and returns
the quantities it lets through plus one ``RuleVerdict`` per rule (unit ``minor``; ``group_ids``
index ``book.underlyings``). Actions, like the portfolio rules:

* ``clip``   -- each breaching underlying's options are scaled toward zero by one common factor
  (whole lots, toward zero), the largest that makes every greek rule so far hold for it; for a
  total rule the whole book is the group;
* ``scale``  -- every option in the book is scaled by one common factor, the largest that makes
  every rule so far hold;
* ``reject`` -- the breaching underlying's options (all options for a total rule) keep their
  current quantity, never more than the target and never on the other side; if the rules still
  do not hold (the current book is over a limit) a clip backs the reject up and ``detail`` says so.

Greeks are net sums, so shrinking one option can raise a measure (an unwound hedge): every
search therefore checks all rules up to the current one, and the factor 0 (no options) always
satisfies them, so the result holds every enabled limit. Floats are model math here (as in
``domain.markets.greeks``); sums run in a fixed order, so reruns are bit-identical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from domain.fixed import minor_digits
from domain.instruments import Instrument
from domain.markets import black_scholes_greeks
from domain.riskrules.policy import GREEK_RULES, GreekLimit, RiskPolicy, RuleAction
from domain.riskrules.pretrade import RuleVerdict

__all__ = [
    "GREEK_RULE_ORDER",
    "GreekBook",
    "GreekResult",
    "evaluate_greeks",
    "greek_measures",
    "make_greek_book",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

GREEK_RULE_ORDER = GREEK_RULES
_GREEK_INDEX = {"delta": 0, "gamma": 1, "vega": 2}
_SCALE_ONE = 1 << 30  # binary search resolution of the common factor
_QTY_MAX = (1 << 62) // _SCALE_ONE  # |qty| x factor stays inside int64


class GreekBook(NamedTuple):
    """Arrays over the N options of one decision (ids strictly increasing)."""

    instrument_ids: IntArray
    underlying_ids: IntArray  # dense index into ``underlyings``
    underlyings: tuple[str, ...]  # sorted underlying symbols
    target_qty: IntArray
    current_qty: IntArray
    lot_raw: IntArray
    unit: FloatArray  # (3, N): cash delta, gamma, vega per raw quantity unit, minor units


class GreekResult(NamedTuple):
    qty_raw: IntArray
    verdicts: list[RuleVerdict]


def _int_array(name: str, values: object, length: int) -> IntArray:
    array = np.ascontiguousarray(values, dtype=np.int64)
    if array.shape != (length,):
        raise ValueError(f"{name}: shape {array.shape} != ({length},)")
    if length and int(np.abs(array).max()) > _QTY_MAX:
        raise ValueError(f"{name}: |quantity| above {_QTY_MAX} raw units")
    return array


def make_greek_book(
    instruments: Sequence[Instrument],
    target_qty: object,
    current_qty: object,
    *,
    underlying_px: Mapping[str, float],
    vol: npt.ArrayLike,
    rate: npt.ArrayLike,
    t_years: npt.ArrayLike,
    dividend_yield: npt.ArrayLike = 0.0,
) -> GreekBook:
    """Validate an option book and price its greeks once.

    ``instruments`` are options in one currency, sorted by id; quantities are signed raw
    quantities; ``underlying_px`` maps each underlying symbol to its price; ``vol``, ``rate``,
    ``t_years`` and ``dividend_yield`` broadcast over the options (annual decimals, years).
    """
    length = len(instruments)
    ids = np.array([inst.instrument_id for inst in instruments], dtype=np.int64)
    if length > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        raise ValueError("instruments: ids must be strictly increasing (sort the book by id)")
    currencies = sorted({inst.currency for inst in instruments})
    if len(currencies) > 1:
        raise ValueError(f"instruments: one currency per book, got {currencies}")
    for inst in instruments:
        if not inst.is_option:
            raise ValueError(f"{inst.symbol}: not an option (asset_class {inst.asset_class!r})")
        if inst.underlying not in underlying_px:
            raise ValueError(f"{inst.symbol}: no price for underlying {inst.underlying!r}")
    underlyings = tuple(sorted({inst.underlying for inst in instruments}))
    index = {name: i for i, name in enumerate(underlyings)}
    spot = np.array([float(underlying_px[inst.underlying]) for inst in instruments], dtype=np.float64)
    strike = np.array([inst.strike_raw / 10**inst.price_digits for inst in instruments], dtype=np.float64)
    is_call = np.array([inst.right == "call" for inst in instruments], dtype=np.bool_)
    greeks = black_scholes_greeks(spot, strike, t_years, vol, rate, is_call, dividend_yield)
    scale = np.array(
        [inst.multiplier * 10 ** minor_digits(inst.currency) / 10**inst.qty_digits for inst in instruments],
        dtype=np.float64,
    )
    unit = np.empty((3, length), dtype=np.float64)
    unit[0] = np.broadcast_to(greeks.delta, (length,)) * spot * scale
    unit[1] = np.broadcast_to(greeks.gamma, (length,)) * spot * spot / 100.0 * scale
    unit[2] = np.broadcast_to(greeks.vega, (length,)) / 100.0 * scale
    return GreekBook(
        instrument_ids=ids,
        underlying_ids=np.array([index[inst.underlying] for inst in instruments], dtype=np.int64),
        underlyings=underlyings,
        target_qty=_int_array("target_qty", target_qty, length),
        current_qty=_int_array("current_qty", current_qty, length),
        lot_raw=np.array([inst.lot_raw for inst in instruments], dtype=np.int64),
        unit=unit,
    )


def _sums(book: GreekBook, qty: IntArray) -> tuple[FloatArray, FloatArray]:
    """(3, U) per-underlying and (3,) total signed exposures; fixed summation order."""
    exposure = book.unit * qty.astype(np.float64)
    count = len(book.underlyings)
    rows = [np.bincount(book.underlying_ids, weights=row, minlength=count) for row in exposure]
    per: FloatArray = np.stack(rows).astype(np.float64, copy=False)
    total: FloatArray = per.sum(axis=1)
    return per, total


def greek_measures(book: GreekBook, qty: IntArray) -> dict[str, float]:
    """The worst measure of every greek rule for ``qty`` (for audits and tests)."""
    per, total = _sums(book, qty)
    result = {}
    for rule in GREEK_RULE_ORDER:
        greek, scope = rule.split("_")
        row = _GREEK_INDEX[greek]
        values = np.abs(per[row]) if scope == "underlying" else np.abs(total[row : row + 1])
        result[rule] = float(values.max(initial=0.0))
    return result


class _Rules:
    """The enabled rules up to the one being applied, as a predicate over quantities."""

    def __init__(self, book: GreekBook, policy: RiskPolicy, upto: int) -> None:
        self.book = book
        self.checks: list[tuple[int, bool, float]] = []  # (greek row, per underlying?, limit)
        for rule in GREEK_RULE_ORDER[: upto + 1]:
            limit: GreekLimit = getattr(policy.greeks, rule)
            if limit.limit:
                greek, scope = rule.split("_")
                self.checks.append((_GREEK_INDEX[greek], scope == "underlying", float(limit.limit)))

    def hold(self, qty: IntArray, groups: IntArray | None) -> bool:
        """All rules hold: per-underlying ones on ``groups`` (None = every underlying)."""
        per, total = _sums(self.book, qty)
        for row, per_underlying, limit in self.checks:
            if per_underlying:
                values = np.abs(per[row] if groups is None else per[row][groups])
                if values.size and float(values.max()) > limit:
                    return False
            elif abs(float(total[row])) > limit:
                return False
        return True


def _scaled(base: IntArray, members: npt.NDArray[np.bool_], lots: IntArray, factor: int) -> IntArray:
    """``base`` with members scaled by ``factor / _SCALE_ONE``, whole lots, toward zero."""
    magnitude = np.abs(base) * factor // _SCALE_ONE
    magnitude = magnitude // lots * lots
    return np.where(members, np.sign(base) * magnitude, base)


def _shrink(
    rules: _Rules, base: IntArray, members: npt.NDArray[np.bool_], groups: IntArray | None
) -> IntArray:
    """The largest common factor in [0, 1) for ``members`` that makes the rules hold."""
    book = rules.book
    low, high = 0, _SCALE_ONE  # invariant: factor ``low`` holds, ``high`` does not
    assert rules.hold(_scaled(base, members, book.lot_raw, low), groups), "no options must satisfy the rules"
    while high - low > 1:
        middle = (low + high) // 2
        if rules.hold(_scaled(base, members, book.lot_raw, middle), groups):
            low = middle
        else:
            high = middle
    return _scaled(base, members, book.lot_raw, low)


def _toward_current(target: IntArray, current: IntArray) -> IntArray:
    """clamp(current, 0..target): the current quantity, never beyond the target nor across zero."""
    same_side = np.sign(current) == np.sign(target)
    return np.where(same_side, np.sign(target) * np.minimum(np.abs(current), np.abs(target)), 0)


def _worst(values: FloatArray) -> int:
    return round(float(np.abs(values).max(initial=0.0)))


def _apply(
    book: GreekBook, qty: IntArray, rules: _Rules, limit: GreekLimit, breach: list[int], per_underlying: bool
) -> tuple[IntArray, str]:
    """Act on the breaching underlyings (or the whole book); returns the new quantities and detail."""
    everyone = np.ones(qty.shape[0], dtype=np.bool_)
    if limit.action is RuleAction.SCALE:
        return _shrink(rules, qty, everyone, None), "scaled every option by one factor, toward zero"
    if not per_underlying:
        groups_list: list[IntArray | None] = [None]
    else:
        groups_list = [np.array([group], dtype=np.int64) for group in breach]
    detail = ""
    for groups in groups_list:
        members = everyone if groups is None else book.underlying_ids == groups[0]
        if limit.action is RuleAction.REJECT:
            qty = np.where(members, _toward_current(book.target_qty, book.current_qty), qty)
            if rules.hold(qty, groups):
                continue
            detail = "current book over the limit: clipped after reject"
        qty = _shrink(rules, qty, members, groups)
    return qty, detail


def _rule(book: GreekBook, qty: IntArray, policy: RiskPolicy, index: int) -> tuple[IntArray, RuleVerdict]:
    rule = GREEK_RULE_ORDER[index]
    limit: GreekLimit = getattr(policy.greeks, rule)
    greek, scope = rule.split("_")
    row, per_underlying = _GREEK_INDEX[greek], scope == "underlying"

    def measure(values: IntArray) -> FloatArray:
        per, total = _sums(book, values)
        return np.abs(per[row]) if per_underlying else np.abs(total[row : row + 1])

    before = measure(qty)
    worst = _worst(before)
    breach: list[int] = np.flatnonzero(before > limit.limit).tolist() if limit.limit else []
    if not breach:
        detail = "disabled" if limit.limit == 0 else ""
        verdict = RuleVerdict(
            rule=f"greek_{rule}", action="pass", unit="minor", limit=limit.limit,
            observed=worst, observed_after=worst, instrument_ids=[], detail=detail,
        )  # fmt: skip
        return qty, verdict
    rules = _Rules(book, policy, index)
    after_qty, detail = _apply(book, qty, rules, limit, breach, per_underlying)
    assert rules.hold(after_qty, None), f"greek_{rule}: limits breached after {limit.action.value}"
    changed: list[int] = book.instrument_ids[after_qty != qty].tolist()
    names = ", ".join(book.underlyings[group] for group in breach) if per_underlying else "book"
    verdict = RuleVerdict(
        rule=f"greek_{rule}",
        action=limit.action.value,
        unit="minor",
        limit=limit.limit,
        observed=worst,
        observed_after=_worst(measure(after_qty)),
        instrument_ids=changed,
        group_ids=breach if per_underlying else [],
        detail=f"{names}: {detail}" if detail else names,
    )
    return after_qty, verdict


def evaluate_greeks(book: GreekBook, policy: RiskPolicy) -> GreekResult:
    """Every greek rule in ``GREEK_RULE_ORDER``; one verdict per rule, always."""
    qty = book.target_qty.copy()
    verdicts = []
    for index in range(len(GREEK_RULE_ORDER)):
        qty, verdict = _rule(book, qty, policy, index)
        verdicts.append(verdict)
    return GreekResult(qty, verdicts)
