"""Run one GPU job: inputs to ComfyUI, the bound graph submitted once, progress followed, outputs to S3."""

from __future__ import annotations

import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError
from celery.exceptions import SoftTimeLimitExceeded

from gpuorch.aws.failures import is_transient
from gpuorch.aws.s3 import S3Uri
from gpuorch.comfyui.client import ComfyClient, PollPolicy
from gpuorch.comfyui.errors import ComfyError, ComfyPromptLost, ComfyTimeout, ComfyUnavailable
from gpuorch.comfyui.progress import Progress
from gpuorch.clock import utc_now
from gpuorch.errors import (
    JobCancelled, JobDeferred, JobExpired, JobFailed, JobGivenBack, RequestRefused, Unavailable,
)
from gpuorch.execution.interruption import GIVE_BACK, job_verdict
from gpuorch.execution.outputs import InlineBudget, as_stored
from gpuorch.execution.retry import aws_retry, comfy_retry
from gpuorch.inputs import InputError, InputPolicy, decode_image, fetch_input, inspect_image
from gpuorch.jobs import states
from gpuorch.jobs.expiry import expire
from gpuorch.jobs.store import Job, TransitionRefused
from gpuorch.metrics.jobs import JobMetrics, job_metrics
from gpuorch.services import Services
from gpuorch.workflows import bind

log = logging.getLogger(__name__)

# What ends a running job as failed: its request refused after all (an input, its binding, ComfyUI's validation),
# a dependency still unavailable after the retries (ComfyUI, an input, S3 for the outputs), anything else ComfyUI
# reports, or the time limit. AWS failing the job's own record is not among them: the message goes back instead.
JOB_FAILURES = (SoftTimeLimitExceeded, RequestRefused, Unavailable, ComfyError)


@dataclass(frozen=True)
class StoredOutput:
    uri: str
    filename: str
    node_id: str
    media: str
    content_type: str
    bytes: int
    inline_base64: str | None = None  # the output itself, when the job asked for it inline and it fits

    def as_record(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items() if value is not None}


def input_name(job_id: str, index: int, image_format: str) -> str:
    """A stable ComfyUI file name for a job's input: a redelivered job binds the same graph."""
    return f"gpuorch-{job_id}-{index}.{image_format.lower()}"


def output_key(job_id: str, subfolder: str, filename: str) -> str:
    """The S3 key of an output: results/{job_id}/, ComfyUI's subfolder below the job's own prefix kept."""
    parts = [p for p in subfolder.split("/") if p and p not in {"gpuorch", job_id}]
    return "/".join(["results", job_id, *parts, filename])


def failure_result(job: Job) -> JobFailed:
    return JobFailed(f"job {job.job_id} failed: {job.error}")


def success_result(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "workflow": job.workflow,
        "status": job.status,
        "outputs": [o["uri"] for o in job.outputs],
    }


class ProgressReporter:
    """Writes progress to the job record and the Celery task state, only when the percentage grows."""

    def __init__(self, services: Services, job_id: str, update_state: Callable[..., None] | None):
        self._services, self._job_id, self._update_state = services, job_id, update_state
        self._last = -1

    def __call__(self, progress: Progress) -> None:
        percent = int(progress.percent)
        if percent <= self._last:
            return
        self._last = percent
        node = f"{progress.node_id} {progress.node_type}" if progress.node_type else progress.node_id
        try:
            self._services.jobs.report_progress(self._job_id, percent, node)
            if self._update_state is not None:
                self._update_state(state="PROGRESS", meta={"job_id": self._job_id, "progress": percent, "node": node})
        except (BotoCoreError, ClientError) as exc:
            # Progress is advisory: a failed write must not fail the job (the next one may succeed).
            log.warning("job %s: progress not recorded: %s", self._job_id, exc)


class OutputsNotStored(Unavailable):
    """An output could not be put in S3, even after the retries."""


