"""Celery's remote control with queue names a worker can find on SQS: one reply queue per call, one per worker."""

from __future__ import annotations

import uuid

from celery.app import control
from kombu import pidbox

from gpuorch.celery.monitoring.names import node_queue_name, reply_exchange_of, reply_queue_name


class Mailbox(pidbox.Mailbox):
    """kombu's mailbox, with the queue names of gpuorch.celery.monitoring.names.

    - A worker listens on `<ns>.pidbox.<worker name>`: every broadcast queue starts with the namespace, so the
      transport sweeps the queues of workers long gone by prefix, and a long host name still fits SQS.
    - Replies go to `<ns>.reply.<call id>`. kombu names a reply queue after the process, thread and the id() of a
      short-lived object, so a name comes back within seconds, and SQS refuses to create a queue deleted less
      than 60 s before; a random id per call never comes back.
    """

    reply_exchange_fmt = reply_exchange_of("%s")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._call_id = uuid.uuid4().hex

    def __call__(self, connection):
        # Celery binds the mailbox once per broadcast: each call gets its own id and so its own reply queue.
        bound = super().__call__(connection)
        bound._call_id = uuid.uuid4().hex
        bound.__dict__.pop("reply_queue", None)
        return bound

    @property
    def oid(self) -> str:
        return self._call_id

    def get_queue(self, hostname):
        queue = super().get_queue(hostname)  # kombu's arguments, with gpuorch's name
        queue.name = node_queue_name(self.namespace, hostname)
        return queue

    def get_reply_queue(self):
        queue = super().get_reply_queue()  # routed by this call's id, with kombu's other arguments
        queue.name = reply_queue_name(self.reply_exchange.name, self.oid)
        return queue


class Control(control.Control):
    """The app's `control` (GpuorchCelery.control_cls), with the mailbox above."""

    Mailbox = Mailbox
