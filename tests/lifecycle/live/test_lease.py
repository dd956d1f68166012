"""The lifecycle lease in the control table (moto server): one holder at a time, expiry, release, threads."""

from __future__ import annotations

import threading

import pytest

from lifecycle.live.lease import LOCK_PK, Lease, LeaseBusy, default_owner


def lease(dynamodb, table, clock, owner, *, name="lifecycle-check", ttl_s=60):
    return Lease(dynamodb, table, name, owner=owner, ttl_s=ttl_s, clock=clock)


def test_one_holder_until_release(dynamodb, control_table, clock):
    a, b = lease(dynamodb, control_table, clock, "a"), lease(dynamodb, control_table, clock, "b")
    assert a.acquire()
    assert not b.acquire()
    assert a.holder() == "a"
    assert a.release()
    assert a.holder() is None
    assert b.acquire()
    assert not a.acquire()


def test_the_holder_extends_its_own_lease(dynamodb, control_table, clock):
    a, b = lease(dynamodb, control_table, clock, "a"), lease(dynamodb, control_table, clock, "b")
    assert a.acquire()
    clock.advance(50)
    assert a.acquire()  # extended to 50 + 60 s
    clock.advance(50)
    assert not b.acquire()
    clock.advance(10)
    assert b.acquire()


def test_an_expired_lease_is_taken_and_its_old_owner_cannot_release_it(dynamodb, control_table, clock):
    a, b = lease(dynamodb, control_table, clock, "a"), lease(dynamodb, control_table, clock, "b")
    assert a.acquire()
    clock.advance(59.9)
    assert not b.acquire()
    clock.advance(0.1)
    assert b.acquire()
    assert not a.release()
    assert b.holder() == "b"


def test_leases_of_different_names_are_independent(dynamodb, control_table, clock):
    assert lease(dynamodb, control_table, clock, "a", name="one").acquire()
    assert lease(dynamodb, control_table, clock, "b", name="two").acquire()


def test_the_item_expires_through_the_tables_ttl(dynamodb, control_table, clock):
    lease(dynamodb, control_table, clock, "a", ttl_s=30.5).acquire()
    item = dynamodb.get_item(TableName=control_table, Key={"pk": {"S": LOCK_PK}, "sk": {"S": "lifecycle-check"}})
    assert int(item["Item"]["expires_at"]["N"]) == int(clock().timestamp()) + 31


def test_context_manager_holds_then_releases(dynamodb, control_table, clock):
    a, b = lease(dynamodb, control_table, clock, "a"), lease(dynamodb, control_table, clock, "b")
    with a:
        assert a.holder() == "a"
        with pytest.raises(LeaseBusy):
            with b:
                pass
        assert a.holder() == "a"  # the refused one released nothing
    assert a.holder() is None


def test_context_manager_releases_when_the_body_raises(dynamodb, control_table, clock):
    a = lease(dynamodb, control_table, clock, "a")
    with pytest.raises(ZeroDivisionError):
        with a:
            1 / 0
    assert a.holder() is None


def test_checks_at_the_same_moment_one_gets_it(dynamodb, control_table, clock):
    """Sixteen threads, each its own owner, try at once, round after round: exactly one wins each round."""
    contenders = [lease(dynamodb, control_table, clock, default_owner()) for _ in range(16)]
    for _ in range(5):
        barrier = threading.Barrier(len(contenders))
        results: dict[str, bool] = {}

        def attempt(contender):
            barrier.wait()
            results[contender.owner] = contender.acquire()

        threads = [threading.Thread(target=attempt, args=(c,)) for c in contenders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [owner for owner, won in results.items() if won]
        assert len(results) == 16 and len(winners) == 1
        assert contenders[0].holder() == winners[0]
        assert next(c for c in contenders if c.owner == winners[0]).release()


def test_owner_and_ttl_are_required(dynamodb, control_table, clock):
    with pytest.raises(ValueError):
        Lease(dynamodb, control_table, "x", owner="", ttl_s=10, clock=clock)
    with pytest.raises(ValueError):
        Lease(dynamodb, control_table, "x", owner="a", ttl_s=0, clock=clock)
    assert default_owner() != default_owner()
