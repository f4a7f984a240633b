"""After risk, the accepted intent never breaches any limit of the policy (any actions, any book).

Measures are recomputed here with Python integers, independently of the numba kernels.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.instruments import Instrument
from domain.riskrules import (
    PORTFOLIO_RULE_ORDER,
    OrderLimit,
    PortfolioLimit,
    PriceBand,
    RiskPolicy,
    RuleAction,
    band_allowance_raw,
    evaluate_intent,
    evaluate_orders,
    evaluate_within_limits,
    make_intent,
    make_orders,
)
from kernel.pipeline import RiskStage

WEIGHT = st.integers(-400_000_000, 400_000_000)
actions = st.sampled_from(list(RuleAction))
limits = st.builds(PortfolioLimit, limit_e8=st.integers(1, 300_000_000), action=actions)
policies = st.builds(RiskPolicy, **dict.fromkeys(PORTFOLIO_RULE_ORDER, limits))


@st.composite
def intents(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    n = draw(st.integers(0, 40))
    return make_intent(
        list(range(n)),
        draw(st.lists(WEIGHT, min_size=n, max_size=n)),
        draw(st.lists(WEIGHT, min_size=n, max_size=n)),
        draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n)),
        draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n)),
        draw(st.lists(st.booleans(), min_size=n, max_size=n)),
    )


def measures(
    weights: list[int], sectors: list[int], countries: list[int], perp: list[bool]
) -> dict[str, int]:
    def worst(groups: list[int]) -> int:
        sums: dict[int, int] = {}
        for w, g in zip(weights, groups, strict=True):
            if g >= 0:
                sums[g] = sums.get(g, 0) + abs(w)
        return max(sums.values(), default=0)

    return {
        "name": max((abs(w) for w in weights), default=0),
        "sector": worst(sectors),
        "country": worst(countries),
        "perp_side": max(
            sum(w for w, p in zip(weights, perp, strict=True) if p and w > 0),
            -sum(w for w, p in zip(weights, perp, strict=True) if p and w < 0),
        ),
        "gross_leverage": sum(abs(w) for w in weights),
        "net_leverage": abs(sum(weights)),
    }


@settings(max_examples=300, deadline=None)
@given(intents(), policies)
def test_accepted_vector_never_breaches_a_limit(intent, policy: RiskPolicy) -> None:  # type: ignore[no-untyped-def]
    result = evaluate_intent(intent, policy)
    accepted = result.weights_e8.tolist()
    target = intent.target_e8.tolist()
    seen = measures(
        accepted, intent.sector_ids.tolist(), intent.country_ids.tolist(), intent.is_perp.tolist()
    )
    for rule in PORTFOLIO_RULE_ORDER:
        assert seen[rule] <= getattr(policy, rule).limit_e8, rule
    for after, before in zip(accepted, target, strict=True):
        assert abs(after) <= abs(before)
        assert after * before >= 0  # never flips a side
    verdicts = {v.rule: v for v in result.verdicts}
    assert list(verdicts) == list(PORTFOLIO_RULE_ORDER)
    for rule, verdict in verdicts.items():
        assert verdict.observed_after <= verdict.limit
        assert (verdict.action == "pass") == (verdict.observed <= verdict.limit), rule


def test_canary_the_checker_catches_a_breach() -> None:
    """The independent measure must flag a vector that is over a limit (else the property is void)."""
    over = measures([60_000_000, 60_000_000], [0, 0], [-1, -1], [False, False])
    assert over["sector"] > RiskPolicy().sector.limit_e8
    intent = make_intent([1, 2], [60_000_000, 60_000_000], [0, 0], [0, 0], [-1, -1], [False, False])
    assert np.abs(evaluate_intent(intent, RiskPolicy()).weights_e8).sum() <= 30_000_000


order_actions = st.sampled_from([RuleAction.REJECT, RuleAction.CLIP])


@st.composite
def order_cases(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    n = draw(st.integers(0, 20))
    lots = draw(st.lists(st.sampled_from([1, 10, 100]), min_size=n, max_size=n))
    qty = [lot * draw(st.integers(-5_000, 5_000)) for lot in lots]
    px = draw(st.lists(st.integers(1, 10**13), min_size=n, max_size=n))
    last = [max(0, p + draw(st.integers(-p // 5, p // 5))) for p in px]
    notional = [abs(q) * draw(st.integers(1, 10**6)) for q in qty]
    policy = RiskPolicy(
        order_notional=OrderLimit(limit=draw(st.integers(0, 10**9)), action=draw(order_actions)),
        order_qty=OrderLimit(limit=draw(st.integers(0, 400_000)), action=draw(order_actions)),
        price_band=PriceBand(band_e8=draw(st.integers(0, 20_000_000)), action=draw(order_actions)),
    )
    return make_orders(list(range(n)), qty, notional, px, last, lots), policy


@settings(max_examples=300, deadline=None)
@given(order_cases())
def test_accepted_orders_respect_order_limits(case) -> None:  # type: ignore[no-untyped-def]
    batch, policy = case
    result = evaluate_orders(batch, policy)
    allowance = band_allowance_raw(np.maximum(batch.last_px_raw, 0), policy.price_band.band_e8).tolist()
    rows = zip(
        result.qty_raw.tolist(),
        batch.qty_raw.tolist(),
        result.notional_minor.tolist(),
        result.px_raw.tolist(),
        batch.last_px_raw.tolist(),
        batch.lot_raw.tolist(),
        allowance,
        strict=True,
    )
    for qty, qty0, notional, px, last, lot, allow in rows:
        assert abs(qty) <= abs(qty0)
        assert qty * qty0 >= 0
        assert qty % lot == 0
        if qty == 0:
            continue
        if policy.order_qty.limit:
            assert abs(qty) <= policy.order_qty.limit
        if policy.order_notional.limit:
            assert notional <= policy.order_notional.limit
        if policy.price_band.band_e8 and last > 0:
            assert abs(px - last) * 100_000_000 <= policy.price_band.band_e8 * last
            assert abs(px - last) <= allow


SMALL_WEIGHT = st.integers(-40_000_000, 40_000_000)  # often within the limits: the fast path's case


@settings(max_examples=300, deadline=None)
@given(st.data(), policies)
def test_the_plain_python_pass_agrees_with_the_full_evaluation(
    data: st.DataObject, policy: RiskPolicy
) -> None:
    n = data.draw(st.integers(0, 12))
    weights = data.draw(st.lists(st.one_of(SMALL_WEIGHT, WEIGHT), min_size=n, max_size=n))
    sectors = data.draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n))
    countries = data.draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n))
    perps = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    fast = evaluate_within_limits(weights, sectors, countries, perps, policy)
    full = evaluate_intent(make_intent(list(range(n)), weights, weights, sectors, countries, perps), policy)
    if fast is None:
        assert any(v.action != "pass" for v in full.verdicts)
    else:
        assert fast == full.verdicts
        assert full.weights_e8.tolist() == weights


@settings(max_examples=200, deadline=None)
@given(st.data(), policies)
def test_the_kernels_array_path_agrees_with_its_dict_path(data: st.DataObject, policy: RiskPolicy) -> None:
    """Large decisions go through arrays over the universe; small ones through dicts: same result."""
    universe = data.draw(st.integers(1, 30))
    instruments = {
        iid: Instrument(
            instrument_id=iid,
            symbol=f"S{iid}",
            venue="T",
            asset_class=data.draw(st.sampled_from(["equity", "crypto_perp"])),
            currency="USD",
            price_digits=2,
            tick_raw=1,
            qty_digits=0,
            lot_raw=1,
            sector=data.draw(st.sampled_from(["", "a", "b"])),
            country=data.draw(st.sampled_from(["", "x", "y"])),
        )
        for iid in range(10, 10 + 3 * universe, 3)
    }
    names = st.sampled_from(sorted(instruments))
    targets = data.draw(st.dictionaries(names, st.one_of(SMALL_WEIGHT, WEIGHT), max_size=universe))
    held = data.draw(st.dictionaries(names, st.integers(-3_000_000_000, 3_000_000_000), max_size=universe))
    stage = RiskStage(policy, instruments)
    assert stage.portfolio(targets, held) == stage._portfolio_arrays(targets, held)
