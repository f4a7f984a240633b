"""Portfolio rules over the intent vector: each action on a hand-computed case, the fixed order,
verdict numbers, and input validation."""

import numpy as np
import pytest

from domain.riskrules import (
    PORTFOLIO_RULE_ORDER,
    PortfolioLimit,
    RiskPolicy,
    RuleAction,
    evaluate_intent,
    make_intent,
    portfolio_measures,
)

E8 = 100_000_000
LOOSE = PortfolioLimit(limit_e8=2_000_000_000, action=RuleAction.CLIP)


def loose_policy(**rules: PortfolioLimit) -> RiskPolicy:
    base = dict.fromkeys(PORTFOLIO_RULE_ORDER, LOOSE)
    base.update(rules)
    return RiskPolicy(**base)


def intent(target, current=None, sectors=None, countries=None, perp=None):  # type: ignore[no-untyped-def]
    n = len(target)
    return make_intent(
        list(range(10, 10 + n)),
        target,
        current if current is not None else [0] * n,
        sectors if sectors is not None else [-1] * n,
        countries if countries is not None else [-1] * n,
        perp if perp is not None else [False] * n,
    )


def verdict(result, rule):  # type: ignore[no-untyped-def]
    return next(v for v in result.verdicts if v.rule == rule)


def test_one_verdict_per_rule_in_fixed_order() -> None:
    result = evaluate_intent(intent([1, 2, 3]), RiskPolicy())
    assert [v.rule for v in result.verdicts] == list(PORTFOLIO_RULE_ORDER)
    assert all(v.action == "pass" for v in result.verdicts)
    assert result.weights_e8.tolist() == [1, 2, 3]


def test_name_clip_keeps_sign_and_names_the_clipped() -> None:
    policy = loose_policy(name=PortfolioLimit(limit_e8=10_000_000, action=RuleAction.CLIP))
    result = evaluate_intent(intent([15_000_000, -12_000_000, 5_000_000]), policy)
    assert result.weights_e8.tolist() == [10_000_000, -10_000_000, 5_000_000]
    v = verdict(result, "name")
    assert (v.action, v.limit, v.observed, v.observed_after) == ("clip", 10_000_000, 15_000_000, 10_000_000)
    assert v.instrument_ids == [10, 11]


def test_name_scale_scales_everyone() -> None:
    policy = loose_policy(name=PortfolioLimit(limit_e8=10_000_000, action=RuleAction.SCALE))
    result = evaluate_intent(intent([20_000_000, -4_000_000, 3]), policy)
    assert result.weights_e8.tolist() == [10_000_000, -2_000_000, 1]


def test_name_reject_keeps_current_weight() -> None:
    policy = loose_policy(name=PortfolioLimit(limit_e8=10_000_000, action=RuleAction.REJECT))
    result = evaluate_intent(intent([15_000_000, 20_000_000], current=[4_000_000, -3_000_000]), policy)
    # first keeps its current 4%; second flips sign vs current, so the change is rejected to flat
    assert result.weights_e8.tolist() == [4_000_000, 0]
    assert verdict(result, "name").detail == ""


def test_reject_backstops_when_current_book_is_over_the_limit() -> None:
    policy = loose_policy(name=PortfolioLimit(limit_e8=10_000_000, action=RuleAction.REJECT))
    result = evaluate_intent(intent([25_000_000], current=[20_000_000]), policy)
    assert result.weights_e8.tolist() == [10_000_000]
    assert "clipped after reject" in verdict(result, "name").detail


def test_sector_clip_shrinks_only_the_breaching_sector() -> None:
    policy = loose_policy(sector=PortfolioLimit(limit_e8=30_000_000, action=RuleAction.CLIP))
    result = evaluate_intent(intent([20_000_000, 20_000_000, 25_000_000], sectors=[0, 0, 1]), policy)
    assert result.weights_e8.tolist() == [15_000_000, 15_000_000, 25_000_000]
    v = verdict(result, "sector")
    assert (v.observed, v.observed_after, v.group_ids, v.instrument_ids) == (40_000_000, 30_000_000, [0], [])


def test_country_scale_and_unassigned_names() -> None:
    policy = loose_policy(country=PortfolioLimit(limit_e8=60_000_000, action=RuleAction.SCALE))
    result = evaluate_intent(intent([80_000_000, 40_000_000], countries=[0, -1]), policy)
    assert result.weights_e8.tolist() == [60_000_000, 30_000_000]


