"""Pre-trade portfolio rules over a step's whole intent vector, in a fixed order.

``evaluate_intent`` runs name -> sector -> country -> perp_side -> gross_leverage -> net_leverage
over the target weights (1e-8 of NAV) and returns the weights it lets through plus one
``RuleVerdict`` per rule, which the kernel journals. Every rule only moves weights toward zero,
so a later rule never breaks an earlier one; net leverage (the only rule whose measure can grow
when a weight shrinks) runs last. A ``reject`` that leaves the rule breached (the current book
itself is over the limit) is backed by a clip, and the verdict says so.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from domain.riskrules import _pretrade_nb as nb
from domain.riskrules.policy import LIMIT_E8_MAX, PortfolioLimit, RiskPolicy, RuleAction

__all__ = [
    "PORTFOLIO_RULE_ORDER",
    "IntentVector",
    "PreTradeResult",
    "RuleVerdict",
    "evaluate_intent",
    "evaluate_within_limits",
    "make_intent",
    "nav_verdict",
    "portfolio_measures",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PORTFOLIO_RULE_ORDER = ("name", "sector", "country", "perp_side", "gross_leverage", "net_leverage")


class RuleVerdict(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One rule's verdict. ``action`` is ``pass`` or the action taken; numbers are in ``unit``
    (``e8_nav`` for portfolio rules, ``minor`` / ``qty_raw`` / ``e8_price`` for order rules)."""

    rule: str
    action: str
    unit: str
    limit: int
    observed: int  # the worst measure before the rule acted
    observed_after: int  # the worst measure after it
    instrument_ids: list[int]  # names changed: per-name rules, rejects and order rules
    group_ids: list[int] = []  # breaching groups: sector / country ids, perp side 0 long 1 short
    detail: str = ""


class IntentVector(NamedTuple):
    """Arrays over the N names of one decision; build with ``make_intent`` (it validates)."""

    instrument_ids: IntArray
    target_e8: IntArray
    current_e8: IntArray
    sector_ids: IntArray  # dense 0..S-1, -1 = none
    country_ids: IntArray  # dense 0..C-1, -1 = none
    is_perp: BoolArray
    n_sectors: int
    n_countries: int


class PreTradeResult(NamedTuple):
    weights_e8: IntArray
    verdicts: list[RuleVerdict]


def _int_array(name: str, values: object, length: int | None) -> IntArray:
    array = np.ascontiguousarray(values, dtype=np.int64)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name}: length {array.shape[0]} != {length} names")
    return array


def _group_ids(name: str, values: object, length: int) -> tuple[IntArray, int]:
    ids = _int_array(name, values, length)
    if length and int(ids.min()) < -1:
        raise ValueError(f"{name}: group ids must be >= -1 (-1 = none)")
    return ids, (int(ids.max()) + 1 if length else 0)


def make_intent(
    instrument_ids: object,
    target_e8: object,
    current_e8: object,
    sector_ids: object,
    country_ids: object,
    is_perp: object,
) -> IntentVector:
    """Validate and pack an intent vector; weights beyond ``LIMIT_E8_MAX`` (20x) are refused."""
    ids = _int_array("instrument_ids", instrument_ids, None)
    length = ids.shape[0]
    if length > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        raise ValueError("instrument_ids: must be strictly increasing (sort the intent by id)")
    target = _int_array("target_e8", target_e8, length)
    current = _int_array("current_e8", current_e8, length)
    for name, weights in (("target_e8", target), ("current_e8", current)):
        if length and int(np.abs(weights).max()) > LIMIT_E8_MAX:
            raise ValueError(f"{name}: |weight| above {LIMIT_E8_MAX} (20x NAV)")
    sectors, n_sectors = _group_ids("sector_ids", sector_ids, length)
    countries, n_countries = _group_ids("country_ids", country_ids, length)
    perp = np.ascontiguousarray(is_perp, dtype=np.bool_)
    if perp.shape != (length,):
        raise ValueError(f"is_perp: shape {perp.shape} != ({length},)")
    return IntentVector(ids, target, current, sectors, countries, perp, n_sectors, n_countries)


def nav_verdict(
    rule: str,
    action: str,
    limit: int,
    before: int,
    after: int,
    ids: list[int],
    detail: str = "",
    groups: list[int] | None = None,
) -> RuleVerdict:
    return RuleVerdict(
        rule=rule,
        action=action,
        unit="e8_nav",
        limit=limit,
        observed=before,
        observed_after=after,
        instrument_ids=ids,
        group_ids=groups or [],
        detail=detail,
    )


def _affected_ids(instrument_ids: IntArray, affected: IntArray, count: int) -> list[int]:
    """Kernels report indices in ascending order, once each; ids are strictly increasing."""
    ids: list[int] = instrument_ids[affected[:count]].tolist()
    return ids


