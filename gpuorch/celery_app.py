"""The Celery application: its configuration is built from the Settings in one place."""

from __future__ import annotations

import functools
import urllib.parse
from typing import Any, Callable

from celery import Celery
from kombu import Exchange, Queue

from gpuorch.monitoring.names import NAMESPACE_OPTION, BroadcastNames
from gpuorch.services import Services
from gpuorch.settings import Settings
from lifecycle.trigger import CHECK_TASK, CheckTrigger

GPU_TASKS = ("gpuorch.tasks.camera_angle", "gpuorch.tasks.qwen_image_edit", "gpuorch.tasks.run_workflow")

# A GPU job stops itself this long before the hard limit, so it can interrupt ComfyUI and record why.
SOFT_LIMIT_MARGIN = 15


def soft_time_limit(task_time_limit: int) -> int:
    """The soft time limit: SOFT_LIMIT_MARGIN before the hard one, but at most a quarter of it, so that a short
    limit still leaves the job most of its time (7 s gives 6 s, not 1 s); at least 1 s."""
    return max(1, task_time_limit - min(SOFT_LIMIT_MARGIN, max(1, task_time_limit // 4)))

# Submissions ask for a lifecycle check at most this often per process (beat checks regularly anyway).
TRIGGER_INTERVAL_S = 5.0

# kombu's SQS transport with Celery's events and remote control working through SNS (GPUORCH_MONITORING).
MONITORING_TRANSPORT = "gpuorch.monitoring.transport:Transport"
# kombu's SQS transport surviving a failed receive (gpuorch.aws.sqs_transport says why); the one above extends it.
SQS_TRANSPORT = "gpuorch.aws.sqs_transport:Transport"


def broker_url(settings: Settings) -> str:
    """sqs:// for AWS; for another endpoint kombu builds the address from the URL's host and port."""
    if not settings.aws_endpoint_url:
        return "sqs://"
    endpoint = urllib.parse.urlsplit(settings.aws_endpoint_url)
    return f"sqs://{endpoint.netloc}"


def result_backend_url(settings: Settings) -> str:
    return f"dynamodb://@{settings.region}/{settings.result_table}?ttl_seconds={settings.job_ttl_seconds}"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Every Celery setting gpuorch uses, derived from its Settings."""
    endpoint = urllib.parse.urlsplit(settings.aws_endpoint_url) if settings.aws_endpoint_url else None
    transport_options: dict[str, Any] = {
        "region": settings.region,
        "wait_time_seconds": settings.receive_wait_seconds,
        # Only used if kombu ever creates a queue itself; `gpuorch provision` creates them first.
        "visibility_timeout": settings.visibility_timeout,
        "polling_interval": 1,
    }
    if endpoint is not None:
        transport_options["is_secure"] = endpoint.scheme == "https"
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
            Queue(settings.control_queue, direct, routing_key=settings.control_queue),
        ),
        "task_default_queue": settings.control_queue,
        "task_default_exchange": "gpuorch",
        "task_default_routing_key": settings.control_queue,
        "task_routes": {name: {"queue": settings.gpu_queue, "routing_key": settings.gpu_queue} for name in GPU_TASKS},
        # Invariant 2: a GPU job's message stays in flight until the job ends; a dead worker gives it back.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": soft_time_limit(settings.task_time_limit),
        "task_track_started": True,
        "result_expires": None,  # the DynamoDB table's TTL expires results
        # Broadcast: Celery events and remote control, through SNS topics that kombu's SQS transport alone cannot
        # use for Celery (gpuorch.monitoring.transport says why), so Flower and `celery inspect` see the workers.
        # Events go to SNS only: no event or command ever lands on the GPU or control queue.
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
                "task": CHECK_TASK,
                "schedule": float(settings.lifecycle_check_seconds),
                "options": {"expires": float(settings.lifecycle_check_seconds)},
            },
            "sweep-dead-letters": {
                "task": "gpuorch.control.sweep_dead_letters",
                "schedule": float(settings.dead_letter_sweep_seconds),
                # A sweep that waited longer than its period is superseded by the next one.
                "options": {"expires": float(settings.dead_letter_sweep_seconds)},
            },
        },
    }
    if settings.aws_endpoint_url:
        config["dynamodb_endpoint_url"] = settings.aws_endpoint_url
    return config


class GpuorchCelery(Celery):
    """A Celery app that carries the gpuorch Settings it was configured from."""

    # Remote control with one reply queue per call, named so a worker finds it on SQS.
    control_cls = "gpuorch.monitoring.control:Control"

    def __init__(self, settings_loader: Callable[[], Settings] = Settings.from_env, **kwargs: Any):
        super().__init__("gpuorch", include=["gpuorch.tasks", "gpuorch.control_tasks", "lifecycle.tasks"], **kwargs)
        self._settings_loader = settings_loader
        self._settings: Settings | None = None
        self.add_defaults(lambda: celery_config(self.settings))

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self._settings_loader()
        return self._settings

    def use_settings(self, settings: Settings) -> None:
        """Configure from explicit settings (an entry point that already read them), before publishing.

        Touching a task (even importing it into a namespace that gets inspected) loads the configuration,
        so an already loaded one is updated in place rather than refused.
        """
        self._settings = settings
        if self.configured:
            self.conf.update(celery_config(settings))
            # Celery keeps the result backend it built from the first configuration (shared, or per thread):
            # without this, results would still be read from the earlier settings' table.
            self._backend_cache = None
            self._local.__dict__.pop("backend", None)
        self.__dict__.pop("services", None)
        self.__dict__.pop("lifecycle_trigger", None)

    @functools.cached_property
    def lifecycle_trigger(self) -> CheckTrigger:
        """Call after accepting a job: a stopped GPU starts within seconds, not at the next beat."""
        settings = self.settings
        return CheckTrigger(
            lambda: self.send_task(CHECK_TASK, queue=settings.control_queue, expires=settings.lifecycle_check_seconds),
            min_interval_s=TRIGGER_INTERVAL_S,
        )

    @functools.cached_property
    def services(self) -> Services:
        """The process's AWS clients, job store and workflow catalogue, built on first use."""
        return Services(self.settings)


app = GpuorchCelery()
