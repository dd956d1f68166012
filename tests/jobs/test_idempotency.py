"""Idempotency keys (a moto server over HTTP): one claim per owner and key, the same request answered with the first
one's result, another refused, racing requests accepted once, a refused submission releasing its key."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.errors import ParamsInvalid
from gpuorch.jobs.idempotency import (
    STALE_CLAIM_S, IdempotencyKeyInUse, IdempotencyKeyReused, IdempotencyStore, OnceOnly, checked_key, fingerprint,
    key_problem,
)


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(provisioned, clock):
    return IdempotencyStore(provisioned.aws.dynamodb, provisioned.settings.control_table, keep_s=3600, clock=clock)


class Records:
    """What `submit` accepted, by id: the stand-in for the job table's conditional create."""

    def __init__(self):
        self.lock = threading.Lock()
        self.accepted: dict[str, str] = {}

    def submit(self, resource_id: str) -> str:
        with self.lock:
            if resource_id in self.accepted:
                raise RuntimeError("created twice")
            self.accepted[resource_id] = "job"
        return resource_id

    def find(self, resource_id: str) -> str | None:
        with self.lock:
            return resource_id if resource_id in self.accepted else None


@pytest.mark.parametrize(("key", "problem"), [
    ("8f14e45f-ceea-467f-a0e6-7b7d5d7c1c5e", None),
    ("order 42/retry", None),
    ("x" * 255, None),
    ("", "must not be empty"),
    ("x" * 256, "at most 255 characters, not 256"),
    (" leading", "printable ASCII characters only, without spaces at either end"),
    ("trailing ", "printable ASCII characters only, without spaces at either end"),
    ("tab\there", "printable ASCII characters only, without spaces at either end"),
    ("clé", "printable ASCII characters only, without spaces at either end"),
])
def test_which_keys_are_taken(key, problem):
    assert key_problem(key) == problem


def test_a_bad_key_is_refused_naming_the_header():
    with pytest.raises(ParamsInvalid) as refused:
        checked_key("")
    assert refused.value.errors == {"Idempotency-Key": ["must not be empty"]}


def test_the_fingerprint_reads_the_request_not_its_spelling():
    class Inline:
        def __init__(self, data):
            self.data = data

    assert fingerprint("job", {"a": 1, "b": [1, 2]}) == fingerprint("job", {"b": [1, 2], "a": 1})
    assert fingerprint("job", {"a": 1}) != fingerprint("batch", {"a": 1})
    assert fingerprint("job", {"image": Inline(b"png")}) == fingerprint("job", {"image": Inline(b"png")})
    assert fingerprint("job", {"image": Inline(b"png")}) != fingerprint("job", {"image": Inline(b"jpg")})


def test_the_same_request_again_gets_the_first_ones_result(store):
    records, once = Records(), OnceOnly(store)

    first = once.submit("alice", "k1", "job", "print-a", records.submit, records.find)
    again = once.submit("alice", "k1", "job", "print-a", records.submit, records.find)

    assert (first.replayed, again.replayed) == (False, True)
    assert again.value == first.value
    assert list(records.accepted) == [first.value]


def test_another_request_with_the_key_is_refused_and_each_owner_has_its_own_keys(store):
    records, once = Records(), OnceOnly(store)
    first = once.submit("alice", "k1", "job", "print-a", records.submit, records.find)

    with pytest.raises(IdempotencyKeyReused) as refused:
        once.submit("alice", "k1", "job", "print-b", records.submit, records.find)
    assert first.value in refused.value.errors["Idempotency-Key"][0]

    bobs = once.submit("bob", "k1", "job", "print-b", records.submit, records.find)
    assert not bobs.replayed and bobs.value != first.value


def test_a_refused_submission_leaves_the_key_free(store):
    records, once = Records(), OnceOnly(store)

    def refuse(resource_id: str) -> str:
        raise ParamsInvalid({"move": ["bad"]})

    with pytest.raises(ParamsInvalid):
        once.submit("alice", "k1", "job", "print-a", refuse, records.find)
    assert store.read("alice", "k1") is None

    # Corrected, the retry uses the same key for another request.
    accepted = once.submit("alice", "k1", "job", "print-b", records.submit, records.find)
    assert not accepted.replayed and store.read("alice", "k1").fingerprint == "print-b"


def test_racing_requests_are_accepted_once_and_all_get_that_one(store):
    records, once = Records(), OnceOnly(store)
    gate = threading.Barrier(6)
    results: list = []

    def slow_submit(resource_id: str) -> str:
        gate.wait(timeout=10)  # every other request is at its claim by now
        return records.submit(resource_id)

    def request(submit) -> None:
        results.append(once.submit("alice", "k1", "job", "print-a", submit, records.find))

    threads = [threading.Thread(target=request, args=(slow_submit,))]
    threads += [threading.Thread(target=lambda: (gate.wait(timeout=10), request(records.submit))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(records.accepted) == 1
    [accepted_id] = records.accepted
    assert [r.value for r in results] == [accepted_id] * 6
    assert sorted(r.replayed for r in results) == [False] + [True] * 5


def test_a_request_racing_one_that_does_not_finish_is_told_to_retry(store, clock):
    records = Records()
    store.claim("alice", "k1", _claim_of_someone_else(clock))
    waits: list[float] = []
    once = OnceOnly(store, clock=clock, sleep=lambda s: (waits.append(s), clock.advance(s)), race_wait_s=1.0)

    with pytest.raises(IdempotencyKeyInUse) as busy:
        once.submit("alice", "k1", "job", "print-a", records.submit, records.find)

    assert busy.value.retry_after == 1.0 and records.accepted == {}
    assert 0 < sum(waits) <= 1.2


def test_a_claim_its_submitter_abandoned_is_taken_over_under_the_same_id(store, clock):
    records = Records()
    abandoned = _claim_of_someone_else(clock)
    store.claim("alice", "k1", abandoned)
    clock.advance(STALE_CLAIM_S)

    accepted = OnceOnly(store, clock=clock).submit("alice", "k1", "job", "print-a", records.submit, records.find)

    assert accepted.value == abandoned.resource_id and list(records.accepted) == [abandoned.resource_id]


def test_an_expired_claim_holds_nothing(provisioned, clock):
    store = IdempotencyStore(provisioned.aws.dynamodb, provisioned.settings.control_table, keep_s=0, clock=clock)
    records, once = Records(), OnceOnly(store, clock=clock)
    first = once.submit("alice", "k1", "job", "print-a", records.submit, records.find)

    clock.advance(24 * 3600 - 1)
    assert once.submit("alice", "k1", "job", "print-a", records.submit, records.find).replayed  # kept 24 h at least
    clock.advance(2)
    later = once.submit("alice", "k1", "job", "print-b", records.submit, records.find)

    assert not later.replayed and later.value != first.value


def _claim_of_someone_else(clock):
    from gpuorch.clock import timestamp
    from gpuorch.jobs.idempotency import Claim

    return Claim("job", "their-job", "print-a", timestamp(clock()))
