"""Following job records from one process: one thread reads every followed job's record in one batched read, often
while anyone follows (more often while a job's end is imminent), and wakes the followers of each record that
changed. A bound on followers keeps a process's threads for everything else."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from gpuorch.errors import AdmissionRefused
from gpuorch.jobs import states
from gpuorch.jobs.store import Job

log = logging.getLogger(__name__)

# Reads the records of these jobs (a missing one left out): JobStore.get_many.
ReadMany = Callable[[list[str]], dict[str, Job]]

# A follower turned away is told to come back after this long: a wait lasts at most a minute.
RETRY_AFTER_S = 5.0
# After a failed read, the poller waits this long before the next (the followers keep what they had).
BACKOFF_S = 1.0
# While a followed job's end is imminent, the records are read this often: its caller hears the end within about
# this of the final write, at the cost of reads for that short while only (storing its outputs).
IMMINENT_INTERVAL_S = 0.005


class TooManyWaiters(AdmissionRefused):
    """This process already has as many requests waiting for jobs as it lets wait (GPUORCH_API_WAITERS)."""


def version(job: Job | None) -> tuple:
    """What a follower is told about when it changes: status, progress, node (and the record's time)."""
    return () if job is None else (job.status, job.progress, job.node, job.updated_at)


def end_imminent(job: Job | None) -> bool:
    """A job running whose prompt ComfyUI has finished (progress 100 means its outputs exist): only their storing
    and the final write are left."""
    return job is not None and job.status == states.RUNNING and job.progress >= 100


def poll_interval(latest: Iterable[Job | None], interval_s: float) -> float:
    """How long until the next read of the followed records: `interval_s`, or less while an end is imminent."""
    return min(interval_s, IMMINENT_INTERVAL_S) if any(end_imminent(job) for job in latest) else interval_s


class Follower:
    """One follower of one job, from JobWatch.follow."""

    def __init__(self, watch: "JobWatch", job_id: str):
        self.watch, self.job_id = watch, job_id

    def changed(self, since: Job | None, timeout: float) -> Job | None:
        """The job's record once it differs from `since` (status, progress or node), or the latest one read when
        `timeout` seconds pass first (None if none was read and `since` is None)."""
        return self.watch.wait_change(self.job_id, since, timeout)

    def until_over(self, since: Job, timeout: float) -> Job:
        """The record once the job is over, or the latest one when `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        job = since
        while not states.is_terminal(job.status):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            job = self.changed(job, left) or job
        return job


class JobWatch:
    """The records of the jobs this process's followers follow, read every `interval_s` while there are any."""

    def __init__(self, read: ReadMany, *, interval_s: float, capacity: int,
                 sleep: Callable[[float], None] = time.sleep):
        self._read, self.interval_s, self.capacity, self._sleep = read, interval_s, capacity, sleep
        self._cond = threading.Condition()
        self._followers: dict[str, int] = {}  # job id -> how many follow it
        self._latest: dict[str, Job] = {}
        self._thread: threading.Thread | None = None
        self.reads = 0  # batched reads made, for the tests and the bench

    @property
    def following(self) -> int:
        with self._cond:
            return sum(self._followers.values())

    @contextmanager
    def follow(self, job_id: str) -> Iterator[Follower]:
        """Follow one job for the `with` block; TooManyWaiters when `capacity` followers follow already."""
        with self._cond:
            if sum(self._followers.values()) >= self.capacity:
                raise TooManyWaiters(f"this API process lets {self.capacity} requests wait at once "
                                     "(GPUORCH_API_WAITERS); try again shortly", RETRY_AFTER_S)
            self._followers[job_id] = self._followers.get(job_id, 0) + 1
            if self._thread is None or not self._thread.is_alive():
                # Started by the first follower, in the process that follows (after a fork, in the worker).
                self._thread = threading.Thread(target=self._poll, name="gpuorch-job-watch", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        try:
            yield Follower(self, job_id)
        finally:
            with self._cond:
                self._followers[job_id] -= 1
                if not self._followers[job_id]:
                    del self._followers[job_id]
                    self._latest.pop(job_id, None)

    def wait_change(self, job_id: str, since: Job | None, timeout: float) -> Job | None:
        seen = version(since)
        with self._cond:
            self._cond.wait_for(lambda: version(self._latest.get(job_id)) not in ((), seen), timeout)
            return self._latest.get(job_id, since)

    def _poll(self) -> None:
        first = True  # the thread is started by a first follower
        while True:
            with self._cond:
                if not self._followers:
                    first = True
                    self._cond.wait_for(lambda: bool(self._followers))
            if first:
                # A first follower has just read the record (to see that the job is not over): a read at once would
                # tell nothing new, only weigh on the table while the job is being handed to the GPU.
                first = False
                self._sleep(self.interval_s)
            with self._cond:
                ids = list(self._followers)
            if not ids:
                continue
            started = time.monotonic()
            try:
                found = self._read(ids)
            except Exception as exc:  # noqa: BLE001 - AWS out of reach: the followers wait on, the next read may pass
                log.warning("job watch: could not read %d record(s): %s", len(ids), exc)
                self._sleep(BACKOFF_S)
                continue
            with self._cond:
                self.reads += 1
                changed = False
                for job_id, job in found.items():
                    if job_id in self._followers and version(job) != version(self._latest.get(job_id)):
                        self._latest[job_id] = job
                        changed = True
                if changed:
                    self._cond.notify_all()
                interval_s = poll_interval(self._latest.values(), self.interval_s)
            self._sleep(max(0.0, interval_s - (time.monotonic() - started)))