def _group_rule(
    rule: str,
    weights: IntArray,
    intent: IntentVector,
    group: IntArray,
    n_groups: int,
    limit: PortfolioLimit,
) -> tuple[IntArray, RuleVerdict]:
    """One magnitude-sum rule: name (group = own index), sector, country, perp side, gross.

    The verdict names the changed instruments for the name rule and for rejects; for group clips
    and scales it names the breaching groups (the members follow from the journaled intent).
    """
    cap = limit.limit_e8
    sums = np.empty(n_groups, dtype=np.int64)
    before = nb.group_abs_sums_nb(weights, group, sums)
    if before <= cap:
        return weights, nav_verdict(rule, "pass", cap, before, before, [])
    weights = weights.copy()
    affected = np.empty(weights.shape[0], dtype=np.int64)
    groups: list[int] = np.flatnonzero(sums > cap).tolist() if rule != "name" else []
    detail = ""
    if limit.action is RuleAction.CLIP:
        count = nb.clip_groups_nb(weights, group, sums, cap, affected)
    elif limit.action is RuleAction.SCALE:
        count = nb.scale_all_nb(weights, cap, before, affected)
    else:
        count = nb.revert_groups_nb(weights, intent.current_e8, group, sums, cap, affected)
        if nb.group_abs_sums_nb(weights, group, sums) > cap:
            backstop = np.empty(weights.shape[0], dtype=np.int64)
            extra = nb.clip_groups_nb(weights, group, sums, cap, backstop)
            affected = np.union1d(affected[:count], backstop[:extra])
            count = affected.shape[0]
            detail = "current book over the limit: clipped after reject"
    after = nb.group_abs_sums_nb(weights, group, sums)
    assert after <= cap, f"{rule}: {after} > {cap} after {limit.action.value}"
    if limit.action is RuleAction.SCALE:
        detail = f"scaled every name by {cap}/{before}, toward zero"
    names = rule == "name" or limit.action is RuleAction.REJECT
    ids = _affected_ids(intent.instrument_ids, affected, count) if names else []
    return weights, nav_verdict(rule, limit.action.value, cap, before, after, ids, detail, groups)