def run_job(services: Services, job_id: str, workflow_name: str, params: dict[str, Any], *,
            update_state: Callable[..., None] | None = None, metrics: JobMetrics | None = None,
            interruption: Callable[[], datetime | None] = lambda: None) -> dict[str, Any]:
    """Carry one job to a terminal status; returns the task result or raises JobFailed / JobCancelled.

    `update_state(state=, meta=)` is told the progress (Celery's task state). When AWS stays unreachable past
    the retries (the record cannot be read or moved), or the job has no record, raises JobDeferred: the caller
    gives the message back without deleting it, so SQS delivers it again after its visibility timeout (that
    delivery finds the job's prompt in ComfyUI and finishes it) or moves it to the dead-letter queue at the last.
    `interruption()` is when EC2 interrupts this (spot) instance, once its notice came: a job that cannot surely
    end before it (gpuorch.execution.interruption.job_verdict) is stopped in ComfyUI and raises JobGivenBack.
    """
    try:
        return _run_job(services, job_id, workflow_name, update_state,
                        metrics if metrics is not None else job_metrics(), interruption)
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.error("job %s: AWS unavailable after %d attempts (%s); its message goes back to SQS",
                  job_id, services.settings.aws_write_attempts, exc)
        raise JobDeferred(f"AWS unavailable: {exc}") from exc


def _run_job(services: Services, job_id: str, workflow_name: str, update_state: Callable[..., None] | None,
             metrics: JobMetrics, interruption: Callable[[], datetime | None]) -> dict[str, Any]:
    records = Records(services)
    if (notice_at := interruption()) is not None:
        # Taken after the notice (prefetched, or received as the consumer stopped): it has not started here.
        log.warning("job %s: not started, its instance is interrupted at %s: giving it back", job_id,
                    notice_at.isoformat())
        raise JobGivenBack(f"job {job_id}: its instance is interrupted at {notice_at.isoformat()}")
    # Moved to running without reading it first (the message gate has read it): only a refused move is read.
    try:
        job = records.transition(job_id, states.RUNNING)
    except TransitionRefused:
        return _not_started(services, records.get(job_id), job_id)
    log.info("job %s: running %s (attempt %d)", job_id, workflow_name, job.attempts)
    record_start(metrics, job)
    execution = JobExecution(services, job, update_state, metrics=metrics, interruption=interruption)
    try:
        outputs = execution.run()
    except JobGivenBack:
        # Before JOB_FAILURES (an Unavailable): the job did not fail, another instance runs it from the start.
        execution.stop_in_comfyui()
        log.warning("job %s: given back after %.0f s; ComfyUI told to drop it", job_id, execution.elapsed())
        raise
    except JobCancelled:
        execution.stop_in_comfyui()
        log.info("job %s: cancelled while running; ComfyUI told to drop it", job_id)
        metrics.duration.labels(job.workflow, states.CANCELLED).observe(execution.elapsed())
        raise
    except JOB_FAILURES as exc:
        if timed_out(exc):
            execution.stop_in_comfyui()
        metrics.duration.labels(job.workflow, states.FAILED).observe(execution.elapsed())
        metrics.failures.labels(job.workflow, failure_class(exc)).inc()
        return _fail(records, job_id, failure_reason(exc, execution))
    metrics.duration.labels(job.workflow, states.SUCCEEDED).observe(execution.elapsed())
    try:
        # A retry after a lost answer is refused by the condition and reads the record: written once either way.
        job = records.transition(job_id, states.SUCCEEDED, outputs=[o.as_record() for o in outputs], node=None,
                                 gpu_seconds=execution.gpu_seconds)
    except TransitionRefused:
        log.warning("job %s: finished, but its record was moved on meanwhile", job_id)
        return settled(records.get(job_id))
    log.info("job %s: succeeded with %d output(s)", job_id, len(outputs))
    return success_result(job)


def record_start(metrics: JobMetrics, job: Job) -> None:
    """A first start's wait in the queue; a later one is a redelivery (its wait includes the earlier run)."""
    if job.attempts > 1:
        metrics.redeliveries.labels(job.workflow).inc()
    elif job.started_at:
        wait = (datetime.fromisoformat(job.started_at) - datetime.fromisoformat(job.created_at)).total_seconds()
        metrics.queue_wait.labels(job.workflow).observe(max(0.0, wait))