def test_perp_side_limits_each_side_and_ignores_spot() -> None:
    policy = loose_policy(perp_side=PortfolioLimit(limit_e8=50_000_000, action=RuleAction.CLIP))
    target = [40_000_000, 40_000_000, -30_000_000, 90_000_000]
    result = evaluate_intent(intent(target, perp=[True, True, True, False]), policy)
    assert result.weights_e8.tolist() == [25_000_000, 25_000_000, -30_000_000, 90_000_000]
    assert verdict(result, "perp_side").observed == 80_000_000
    assert verdict(result, "perp_side").group_ids == [0]  # the long side


def test_gross_scale_rounds_toward_zero() -> None:
    policy = loose_policy(gross_leverage=PortfolioLimit(limit_e8=100, action=RuleAction.SCALE))
    result = evaluate_intent(intent([70, -70, 60]), policy)
    assert result.weights_e8.tolist() == [35, -35, 30]
    assert verdict(result, "gross_leverage").detail == "scaled every name by 100/200, toward zero"
    assert int(np.abs(result.weights_e8).sum()) <= 100


@pytest.mark.parametrize("action", list(RuleAction))
def test_net_leverage_every_action_lands_within_the_cap(action: RuleAction) -> None:
    policy = loose_policy(net_leverage=PortfolioLimit(limit_e8=100_000_000, action=action))
    target = [90_000_000, 80_000_000, -30_000_000, 7]
    result = evaluate_intent(intent(target, current=[10_000_000, 0, 0, 0]), policy)
    assert abs(int(result.weights_e8.sum())) <= 100_000_000
    assert np.all(np.abs(result.weights_e8) <= np.abs(np.array(target)))
    assert verdict(result, "net_leverage").action == action.value
    assert verdict(result, "net_leverage").observed == 140_000_007


def test_net_clip_shrinks_only_the_dominant_side() -> None:
    policy = loose_policy(net_leverage=PortfolioLimit(limit_e8=100, action=RuleAction.CLIP))
    result = evaluate_intent(intent([100, 100, -50]), policy)
    assert result.weights_e8.tolist() == [75, 75, -50]
    assert verdict(result, "net_leverage").group_ids == [0]


def test_sector_reject_names_the_reverted_names() -> None:
    policy = loose_policy(sector=PortfolioLimit(limit_e8=30_000_000, action=RuleAction.REJECT))
    result = evaluate_intent(
        intent([20_000_000, 20_000_000, 5], current=[10_000_000, 0, 0], sectors=[0, 0, 1]), policy
    )
    assert result.weights_e8.tolist() == [10_000_000, 0, 5]
    v = verdict(result, "sector")
    assert (v.instrument_ids, v.group_ids, v.detail) == ([10, 11], [0], "")


def test_measures_of_the_accepted_vector_within_every_limit() -> None:
    rng = np.random.default_rng(7)
    n = 400
    it = make_intent(
        np.arange(n),
        rng.integers(-40_000_000, 40_000_000, n),
        rng.integers(-5_000_000, 5_000_000, n),
        rng.integers(-1, 6, n),
        rng.integers(-1, 3, n),
        rng.random(n) < 0.3,
    )
    policy = RiskPolicy()
    result = evaluate_intent(it, policy)
    measures = portfolio_measures(it, result.weights_e8)
    for rule in PORTFOLIO_RULE_ORDER:
        assert measures[rule] <= getattr(policy, rule).limit_e8, rule
    before = portfolio_measures(it, it.target_e8)
    assert before["gross_leverage"] > policy.gross_leverage.limit_e8  # the case does exercise rules


def test_inputs_are_not_mutated() -> None:
    it = intent([50_000_000, 50_000_000])
    evaluate_intent(it, RiskPolicy())
    assert it.target_e8.tolist() == [50_000_000, 50_000_000]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"instrument_ids": [2, 1]}, "strictly increasing"),
        ({"target_e8": [1]}, "target_e8: length"),
        ({"target_e8": [3_000_000_000, 0]}, "20x"),
        ({"sector_ids": [-2, 0]}, "sector_ids"),
        ({"is_perp": [True]}, "is_perp"),
    ],
)
def test_make_intent_validates(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "instrument_ids": [1, 2],
        "target_e8": [0, 0],
        "current_e8": [0, 0],
        "sector_ids": [0, 1],
        "country_ids": [0, 0],
        "is_perp": [False, False],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        make_intent(**args)


def test_empty_intent_passes() -> None:
    result = evaluate_intent(intent([]), RiskPolicy())
    assert result.weights_e8.shape == (0,)
    assert len(result.verdicts) == 6
