"""The GPU worker trusts no message: one that can never run goes to the dead-letter queue at once, saying why."""

from __future__ import annotations

import logging
import socket
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from celery.worker.consumer import Consumer
from vine import promise

from gpuorch.celery import names
from gpuorch.jobs import states
from gpuorch.jobs.deadletters import reason_attributes
from gpuorch.jobs.messages import Envelope, MessageRejected, TaskCall, check_task_message, record_problem
from gpuorch.clock import timestamp, utc_now
from gpuorch.jobs.store import TransitionRefused
from gpuorch.services import Services

log = logging.getLogger(__name__)


class MessageGate:
    """Checks each GPU queue message before Celery sees it; moves the ones that can never run to the DLQ."""

    def __init__(self, services: Services, task_workflows: dict[str, str | None], *, hostname: str):
        self.services = services
        self.task_workflows = task_workflows
        self.hostname = hostname
        self.queue_names = names.gpu_queues(services.settings)
        self.dead_letter_url = services.aws.queue_url(services.settings.gpu_dead_letter_queue)

    def admit(self, message) -> bool:
        """True: hand the message to Celery. False: it was dead-lettered (or given back) and must not run."""
        sqs_message = message.delivery_info.get("sqs_message")
        # By name: kombu found the URL with ListQueues, whose form may differ from GetQueueUrl's.
        queue_name = str(message.delivery_info.get("sqs_queue", "")).rstrip("/").rsplit("/", 1)[-1]
        if sqs_message is None or queue_name not in self.queue_names:
            return True  # not a GPU queue message: not this gate's to judge
        envelope = Envelope(message.headers or {}, message.content_type, message.body)
        try:
            call = check_task_message(envelope, self.task_workflows, self.services.workflows)
            problem = record_problem(call, self._record(call))
        except MessageRejected as rejected:
            self.dead_letter(message, sqs_message, rejected)
            return False
        except (BotoCoreError, ClientError) as exc:
            # The job table did not answer: let the task run, it reads the record again and refuses without one.
            log.warning("message %s: job record not checked: %s", sqs_message.get("MessageId"), exc)
            return True
        if problem is not None:
            self.dead_letter(message, sqs_message, MessageRejected(problem, call.job_id))
            return False
        return True

    def _record(self, call: TaskCall):
        return self.services.jobs.get(call.job_id)

    def dead_letter(self, message, sqs_message: dict[str, Any], rejected: MessageRejected) -> None:
        """Copy the message to the DLQ with its reason, fail its job, then delete the original: in that order,
        so a worker that dies in between leaves the original to be rejected again (a duplicate copy at worst)."""
        message_id = sqs_message.get("MessageId", "?")
        context = {"job_id": rejected.job_id, "message_id": message_id, "reason": rejected.reason}
        try:
            self.services.aws.sqs.send_message(
                QueueUrl=self.dead_letter_url,
                MessageBody=sqs_message["Body"],
                MessageAttributes=reason_attributes(rejected.reason, message_id, self.hostname, timestamp(utc_now())),
            )
        except (BotoCoreError, ClientError) as exc:
            # Not copied: give it back undeleted; the queue's redrive policy still moves it after enough receives.
            log.error("message %s: rejected (%s) but not copied to the dead-letter queue: %s",
                      message_id, rejected.reason, exc, extra=context)
            message.reject(requeue=False)
            return
        if rejected.job_id is not None:
            self._fail_job(rejected)
        log.error("message %s rejected to the dead-letter queue: %s", message_id, rejected.reason, extra=context)
        message.ack()

    def _fail_job(self, rejected: MessageRejected) -> None:
        try:
            self.services.jobs.transition(rejected.job_id, states.FAILED,
                                          error=f"its queue message was rejected: {rejected.reason}")
        except TransitionRefused:
            pass  # no record, or already finished: the record keeps what it says
        except (BotoCoreError, ClientError) as exc:
            # The control worker's sweep fails it from the DLQ copy later.
            log.warning("job %s: not marked failed: %s", rejected.job_id, exc, extra={"job_id": rejected.job_id})


class GatedConsumer(Consumer):
    """Celery's consumer with the MessageGate in front of its task handler (GPU worker only)."""

    def create_task_handler(self, promise=promise):
        handle = super().create_task_handler(promise)
        gate = MessageGate(self.app.services, names.GPU_TASK_WORKFLOWS, hostname=self.hostname or socket.gethostname())

        def on_task_received(message):
            if gate.admit(message):
                return handle(message)
            return None

        return on_task_received