def timed_out(exc: BaseException) -> bool:
    """The soft time limit, or ComfyUI's deadline for the prompt (set just inside it)."""
    return isinstance(exc, (SoftTimeLimitExceeded, ComfyTimeout))


def failure_class(exc: BaseException) -> str:
    """A failure's reason as a bounded class, for the failures counter: a timeout, the outputs, or the part that
    failed (the job's inputs and parameters, or ComfyUI) and whether it refused or was unavailable."""
    if timed_out(exc):
        return "timeout"
    if isinstance(exc, OutputsNotStored):
        return "outputs_not_stored"
    if isinstance(exc, ComfyError):
        return "comfyui_unavailable" if isinstance(exc, Unavailable) else "comfyui_error"
    return "input_unavailable" if isinstance(exc, Unavailable) else "input_rejected"


def failure_reason(exc: BaseException, execution: "JobExecution") -> str:
    """What the job record says about a failure."""
    settings = execution.settings
    if timed_out(exc):
        return (f"timed out after {execution.elapsed():.0f} s (GPUORCH_TASK_TIME_LIMIT={settings.task_time_limit}); "
                "ComfyUI interrupted")
    if isinstance(exc, InputError):
        return f"input {'unavailable' if isinstance(exc, Unavailable) else 'rejected'}: {exc}"
    if isinstance(exc, ComfyUnavailable):
        return f"ComfyUI unreachable at {settings.comfyui_url}: {exc}"
    if isinstance(exc, OutputsNotStored):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _not_started(services: Services, job: Job | None, job_id: str) -> dict[str, Any]:
    """The task's answer for a job whose record refused the move to running: it has none, or it is over."""
    if job is None:
        # A message with no record was not accepted by gpuorch: leave it to the dead-letter queue.
        log.error("job %s: no job record; rejecting the message", job_id)
        raise JobDeferred(f"no job record for {job_id}")
    if job.overdue(utc_now()):
        # Received after its deadline (the move to running refuses it): it never starts, and its message is dropped.
        return settled(expire(services.jobs, job) or services.jobs.get(job_id) or job)
    log.info("job %s: already %s; not run (a duplicate delivery, or cancelled before it started)", job_id, job.status)
    # The delivery that ended it may have died before announcing the end: announced again, made once.
    services.jobs.announce(job)
    return settled(job)


def settled(job: Job) -> dict[str, Any]:
    """The task's answer for a job that is already over: its result, or the exception saying why not."""
    if job.status == states.SUCCEEDED:
        return success_result(job)
    if job.status == states.CANCELLED:
        raise JobCancelled(f"job {job.job_id} was cancelled")
    if job.status == states.EXPIRED:
        raise JobExpired(f"job {job.job_id} expired: {job.error}")
    raise failure_result(job)


def _fail(records: "Records", job_id: str, reason: str):
    log.warning("job %s: failed: %s", job_id, reason)
    try:
        job = records.transition(job_id, states.FAILED, error=reason)
    except TransitionRefused:
        job = records.get(job_id)
    return settled(job)


class Records:
    """The job store's reads and status writes, retried while AWS fails transiently (aws_retry)."""

    def __init__(self, services: Services):
        retry = aws_retry(services.settings.aws_write_attempts)
        self.get = retry(services.jobs.get)
        self.transition = retry(services.jobs.transition)


