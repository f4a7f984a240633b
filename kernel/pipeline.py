"""The decision pipeline of one step: risk over the whole intent vector, then execution
(weights -> whole-lot orders), then the order rules. Plain data in and out; the loop
journals the verdicts.

Portfolio and order rules are ``domain.riskrules`` (the policy a user writes once in TOML);
this module adapts the kernel's dict-shaped state to their arrays: sector and country
names become dense group ids, perpetuals are flagged for the per-side cap.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

import msgspec
import numpy as np
import numpy.typing as npt

from domain.events import RiskVerdict
from domain.fixed import RATE_SCALE, Rounding, div_half_even, div_round
from domain.instruments import Instrument, notional_minor, qty_for_value
from domain.ledger import Position
from domain.riskrules import (
    LIMIT_E8_MAX,
    RiskPolicy,
    RuleVerdict,
    VolTarget,
    apply_scale,
    evaluate_intent,
    evaluate_orders,
    evaluate_within_limits,
    make_intent,
    make_orders,
    nav_verdict,
    vol_target_scale,
)

__all__ = [
    "PERP_ASSET_CLASSES",
    "OrderIntent",
    "RiskError",
    "RiskStage",
    "current_weights",
    "halt_targets",
    "plan_orders",
    "reject_unpriced",
    "verdict_events",
    "vol_target_targets",
]

PERP_ASSET_CLASSES = frozenset({"crypto_perp", "perpetual"})
SMALL_VECTOR = 64  # up to this many names, a decision within every limit skips the array pass
_HALF_EVEN, _DOWN = Rounding.HALF_EVEN, Rounding.DOWN  # module globals for the per-decision loops
PASSED_CACHE_MAX = 4096  # implied vectors whose all-pass verdicts a risk stage remembers


class RiskError(ValueError):
    """A decision the risk stage cannot evaluate (e.g. a weight beyond the 20x bound)."""


class OrderIntent(msgspec.Struct, frozen=True, gc=False):
    instrument_id: int
    side: int
    qty_raw: int
    decision_px_raw: int


_ALL_PRICED = nav_verdict("priced", "pass", 0, 0, 0, [], "")  # frozen: shared by every such decision


def reject_unpriced(targets: dict[int, int], prices: dict[int, int]) -> tuple[dict[int, int], RuleVerdict]:
    """Non-zero targets on names that have never traded cannot be sized: reject them."""
    unpriced = [iid for iid, weight in sorted(targets.items()) if weight and prices[iid] <= 0]
    if not unpriced:
        return dict(targets), _ALL_PRICED
    kept = {iid: weight for iid, weight in targets.items() if iid not in unpriced}
    largest = max((abs(targets[iid]) for iid in unpriced), default=0)
    detail = f"{len(unpriced)} names have no price yet" if unpriced else ""
    action = "reject" if unpriced else "pass"
    return kept, nav_verdict("priced", action, 0, largest, 0, unpriced, detail)


def vol_target_targets(
    targets: dict[int, int], nav_closes: Sequence[int], config: VolTarget
) -> tuple[dict[int, int], RuleVerdict]:
    """Volatility targeting: the decision's weights times ``target / realised`` vol (capped),
    realised from the run's own day-close NAV returns (the last ``window``; fewer than
    ``min_history`` gives the fallback scale). Runs before the portfolio rules."""
    returns = [b / a - 1.0 for a, b in itertools.pairwise(nav_closes) if a > 0]
    scale = vol_target_scale(returns, config)
    ids = sorted(targets)
    scaled = apply_scale(np.array([targets[iid] for iid in ids], dtype=np.int64), scale.scale_e8)
    allowed = dict(zip(ids, scaled.tolist(), strict=True))
    changed = [iid for iid in ids if allowed[iid] != targets[iid]]
    detail = f"{scale.reason}: scale {scale.scale_e8}e-8 from {scale.history} returns"
    verdict = RuleVerdict(
        rule="vol_target",
        action="scale" if changed else "pass",
        unit="e8_vol",
        limit=config.target_vol_e8,
        observed=scale.realised_vol_e8,
        observed_after=scale.scale_e8,
        instrument_ids=changed,
        detail=detail,
    )
    return allowed, verdict


def halt_targets(
    targets: dict[int, int], held: dict[int, int], flatten: bool, reason: str
) -> tuple[dict[int, int], RuleVerdict]:
    """While the kill switch is not armed: no new risk. Each target is cut to
    ``clamp(target, 0..current)`` (reduce, never add or flip); flattening targets zero for
    every held name. The verdict names the names whose targets changed."""
    if flatten:
        allowed = {iid: 0 for iid in held}
        allowed.update({iid: 0 for iid in targets})
    else:
        allowed = {}
        for iid, target in targets.items():
            current = held.get(iid, 0)
            if current > 0:
                allowed[iid] = min(max(target, 0), current)
            elif current < 0:
                allowed[iid] = max(min(target, 0), current)
            else:
                allowed[iid] = 0
    changed = sorted(iid for iid, weight in allowed.items() if weight != targets.get(iid, held.get(iid, 0)))
    before = sum(abs(w) for w in targets.values())
    after = sum(abs(w) for w in allowed.values())
    action = ("clip" if changed else "pass") if not flatten else "reject"
    return allowed, nav_verdict("kill_switch", action, 0, before, after, changed, reason)


def _beyond_bound(instrument_id: int, weight: int) -> NoReturn:
    raise RiskError(
        f"instrument {instrument_id}: target weight {weight}e-8 is beyond the risk stage's bound "
        f"of {LIMIT_E8_MAX}e-8 (20x NAV)"
    )


class RiskStage:
    """The policy's portfolio rules over a decision's implied vector, then its order rules."""

    def __init__(self, policy: RiskPolicy, instruments: dict[int, Instrument]) -> None:
        self.policy = policy
        self._instruments = instruments
        sectors = sorted({inst.sector for inst in instruments.values() if inst.sector})
        countries = sorted({inst.country for inst in instruments.values() if inst.country})
        self._grouped = bool(sectors or countries)  # some name in a sector or a country
        sector_id = {name: index for index, name in enumerate(sectors)}
        country_id = {name: index for index, name in enumerate(countries)}
        self._sector = {iid: sector_id.get(inst.sector, -1) for iid, inst in instruments.items()}
        self._country = {iid: country_id.get(inst.country, -1) for iid, inst in instruments.items()}
        self._perp = {iid: inst.asset_class in PERP_ASSET_CLASSES for iid, inst in instruments.items()}
        # The same facts as arrays over the universe in id order, for large decisions.
        self._ids = np.array(sorted(instruments), dtype=np.int64)
        self._sector_row = np.array([self._sector[iid] for iid in self._ids.tolist()], dtype=np.int64)
        self._country_row = np.array([self._country[iid] for iid in self._ids.tolist()], dtype=np.int64)
        self._perp_row = np.array([self._perp[iid] for iid in self._ids.tolist()], dtype=np.bool_)
        self._order_rules = (
            policy.price_band.band_e8 > 0 or policy.order_qty.limit > 0 or policy.order_notional.limit > 0
        )
        # (ids, weights) of an implied vector within every limit -> its verdicts. The verdicts
        # are a pure function of the vector (groups and policy are fixed per stage), so a
        # repeated vector (a crossover's 0.95 / 0 targets) reuses them: the same events.
        self._passed: dict[tuple[tuple[int, ...], tuple[int, ...]], list[RuleVerdict]] = {}

    def portfolio(
        self, targets: dict[int, int], held: dict[int, int]
    ) -> tuple[dict[int, int], list[RuleVerdict]]:
        """Check the implied full vector (targets over current weights); returns the allowed
        targets: every targeted name, plus held names a rule changed."""
        if len(targets) + len(held) > SMALL_VECTOR:
            return self._portfolio_arrays(targets, held)
        for iid, weight in targets.items():
            if abs(weight) > LIMIT_E8_MAX:
                _beyond_bound(iid, weight)
        # A held position can be worth more than 20x a NAV that losses have shrunk: it enters
        # the rules at the bound (a rule that acts then cuts it from there, toward zero).
        bound = LIMIT_E8_MAX
        if held and (max(held.values()) > bound or min(held.values()) < -bound):
            held = {iid: max(-bound, min(bound, weight)) for iid, weight in held.items()}
        implied = dict(held)
        implied.update(targets)
        ids = sorted(implied)
        weights = list(map(implied.__getitem__, ids))
        key = (tuple(ids), tuple(weights))
        known = self._passed.get(key)
        if known is not None:
            return dict(targets), list(known)
        perps = [self._perp[iid] for iid in ids]  # (a name outside the universe: KeyError)
        if self._grouped:
            sectors = [self._sector[iid] for iid in ids]
            countries = [self._country[iid] for iid in ids]
        else:  # no name has a sector or a country: every group id is -1
            sectors, countries = [-1] * len(ids), [-1] * len(ids)
        passed = evaluate_within_limits(weights, sectors, countries, perps, self.policy)
        if passed is not None:  # nothing to change: every target as asked
            if len(self._passed) >= PASSED_CACHE_MAX:
                self._passed.clear()
            self._passed[key] = passed
            return dict(targets), list(passed)
        current = [held.get(iid, 0) for iid in ids]
        intent = make_intent(ids, weights, current, sectors, countries, perps)
        result = evaluate_intent(intent, self.policy)
        allowed_all = dict(zip(ids, result.weights_e8.tolist(), strict=True))
        allowed = {
            iid: weight for iid, weight in allowed_all.items() if iid in targets or weight != implied[iid]
        }
        return allowed, result.verdicts

    def _rows(self, weights: dict[int, int]) -> npt.NDArray[np.int64]:
        """Universe rows of the dict's instrument ids (keys order); unknown ids are an error."""
        keys = np.fromiter(weights.keys(), np.int64, len(weights))
        rows = np.searchsorted(self._ids, keys)
        if not bool(
            np.all(
                (rows < self._ids.shape[0]) & (self._ids[np.minimum(rows, self._ids.shape[0] - 1)] == keys)
            )
        ):
            raise RiskError("a weight names an instrument outside the run's universe")
        return rows

    def _portfolio_arrays(
        self, targets: dict[int, int], held: dict[int, int]
    ) -> tuple[dict[int, int], list[RuleVerdict]]:
        """``portfolio`` for large decisions: the same vector built with array operations over
        the universe (same ids in the same order, so the same verdicts)."""
        size = self._ids.shape[0]
        held_w = np.zeros(size, dtype=np.int64)
        in_book = np.zeros(size, dtype=np.bool_)
        if held:
            rows = self._rows(held)
            held_w[rows] = np.clip(
                np.fromiter(held.values(), np.int64, len(held)), -LIMIT_E8_MAX, LIMIT_E8_MAX
            )
            in_book[rows] = True
        implied = held_w.copy()
        targeted = np.zeros(size, dtype=np.bool_)
        if targets:
            rows = self._rows(targets)
            values = np.fromiter(targets.values(), np.int64, len(targets))
            beyond = np.flatnonzero(np.abs(values) > LIMIT_E8_MAX)
            if beyond.shape[0]:
                _beyond_bound(int(self._ids[rows[beyond[0]]]), int(values[beyond[0]]))
            implied[rows] = values
            targeted[rows] = True
            in_book[rows] = True
        sel = np.flatnonzero(in_book)
        intent = make_intent(
            self._ids[sel],
            implied[sel],
            held_w[sel],
            self._sector_row[sel],
            self._country_row[sel],
            self._perp_row[sel],
        )
        result = evaluate_intent(intent, self.policy)
        keep = targeted[sel] | (result.weights_e8 != implied[sel])
        allowed = dict(zip(self._ids[sel][keep].tolist(), result.weights_e8[keep].tolist(), strict=True))
        return allowed, result.verdicts

    def orders(
        self,
        intents: list[OrderIntent],
        limit_px: dict[int, int] | None = None,
        in_base: Callable[[int, int], int] | None = None,
    ) -> tuple[list[OrderIntent], list[RuleVerdict], dict[int, int]]:
        """The enabled order rules (price band, quantity, notional) over the sized orders; a rule
        only shrinks or drops an order, or (band, clip) moves a limit price onto the band. An
        order is priced at its limit (``limit_px`` by instrument) or, a market order, at its
        decision price; the band is measured against the decision price (the last close).
        ``in_base`` (a book of several currencies): (instrument id, minor units of its currency)
        -> minor units of the base, so ``order_notional``'s limit is in the base. Returns the
        kept orders, the verdicts (none when no order rule is enabled) and the limit prices
        after the band."""
        limits = dict(limit_px or {})
        if not intents or not self._order_rules:
            return intents, [], limits
        instruments = self._instruments
        prices = [limits.get(i.instrument_id) or i.decision_px_raw for i in intents]
        notionals = [
            notional_minor(instruments[i.instrument_id], i.qty_raw, px, Rounding.CEILING)
            for i, px in zip(intents, prices, strict=True)
        ]
        if in_base is not None:
            notionals = [in_base(i.instrument_id, value) for i, value in zip(intents, notionals, strict=True)]
        batch = make_orders(
            [i.instrument_id for i in intents],
            [i.side * i.qty_raw for i in intents],
            notionals,
            prices,
            [i.decision_px_raw for i in intents],
            [instruments[i.instrument_id].lot_raw for i in intents],
        )
        result = evaluate_orders(batch, self.policy)
        kept = []
        for intent, qty, px in zip(intents, result.qty_raw.tolist(), result.px_raw.tolist(), strict=True):
            if not qty:
                continue
            kept.append(OrderIntent(intent.instrument_id, intent.side, abs(qty), intent.decision_px_raw))
            if intent.instrument_id in limits:
                limits[intent.instrument_id] = px
        verdicts = [v for v in result.verdicts if v.detail != "disabled"]
        return kept, verdicts, limits


