"""The GPU worker SIGKILLed mid-job twenty times in a row, on real processes: every job still ends once.

A killed worker's messages come back only after the queue's visibility timeout, and a message received
a fourth time goes to the dead-letter queue. So the kills never wait for those: each one hits the jobs a
fresh worker has just taken from a backlog of first deliveries, and a worker holding a redelivered job
is not killed until that job has ended. No job is killed twice, the redeliveries all run after the last
kill, and the whole test waits on the visibility timeout once.
"""

from __future__ import annotations

import json
import re
import signal
from dataclasses import dataclass, field

from tests.integration.conftest import wait_for
from tests.support.held_messages import HeldMessages, task_id

KILLS = 20
DEPTH = 2  # the worker's default: two jobs in flight, so a kill takes up to two with it
JOBS = KILLS * DEPTH + 4
# Soft limit 20 - 15 = 5 s for a job that waits behind the killed workers' prompts in ComfyUI;
# visibility 70 s = 2 x 20 s + 30 s, the worker's start-up rule.
LIMITS = {"task_time_limit": 20, "visibility_timeout": 70}
FAST_WORKER = {"GPUORCH_WARMUP_WORKFLOW": "", "GPUORCH_MONITORING": "false"}

RUNNING = re.compile(r"job (\S+): running \S+ \(attempt (\d+)\)")
IN_COMFYUI = re.compile(r"job (\S+): (?:submitted to ComfyUI|found in ComfyUI)")
ENDED = re.compile(r"job (\S+): (?:succeeded with|failed:|already \w+; not run)")


@dataclass
class Incarnation:
    """What one worker process did, read from its part of the shared log."""

    attempts: dict[str, int] = field(default_factory=dict)
    in_comfyui: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, text: str) -> "Incarnation":
        seen = cls()
        for line in text.splitlines():
            try:
                message = json.loads(line).get("message", "")
            except ValueError:
                continue
            if match := RUNNING.search(message):
                seen.attempts[match[1]] = int(match[2])
            elif match := IN_COMFYUI.search(message):
                seen.in_comfyui.add(match[1])
            elif match := ENDED.search(message):
                seen.ended.add(match[1])
        return seen

    @property
    def in_flight(self) -> set[str]:
        return set(self.attempts) - self.ended

    def ready_to_kill(self) -> bool:
        """A job is inside ComfyUI (mid-job), and every job in flight is on its first delivery."""
        flight = self.in_flight
        return bool(flight & self.in_comfyui) and all(self.attempts[job] == 1 for job in flight)


def test_gpu_worker_killed_mid_job_twenty_times_every_job_ends_once(aws_proxy, make_stack):
    held = HeldMessages()
    aws_proxy.observe(held.observe)
    stack = make_stack(step_seconds=0.05, run=(), aws_via=aws_proxy.url, **LIMITS)
    jobs = []
    for _ in range(JOBS):
        answer = stack.submit()
        assert answer.status_code == 202, answer.text
        jobs.append(answer.json()["job_id"])

    killed: list[set[str]] = []
    for _ in range(KILLS):
        offset = stack.worker.log_path.stat().st_size if stack.worker else 0
        stack.worker = stack.start_worker(FAST_WORKER)

        def since_start() -> Incarnation:
            with open(stack.worker.log_path, "rb") as log:
                log.seek(offset)
                return Incarnation.read(log.read().decode(errors="replace"))

        def ready() -> bool:
            assert stack.worker.running, f"the GPU worker exited:\n{stack.worker.tail()}"
            return since_start().ready_to_kill()

        wait_for(ready, 90, message="a job mid-job to kill")
        stack.worker.signal_group(signal.SIGKILL)  # the whole worker, as when its instance dies
        stack.worker.popen.wait()
        killed.append(since_start().in_flight)  # what it held when it died, read from all it logged

    hit = set().union(*killed)
    assert sum(len(jobs_hit) for jobs_hit in killed) == len(hit), "a job was killed twice"
    # Every worker is dead, so nobody holds what they received: their unacknowledged messages, every job hit
    # among them, are visible again now instead of at the end of the visibility timeout.
    released = {task_id(body) for body in held.release(stack.services.aws.sqs, stack.settings.gpu_queue).values()}
    assert hit <= released, hit - released
    # One worker drains the 44 jobs, most of them redelivered and already done in ComfyUI: four at a time, as a
    # full worker takes a new message only when it next polls (once a second).
    stack.worker = stack.start_worker({**FAST_WORKER, "GPUORCH_GPU_PIPELINE_DEPTH": "4"})
    # Each redelivered job finds its prompt in ComfyUI.
    records = {job_id: stack.wait_terminal(job_id, timeout=120) for job_id in jobs}

    stats = stack.comfyui_stats()["prompts"]
    for job_id, record in records.items():
        assert record["status"] == "succeeded", record
        # A job hit while running ran twice: killed, then finished by the redelivery (never a third time).
        assert record["attempts"] == 2 if job_id in hit else record["attempts"] in (1, 2), record
        assert stats[job_id]["executed"] == 1, (job_id, stats[job_id])
        listing = stack.services.aws.s3.list_objects_v2(Bucket=stack.settings.bucket, Prefix=f"results/{job_id}/")
        assert [o["Key"].rsplit("/", 1)[-1] for o in listing["Contents"]] == [o["filename"] for o in record["outputs"]]
        assert len(record["outputs"]) == 1, record
    wait_for(stack.gpu_queue_empty, 30, message="every message to be acknowledged")
    dlq = stack.services.aws.queue_url(stack.settings.gpu_dead_letter_queue)
    assert not stack.services.aws.sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages")
