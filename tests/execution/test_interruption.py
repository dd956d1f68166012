"""What a GPU worker does with each job when its spot instance gets an interruption notice, and the notice shared
with the pool's forked processes."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from gpuorch.errors import JobDeferred, JobGivenBack
from gpuorch.execution.interruption import (
    FINISH, GIVE_BACK, NOTICE_MARGIN_S, Notice, NoticeBoard, job_verdict, parse_notice,
)
from gpuorch.execution.runner import run_job
from gpuorch.jobs.store import Job

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)
LIMIT = 120.0


def notice_in(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize("text,notice", [
    ('{"action": "stop", "time": "2026-05-04T09:02:00Z"}', Notice("stop", notice_in(120))),
    ('{"action": "terminate", "time": "2026-05-04T11:02:00+02:00"}', Notice("terminate", notice_in(120))),
    ('{"action": "hibernate", "time": "2026-05-04T09:00:00"}', Notice("hibernate", NOW)),  # no zone: UTC
])
def test_parse_notice(text, notice):
    assert parse_notice(text) == notice


@pytest.mark.parametrize("text", ["", "null", "[]", '{"action": "stop"}', '{"time": "soon", "action": "stop"}',
                                  "<html>no</html>"])
def test_a_notice_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError, match="not a spot interruption notice"):
        parse_notice(text)


# (case, ComfyUI's location of the prompt, seconds the task has run, notice lead in seconds, verdict)
VERDICTS = [
    ("not in ComfyUI yet (fetching inputs)", None, 3, 120, GIVE_BACK),
    ("waiting in ComfyUI's queue behind another", "pending", 30, 120, GIVE_BACK),
    ("done in ComfyUI, storing its outputs", "done", 100, 5, FINISH),
    ("running, time limit ends well before", "running", 60, 120, FINISH),
    ("running, ends exactly at the interruption less the margin", "running", NOTICE_MARGIN_S, 120, FINISH),
    ("running, one second too late", "running", NOTICE_MARGIN_S - 1, 120, GIVE_BACK),
    ("running, just started", "running", 1, 120, GIVE_BACK),
    ("running, a short notice", "running", 110, 5, GIVE_BACK),
    ("running past its limit (about to be killed): finishes now", "running", 130, 60, FINISH),
]


@pytest.mark.parametrize("case,location,elapsed,lead,verdict", VERDICTS, ids=[v[0] for v in VERDICTS])
def test_job_verdict(case, location, elapsed, lead, verdict):
    assert job_verdict(location, elapsed, NOW, notice_in(lead), LIMIT)[0] == verdict


def test_a_verdict_says_why():
    assert job_verdict("running", 1, NOW, notice_in(120), LIMIT)[1] == (
        "its time limit ends 9 s after the interruption less 10 s")
    assert "before the interruption less 10 s" in job_verdict("running", 60, NOW, notice_in(120), LIMIT)[1]


def read_after(board: NoticeBoard, posted, answer) -> None:
    posted.wait(10)
    answer.send(board.read())


def test_the_pools_processes_read_a_notice_posted_after_they_forked():
    board = NoticeBoard()
    assert board.read() is None
    context = multiprocessing.get_context("fork")  # as Celery's prefork pool makes its processes
    posted, (receive, send) = context.Event(), context.Pipe(duplex=False)
    child = context.Process(target=read_after, args=(board, posted, send))
    child.start()
    board.post(notice_in(120))
    posted.set()
    assert receive.poll(10) and receive.recv() == notice_in(120)
    child.join(10)


def test_a_job_taken_after_the_notice_goes_back_untouched():
    job = Job(job_id="J", workflow="camera-angle", status="queued", params={}, created_at=NOW.isoformat(),
              updated_at=NOW.isoformat())
    touched = []
    jobs = SimpleNamespace(get=lambda _id: job, transition=lambda *a, **k: touched.append(a))
    services = SimpleNamespace(settings=SimpleNamespace(aws_write_attempts=1), jobs=jobs)

    with pytest.raises(JobGivenBack) as given_back:
        run_job(services, "J", "camera-angle", {}, interruption=lambda: notice_in(120))

    assert isinstance(given_back.value, JobDeferred) and touched == []  # still queued, for another instance
