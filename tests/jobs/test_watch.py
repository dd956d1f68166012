"""Following job records: one batched read for every follower, a wake-up on each change, a bound on followers; and
the Python caller's wait() and follow() built on it."""

from __future__ import annotations

import threading

import pytest

from gpuorch.celery.app import create_celery_app
from gpuorch.jobs import states
from gpuorch.jobs.store import Job
from gpuorch.jobs.watch import IMMINENT_INTERVAL_S, JobWatch, TooManyWaiters, poll_interval
from gpuorch.tasks import follow, use_app, wait
from tests.conftest import wait_for


@pytest.fixture
def jobs(provisioned):
    store = provisioned.jobs
    for job_id in ("a", "b"):
        store.create(job_id, "camera-angle", {"move": "top_down"}, source="python")
    return store


def recording(jobs):
    """A batched read of the job table that remembers the ids of each read it made."""
    reads: list[list[str]] = []

    def read(ids):
        reads.append(sorted(ids))
        return jobs.get_many(ids)

    return reads, read


def record(status: str, progress: int) -> Job:
    return Job("j", "camera-angle", status, {}, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", progress=progress)


@pytest.mark.parametrize("followed,interval_s", [
    ([], 0.05),
    ([None, record("queued", 0)], 0.05),
    ([record("running", 99)], 0.05),
    ([record("running", 40), record("running", 100)], IMMINENT_INTERVAL_S),  # ComfyUI done: only storing is left
    ([record("succeeded", 100)], 0.05),  # over: its followers have what they waited for
])
def test_records_are_read_more_often_only_while_an_end_is_imminent(followed, interval_s):
    assert poll_interval(followed, 0.05) == interval_s


def test_one_read_serves_every_follower_and_wakes_each_on_its_change(jobs):
    reads, read = recording(jobs)
    watch = JobWatch(read, interval_s=0.01, capacity=2)
    with watch.follow("a") as a, watch.follow("b") as b:
        wait_for(lambda: ["a", "b"] in reads, 5, message="one read of both")
        queued_b = jobs.get("b")
        jobs.transition("b", states.RUNNING)
        assert b.changed(queued_b, 5).status == states.RUNNING
        start = jobs.get("a")
        assert a.changed(start, 0.1) == start  # nothing changed: the latest read, after the timeout
        with pytest.raises(TooManyWaiters):
            with watch.follow("a"):
                pass
    assert watch.following == 0
    before = len(reads)
    assert wait_for(lambda: len(reads) == before, 1)  # nobody follows: nothing is read


def test_python_callers_wait_for_and_follow_a_job(jobs, settings):
    app = create_celery_app(settings)
    use_app(app)
    try:
        def finish():
            wait_for(lambda: jobs.get("a").attempts == 0, 1)
            jobs.transition("a", states.RUNNING)
            jobs.report_progress("a", 30, "3 KSampler")
            jobs.transition("a", states.SUCCEEDED, outputs=[])

        seen = []
        follower = threading.Thread(target=lambda: seen.extend(follow("a", timeout=20)), daemon=True)
        follower.start()
        wait_for(lambda: seen, 5, message="the first record")
        finish()
        follower.join(20)
        assert seen[0].status == states.QUEUED and seen[-1].status == states.SUCCEEDED
        assert wait("a", timeout=1).status == states.SUCCEEDED
        assert wait("b", timeout=0.2).status == states.QUEUED
    finally:
        use_app(None)
        app.close()


def test_the_first_follower_is_not_followed_by_a_read_at_once(jobs):
    """It has just read the record itself: the watch reads it an interval later, not again at once."""
    reads, read = recording(jobs)
    waits: list[tuple[float, int]] = []  # (seconds asked for, reads made before)
    go_on = threading.Event()

    def sleep(seconds: float) -> None:
        waits.append((seconds, len(reads)))
        go_on.wait(5)

    watch = JobWatch(read, interval_s=0.5, capacity=2, sleep=sleep)
    with watch.follow("a"):
        wait_for(lambda: waits, 5, message="the watch to wait")
        assert waits[0] == (0.5, 0)  # its first act: an interval's wait, nothing read
        go_on.set()
        wait_for(lambda: reads, 5, message="a read after the interval")
    assert reads[0] == ["a"]
