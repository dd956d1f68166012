"""The local instance metadata service (IMDSv2 on loopback): the worker's client against it, a spot interruption
notice raised by a test or over HTTP, the worker's watch that sees it, and the agent's pure rule for the stop."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta, timezone

import pytest
import requests

from gpuorch.execution.interruption import Notice
from gpuorch.settings import Settings
from gpuorch_dev.local.agent import interruption_due
from gpuorch_dev.local.metadata import RAISE_PATH, LocalInstanceMetadata, NotSpot
from lifecycle.live.identity import InstanceMetadata, PlatformSigns, http_request
from workers.spot_watch import INSTANCE_ACTION, SpotNoticeWatch, spot_metadata

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)
LAPTOP = PlatformSigns(sys_vendor="LENOVO")


@pytest.fixture
def spot():
    with LocalInstanceMetadata("i-0123456789abcdef0", "spot", clock=lambda: NOW) as metadata:
        yield metadata


@pytest.fixture
def on_demand():
    with LocalInstanceMetadata("i-0fedcba9876543210", "on-demand", clock=lambda: NOW) as metadata:
        yield metadata


def test_it_answers_as_imdsv2_only_with_a_token(spot):
    with pytest.raises(OSError):
        http_request("GET", f"{spot.url}/latest/meta-data/instance-id", {}, 1.0)  # no token: 401
    client = InstanceMetadata(spot.url)
    assert client.get("meta-data/instance-id") == "i-0123456789abcdef0"
    assert client.get("meta-data/instance-life-cycle") == "spot"


def test_no_notice_is_a_404_until_one_is_raised(spot):
    client = InstanceMetadata(spot.url)
    assert client.find(INSTANCE_ACTION) is None
    notice = spot.raise_notice(120.5)
    assert notice == Notice("stop", NOW + timedelta(seconds=120))  # EC2's time is to the second
    assert client.find(INSTANCE_ACTION) == '{"action": "stop", "time": "2026-05-04T09:02:00Z"}'
    spot.clear_notice()
    assert client.find(INSTANCE_ACTION) is None


def test_a_person_raises_a_notice_over_http(spot, on_demand):
    answer = requests.post(f"{spot.url}{RAISE_PATH}?seconds=30", timeout=5)
    assert answer.status_code == 201 and answer.json()["time"] == (NOW + timedelta(seconds=30)).isoformat()
    assert spot.notice.at == NOW + timedelta(seconds=30)
    assert requests.post(f"{spot.url}{RAISE_PATH}?seconds=soon", timeout=5).status_code == 400
    refused = requests.post(f"{on_demand.url}{RAISE_PATH}", timeout=5)
    assert refused.status_code == 409 and "only a spot instance" in refused.json()["error"]
    with pytest.raises(NotSpot):
        on_demand.raise_notice()


def test_the_watch_sees_the_notice_once_and_ends(spot):
    seen: list[Notice] = []
    arrived = threading.Event()
    watch = SpotNoticeWatch(InstanceMetadata(spot.url), 0.05, lambda n: (seen.append(n), arrived.set()))
    watch.start()
    assert watch.look() is None
    spot.raise_notice(90)
    assert arrived.wait(10)
    watch.join(10)
    assert seen == [Notice("stop", NOW + timedelta(seconds=90))] and not watch.is_alive()


def test_a_watch_is_kept_only_on_a_spot_instance_and_when_asked_for(spot, on_demand):
    settings = dataclasses.replace(Settings(), interruption_check_seconds=5.0)
    assert spot_metadata(dataclasses.replace(settings, instance_metadata_url=spot.url)).endpoint == spot.url
    assert spot_metadata(dataclasses.replace(settings, instance_metadata_url=on_demand.url)) is None
    assert spot_metadata(dataclasses.replace(settings, instance_metadata_url=spot.url,
                                             interruption_check_seconds=0)) is None
    # Off EC2 with no endpoint set, nobody is asked (169.254.169.254 least of all).
    assert spot_metadata(settings, signs=lambda: LAPTOP) is None


@pytest.mark.parametrize("notice_at,now,due", [
    (None, NOW, False),
    (NOW + timedelta(seconds=1), NOW, False),
    (NOW, NOW, True),
    (NOW - timedelta(seconds=5), NOW, True),
])
def test_the_agent_stops_the_instance_at_the_notices_time(notice_at, now, due):
    assert interruption_due(notice_at, now) is due
