"""Job records in DynamoDB (a moto server over HTTP): conditional moves, progress, listing."""

from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.jobs import states
from gpuorch.jobs.store import InvalidCursor, JobStore, TransitionRefused, decode_cursor, encode_cursor


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)

    def __call__(self):
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store(provisioned):
    return JobStore(provisioned.aws.dynamodb, provisioned.settings.job_table, ttl_seconds=86400, clock=Clock())


def test_create_and_read_back(store):
    job = store.create("j1", "camera-angle", {"move": "top_down", "seed": 7, "strength": 0.5}, source="api")
    assert job.status == states.QUEUED
    read = store.get("j1")
    assert read == job
    assert read.params == {"move": "top_down", "seed": 7, "strength": 0.5}


def test_create_twice_is_refused(store):
    store.create("j1", "camera-angle", {}, source="api")
    with pytest.raises(TransitionRefused):
        store.create("j1", "camera-angle", {}, source="api")


def test_forward_moves_and_attempts(store):
    store.create("j1", "camera-angle", {}, source="api")
    running = store.transition("j1", states.RUNNING)
    assert running.attempts == 1 and running.started_at
    again = store.transition("j1", states.RUNNING)  # redelivery
    assert again.attempts == 2
    done = store.transition("j1", states.SUCCEEDED, outputs=[{"uri": "s3://b/k"}])
    assert done.progress == 100 and done.finished_at and done.outputs == [{"uri": "s3://b/k"}]


@pytest.mark.parametrize("terminal", [states.SUCCEEDED, states.FAILED, states.CANCELLED])
def test_a_late_writer_cannot_move_a_finished_job_back(store, terminal):
    store.create("j1", "camera-angle", {}, source="api")
    store.transition("j1", states.RUNNING)
    store.transition("j1", terminal, **({"error": "x"} if terminal == states.FAILED else {}))
    for target in (states.RUNNING, states.SUCCEEDED, states.FAILED):
        with pytest.raises(TransitionRefused) as refused:
            store.transition("j1", target)
        assert refused.value.current == terminal
    assert store.get("j1").status == terminal


def test_moving_an_unknown_job_is_refused(store):
    with pytest.raises(TransitionRefused) as refused:
        store.transition("nope", states.RUNNING)
    assert refused.value.current is None


def test_progress_only_grows_and_only_while_running(store):
    store.create("j1", "camera-angle", {}, source="api")
    assert store.report_progress("j1", 10, "3") is False  # still queued
    store.transition("j1", states.RUNNING)
    assert store.report_progress("j1", 40, "5") is True
    assert store.report_progress("j1", 30, "4") is False
    assert (store.get("j1").progress, store.get("j1").node) == (40, "5")


def test_list_newest_first_with_cursor_across_statuses(store):
    for i in range(7):
        store.create(f"j{i}", "camera-angle", {}, source="api")
    store.transition("j2", states.RUNNING)
    store.transition("j5", states.RUNNING)
    seen, cursor = [], None
    while True:
        page, cursor = store.list(status=None, limit=3, cursor=cursor)
        seen += [job.job_id for job in page]
        if cursor is None:
            break
    assert seen == [f"j{i}" for i in reversed(range(7))]
    running, cursor = store.list(status=states.RUNNING, limit=10)
    assert [job.job_id for job in running] == ["j5", "j2"] and cursor is None


def test_cursor_round_trip_and_garbage():
    assert decode_cursor(encode_cursor("2026-01-01T00:00:00.000000Z", "abc")) == ("2026-01-01T00:00:00.000000Z", "abc")
    for garbage in ("", "!!!", "bm90IGpzb24", encode_cursor("x", "y")[:-3]):
        with pytest.raises(InvalidCursor):
            decode_cursor(garbage or "e30")


def test_a_queued_job_past_its_deadline_cannot_start_but_one_started_before_it_can_run_again(store):
    from gpuorch.jobs.options import JobOptions

    def second(n: int) -> datetime:  # the store's clock reads 12:00:0n at its n-th call
        return datetime(2026, 11, 27, 12, 0, n, tzinfo=timezone.utc)

    store.create("late", "camera-angle", {}, source="api", options=JobOptions(deadline=second(2)))  # at 1
    store.create("early", "camera-angle", {}, source="api", options=JobOptions(deadline=second(4)))  # at 2
    store.transition("early", states.RUNNING)  # at 3: before its deadline
    with pytest.raises(TransitionRefused):
        store.transition("late", states.RUNNING)  # at 4: past its deadline, still queued
    assert store.get("late").overdue(second(4))
    # At 5, past its deadline, redelivered after its worker died: it started in time, so it runs again.
    assert store.transition("early", states.RUNNING).attempts == 2
