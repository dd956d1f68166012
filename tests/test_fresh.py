"""The API's reused values: the first asker reads, later ones never wait, and while they are asked for a thread
makes the next as each expires, on its own schedule rather than beside a request."""

from __future__ import annotations

import itertools
import threading
import time

from gpuorch.fresh import FreshCache
from tests.conftest import wait_for


class Maker:
    """Makes 1, 2, 3 ...; each call recorded with the thread that made it."""

    def __init__(self, fail_after: int | None = None):
        self.counter, self.threads, self.fail_after = itertools.count(1), [], fail_after

    def __call__(self):
        self.threads.append(threading.current_thread().name)
        if self.fail_after is not None and len(self.threads) > self.fail_after:
            raise RuntimeError("table unreachable")
        return next(self.counter)


def test_the_first_asker_reads_and_the_next_ones_within_the_ttl_reuse_it():
    cache, make = FreshCache(keep_fresh_s=5), Maker()
    assert cache.get("gpu", 10, make) == 1 and make.threads == [threading.current_thread().name]
    assert cache.get("gpu", 10, make) == 1 and cache.made == 1


def test_while_asked_for_a_value_is_made_again_as_it_expires_without_any_asker_setting_it_off():
    cache, make = FreshCache(keep_fresh_s=5), Maker()
    cache.get("gpu", 0.1, make)
    cache.get("gpu", 0.1, make)  # asked again: the refresher starts
    # Nobody asks meanwhile: the value is made again by the refresher, as it expires.
    wait_for(lambda: cache.made >= 3, 5, interval=0.01, message="two refreshes")
    assert set(make.threads[1:]) == {"gpuorch-refresh"}
    began = time.monotonic()
    assert cache.get("gpu", 0.1, make) >= 2 and time.monotonic() - began < 0.05  # never waits


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_value_no_longer_asked_for_is_left_alone_then_made_when_next_asked():
    clock, make = Clock(), Maker()
    cache = FreshCache(clock, keep_fresh_s=1.0, background=False)
    cache.get("queue", 0.25, make)
    clock.now += 0.25
    assert cache.refresh_due() == 0.25 and cache.made == 2  # asked lately and expired: made again
    clock.now += 1.0
    assert cache.refresh_due() is None and cache.made == 2  # not asked for lately: left alone, the refresher stops
    assert cache.get("queue", 0.25, make) == 2  # the last one, at once
    assert cache.refresh_due() is not None and cache.made == 3  # asked again: made again


def test_a_ttl_of_0_reads_every_time():
    cache, make = FreshCache(), Maker()
    assert [cache.get("x", 0, make) for _ in range(3)] == [1, 2, 3]


def test_a_failed_refresh_keeps_the_last_value_and_is_tried_again_a_ttl_later(caplog):
    clock, make = Clock(), Maker(fail_after=1)
    cache = FreshCache(clock, keep_fresh_s=5, background=False)
    cache.get("gpu", 0.5, make)
    clock.now += 0.5
    assert cache.refresh_due() == 0.5 and len(make.threads) == 2  # tried, failed; next due a ttl later
    assert "could not refresh gpu; the last one read stands" in caplog.text
    assert cache.get("gpu", 0.5, make) == 1
    clock.now += 0.25
    assert cache.refresh_due() == 0.25 and len(make.threads) == 2  # not due yet: not tried in a loop
    clock.now += 0.25
    cache.refresh_due()
    assert len(make.threads) == 3  # a ttl after the failure: tried again


def test_a_closed_cache_stops_refreshing_and_its_next_asker_reads_an_expired_value():
    clock, make = Clock(), Maker()
    cache = FreshCache(clock, keep_fresh_s=5)
    cache.get("gpu", 0.5, make)
    cache.get("gpu", 0.5, make)
    refresher = cache._refresher
    cache.close()
    assert refresher is not None and not refresher.is_alive()
    made = cache.made
    clock.now += 0.5
    assert cache.refresh_due() is None and cache.made == made  # closed: no refresh
    assert cache.get("gpu", 0.5, make) == made + 1 and make.threads[-1] == threading.current_thread().name
