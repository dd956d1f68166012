"""The Celery application, built from Settings by one factory: its configuration, routes and beat schedule."""

from __future__ import annotations

import functools
import urllib.parse
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from gpuorch.celery import names
from gpuorch.celery.monitoring.names import NAMESPACE_OPTION, BroadcastNames
from gpuorch.celery.publisher import CeleryPublisher
from gpuorch.celery.sqs_transport import QUEUE_ORDER_OPTION
from gpuorch.execution.interruption import NoticeBoard
from gpuorch.jobs.batches import BatchSubmitter
from gpuorch.jobs.outputs import OutputLinks
from gpuorch.jobs.submission import JobSubmitter
from gpuorch.services import Services
from gpuorch.settings import Settings
from gpuorch.webhooks.announce import WebhookAnnouncer
from gpuorch.webhooks.deliverer import WebhookDeliverer
from gpuorch.webhooks.secrets import SecretStore
from gpuorch.webhooks.store import DeliveryStore

# kombu's SQS transport with Celery's events and remote control working through SNS (GPUORCH_MONITORING).
MONITORING_TRANSPORT = "gpuorch.celery.monitoring.transport:Transport"
# kombu's SQS transport surviving a failed receive (gpuorch.celery.sqs_transport says why); the one above extends it.
SQS_TRANSPORT = "gpuorch.celery.sqs_transport:Transport"
# The modules that define gpuorch's tasks; a worker imports them at start.
TASK_MODULES = ["gpuorch.celery.tasks"]


def broker_url(settings: Settings) -> str:
    """sqs:// for AWS; for another endpoint kombu builds the address from the URL's host and port."""
    if not settings.aws_endpoint_url:
        return "sqs://"
    endpoint = urllib.parse.urlsplit(settings.aws_endpoint_url)
    return f"sqs://{endpoint.netloc}"


# Celery's DynamoDB backend, each store one conditional put (gpuorch.celery.results says why).
RESULT_BACKEND = "gpuorch.celery.results:ResultBackend"


def result_backend_url(settings: Settings) -> str:
    return (f"{RESULT_BACKEND}+dynamodb://@{settings.region}/{settings.result_table}"
            f"?ttl_seconds={settings.job_ttl_seconds}")


def task_routes(settings: Settings) -> dict[str, dict[str, str]]:
    """Every task of gpuorch to its queue (names.queue_of); nothing is left to a default."""
    routes = {}
    for task_name in (*names.GPU_TASKS, *names.CONTROL_TASKS):
        queue = names.queue_name(names.queue_of(task_name), settings)
        routes[task_name] = {"queue": queue, "routing_key": queue}
    return routes


def celery_config(settings: Settings) -> dict[str, Any]:
    """Every Celery setting gpuorch uses, derived from its Settings."""
    endpoint = urllib.parse.urlsplit(settings.aws_endpoint_url) if settings.aws_endpoint_url else None
    transport_options: dict[str, Any] = {
        "region": settings.region,
        "wait_time_seconds": settings.receive_wait_seconds,
        # Only used if kombu ever creates a queue itself; `gpuorch provision` creates them first.
        "visibility_timeout": settings.visibility_timeout,
        # kombu pauses this long after a receive that found nothing. A long poll already waits for a message, and
        # one sent during a pause would wait out the pause (a second more to start a job): no pause then.
        "polling_interval": 0 if settings.receive_wait_seconds else 1,
    }
    if endpoint is not None:
        transport_options["is_secure"] = endpoint.scheme == "https"
    # SQS has no priority within a queue: low-priority jobs have a queue of their own, polled only while the normal
    # one has nothing to give (gpuorch.celery.sqs_transport).
    transport_options[QUEUE_ORDER_OPTION] = list(names.gpu_queues(settings))
    broadcast = BroadcastNames(settings.monitoring_namespace)
    if settings.monitoring:
        # Fanout (events, remote control) through SNS topics, named from the namespace.
        transport_options["supports_fanout"] = True
        transport_options[NAMESPACE_OPTION] = broadcast.namespace
    direct = Exchange("gpuorch", type="direct")
    config: dict[str, Any] = {
        "broker_url": broker_url(settings),
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "result_backend": result_backend_url(settings),
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_queues": (
            Queue(settings.gpu_queue, direct, routing_key=settings.gpu_queue),
            Queue(settings.gpu_low_queue, direct, routing_key=settings.gpu_low_queue),
            Queue(settings.control_queue, direct, routing_key=settings.control_queue),
        ),
        "task_default_queue": settings.control_queue,
        "task_default_exchange": "gpuorch",
        "task_default_routing_key": settings.control_queue,
        "task_routes": task_routes(settings),
        # Invariant 2: a GPU job's message stays in flight until the job ends; a dead worker gives it back.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": settings.soft_time_limit,
        # No STARTED result: the job record says running (written as the job starts), and the write would be one
        # more DynamoDB call between a message's receipt and ComfyUI's prompt; PROGRESS follows within a step.
        "task_track_started": False,
        "result_expires": None,  # the DynamoDB table's TTL expires results
        # Broadcast: Celery events and remote control, through SNS topics that kombu's SQS transport alone cannot
        # use for Celery (gpuorch.celery.monitoring.transport says why), so Flower and `celery inspect` see the
        # workers. Events go to SNS only: no event or command ever lands on the GPU or control queue.
        "broker_transport": MONITORING_TRANSPORT if settings.monitoring else SQS_TRANSPORT,
        "worker_enable_remote_control": settings.monitoring,
        "worker_send_task_events": settings.monitoring,
        "event_exchange": broadcast.events_exchange,
        "event_queue_prefix": broadcast.event_queue_prefix,
        "control_exchange": broadcast.control_exchange,
        # A submission stays one SQS send (no SNS publish): Flower learns of a job when a worker receives it.
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "check-gpu": {
                "task": names.CHECK_GPU,
                "schedule": float(settings.lifecycle_check_seconds),
                "options": {"expires": float(settings.lifecycle_check_seconds)},
            },
            "expire-jobs": {
                "task": names.EXPIRE_JOBS,
                "schedule": float(settings.expiry_sweep_seconds),
                "options": {"expires": float(settings.expiry_sweep_seconds)},
            },
            "sweep-dead-letters": {
                "task": names.SWEEP_DEAD_LETTERS,
                "schedule": float(settings.dead_letter_sweep_seconds),
                # A sweep that waited longer than its period is superseded by the next one.
                "options": {"expires": float(settings.dead_letter_sweep_seconds)},
            },
            "sweep-webhooks": {
                "task": names.SWEEP_WEBHOOKS,
                "schedule": float(settings.webhook_sweep_seconds),
                "options": {"expires": float(settings.webhook_sweep_seconds)},
            },
        },
    }
    if settings.aws_endpoint_url:
        config["dynamodb_endpoint_url"] = settings.aws_endpoint_url
    return config


