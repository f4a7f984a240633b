"""Portfolio construction from scores (models.portfolio): top-k, top-k with dropout rotation and
score-weighted portfolios — ranks and ties, dropout counts and turnover, weight sums and caps,
and the held set's causality (a prefix of the scores gives the same rows)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.portfolio import (
    Portfolio,
    PortfolioSpec,
    capped_proportional,
    dropout_holdings,
    ranking,
    score_weights,
    topk_weights,
)

NAN = np.nan


def test_ranking_breaks_ties_by_instrument_id_not_by_column() -> None:
    ids = np.array([30, 10, 20, 40], dtype=np.int64)
    score = np.array([1.0, 1.0, 2.0, NAN])
    eligible = np.isfinite(score)
    assert ranking(score, eligible, ids).tolist() == [2, 1, 0]  # 2.0; then ids 10 before 30
    weights = topk_weights(score, eligible, ids, 2, 0.9)
    np.testing.assert_array_equal(weights, [0.0, 0.45, 0.45, 0.0])
    # fewer eligible than k: the weight is split among those there are
    np.testing.assert_array_equal(
        topk_weights(score, np.array([0, 0, 1, 0], bool), ids, 3, 0.9), [0, 0, 0.9, 0]
    )


def test_dropout_by_hand() -> None:
    """k = 3, n = 1 over five names (ids 1..5 in column order)."""
    ids = np.arange(1, 6, dtype=np.int64)
    scores = np.array([
        [5.0, 4.0, 3.0, 2.0, 1.0],   # buy the top 3: {1, 2, 3}
        [1.0, 2.0, 3.0, 5.0, 4.0],   # top {4, 5, 3}: 1 and 2 fell out; sell only the worst (1), buy 4
        [1.0, 2.0, 3.0, 5.0, 4.0],   # same scores: 2 still out; sell it, buy 5
        [1.0, NAN, 3.0, 5.0, 4.0],   # the top 3 is what is held: no trade
        [9.0, 8.0, NAN, 1.0, 0.0],   # 3 has no score (worst) and 5 fell out: sell 3 only, buy 1
    ])  # fmt: skip
    valid = np.ones_like(scores, dtype=bool)
    held = dropout_holdings(scores, valid, np.arange(5, dtype=np.int64), ids, 3, 1)
    sets = [sorted(int(i) for i in ids[row]) for row in held]
    assert sets == [[1, 2, 3], [2, 3, 4], [3, 4, 5], [3, 4, 5], [1, 4, 5]]
    # n = 2: both names that fell out go at once
    held2 = dropout_holdings(scores, valid, np.arange(2, dtype=np.int64), ids, 3, 2)
    assert sorted(int(i) for i in ids[held2[1]]) == [3, 4, 5]


def test_a_suspended_held_name_is_kept_and_an_unscored_tradable_one_goes_first() -> None:
    ids = np.array([1, 2, 3, 4], dtype=np.int64)
    scores = np.array([[4.0, 3.0, 2.0, 1.0], [0.0, 0.5, 3.0, 4.0], [NAN, 0.5, 3.0, 4.0]])
    valid = np.ones_like(scores, dtype=bool)
    valid[1, 0] = False  # name 1 suspended at the second rebalance: it cannot be sold there
    held = dropout_holdings(scores, valid, np.arange(3, dtype=np.int64), ids, 2, 1)
    assert [sorted(int(i) for i in ids[row]) for row in held] == [[1, 2], [1, 4], [3, 4]]
    # second step: 1 (suspended) stays, 2 fell out and is sold, 4 (best not held) bought;
    # third: 1 has a bar but no score, so it is the one dropped, for 3


def test_ties_in_the_dropout_are_by_instrument_id_whatever_the_column_order() -> None:
    ids = np.array([7, 3, 5, 1], dtype=np.int64)
    scores = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    valid = np.ones_like(scores, dtype=bool)
    held = dropout_holdings(scores, valid, np.array([0, 1], dtype=np.int64), ids, 2, 1)
    assert sorted(int(i) for i in ids[held[0]]) == [1, 3]  # all tied: the two lowest ids
    # 3 (score 0) fell out and 5 joins the top; 1 stays
    assert sorted(int(i) for i in ids[held[1]]) == [1, 5]
    permutation = np.array([3, 1, 2, 0])
    again = dropout_holdings(
        scores[:, permutation], valid, np.array([0, 1], dtype=np.int64), ids[permutation], 2, 1
    )
    np.testing.assert_array_equal(again, held[:, permutation])


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    names=st.integers(1, 25),
    rebalances=st.integers(1, 30),
    top_k=st.integers(1, 8),
    n_drop=st.integers(1, 8),
)
def test_dropout_respects_its_count_and_bounds_turnover(
    seed: int, names: int, rebalances: int, top_k: int, n_drop: int
) -> None:
    n_drop = min(n_drop, top_k)
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=(rebalances, names)), 1)  # rounded: ties happen
    scores[rng.random(scores.shape) < 0.15] = NAN
    valid = rng.random(scores.shape) > 0.1
    ids = rng.permutation(1000)[:names].astype(np.int64)
    steps = np.arange(rebalances, dtype=np.int64)
    held = dropout_holdings(scores, valid, steps, ids, top_k, n_drop)
    before = np.zeros(names, dtype=bool)
    for row in range(rebalances):
        after, eligible = held[row], np.isfinite(scores[row]) & valid[row]
        sold, bought = before & ~after, after & ~before
        assert sold.sum() <= n_drop, f"replay with seed={seed}"
        assert bought.sum() <= n_drop + max(top_k - int(before.sum()), 0), f"seed={seed}"
        assert after.sum() <= max(top_k, int(before.sum())), f"seed={seed}"
        assert not (sold & ~valid[row]).any(), f"seed={seed}"  # no bar: never sold
        assert not (bought & ~eligible).any(), f"seed={seed}"  # only names with a score and a bar
        top = np.zeros(names, dtype=bool)
        top[ranking(scores[row], eligible, ids)[:top_k]] = True
        assert not (bought & ~top).any(), f"seed={seed}"  # what is bought is in the top k
        assert not (sold & top).any(), f"seed={seed}"  # a name in the top k is never sold
        # fill up: k held unless too few names could be bought
        if after.sum() < top_k:
            assert not (eligible & ~after).any(), f"seed={seed}"
        before = after
    # causality: the scores of a prefix give the same rows
    cut = rebalances // 2
    np.testing.assert_array_equal(
        dropout_holdings(scores[:cut], valid[:cut], steps[:cut], ids, top_k, n_drop), held[:cut]
    )


def test_dropout_targets_leave_kept_names_alone() -> None:
    ids = np.arange(1, 6, dtype=np.int64)
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 5.0, 4.0]])
    valid = np.ones_like(scores, dtype=bool)
    portfolio = Portfolio(PortfolioSpec("topk_dropout", top_k=3, n_drop=1, weight=0.9))
    portfolio.prepare(scores, valid, np.array([0, 1], dtype=np.int64), ids)
    np.testing.assert_allclose(portfolio.weights(0, scores[0], valid[0]), [0.3, 0.3, 0.3, 0, 0])
    second = portfolio.weights(1, scores[1], valid[1])
    assert second[0] == 0.0 and second[3] == pytest.approx(0.3) and second[4] == 0.0
    assert np.isnan(second[1]) and np.isnan(second[2])  # kept: no target, no trade
    resized = Portfolio(PortfolioSpec("topk_dropout", top_k=3, n_drop=1, weight=0.9, resize_held=True))
    resized.prepare(scores, valid, np.array([0, 1], dtype=np.int64), ids)
    np.testing.assert_allclose(resized.weights(1, scores[1], valid[1]), [0, 0.3, 0.3, 0.3, 0])
    with pytest.raises(ValueError, match="not a rebalance step"):
        portfolio.weights(2, scores[1], valid[1])


def test_capped_proportional_redistributes_the_excess() -> None:
    weights = capped_proportional(np.array([8.0, 1.0, 1.0, 0.0]), 0.9, 0.5)
    np.testing.assert_allclose(weights, [0.5, 0.2, 0.2, 0.0])
    assert weights.sum() == pytest.approx(0.9)
    # everything capped: less than the total is held
    np.testing.assert_allclose(capped_proportional(np.array([1.0, 1.0]), 0.9, 0.3), [0.3, 0.3])
    # a second round: the first cap pushes another name over
    cascade = capped_proportional(np.array([10.0, 7.0, 2.0, 1.0]), 1.0, 0.4)
    np.testing.assert_allclose(cascade, [0.4, 0.4, 0.2 * 2 / 3, 0.2 / 3])


def test_score_weighted_long_only() -> None:
    ids = np.array([4, 3, 2, 1, 0], dtype=np.int64)
    score = np.array([3.0, 2.0, 1.0, 0.0, NAN])
    eligible = np.isfinite(score)
    spec = PortfolioSpec("score_weighted", top_k=0, weight=0.9)
    weights = score_weights(score, eligible, ids, spec)
    # demeaned: 1.5, 0.5, -0.5, -1.5 -> long the two above the mean, 3:1
    np.testing.assert_allclose(weights, [0.675, 0.225, 0.0, 0.0, 0.0])
    raw = score_weights(
        score, eligible, ids, PortfolioSpec("score_weighted", top_k=0, weight=0.9, demean=False)
    )
    np.testing.assert_allclose(raw, [0.45, 0.3, 0.15, 0.0, 0.0])
    capped = score_weights(
        score, eligible, ids, PortfolioSpec("score_weighted", top_k=0, weight=0.9, cap=0.4)
    )
    np.testing.assert_allclose(capped, [0.4, 0.4, 0.0, 0.0, 0.0])  # the excess pushes the second over too
    top1 = score_weights(
        score, eligible, ids, PortfolioSpec("score_weighted", top_k=1, weight=0.9, demean=False)
    )
    np.testing.assert_allclose(top1, [0.9, 0, 0, 0, 0])


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), names=st.integers(1, 40), cap=st.floats(0.02, 1.0),
       weight=st.floats(0.1, 1.0), long_short=st.booleans(), top_k=st.integers(0, 10))  # fmt: skip
def test_score_weighted_sums_and_caps(
    seed: int, names: int, cap: float, weight: float, long_short: bool, top_k: int
) -> None:
    rng = np.random.default_rng(seed)
    score = rng.normal(size=names)
    score[rng.random(names) < 0.2] = NAN
    eligible = np.isfinite(score) & (rng.random(names) > 0.1)
    ids = np.arange(names, dtype=np.int64)
    spec = PortfolioSpec("score_weighted", top_k=top_k, weight=weight, cap=cap, long_short=long_short)
    weights = score_weights(score, eligible, ids, spec)
    assert np.all(np.abs(weights) <= cap + 1e-12), f"seed={seed}"
    assert np.all(weights[~eligible] == 0.0), f"seed={seed}"
    mean = score[eligible].mean() if eligible.any() else 0.0
    centred = np.where(eligible, score - mean, 0.0)
    long, short = weights[weights > 0], -weights[weights < 0]
    assert np.all(centred[weights > 0] > 0) and np.all(centred[weights < 0] < 0), f"seed={seed}"
    side = weight / 2 if long_short else weight
    for values in (long, short) if long_short else (long,):
        if values.size:
            assert values.sum() <= side + 1e-12, f"seed={seed}"
            if values.size * cap >= side + 1e-9:
                assert values.sum() == pytest.approx(side), f"seed={seed}"
    if not long_short:
        assert short.size == 0
    # uncapped names of one side are proportional to their demeaned scores
    free = (weights > 0) & (weights < cap - 1e-12)
    if free.sum() >= 2:
        ratio = weights[free] / centred[free]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    if top_k:
        assert (weights > 0).sum() <= top_k and (weights < 0).sum() <= top_k, f"seed={seed}"


def test_spec_refusals() -> None:
    with pytest.raises(ValueError, match="portfolio must be one of"):
        PortfolioSpec("equal")
    with pytest.raises(ValueError, match="n_drop"):
        PortfolioSpec("topk_dropout", top_k=2, n_drop=3)
    with pytest.raises(ValueError, match="top_k must be positive"):
        PortfolioSpec("topk", top_k=0)
    with pytest.raises(ValueError, match="cap"):
        PortfolioSpec("score_weighted", top_k=0, cap=0.0)
    with pytest.raises(ValueError, match="weight"):
        PortfolioSpec(weight=1.5)
    PortfolioSpec("score_weighted", top_k=0)  # every name
