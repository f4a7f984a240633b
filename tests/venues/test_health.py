"""The edge's stale-data watch (``venues.health.StaleWatch``)."""

from __future__ import annotations

import pytest

from venues.health import StaleWatch

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
