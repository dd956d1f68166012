"""Delivering a job's webhook events from the control worker: sign, POST, record the try, schedule the next."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from gpuorch.clock import Clock, timestamp, utc_now
from gpuorch.jobs.outputs import OutputLinks
from gpuorch.jobs.store import Job, JobStore
from gpuorch.webhooks import sender
from gpuorch.webhooks.events import Subscription, body, message_id
from gpuorch.webhooks.schedule import PENDING, after_attempt
from gpuorch.webhooks.secrets import SecretStore
from gpuorch.webhooks.store import Attempt, Delivery, DeliveryStore

log = logging.getLogger(__name__)

# A key's secret is read again after this long, so a rotation (gpuorch keys webhook --new-secret) signs within it.
SECRET_CACHE_S = 60.0

#: Queues a delivery for the control worker: (job id, topic).
Enqueue = Callable[[str, str], None]


def event_of_topic(topic: str) -> str:
    return topic.partition("#")[0]


def job_document(job: Job, links: OutputLinks) -> dict[str, Any]:
    """The job record a webhook carries: every field of it, each output with a download URL signed now."""
    document = dataclasses.asdict(job)
    document["outputs"] = [links.link(output) for output in job.outputs]
    return document


class WebhookDeliverer:
    """Makes each delivery once per announcement (a repeated one finds it done or scheduled) and tries it."""

    def __init__(self, jobs: JobStore, deliveries: DeliveryStore, secrets: SecretStore, links: OutputLinks, *,
                 timeout_s: float, allow_insecure: bool, clock: Clock = utc_now, post=sender.post):
        self.jobs, self.deliveries, self.secrets, self.links = jobs, deliveries, secrets, links
        self.timeout_s, self.allow_insecure = timeout_s, allow_insecure
        self.clock, self.post = clock, post
        self._secrets: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def deliver(self, job_id: str, topic: str) -> Delivery | None:
        """Try the job's delivery of `topic` if it is pending and due (opening it on its first announcement);
        None when the job has no webhook wanting it (or no record)."""
        job = self.jobs.get(job_id)
        subscription = Subscription.from_record(job.webhook) if job is not None else None
        event = event_of_topic(topic)
        if subscription is None or not subscription.wants(event):
            return None
        # Opened first: an announcement's first delivery (the usual case) is tried without reading it back.
        delivery = self.deliveries.open(job_id, topic, event=event, url=subscription.url, key_id=subscription.key_id,
                                        message_id=message_id(job_id, topic))
        if delivery is None:
            delivery = self.deliveries.get(job_id, topic)
        if delivery is None or delivery.state != PENDING:
            return delivery  # delivered or given up: the announcement came again
        if delivery.next_try_at and datetime.fromisoformat(delivery.next_try_at) > self.clock():
            return delivery  # a later try is scheduled: the sweep makes it
        return self.attempt(job, delivery)

    def resend(self, job_id: str, topic: str) -> Delivery | None:
        """The owner's resend: a new round of tries, the first now; None when there is no such delivery."""
        delivery = self.deliveries.reopen(job_id, topic)
        job = self.jobs.get(job_id) if delivery is not None else None
        if delivery is None or job is None:
            return None
        return self.attempt(job, delivery)

    def attempt(self, job: Job, delivery: Delivery) -> Delivery:
        now = self.clock()
        payload = body(delivery.event, job_document(job, self.links), now)
        secret = self.secret(delivery.key_id)
        if secret is None:
            answer = sender.Answer(None, f"API key {delivery.key_id} has no webhook secret (gpuorch keys webhook "
                                         f"{delivery.key_id} --new-secret)", 0.0)
        else:
            headers = {"webhook-id": delivery.message_id, "webhook-timestamp": str(int(now.timestamp())),
                       "webhook-signature": Webhook(secret).sign(delivery.message_id, now, payload)}
            answer = self.post(delivery.url, payload, headers, timeout_s=self.timeout_s,
                               allow_insecure=self.allow_insecure)
        tries = delivery.round_tries + 1
        state, next_try = after_attempt(delivery.event, tries, answer.status_code, self.clock())
        attempt = Attempt(timestamp(now), answer.status_code, answer.error, answer.duration_ms)
        self.deliveries.record(delivery, attempt, state, next_try)
        context = {"job_id": delivery.job_id}
        if answer.error is None:
            log.info("job %s: webhook %s delivered (%s, %.0f ms)", delivery.job_id, delivery.topic,
                     answer.status_code, answer.duration_ms, extra=context)
        else:
            then = f"next try at {timestamp(next_try)}" if next_try else f"{state} after {tries} tries"
            log.warning("job %s: webhook %s to %s failed: %s; %s", delivery.job_id, delivery.topic, delivery.url,
                        answer.error, then, extra=context)
        return dataclasses.replace(delivery, state=state, round_tries=tries,
                                   next_try_at=timestamp(next_try) if next_try else None,
                                   attempts=(*delivery.attempts, attempt.as_record()))

    def secret(self, key_id: str) -> str | None:
        """The key's webhook secret, kept SECRET_CACHE_S seconds."""
        now = time.monotonic()
        with self._lock:
            cached = self._secrets.get(key_id)
            if cached is not None and now - cached[0] < SECRET_CACHE_S:
                return cached[1]
        secret = self.secrets.get(key_id) if key_id else None
        if secret is not None:
            with self._lock:
                self._secrets[key_id] = (now, secret)
        return secret

    def sweep(self, enqueue: Enqueue, *, limit: int = 100) -> int:
        """Queue every delivery whose next try is due; how many."""
        queued = 0
        for marker in self.deliveries.due(self.clock(), limit):
            if self.deliveries.claim(marker):
                enqueue(marker.job_id, marker.topic)
                queued += 1
        return queued
