"""The names of the exchanges, SNS topics and SQS queues of Celery's events and remote control, from one namespace."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gpuorch.settings import NAMESPACE_PATTERN


SQS_NAME_MAX = 80

# The transport option that hands the namespace to gpuorch.celery.monitoring.transport.
NAMESPACE_OPTION = "gpuorch_broadcast_namespace"


@dataclass(frozen=True)
class BroadcastNames:
    """Every broadcast name of one deployment, so two deployments in one account and region never mix.

    Every queue starts with the namespace, so a sweep finds the per-process ones by prefix:
    - events: the exchange (SNS topic `<ns>-events`) and the queues of the processes watching them,
      `<ns>.events.<uuid>`, one per Flower or `celery events` process;
    - remote control: Celery's `control_exchange` is the namespace, so kombu's pidbox exchange is `<ns>.pidbox`
      (SNS topic `<ns>-pidbox`); each worker listens on `<ns>.pidbox.<worker name>`, named after the worker and
      so the same queue after a restart; replies go to `<ns>.reply.<call id>`, one queue per call.
    """

    namespace: str

    def __post_init__(self):
        if not NAMESPACE_PATTERN.match(self.namespace):
            raise ValueError(f"broadcast namespace {self.namespace!r}: 1-30 letters, digits, '-' or '_'")

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def event_queue_prefix(self) -> str:
        """Celery's `event_queue_prefix`: a receiver's queue is `<prefix>.<uuid>`."""
        return self.events_exchange

    @property
    def control_exchange(self) -> str:
        """Celery's `control_exchange`, from which kombu's mailbox names `<ns>.pidbox` and `<ns>.reply`."""
        return self.namespace

    @property
    def pidbox_exchange(self) -> str:
        return pidbox_exchange_of(self.control_exchange)

    @property
    def reply_exchange(self) -> str:
        return reply_exchange_of(self.control_exchange)

    @property
    def fanout_exchanges(self) -> tuple[str, ...]:
        """The exchanges carried by SNS topics: every queue bound to one gets each message."""
        return (self.events_exchange, self.pidbox_exchange)

    @property
    def per_process_prefixes(self) -> tuple[str, ...]:
        """Queues of one process (event receivers', reply queues): deleted when it ends, swept if it died first."""
        return (f"{self.event_queue_prefix}.", f"{self.reply_exchange}.")

    @property
    def node_queue_prefix(self) -> str:
        """The workers' pidbox queues, each named after its worker and kept across its restarts."""
        return f"{self.pidbox_exchange}."

    def is_broadcast_queue(self, queue: str) -> bool:
        return queue.startswith((*self.per_process_prefixes, self.node_queue_prefix))

    def is_per_process(self, queue: str) -> bool:
        return queue.startswith(self.per_process_prefixes)

    def is_reply_queue(self, queue: str) -> bool:
        return queue.startswith(f"{self.reply_exchange}.")


def pidbox_exchange_of(control_exchange: str) -> str:
    return f"{control_exchange}.pidbox"


def reply_exchange_of(control_exchange: str) -> str:
    return f"{control_exchange}.reply"


def reply_queue_name(reply_exchange: str, routing_key: str) -> str:
    """Where a reply routed with `routing_key` goes: a worker finds the queue by name, as no binding reaches it."""
    return f"{reply_exchange}.{routing_key}"


def node_queue_name(control_exchange: str, hostname: str) -> str:
    """A worker's remote-control queue, within SQS's 80 characters however long the host name."""
    name = f"{pidbox_exchange_of(control_exchange)}.{hostname}"
    if len(name) <= SQS_NAME_MAX:
        return name
    digest = hashlib.sha1(hostname.encode()).hexdigest()[:10]
    return f"{name[:SQS_NAME_MAX - len(digest) - 1]}-{digest}"
