"""Each GPU instance's health for /health: its state, its worker's and ComfyUI's last heartbeat, and a verdict."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lifecycle.live.check import LifecycleStatus
from lifecycle.live.heartbeats import WorkerReport
from lifecycle.live.refusals import StoredRefusal
from lifecycle.model import Refusal

# Host verdicts. OFF: stopped (or stopping), the normal state of an idle GPU. STARTING: booting, or running
# within the boot grace while its worker has not reported yet. OK: the worker and ComfyUI report within the
# staleness limit. STOPPING: the worker said it is shutting down. INTERRUPTED: its worker reported EC2's spot
# interruption notice: it takes no job, and EC2 stops it at the notice's time (the lifecycle starts a replacement).
# STALE: running, but the worker's heartbeat (or ComfyUI's answer to it) is older than the limit: jobs wait.
# UNKNOWN: a worker reports on an instance the last lifecycle check did not list (no check yet, or another pool).
# REFUSED: it cannot serve (its worker refused to start, or it was not ready within its boot grace): stopped, or
# about to be, and held.
OFF, STARTING, OK, STOPPING, STALE, UNKNOWN = "off", "starting", "ok", "stopping", "stale", "unknown"
INTERRUPTED, REFUSED = "interrupted", "refused"
HOST_VERDICTS = (OFF, STARTING, OK, STOPPING, INTERRUPTED, STALE, UNKNOWN, REFUSED)
DOWN_STATES = frozenset({"stopping", "stopped", "shutting-down", "terminated"})


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 1)


def host_verdict(state: str | None, launched_at: datetime | None, report: WorkerReport | None, now: datetime,
                 *, stale_after_s: float, boot_grace_s: float) -> tuple[str, str | None]:
    """(verdict, why) for one GPU instance: its EC2 state as the last lifecycle check saw it (None: not
    listed), its latest start, and its worker's latest report."""
    if state in DOWN_STATES:
        return OFF, None  # its worker's heartbeat goes stale as it should
    if state == "pending":
        return STARTING, None
    notice = report.heartbeat.interruption_at if report is not None else None
    if notice is not None and (launched_at is None or launched_at <= notice):  # not an earlier run's notice
        return INTERRUPTED, f"spot interruption notice: EC2 stops it at {notice.isoformat()}"
    worker_age = _age(now, report.heartbeat.at) if report is not None else None
    if worker_age is not None and worker_age <= stale_after_s:
        if not report.heartbeat.ready:
            return STOPPING, "the GPU worker is shutting down"
        comfyui_age = _age(now, report.comfyui_at)
        if comfyui_age is None:
            return STALE, "ComfyUI has not answered the GPU worker's heartbeat"
        if comfyui_age > stale_after_s:
            return STALE, f"ComfyUI last answered {comfyui_age:.0f} s ago (limit {stale_after_s:.0f} s)"
        return OK, None
    if state is None:
        return UNKNOWN, None
    since_start = _age(now, launched_at)
    if since_start is not None and since_start < boot_grace_s:
        return STARTING, None
    if worker_age is None:
        return STALE, "running, but its GPU worker has not reported"
    return STALE, f"running, but its GPU worker last reported {worker_age:.0f} s ago (limit {stale_after_s:.0f} s)"


def refusal_verdict(state: str | None, refusal: Refusal | None, report: WorkerReport | None, *, held: bool,
                    checked_at: datetime | None) -> tuple[str, str] | None:
    """(REFUSED, why) for an instance that cannot serve: the last lifecycle check held it, or its worker refused
    after that check (on a running instance the next check stops); None when its refusal, if any, does not stand
    (a later heartbeat superseded it, or the configuration changed since it was held)."""
    if refusal is None or (report is not None and report.heartbeat.at > refusal.at):
        return None
    if held:
        return REFUSED, f"{refusal}; held until its configuration changes or an operator starts it"
    if state in (None, "pending", "running") and (checked_at is None or refusal.at > checked_at):
        return REFUSED, f"{refusal}; the lifecycle stops it at its next check"
    return None


def refusal_view(stored: StoredRefusal, held: bool) -> dict[str, Any]:
    refusal = stored.refusal
    return {"at": refusal.at.isoformat(), "source": refusal.source, "reasons": list(refusal.reasons),
            "fingerprint": refusal.fingerprint or None, "held": held}


def gpu_instances_detail(status: LifecycleStatus | None, reports: tuple[WorkerReport, ...], now: datetime, *,
                         stale_after_s: float, boot_grace_s: float,
                         refusals: tuple[StoredRefusal, ...] = ()) -> tuple[bool, dict[str, Any]]:
    """(any host stale, the component's detail): every instance the last check listed, every instance a worker
    reports on, and every instance with a refusal, each with its verdict."""
    listed = {i["instance_id"]: i for i in (status.instances if status is not None else ())}
    by_id = {r.heartbeat.instance_id: r for r in reports}
    refused = {r.refusal.instance_id: r for r in refusals}
    held = set(status.held) if status is not None else set()
    checked_at = datetime.fromisoformat(status.checked_at) if status is not None else None
    hosts = []
    for instance_id in sorted(set(listed) | set(by_id) | set(refused)):
        instance, report, stored = listed.get(instance_id, {}), by_id.get(instance_id), refused.get(instance_id)
        launched = instance.get("launched_at")
        verdict, why = refusal_verdict(
            instance.get("state"), stored.refusal if stored else None, report, held=instance_id in held,
            checked_at=checked_at) or host_verdict(
            instance.get("state"), datetime.fromisoformat(launched) if launched else None, report, now,
            stale_after_s=stale_after_s, boot_grace_s=boot_grace_s)
        hosts.append({
            "instance_id": instance_id,
            "state": instance.get("state"),
            "instance_type": instance.get("instance_type"),
            "market": instance.get("market"),
            "launched_at": launched,
            "health": verdict,
            "reason": why,
            "worker": None if report is None else {
                "heartbeat_at": report.heartbeat.at.isoformat(),
                "age_s": _age(now, report.heartbeat.at),
                "ready": report.heartbeat.ready,
                "running_jobs": len(report.heartbeat.running_jobs),
            },
            "comfyui": None if report is None or report.comfyui_at is None else {
                "answered_at": report.comfyui_at.isoformat(),
                "age_s": _age(now, report.comfyui_at),
            },
            "refusal": None if stored is None else refusal_view(stored, instance_id in held),
        })
    detail = {
        "checked_at": status.checked_at if status is not None else None,
        "stale_after_s": stale_after_s,
        "instances": hosts,
    }
    return any(host["health"] == STALE for host in hosts), detail