class JobExecution:
    """The ComfyUI side of one job, from inputs to stored outputs."""

    def __init__(self, services: Services, job: Job, update_state: Callable[..., None] | None = None, *,
                 metrics: JobMetrics | None = None, interruption: Callable[[], datetime | None] = lambda: None):
        self.services = services
        self.settings = services.settings
        self.job = job
        self.workflow = services.workflows.get(job.workflow)
        self.comfy = ComfyClient(
            self.settings.comfyui_url,
            client_id=f"gpuorch-{socket.gethostname()}-{os.getpid()}",
            timeout=self.settings.comfyui_timeout,
            poll=PollPolicy(
                check_interval=self.settings.comfyui_check_interval,
                poll_interval=min(1.0, self.settings.comfyui_check_interval),
                unavailable_grace=self.settings.comfyui_grace,
            ),
        )
        self.metrics = metrics if metrics is not None else job_metrics()
        self.retry = comfy_retry(self.settings.comfyui_retries,
                                 on_retry=self.metrics.comfyui_retries.labels(job.workflow).inc)
        self.aws_retry = aws_retry(self.settings.aws_write_attempts)
        self.progress = ProgressReporter(services, job.job_id, update_state)
        self.interruption = interruption
        self.finishing_before: datetime | None = None  # the interruption this job was found to end before
        self.output_options = job.options.output
        self.inline = InlineBudget(self.output_options)
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def check_cancelled(self) -> None:
        """Raise JobCancelled when the job's record says cancelled (called while waiting on ComfyUI)."""
        try:
            job = self.services.jobs.get(self.job.job_id)
        except (BotoCoreError, ClientError) as exc:
            # Advisory, like progress: the job goes on, and the next check may reach the record.
            log.warning("job %s: cancellation not checked: %s", self.job.job_id, exc)
            return
        if job is not None and job.status == states.CANCELLED:
            raise JobCancelled(f"job {self.job.job_id} was cancelled")

    def check_interruption(self) -> None:
        """Raise JobGivenBack when the instance is interrupted and this job cannot surely end before
        (called while waiting on ComfyUI, with the cancellation check)."""
        notice_at = self.interruption()
        if notice_at is None or notice_at == self.finishing_before:
            return
        try:
            location = self.comfy.locate(self.job.job_id)
        except ComfyError as exc:
            location = None  # nothing says it runs: the instance is going anyway, give it back
            log.warning("job %s: not located in ComfyUI at the interruption notice: %s", self.job.job_id, exc)
        verdict, why = job_verdict(location, self.elapsed(), utc_now(), notice_at, self.settings.task_time_limit)
        if verdict == GIVE_BACK:
            raise JobGivenBack(f"job {self.job.job_id}: its instance is interrupted at {notice_at.isoformat()} and "
                               f"{why}")
        log.info("job %s: finishing before the interruption at %s: %s", self.job.job_id, notice_at.isoformat(), why)
        self.finishing_before = notice_at

    def on_check(self) -> None:
        self.check_cancelled()
        self.check_interruption()

    def stop_in_comfyui(self) -> None:
        """Drop this job's prompt from ComfyUI's queue, or interrupt it if it is the one running."""
        try:
            self.comfy.delete_pending([self.job.job_id])
            self.comfy.interrupt(self.job.job_id)  # only interrupts when this prompt is the running one
        except ComfyError as exc:
            log.warning("job %s: could not stop its prompt in ComfyUI: %s", self.job.job_id, exc)

    gpu_seconds: float | None = None  # ComfyUI's execution time of the prompt, once it has finished

    def run(self) -> list[StoredOutput]:
        job_id = self.job.job_id
        # Only a job started before (attempts counts each move to running, which comes before any submission) can
        # have a prompt in ComfyUI already: a first start asks nothing.
        where = self.retry(self.comfy.locate)(job_id) if self.job.attempts > 1 else None
        if where is None:
            graph = self.bind(self.upload_inputs())
            self.submit(graph)
            log.info("job %s: submitted to ComfyUI", job_id)
        else:
            # Invariant 3: a redelivered job follows its own prompt instead of running it twice.
            # Progress tracking needs only the graph's shape, which the input file names do not change.
            log.info("job %s: found in ComfyUI (%s); following it instead of resubmitting", job_id, where)
            graph = self.bind([input_name(job_id, i, "png") for i, _ in enumerate(self.image_uris())])
        try:
            result = self.follow(graph)
        except ComfyPromptLost:
            # ComfyUI restarted and forgot the prompt: submit it again, once, under the same prompt_id.
            log.warning("job %s: ComfyUI lost the prompt; submitting it again", job_id)
            self.metrics.resubmissions.labels(self.job.workflow).inc()
            graph = self.bind(self.upload_inputs())
            self.submit(graph)
            result = self.follow(graph)
        self.gpu_seconds = result.execution_s
        if result.execution_s:
            self.metrics.busy_seconds.labels(self.job.workflow).inc(result.execution_s)
        return [self.store(ref) for ref in result.outputs if ref.type == "output"]

    def submit(self, graph: dict[str, Any]) -> None:
        """POST the prompt; before a retry, look it up: a lost answer may hide an accepted prompt."""
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1 and self.comfy.locate(self.job.job_id) is not None:
                log.info("job %s: ComfyUI had accepted the prompt after all", self.job.job_id)
                return
            self.comfy.submit(graph, prompt_id=self.job.job_id)

        self.retry(attempt)()

    def follow(self, graph: dict[str, Any]):
        return self.comfy.wait(
            self.job.job_id, graph=graph, on_progress=self.progress, on_check=self.on_check,
            timeout=self.remaining(),
        )

    def remaining(self) -> float:
        """Time left for ComfyUI before the soft time limit fires, so a hang ends as a timeout we handle."""
        return max(1.0, self.settings.soft_time_limit - self.elapsed())

    def image_uris(self) -> list[str]:
        return [uri for uris in self.workflow.image_inputs(self.job.params).values() for uri in uris]

    def upload_inputs(self) -> list[str]:
        names = []
        for index, uri in enumerate(self.image_uris()):
            data = self.aws_retry(fetch_input)(uri, InputPolicy.from_settings(self.settings), s3_client=self.services.aws.s3)
            info = inspect_image(data, max_pixels=self.settings.max_input_pixels,
                                 max_bytes=self.settings.max_input_bytes, decode=False)
            name = input_name(self.job.job_id, index, info.format)
            # Its pixels are decoded while it uploads, not before: a corrupt file still fails the job here, before
            # any prompt names it (what it left in ComfyUI's input folder is never used).
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpuorch-decode") as decoder:
                decoded = decoder.submit(decode_image, data)
                names.append(self.retry(self.comfy.upload_image)(name, data, overwrite=True))
                decoded.result()
        return names

    def bind(self, image_names: list[str]) -> dict[str, Any]:
        return bind(
            self.workflow,
            self.job.params,
            image_names,
            self.settings.models,
            output_prefix=f"gpuorch/{self.job.job_id}/out",
            seed_source=self.job.job_id,
        )

    def store(self, ref) -> StoredOutput:
        # Converted here, on the GPU host, so that what is stored, linked and counted is what the job asked for.
        output = as_stored(self.retry(self.comfy.view)(ref), ref.filename, self.output_options)
        data, content_type = output.data, output.content_type
        key = output_key(self.job.job_id, ref.subfolder, output.filename)

        def put_output() -> None:
            # Same key on every attempt and every delivery: a retry overwrites, it never adds a second copy.
            self.services.aws.s3.put_object(Bucket=self.settings.bucket, Key=key, Body=data, ContentType=content_type)

        try:
            self.aws_retry(put_output)()
        except (BotoCoreError, ClientError) as exc:
            raise OutputsNotStored(
                f"output {ref.filename} could not be stored in S3 after "
                f"{self.settings.aws_write_attempts} attempts (GPUORCH_AWS_WRITE_ATTEMPTS): {exc}"
            ) from exc
        log.info("job %s: stored %s (%d bytes)", self.job.job_id, key, len(data))
        return StoredOutput(
            uri=str(S3Uri(self.settings.bucket, key)),
            filename=output.filename,
            node_id=str(ref.node_id),
            media=ref.media,
            content_type=content_type,
            bytes=len(data),
            inline_base64=self.inline.take(data),
        )
