"""The retry schedule and the events a subscription hears: pure, table-driven."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.errors import ParamsInvalid
from gpuorch.webhooks.events import (DEFAULT_EVENTS, JOB_PROGRESS, JOB_SUCCEEDED, Subscription, message_id,
                                     split_request, subscription, topic)
from gpuorch.webhooks.schedule import DELIVERED, GIVEN_UP, PENDING, RETRY_DELAYS_S, after_attempt

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("event,tries,status,state,wait_s", [
    (JOB_SUCCEEDED, 1, 200, DELIVERED, None),
    (JOB_SUCCEEDED, 1, 204, DELIVERED, None),
    (JOB_SUCCEEDED, 1, 500, PENDING, 5),
    (JOB_SUCCEEDED, 1, None, PENDING, 5),
    (JOB_SUCCEEDED, 2, 302, PENDING, 60),
    (JOB_SUCCEEDED, 3, 404, PENDING, 300),
    (JOB_SUCCEEDED, 7, 503, PENDING, 36000),
    (JOB_SUCCEEDED, 8, 503, GIVEN_UP, None),
    (JOB_SUCCEEDED, 8, 200, DELIVERED, None),
    (JOB_PROGRESS, 1, 500, GIVEN_UP, None),
    (JOB_PROGRESS, 1, 200, DELIVERED, None),
])
def test_a_try_leads_to_its_state_and_next_try(event, tries, status, state, wait_s):
    got_state, due = after_attempt(event, tries, status, T0)
    assert got_state == state
    assert due == (None if wait_s is None else T0 + timedelta(seconds=wait_s))


def test_the_schedule_spans_hours():
    assert 12 * 3600 < sum(RETRY_DELAYS_S) < 24 * 3600


@pytest.mark.parametrize("url,events,key_id,insecure,field", [
    ("https://hooks.example.com/x", None, "k1", False, None),
    ("http://127.0.0.1:9/x", ["job.succeeded"], "k1", True, None),
    ("http://hooks.example.com/x", None, "k1", False, "webhook"),
    ("https://127.0.0.1/x", None, "k1", False, "webhook"),
    ("https://10.0.0.5/x", None, "k1", True, "webhook"),
    ("https://169.254.169.254/latest", None, "k1", True, "webhook"),
    ("s3://bucket/key", None, "k1", False, "webhook"),
    (7, None, "k1", False, "webhook"),
    ("https://hooks.example.com/x", ["job.exploded"], "k1", False, "webhook_events"),
    ("https://hooks.example.com/x", [], "k1", False, "webhook_events"),
    ("https://hooks.example.com/x", "job.succeeded", "k1", False, "webhook_events"),
    ("https://hooks.example.com/x", None, "", False, "webhook"),
])
def test_a_subscription_is_checked_as_inputs_are(url, events, key_id, insecure, field):
    if field is None:
        chosen = subscription(url, events, key_id, allow_insecure=insecure)
        assert chosen.events == (tuple(events) if events else DEFAULT_EVENTS)
        assert Subscription.from_record(chosen.as_record()) == chosen
    else:
        with pytest.raises(ParamsInvalid) as refused:
            subscription(url, events, key_id, allow_insecure=insecure)
        assert set(refused.value.errors) == {field}


def test_a_request_s_webhook_fields_are_split_from_its_parameters():
    params, url, events = split_request({"move": "top_down", "webhook": "https://h/x", "webhook_events": ["a"]})
    assert (params, url, events) == ({"move": "top_down"}, "https://h/x", ["a"])


def test_a_delivery_keeps_one_message_id_per_job_and_topic():
    assert topic(JOB_PROGRESS, 42) == "job.progress#042"
    assert message_id("j1", "job.progress#042") == "msg_j1_job.progress_042"
    assert message_id("j1", JOB_SUCCEEDED) == message_id("j1", JOB_SUCCEEDED)