class GpuorchCelery(Celery):
    """A Celery app configured from one Settings, which it keeps with the services its tasks use."""

    # Remote control with one reply queue per call, named so a worker finds it on SQS.
    control_cls = "gpuorch.celery.monitoring.remote_control:Control"

    def __init__(self, settings: Settings, **kwargs: Any):
        super().__init__("gpuorch", include=TASK_MODULES, **kwargs)
        self.settings = settings
        self.add_defaults(celery_config(settings))

    @functools.cached_property
    def services(self) -> Services:
        """The process's AWS clients, job store and workflows, built on first use; the job store's changes queue
        the webhook deliveries they call for."""
        return Services(self.settings, job_listener=WebhookAnnouncer(self.enqueue_delivery))

    def enqueue_delivery(self, job_id: str, topic: str) -> None:
        """Queue one webhook delivery for the control worker (a message of ids only)."""
        self.send_task(names.DELIVER_WEBHOOK, args=[job_id, topic])

    def enqueue_resend(self, job_id: str, topic: str) -> None:
        """Queue a resend of one delivery, asked for by the job's owner."""
        self.send_task(names.RESEND_WEBHOOK, args=[job_id, topic])

    @functools.cached_property
    def deliveries(self) -> DeliveryStore:
        return DeliveryStore(self.services.aws.dynamodb, self.settings.control_table,
                             ttl_seconds=self.settings.job_ttl_seconds)

    @functools.cached_property
    def deliverer(self) -> WebhookDeliverer:
        """Signs and POSTs webhooks (control worker)."""
        settings = self.settings
        return WebhookDeliverer(self.services.jobs, self.deliveries, SecretStore(self.services.aws.dynamodb,
                                                                                settings.control_table),
                                OutputLinks.from_settings(settings), timeout_s=settings.webhook_timeout_seconds,
                                allow_insecure=settings.allow_insecure_inputs)

    @functools.cached_property
    def notice_board(self) -> NoticeBoard:
        """The spot interruption notice of the GPU worker's instance, posted by its main process and read by its
        pool's processes: made in the main process before the pool forks (workers/gpu.py)."""
        return NoticeBoard()

    @functools.cached_property
    def submitter(self) -> JobSubmitter:
        """Accepts jobs and publishes them through this app."""
        return JobSubmitter(self.services, CeleryPublisher(self, self.settings))

    @functools.cached_property
    def batches(self) -> BatchSubmitter:
        """Accepts batches of jobs, each item through the submitter."""
        return BatchSubmitter(self.submitter, self.services.batches)


def create_celery_app(settings: Settings, **overrides: Any) -> GpuorchCelery:
    """A new Celery app for these settings; `overrides` are extra Celery settings (e.g. a worker's consumer class).

    Each entry point (API, workers, CLI) builds its own from the settings it read; nothing reconfigures an app
    once built. It is not made Celery's current app: gpuorch.tasks does that for Python callers.
    """
    app = GpuorchCelery(settings, set_as_current=False)
    if overrides:
        app.conf.update(overrides)
    return app
