"""The rate limiter's state in the control table (moto over HTTP): concurrent spenders never share an allowance."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from gpuorch.access.ratelimit import Limit, RateLimited, RateLimiter


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_concurrent_spenders_get_exactly_the_burst(provisioned, settings):
    clock = Clock()
    # Two limiters, as two API processes have, sharing one table and one (frozen) clock.
    limiters = [RateLimiter(provisioned.aws.dynamodb, settings.control_table, clock=clock) for _ in range(2)]
    limit = Limit(per_minute=60, burst=3)

    def one(i: int) -> bool:
        try:
            limiters[i % 2].spend("k1", limit)
            return True
        except RateLimited:
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(one, range(8)))
    assert outcomes.count(True) == 3

    clock.now += 1.0  # one interval: one more
    assert one(0) is True and one(1) is False


def test_a_refusal_says_when_to_come_back_and_writes_nothing(provisioned, settings):
    clock = Clock()
    limiter = RateLimiter(provisioned.aws.dynamodb, settings.control_table, clock=clock)
    limit = Limit(per_minute=2, burst=1)
    limiter.spend("k2", limit)
    stored = provisioned.aws.dynamodb.scan(TableName=settings.control_table)["Items"]

    clock.now += 10
    with pytest.raises(RateLimited) as refused:
        limiter.spend("k2", limit)
    assert refused.value.retry_after == pytest.approx(20.0)
    assert provisioned.aws.dynamodb.scan(TableName=settings.control_table)["Items"] == stored
    [item] = stored
    assert item["pk"]["S"] == "rate#k2" and int(item["expires_at"]["N"]) > clock.now  # the table's TTL removes it


def test_an_unlimited_key_touches_nothing(provisioned, settings):
    limiter = RateLimiter(provisioned.aws.dynamodb, settings.control_table, clock=Clock())
    for _ in range(5):
        limiter.spend("k3", Limit(per_minute=0, burst=1))
    assert provisioned.aws.dynamodb.scan(TableName=settings.control_table)["Count"] == 0