def verdict_events(
    ts_ns: int, strategy_id: str, step: int, verdicts: Sequence[RuleVerdict]
) -> list[RiskVerdict]:
    return [
        RiskVerdict(
            ts_ns=ts_ns,
            strategy_id=strategy_id,
            step=step,
            rule=v.rule,
            action=v.action,
            unit=v.unit,
            limit=v.limit,
            observed=v.observed,
            observed_after=v.observed_after,
            instrument_ids=v.instrument_ids,
            group_ids=v.group_ids,
            detail=v.detail,
        )
        for v in verdicts
    ]


def current_weights(
    positions: dict[int, Position],
    prices: dict[int, int],
    instruments: dict[int, Instrument],
    nav_minor: int,
    nav_by_instrument: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """Signed weights (1e-8 of NAV) of the held positions at the given prices.
    ``nav_by_instrument``: the NAV in each instrument's currency (a book of several currencies)."""
    if nav_minor <= 0:
        return {}
    weights = {}
    for iid, position in sorted(positions.items()):
        value = notional_minor(instruments[iid], position.qty_raw, prices[iid], _HALF_EVEN)
        nav = nav_minor if nav_by_instrument is None else nav_by_instrument[iid]
        weights[iid] = div_half_even(value * RATE_SCALE, nav) if nav > 0 else 0
    return weights


def plan_orders(
    targets: dict[int, int],
    positions: dict[int, Position],
    prices: dict[int, int],
    instruments: dict[int, Instrument],
    nav_minor: int,
    nav_by_instrument: Mapping[int, int] | None = None,
) -> list[OrderIntent]:
    """Whole-lot orders that move each targeted position to its weight; sells before buys.
    ``nav_by_instrument``: the NAV in each instrument's currency (a book of several currencies).
    A position off its lot grid (an A-share's odd shares after a bonus issue, 10送3 on 43,200
    -> 56,160) sells its odd remainder with the lots (allowed as one order) but buys whole lots
    only, rounded down: the odd buy to the rounded target would be refused (``CN_LOT``)."""
    intents: list[OrderIntent] = []
    for iid in sorted(targets):
        px = prices[iid]
        nav = nav_minor if nav_by_instrument is None else nav_by_instrument[iid]
        value = div_round(targets[iid] * max(nav, 0), RATE_SCALE, _DOWN)
        target_qty = 0
        if value:
            assert px > 0, "targets without a price are rejected by the risk stage"
            target_qty = qty_for_value(instruments[iid], abs(value), px) * (1 if value > 0 else -1)
        delta = target_qty - positions.get(iid, Position()).qty_raw
        if delta > 0:
            lot = instruments[iid].lot_raw
            delta = delta // lot * lot
        if delta:
            intents.append(OrderIntent(iid, 1 if delta > 0 else -1, abs(delta), px))
    intents.sort(key=lambda intent: (intent.side, intent.instrument_id))
    return intents
