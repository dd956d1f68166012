"""The gpu_instances verdict: a stopped GPU is off (normal), a running one with stale heartbeats is stale."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from lifecycle.live.check import LifecycleStatus
from lifecycle.live.heartbeats import WorkerReport
from lifecycle.live.refusals import StoredRefusal
from lifecycle.model import Heartbeat, Refusal
from lifecycle.live.health import gpu_instances_detail, host_verdict, refusal_verdict

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
LIMIT, GRACE = 45, 600


def ago(seconds: float | None) -> datetime | None:
    return None if seconds is None else NOW - timedelta(seconds=seconds)


def report(worker_age: float, comfyui_age: float | None, *, ready: bool = True,
           notice_in_s: float | None = None) -> WorkerReport:
    notice = None if notice_in_s is None else NOW + timedelta(seconds=notice_in_s)
    return WorkerReport(Heartbeat("i-1", ago(worker_age), (), ready, interruption_at=notice), None, ago(comfyui_age))


NOTICE = f"spot interruption notice: EC2 stops it at {(NOW + timedelta(seconds=90)).isoformat()}"


@pytest.mark.parametrize("state,launched_age,worker,expected", [
    ("stopped", 3600, None, ("off", None)),
    ("stopped", 3600, report(900, 900), ("off", None)),  # a stopped GPU's old heartbeat is as it should be
    ("stopping", 3600, report(5, 5), ("off", None)),
    ("pending", None, None, ("starting", None)),
    ("running", 60, None, ("starting", None)),  # booting: within the grace, no report yet
    ("running", 60, report(200, 200), ("starting", None)),  # an earlier boot's heartbeat, still in the grace
    ("running", 3600, report(5, 5), ("ok", None)),
    ("running", 3600, report(5, 5, ready=False), ("stopping", "the GPU worker is shutting down")),
    ("running", 3600, None, ("stale", "running, but its GPU worker has not reported")),
    ("running", 3600, report(120, 120),
     ("stale", "running, but its GPU worker last reported 120 s ago (limit 45 s)")),
    ("running", 3600, report(5, 100), ("stale", "ComfyUI last answered 100 s ago (limit 45 s)")),
    ("running", 3600, report(5, None), ("stale", "ComfyUI has not answered the GPU worker's heartbeat")),
    ("running", 3600, report(5, 5, notice_in_s=90), ("interrupted", NOTICE)),
    ("running", 3600, report(200, 200, notice_in_s=90), ("interrupted", NOTICE)),  # its worker gone: still going
    ("running", 60, report(5, 5, notice_in_s=-600), ("ok", None)),  # the notice of its run before this one
    ("stopped", 3600, report(5, 5, notice_in_s=90), ("off", None)),
    (None, None, report(5, 5), ("ok", None)),  # listed by no check yet, but reporting well
    (None, None, report(900, 900), ("unknown", None)),
])
def test_host_verdict(state, launched_age, worker, expected):
    assert host_verdict(state, ago(launched_age), worker, NOW, stale_after_s=LIMIT, boot_grace_s=GRACE) == expected


def test_the_detail_lists_every_instance_and_every_reporting_worker():
    status = LifecycleStatus("2026-06-15T11:59:50+00:00", (), (), instances=(
        {"instance_id": "i-1", "state": "running", "instance_type": "g6e.2xlarge",
         "launched_at": ago(3600).isoformat(), "market": "spot"},
        {"instance_id": "i-2", "state": "stopped", "instance_type": "g6e.2xlarge", "launched_at": None},
    ))
    reports = (report(3, 3), WorkerReport(Heartbeat("i-9", ago(4), ("job",), True), None, ago(4)))

    stale, detail = gpu_instances_detail(status, reports, NOW, stale_after_s=LIMIT, boot_grace_s=GRACE)

    assert not stale
    assert detail["checked_at"] == status.checked_at
    assert [(h["instance_id"], h["state"], h["health"]) for h in detail["instances"]] == [
        ("i-1", "running", "ok"), ("i-2", "stopped", "off"), ("i-9", None, "ok")]
    first = detail["instances"][0]
    assert first["market"] == "spot" and detail["instances"][2]["market"] is None
    assert first["worker"] == {"heartbeat_at": ago(3).isoformat(), "age_s": 3.0, "ready": True, "running_jobs": 0}
    assert first["comfyui"] == {"answered_at": ago(3).isoformat(), "age_s": 3.0}
    assert detail["instances"][1]["worker"] is None and detail["instances"][1]["comfyui"] is None


def test_no_instance_and_no_worker_is_healthy():
    assert gpu_instances_detail(None, (), NOW, stale_after_s=LIMIT, boot_grace_s=GRACE) == (
        False, {"checked_at": None, "stale_after_s": LIMIT, "instances": []})


REFUSAL = Refusal("i-1", ago(30), ("camera-angle: the server has no loras file 'x'",), "f1")
HELD = ("refused", f"its worker refused to start: {REFUSAL.reasons[0]}; held until its configuration changes or an "
                   "operator starts it")
NEWS = ("refused", f"its worker refused to start: {REFUSAL.reasons[0]}; the lifecycle stops it at its next check")


@pytest.mark.parametrize("state,refusal,worker,held,checked_age,expected", [
    ("stopped", REFUSAL, None, True, 10, HELD),
    ("running", REFUSAL, None, True, 10, HELD),  # being stopped
    ("running", REFUSAL, None, False, 60, NEWS),  # refused after the last check: the next one stops it
    (None, REFUSAL, None, False, None, NEWS),  # no check yet
    ("running", REFUSAL, None, False, 10, None),  # that check saw it and did not hold it: an earlier run's
    ("stopped", REFUSAL, None, False, 10, None),  # the configuration changed since: it may start
    ("running", REFUSAL, report(5, 5), True, 10, None),  # its worker reported since: superseded
    ("stopped", None, None, True, 10, None),  # released by an operator since that check
])
def test_refusal_verdict(state, refusal, worker, held, checked_age, expected):
    assert refusal_verdict(state, refusal, worker, held=held, checked_at=ago(checked_age)) == expected


def test_the_detail_names_a_refused_instance_and_why():
    status = LifecycleStatus(ago(10).isoformat(), (), (), instances=(
        {"instance_id": "i-1", "state": "stopped", "instance_type": "g6e.2xlarge", "launched_at": None},), held=("i-1",))
    stored = StoredRefusal(REFUSAL, {"catalogue": "c1"})

    stale, detail = gpu_instances_detail(status, (), NOW, stale_after_s=LIMIT, boot_grace_s=GRACE, refusals=(stored,))

    [host] = detail["instances"]
    assert not stale and (host["health"], host["reason"]) == HELD
    assert host["refusal"] == {"at": REFUSAL.at.isoformat(), "source": "worker", "reasons": list(REFUSAL.reasons),
                               "fingerprint": "f1", "held": True}
