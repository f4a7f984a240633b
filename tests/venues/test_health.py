"""The edge's health watches (``venues.health``: stale data, unanswered orders, heartbeats)."""

from __future__ import annotations

import pytest

from venues.health import AnswerWatch, HeartbeatWatch, StaleWatch

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


MS = 10**6


def test_heartbeats_over_the_latency_limit_or_unanswered_in_a_row_are_reported_once_per_episode() -> None:
    watch = HeartbeatWatch(limit_ns=250 * MS, misses_max=3)
    assert watch.check(True, 250 * MS) is None  # at the limit
    assert watch.check(True, 251 * MS) == "heartbeat round trip 251.000 ms over the limit of 250.000 ms"
    assert watch.check(True, 900 * MS) is None  # the same episode
    assert watch.check(False, 0, "VENUE_UNAVAILABLE: timed out") is None  # one miss: still the episode
    assert watch.check(True, 10 * MS) is None  # within the limit: the episode ends
    assert watch.check(False, 0, "timed out") is None
    assert watch.check(False, 0, "timed out") is None
    assert watch.check(False, 0, "refused") == "3 heartbeats in a row unanswered by the venue (last: refused)"
    assert watch.check(False, 0, "refused") is None and watch.misses == 4
    assert watch.episodes == 2
    # An answer resets the count: two misses, an answer, two misses report nothing.
    calm = HeartbeatWatch(limit_ns=0, misses_max=3)
    for ok in (False, False, True, False, False):
        assert calm.check(ok, 5 * MS if ok else 0) is None
    assert calm.check(True, 10**12) is None  # no latency limit: any round trip is fine
    off = HeartbeatWatch(limit_ns=0, misses_max=0)
    assert all(off.check(False, 0) is None for _ in range(10))
    with pytest.raises(ValueError, match="limits must be >= 0"):
        HeartbeatWatch(-1, 3)
