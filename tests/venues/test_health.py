"""The edge's stale-data watch (``venues.health.StaleWatch``)."""

from __future__ import annotations

import pytest

from venues.health import AnswerWatch, StaleWatch

S = 10**9


def test_a_name_behind_the_others_by_more_than_the_limit_is_reported_once_per_episode() -> None:
    watch = StaleWatch({1: "BTC/USDT", 2: "ETH/USDT"}, limit_ns=60 * S)
    assert watch.check(0, {}) is None  # nothing seen yet
    assert watch.check(100 * S, {1: 100 * S, 2: 100 * S}) is None
    assert watch.check(100 * S, {1: 160 * S, 2: 100 * S}) is None  # 60 s behind: at the limit
    note = watch.check(100 * S, {1: 161 * S, 2: 100 * S})  # the venue's clock held back: 61 s
    assert note == "stale data: newest bar older than 60 s: ETH/USDT 61 s"
    assert watch.check(100 * S, {1: 300 * S, 2: 100 * S}) is None  # the same episode
    assert watch.check(300 * S, {1: 300 * S, 2: 290 * S}) is None  # fresh again
    again = watch.check(500 * S, {1: 300 * S, 2: 290 * S})  # the wall clock: both old
    assert again == "stale data: newest bar older than 60 s: ETH/USDT 210 s, BTC/USDT 200 s"
    assert watch.episodes == 2


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit_ns must be positive"):
        StaleWatch({1: "X"}, 0)


def test_an_order_waiting_longer_than_the_limit_for_its_first_answer_is_reported_once() -> None:
    watch = AnswerWatch(limit_ns=2 * S)
    assert watch.check(10 * S, {}) is None
    assert watch.check(10 * S, {"o-1": 8 * S}) is None  # two seconds: at the limit
    assert watch.check(11 * S, {"o-1": 8 * S, "o-2": 10 * S}) == (
        "no answer from the venue within 2 s: o-1 3 s"
    )
    assert watch.check(12 * S, {"o-1": 8 * S, "o-2": 10 * S}) is None  # o-1 said; o-2 at 2 s
    note = watch.check(20 * S, {"o-2": 10 * S, "o-3": 15 * S})
    assert note == "no answer from the venue within 2 s: o-2 10 s, o-3 5 s"
    with pytest.raises(ValueError, match="limit_ns must be positive"):
        AnswerWatch(0)
