"""Webhook deliveries end to end on the moto server: a job's changes announced, each delivery signed and POSTed to a
real receiver on loopback that verifies it with the Standard Webhooks library; receivers that fail, time out, redirect
and come back; the tries recorded, the next one swept when due, given up at the last."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.jobs import states
from gpuorch.jobs.outputs import OutputLinks
from gpuorch.jobs.store import JobStore
from gpuorch.webhooks.announce import WebhookAnnouncer
from gpuorch.webhooks.deliverer import WebhookDeliverer
from gpuorch.webhooks.events import DEFAULT_EVENTS, JOB_PROGRESS, JOB_SUCCEEDED, Subscription, topic
from gpuorch.webhooks.schedule import DELIVERED, GIVEN_UP, PENDING, RETRY_DELAYS_S
from gpuorch.webhooks.secrets import SecretStore, new_secret
from gpuorch.webhooks.store import DeliveryStore
from tests.webhooks.receiver import Receiver


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Rig:
    jobs: JobStore
    deliverer: WebhookDeliverer
    deliveries: DeliveryStore
    queued: list[tuple[str, str]]
    clock: Clock
    secret: str

    def submit(self, receiver: Receiver, job_id: str, events=DEFAULT_EVENTS) -> None:
        self.jobs.create(job_id, "camera-angle", {"move": "top_down"}, source="api", owner="alice",
                         webhook=Subscription(receiver.url, tuple(events), "key1").as_record())

    def deliver_queued(self) -> None:
        while self.queued:
            self.deliverer.deliver(*self.queued.pop(0))


@pytest.fixture
def rig(provisioned, settings):
    clock = Clock()
    queued: list[tuple[str, str]] = []
    aws = provisioned.aws
    jobs = JobStore(aws.dynamodb, settings.job_table, ttl_seconds=3600, clock=clock,
                    listener=WebhookAnnouncer(lambda job_id, wanted: queued.append((job_id, wanted))))
    deliveries = DeliveryStore(aws.dynamodb, settings.control_table, ttl_seconds=3600, clock=clock)
    secrets = SecretStore(aws.dynamodb, settings.control_table)
    secret = new_secret()
    secrets.put("key1", secret)
    deliverer = WebhookDeliverer(jobs, deliveries, secrets, OutputLinks.from_settings(settings), timeout_s=1.0,
                                 allow_insecure=True, clock=clock)
    return Rig(jobs, deliverer, deliveries, queued, clock, secret)


@pytest.fixture
def receiver(rig):
    running = Receiver(rig.secret)
    yield running
    running.close()


def test_each_status_change_reaches_the_receiver_signed_once(rig, receiver):
    rig.submit(receiver, "job-1")
    rig.jobs.transition("job-1", states.RUNNING)
    assert rig.queued == [("job-1", "job.running")]
    rig.deliver_queued()
    rig.jobs.report_progress("job-1", 40, "3 KSampler")  # not subscribed: no delivery
    rig.jobs.transition("job-1", states.SUCCEEDED, outputs=[], gpu_seconds=2.5)
    assert rig.queued == [("job-1", "job.succeeded")]
    rig.deliver_queued()

    verified = receiver.verified()
    assert [(p["type"], p["data"]["status"]) for p in verified] == [("job.running", "running"),
                                                                    ("job.succeeded", "succeeded")]
    assert verified[1]["data"]["gpu_seconds"] == 2.5 and verified[1]["data"]["job_id"] == "job-1"
    assert all(r.problem is None for r in receiver.received)
    assert {r.headers["webhook-id"] for r in receiver.received} == {"msg_job-1_job.running", "msg_job-1_job.succeeded"}

    # The end announced again (a redelivered message finds the job over): nothing is sent twice.
    rig.jobs.announce(rig.jobs.get("job-1"))
    rig.deliver_queued()
    assert len(receiver.received) == 2
    [done] = [d for d in rig.deliveries.for_job("job-1") if d.topic == JOB_SUCCEEDED]
    assert done.state == DELIVERED and done.attempts[0]["status_code"] == 204


def test_a_failing_receiver_is_tried_again_when_due_until_it_comes_back(rig, receiver):
    receiver.answers = [503, 500]
    rig.submit(receiver, "job-2", [JOB_SUCCEEDED])
    rig.jobs.transition("job-2", states.RUNNING)
    rig.jobs.transition("job-2", states.SUCCEEDED, outputs=[])
    rig.deliver_queued()
    delivery = rig.deliveries.get("job-2", JOB_SUCCEEDED)
    assert delivery.state == PENDING and delivery.attempts[0]["status_code"] == 503
    assert "answered 503" in delivery.attempts[0]["error"]

    # Not due yet: the sweep queues nothing, a repeated announcement tries nothing.
    assert rig.deliverer.sweep(lambda *a: rig.queued.append(a)) == 0
    rig.jobs.announce(rig.jobs.get("job-2"))
    rig.deliver_queued()
    assert len(receiver.received) == 1

    rig.clock.advance(RETRY_DELAYS_S[0])
    assert rig.deliverer.sweep(lambda *a: rig.queued.append(a)) == 1
    assert rig.deliverer.sweep(lambda *a: rig.queued.append(a)) == 0  # claimed once
    rig.deliver_queued()
    rig.clock.advance(RETRY_DELAYS_S[1])
    rig.deliverer.sweep(lambda *a: rig.queued.append(a))
    rig.deliver_queued()  # the receiver is back

    delivery = rig.deliveries.get("job-2", JOB_SUCCEEDED)
    assert delivery.state == DELIVERED
    assert [a["status_code"] for a in delivery.attempts] == [503, 500, 204]
    assert len(receiver.verified()) == 3 and len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_a_receiver_that_never_answers_in_time_is_given_up_at_the_last_try(rig, receiver):
    receiver.answers = [("sleep", 2.0)] * (len(RETRY_DELAYS_S) + 1)
    rig.submit(receiver, "job-3", [JOB_SUCCEEDED])
    rig.jobs.transition("job-3", states.RUNNING)
    rig.jobs.transition("job-3", states.FAILED, error="no")  # not subscribed
    assert rig.queued == []
    rig.jobs.create("job-3b", "camera-angle", {}, source="api",
                    webhook=Subscription(receiver.url, (JOB_SUCCEEDED,), "key1").as_record())
    rig.jobs.transition("job-3b", states.RUNNING)
    rig.jobs.transition("job-3b", states.SUCCEEDED, outputs=[])
    rig.deliver_queued()
    for wait in RETRY_DELAYS_S:
        rig.clock.advance(wait)
        rig.deliverer.sweep(lambda *a: rig.queued.append(a))
        rig.deliver_queued()
    delivery = rig.deliveries.get("job-3b", JOB_SUCCEEDED)
    assert delivery.state == GIVEN_UP and len(delivery.attempts) == len(RETRY_DELAYS_S) + 1
    assert all(a["status_code"] is None and "timed out" in a["error"].lower() or "Timeout" in a["error"]
               for a in delivery.attempts)
    assert delivery.next_try_at is None

    # The owner's resend: a new round, tried now (the receiver answers at once this time).
    receiver.answers = []
    resent = rig.deliverer.resend("job-3b", JOB_SUCCEEDED)
    assert resent.state == DELIVERED and resent.round_tries == 1


def test_redirects_are_not_followed_and_forbidden_addresses_never_reached(rig, receiver, settings):
    receiver.answers = [("redirect", "http://169.254.169.254/latest/meta-data/")]
    rig.submit(receiver, "job-4", [JOB_SUCCEEDED])
    rig.jobs.transition("job-4", states.RUNNING)
    rig.jobs.transition("job-4", states.SUCCEEDED, outputs=[])
    rig.deliver_queued()
    attempt = rig.deliveries.get("job-4", JOB_SUCCEEDED).attempts[0]
    assert attempt["status_code"] == 307 and "not followed" in attempt["error"]
    assert len(receiver.received) == 1

    # Deployed (loopback not allowed), the same receiver is refused before any connection.
    strict = WebhookDeliverer(rig.jobs, rig.deliveries, rig.deliverer.secrets, rig.deliverer.links, timeout_s=1.0,
                              allow_insecure=False, clock=rig.clock)
    rig.submit(receiver, "job-5", [JOB_SUCCEEDED])
    rig.jobs.transition("job-5", states.RUNNING)
    rig.jobs.transition("job-5", states.SUCCEEDED, outputs=[])
    strict.deliver("job-5", JOB_SUCCEEDED)
    attempt = rig.deliveries.get("job-5", JOB_SUCCEEDED).attempts[0]
    assert attempt["status_code"] is None and attempt["error"].startswith("refused:")
    assert len(receiver.received) == 1


def test_progress_is_delivered_only_when_asked_for_once_per_percentage(rig, receiver):
    rig.submit(receiver, "job-6", [JOB_PROGRESS])
    rig.jobs.transition("job-6", states.RUNNING)
    rig.jobs.report_progress("job-6", 25, "3 KSampler")
    rig.jobs.report_progress("job-6", 25, "3 KSampler")  # not applied: not higher
    rig.jobs.report_progress("job-6", 50, "3 KSampler")
    assert rig.queued == [("job-6", topic(JOB_PROGRESS, 25)), ("job-6", topic(JOB_PROGRESS, 50))]
    rig.deliver_queued()
    assert [p["type"] for p in receiver.verified()] == [JOB_PROGRESS, JOB_PROGRESS]
