"""Token bucket driven by event time; bounded exponential backoff."""

import pytest

from domain.execution import RetryPolicy, backoff_ns, bucket_full, refill, retry_schedule_ns, try_acquire


def test_bucket_burst_then_wait() -> None:
    bucket = bucket_full(capacity=2, refill_interval_ns=100, ts_ns=0)
    bucket, ok1, _ = try_acquire(bucket, 0)
    bucket, ok2, _ = try_acquire(bucket, 0)
    bucket, ok3, wait = try_acquire(bucket, 30)
    assert (ok1, ok2, ok3) == (True, True, False)
    assert wait == 70
    bucket, ok4, _ = try_acquire(bucket, 100)
    assert ok4


def test_refill_keeps_partial_interval_and_caps() -> None:
    bucket = bucket_full(capacity=5, refill_interval_ns=100, ts_ns=0)
    bucket, _, _ = try_acquire(bucket, 0, tokens=5)
    bucket = refill(bucket, 250)
    assert (bucket.tokens, bucket.refilled_ts_ns) == (2, 200)
    assert refill(bucket, 10_000).tokens == 5


def test_time_going_backwards_adds_nothing() -> None:
    bucket = bucket_full(capacity=1, refill_interval_ns=100, ts_ns=1_000)
    bucket, _, _ = try_acquire(bucket, 1_000)
    bucket, ok, _ = try_acquire(bucket, 500)
    assert not ok
    assert bucket.refilled_ts_ns == 1_000


def test_bucket_validation() -> None:
    with pytest.raises(ValueError, match="capacity"):
        bucket_full(0, 1, 0)
    with pytest.raises(ValueError, match="cannot take"):
        try_acquire(bucket_full(1, 1, 0), 0, tokens=2)


def test_backoff_grows_caps_and_ends() -> None:
    policy = RetryPolicy(attempts_max=4, base_ns=100, factor=3, cap_ns=1_000)
    assert [backoff_ns(policy, a) for a in range(1, 6)] == [100, 300, 900, 1_000, None]
    assert backoff_ns(policy, 0) is None
    assert retry_schedule_ns(policy, 10) == [110, 410, 1_310, 2_310]
