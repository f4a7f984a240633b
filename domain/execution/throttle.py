"""Per-venue token-bucket rate limit and bounded retry/backoff, driven by event timestamps.

No clock reads: every call takes the step's (or the venue message's) ``ts_ns``. A timestamp older
than the bucket's last refill adds no tokens (time never runs backwards here).
"""

from __future__ import annotations

import msgspec

__all__ = [
    "RetryPolicy",
    "TokenBucket",
    "backoff_ns",
    "bucket_full",
    "refill",
    "retry_schedule_ns",
    "try_acquire",
]


class TokenBucket(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    capacity: int  # burst size, tokens
    refill_interval_ns: int  # one token per interval
    tokens: int
    refilled_ts_ns: int  # the time up to which tokens have been credited

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.refill_interval_ns <= 0:
            raise ValueError("token bucket: capacity and refill_interval_ns must be positive")
        if not 0 <= self.tokens <= self.capacity:
            raise ValueError(f"token bucket: tokens {self.tokens} outside [0, {self.capacity}]")


def bucket_full(capacity: int, refill_interval_ns: int, ts_ns: int) -> TokenBucket:
    return TokenBucket(
        capacity=capacity, refill_interval_ns=refill_interval_ns, tokens=capacity, refilled_ts_ns=ts_ns
    )


def refill(bucket: TokenBucket, ts_ns: int) -> TokenBucket:
    """Credit whole tokens earned since ``refilled_ts_ns``; a partial interval is kept for later."""
    if ts_ns <= bucket.refilled_ts_ns:
        return bucket
    earned, _ = divmod(ts_ns - bucket.refilled_ts_ns, bucket.refill_interval_ns)
    if bucket.tokens + earned >= bucket.capacity:
        return msgspec.structs.replace(bucket, tokens=bucket.capacity, refilled_ts_ns=ts_ns)
    credited_ns = bucket.refilled_ts_ns + earned * bucket.refill_interval_ns
    return msgspec.structs.replace(bucket, tokens=bucket.tokens + earned, refilled_ts_ns=credited_ns)


def try_acquire(bucket: TokenBucket, ts_ns: int, tokens: int = 1) -> tuple[TokenBucket, bool, int]:
    """(bucket, granted, wait_ns): ``wait_ns`` is how long until ``tokens`` would be available."""
    if not 0 < tokens <= bucket.capacity:
        raise ValueError(f"token bucket: cannot take {tokens} of capacity {bucket.capacity}")
    bucket = refill(bucket, ts_ns)
    if bucket.tokens >= tokens:
        return msgspec.structs.replace(bucket, tokens=bucket.tokens - tokens), True, 0
    missing = tokens - bucket.tokens
    elapsed = max(ts_ns - bucket.refilled_ts_ns, 0)
    return bucket, False, missing * bucket.refill_interval_ns - elapsed


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    attempts_max: int = 3  # retries after the first try
    base_ns: int = 500_000_000
    factor: int = 2
    cap_ns: int = 30_000_000_000
    timeout_ns: int = 10_000_000_000  # no venue answer within this: treat as failed (timer input)

    def __post_init__(self) -> None:
        if self.attempts_max < 0 or self.base_ns <= 0 or self.factor < 1 or self.cap_ns < self.base_ns:
            raise ValueError("retry: need attempts_max >= 0, base_ns > 0, factor >= 1, cap_ns >= base_ns")


def backoff_ns(policy: RetryPolicy, attempt: int) -> int | None:
    """Delay before retry ``attempt`` (1-based): ``min(base x factor^(attempt-1), cap)``; None when
    the retries are used up (the caller rejects the child with the last reason)."""
    if attempt < 1 or attempt > policy.attempts_max:
        return None
    delay: int = policy.base_ns * policy.factor ** (attempt - 1)
    return min(delay, policy.cap_ns)


def retry_schedule_ns(policy: RetryPolicy, first_ts_ns: int) -> list[int]:
    """Absolute retry times after a first failure at ``first_ts_ns`` (delays accumulate)."""
    times: list[int] = []
    ts = first_ts_ns
    for attempt in range(1, policy.attempts_max + 1):
        delay = backoff_ns(policy, attempt)
        assert delay is not None
        ts += delay
        times.append(ts)
    return times