def _net_clip(weights: IntArray, cap: int, affected: IntArray) -> int:
    """Shrink the dominant side by exactly ``|net| - cap`` (in place); returns names changed.

    The cut is shared pro rata by floor, and the units left over go one each to the largest
    remainders (ties by position), so the side shrinks by exactly the excess: rounding cannot
    overshoot and flip the dominant side. Python integers: no int64 overflow in the products.
    """
    long_sum, short_sum = nb.side_sums_nb(weights)
    net = long_sum - short_sum
    if abs(net) <= cap:
        return 0
    side = 1 if net > 0 else -1
    excess = abs(net) - cap
    magnitudes = [abs(w) if w * side > 0 else 0 for w in weights.tolist()]
    side_sum = sum(magnitudes)
    cuts = [m * excess // side_sum for m in magnitudes]
    remainders = [m * excess - c * side_sum for m, c in zip(magnitudes, cuts, strict=True)]
    left = excess - sum(cuts)
    for index in sorted(range(len(cuts)), key=lambda i: (-remainders[i], i))[:left]:
        cuts[index] += 1
    count = 0
    for index, cut in enumerate(cuts):
        if cut:
            weights[index] -= side * cut
            affected[count] = index
            count += 1
    assert abs(int(weights.sum())) <= cap, "net clip must land within the cap"
    return count


def _net_rule(weights: IntArray, intent: IntentVector, limit: PortfolioLimit) -> tuple[IntArray, RuleVerdict]:
    cap = limit.limit_e8
    before = abs(int(weights.sum()))
    if before <= cap:
        return weights, nav_verdict("net_leverage", "pass", cap, before, before, [])
    groups = [0 if int(weights.sum()) > 0 else 1]  # the dominant side: 0 long, 1 short
    weights = weights.copy()
    affected = np.empty(weights.shape[0], dtype=np.int64)
    detail = ""
    if limit.action is RuleAction.SCALE:
        count = nb.scale_all_nb(weights, cap, before, affected)
    elif limit.action is RuleAction.REJECT:
        side = 1 if weights.sum() > 0 else -1
        group = np.where(weights * side > 0, 0, -1).astype(np.int64)
        breached = np.array([cap + 1], dtype=np.int64)
        count = nb.revert_groups_nb(weights, intent.current_e8, group, breached, cap, affected)
    else:
        count = 0
    residual = np.empty(weights.shape[0], dtype=np.int64)
    extra = _net_clip(weights, cap, residual)
    if extra and limit.action is RuleAction.REJECT:
        detail = "current book over the limit: clipped after reject"
    if limit.action is RuleAction.SCALE:
        detail = f"scaled every name by {cap}/{before}, toward zero"
    after = abs(int(weights.sum()))
    assert after <= cap, f"net_leverage: {after} > {cap} after {limit.action.value}"
    ids = _affected_ids(intent.instrument_ids, affected, count) if limit.action is RuleAction.REJECT else []
    return weights, nav_verdict("net_leverage", limit.action.value, cap, before, after, ids, detail, groups)


def evaluate_intent(intent: IntentVector, policy: RiskPolicy) -> PreTradeResult:
    """All portfolio rules in ``PORTFOLIO_RULE_ORDER``; one verdict per rule, always."""
    weights = intent.target_e8
    length = weights.shape[0]
    verdicts: list[RuleVerdict] = []
    own = np.arange(length, dtype=np.int64)
    weights, verdict = _group_rule("name", weights, intent, own, length, policy.name)
    verdicts.append(verdict)
    weights, verdict = _group_rule(
        "sector", weights, intent, intent.sector_ids, intent.n_sectors, policy.sector
    )
    verdicts.append(verdict)
    weights, verdict = _group_rule(
        "country", weights, intent, intent.country_ids, intent.n_countries, policy.country
    )
    verdicts.append(verdict)
    sides = np.empty(length, dtype=np.int64)
    nb.perp_side_groups_nb(weights, intent.is_perp, sides)
    weights, verdict = _group_rule("perp_side", weights, intent, sides, 2, policy.perp_side)
    verdicts.append(verdict)
    everyone = np.zeros(length, dtype=np.int64)
    weights, verdict = _group_rule("gross_leverage", weights, intent, everyone, 1, policy.gross_leverage)
    verdicts.append(verdict)
    weights, verdict = _net_rule(weights, intent, policy.net_leverage)
    verdicts.append(verdict)
    return PreTradeResult(weights, verdicts)


def evaluate_within_limits(
    weights_e8: list[int],
    sector_ids: list[int],
    country_ids: list[int],
    is_perp: list[bool],
    policy: RiskPolicy,
) -> list[RuleVerdict] | None:
    """The verdicts of ``evaluate_intent`` when no rule has to act, computed in plain Python
    (for the few-name vectors of most decisions, where array set-up costs more than the
    rules); ``None`` when some rule is breached and the full evaluation must run.

    Same inputs, same verdicts: every rule passes with ``observed == observed_after ==`` its
    measure on the unchanged weights (tested against ``evaluate_intent``)."""
    if not len(weights_e8) == len(sector_ids) == len(country_ids) == len(is_perp):
        raise ValueError("weights, sectors, countries and perpetual flags differ in length")
    magnitudes = list(map(abs, weights_e8))
    name = max(magnitudes, default=0)
    gross = sum(magnitudes)
    net = sum(weights_e8)
    sectors = _group_sums(magnitudes, sector_ids)
    countries = _group_sums(magnitudes, country_ids)
    perp_long, perp_short = _perp_sides(weights_e8, is_perp)
    measures = (
        ("name", name, policy.name),
        ("sector", max(sectors.values(), default=0), policy.sector),
        ("country", max(countries.values(), default=0), policy.country),
        ("perp_side", max(perp_long, perp_short), policy.perp_side),
        ("gross_leverage", gross, policy.gross_leverage),
        ("net_leverage", abs(net), policy.net_leverage),
    )
    if any(measure > limit.limit_e8 for _, measure, limit in measures):
        return None
    return [
        nav_verdict(rule, "pass", limit.limit_e8, measure, measure, []) for rule, measure, limit in measures
    ]


def _group_sums(magnitudes: list[int], group_ids: list[int]) -> dict[int, int]:
    """Magnitude per group (id >= 0; -1: in no group). A vector in no group, the usual case,
    skips the loop."""
    sums: dict[int, int] = {}
    if max(group_ids, default=-1) < 0:
        return sums
    for magnitude, group in zip(magnitudes, group_ids, strict=True):
        if group >= 0:
            sums[group] = sums.get(group, 0) + magnitude
    return sums


def _perp_sides(weights_e8: list[int], is_perp: list[bool]) -> tuple[int, int]:
    """(long, short) perpetual weight, both as magnitudes."""
    long = short = 0
    if any(is_perp):
        for weight, perp in zip(weights_e8, is_perp, strict=True):
            if perp:
                if weight > 0:
                    long += weight
                else:
                    short -= weight
    return long, short


def portfolio_measures(intent: IntentVector, weights: IntArray) -> dict[str, int]:
    """The worst measure of every portfolio rule for ``weights`` (plain NumPy; for audits/tests)."""
    magnitude = np.abs(weights)
    perp_long = int(weights[intent.is_perp & (weights > 0)].sum())
    perp_short = int(-weights[intent.is_perp & (weights < 0)].sum())
    return {
        "name": int(magnitude.max(initial=0)),
        "sector": _worst_group(magnitude, intent.sector_ids, intent.n_sectors),
        "country": _worst_group(magnitude, intent.country_ids, intent.n_countries),
        "perp_side": max(perp_long, perp_short),
        "gross_leverage": int(magnitude.sum()),
        "net_leverage": abs(int(weights.sum())),
    }


def _worst_group(magnitude: IntArray, group: IntArray, n_groups: int) -> int:
    sums = np.zeros(n_groups, dtype=np.int64)
    members = group >= 0
    np.add.at(sums, group[members], magnitude[members])
    return int(sums.max(initial=0))
