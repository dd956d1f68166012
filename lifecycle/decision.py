"""The GPU lifecycle decision: which instances to start or stop now, from one snapshot and the policy."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Iterable

from lifecycle.market import PassedOver, is_on_demand, passed_over, start_order
from lifecycle.model import ON_DEMAND, SPOT, Action, Decision, Heartbeat, Instance, Policy, Refusal, Snapshot

# Instances that will serve soon or serve now; `stopping` ones must reach `stopped` before a start.
ACTIVE_STATES = ("pending", "running")
# EC2 stops a spot instance at its interruption notice's time. One still running this long after was not stopped
# after all, but its worker stopped taking jobs at the notice and every job it kept ended before that time: it cannot
# serve, so it is stopped (its next start brings a fresh worker).
OVERDUE_INTERRUPTION_S = 300.0


def latest_heartbeats(heartbeats: Iterable[Heartbeat]) -> dict[str, Heartbeat]:
    """The newest heartbeat of each instance."""
    latest: dict[str, Heartbeat] = {}
    for beat in heartbeats:
        if beat.instance_id not in latest or beat.at > latest[beat.instance_id].at:
            latest[beat.instance_id] = beat
    return latest


def is_fresh(beat: Heartbeat | None, now: datetime, policy: Policy) -> bool:
    return beat is not None and (now - beat.at).total_seconds() <= policy.heartbeat_timeout_s


def busy_jobs(snapshot: Snapshot, policy: Policy, beat: Heartbeat | None) -> tuple[str, ...] | None:
    """The jobs a running instance (whose latest heartbeat is `beat`) runs; None when not known busy.

    A fresh heartbeat says exactly what runs. Without one (stale or missing) the SQS in-flight count
    is the only evidence, and it cannot say which instance holds a message: any in-flight message
    then counts as this instance's work, the safe side. A stale heartbeat listing jobs while nothing
    is in flight is outdated (a running job keeps its message in flight until it ends).
    """
    if is_fresh(beat, snapshot.now, policy):
        return beat.running_jobs or None
    if snapshot.in_flight > 0:
        return (f"{snapshot.in_flight} in flight, heartbeat stale or missing",)
    return None


def run_started_at(instance: Instance, snapshot: Snapshot) -> datetime | None:
    """When the instance's current run began: the gatherer's record of it, else EC2's LaunchTime."""
    return snapshot.started_at.get(instance.instance_id) or instance.launched_at


def last_activity(instance: Instance, snapshot: Snapshot) -> datetime | None:
    """The latest of its start, the gatherer's remembered activity, and its heartbeats listing jobs."""
    moments = [run_started_at(instance, snapshot), snapshot.last_activity_at.get(instance.instance_id)]
    moments += [b.at for b in snapshot.heartbeats if b.instance_id == instance.instance_id and b.running_jobs]
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def interruption_at(instance: Instance, beat: Heartbeat | None) -> datetime | None:
    """When EC2 interrupts this instance, by its worker's latest report of a spot interruption notice; None when
    none stands (a notice from before the instance's latest start was about an earlier run)."""
    if beat is None or beat.interruption_at is None:
        return None
    if instance.launched_at is not None and instance.launched_at > beat.interruption_at:
        return None
    return beat.interruption_at


def wanted_instances(snapshot: Snapshot, policy: Policy) -> int:
    """Instances the waiting work calls for: one per `backlog_per_instance` visible jobs that may still run, within
    the pool. Low-priority jobs call for none: they run on instances that are up anyway."""
    by_backlog = math.ceil(snapshot.waiting / policy.backlog_per_instance)
    return min(policy.max_instances, max(policy.min_instances, by_backlog))


def budget_refusal(month_spend_usd: float, hourly_price_usd: float, monthly_budget_usd: float | None,
                   hours: int = 1) -> str | None:
    """Why a start is refused by the monthly budget: this month's spend plus `hours` hours at the price would pass
    it (None: it would not, or there is no budget). The lifecycle's starts and an operator's obey the same rule."""
    if monthly_budget_usd is None:
        return None
    if month_spend_usd + hours * hourly_price_usd <= monthly_budget_usd:
        return None
    return (f"monthly budget: ${month_spend_usd:.2f} spent of ${monthly_budget_usd:.2f}; "
            f"an hour more at ${hourly_price_usd:.2f}/h would pass it")


def _budget_refusal(snapshot: Snapshot, policy: Policy, nth_start: int) -> str | None:
    return budget_refusal(snapshot.month_spend_usd, snapshot.hourly_price_usd, policy.monthly_budget_usd, nth_start)


@dataclass(frozen=True)
class Holds:
    """The instances that cannot serve, as one snapshot shows them (see `assess_holds`)."""

    stop: dict[str, Refusal]  # running, and unable to serve this run: stopped now
    held: dict[str, Refusal]  # kept from starting (the ones stopped now included)
    newly_held: tuple[Refusal, ...] = ()
    superseded: tuple[Refusal, ...] = ()


def not_ready_refusal(instance: Instance, snapshot: Snapshot, policy: Policy,
                      beat: Heartbeat | None) -> Refusal | None:
    """A running instance whose worker has not reported since its run began `boot_grace_s` ago cannot serve."""
    since = run_started_at(instance, snapshot)
    if policy.boot_grace_s is None or since is None or (beat is not None and beat.at >= since):
        return None
    elapsed = (snapshot.now - since).total_seconds()
    if elapsed < policy.boot_grace_s:
        return None
    reason = (f"not ready within its boot grace: its GPU worker has not reported {elapsed:.0f} s after the "
              f"instance started (limit {policy.boot_grace_s:.0f} s)")
    return Refusal(instance.instance_id, snapshot.now, (reason,), source="lifecycle",
                   held_against=snapshot.configuration or None)


def assess_holds(snapshot: Snapshot, policy: Policy, beats: dict[str, Heartbeat]) -> Holds:
    """Which instances cannot serve, and what becomes of each refusal in the snapshot.

    - A refusal older than the worker's latest heartbeat is superseded: that worker passed its checks since.
    - A running instance whose worker refused during its current run, or whose worker has not reported within
      `boot_grace_s` of the run's start, cannot serve: it is stopped and held.
    - A stopped (or stopping) instance with a refusal stays held, unless the configuration changed since the
      lifecycle held it (`held_against`): then it may start once more, and its worker checks again.
    - A running instance refused in an earlier run was started again (by an operator, or after a change): its
      new run is judged by its own worker, or by the boot grace.
    """
    refusals = {r.instance_id: r for r in sorted(snapshot.refusals, key=lambda r: r.at)}
    stop: dict[str, Refusal] = {}
    held: dict[str, Refusal] = {}
    superseded: list[Refusal] = []
    for instance in sorted(snapshot.instances, key=lambda i: i.instance_id):
        instance_id, beat = instance.instance_id, beats.get(instance.instance_id)
        refusal = refusals.get(instance_id)
        if refusal is not None and beat is not None and beat.at > refusal.at:
            superseded.append(refusal)
            refusal = None
        if instance.state == "running":
            since = run_started_at(instance, snapshot)
            if refusal is not None and (since is None or refusal.at >= since):
                stop[instance_id] = held[instance_id] = refusal
            elif (late := not_ready_refusal(instance, snapshot, policy, beat)) is not None:
                stop[instance_id] = held[instance_id] = late
        elif instance.state in ("stopped", "stopping") and refusal is not None:
            changed = bool(snapshot.configuration) and refusal.held_against not in (None, snapshot.configuration)
            if not changed:
                held[instance_id] = refusal
    # Without a configuration to hold them against, refusals are held all the same and marked once it is known.
    newly_held = tuple(replace(r, held_against=snapshot.configuration) for r in held.values()
                       if r.held_against is None and snapshot.configuration)
    return Holds(stop, held, newly_held, tuple(superseded))


def hold_reason(refusal: Refusal) -> str:
    """Why jobs wait on a held instance, as a queued job's waiting_reason says it."""
    return (f"the GPU instance {refusal.instance_id} cannot serve: {refusal}; held until its configuration changes "
            f"or an operator starts it (gpuorch gpu start {refusal.instance_id})")


def _starts(snapshot: Snapshot, policy: Policy, active: list[Instance], wanted: int,
            held: dict[str, Refusal], interrupted: dict[str, datetime]) -> list[Action]:
    missing = wanted - len(active)
    if missing <= 0:
        return []
    why = (f"{snapshot.waiting} job(s) waiting, {len(active)} instance(s) running or pending, "
           f"want {wanted}" if snapshot.waiting else f"min_instances={policy.min_instances}")
    # A held instance cannot serve (assess_holds): it is neither started nor waited for.
    ordered = start_order((i for i in snapshot.instances if i.state == "stopped" and i.instance_id not in held),
                          snapshot, policy)
    stopping = sorted((i for i in snapshot.instances if i.state == "stopping" and i.instance_id not in held),
                      key=lambda i: i.instance_id)
    # A spot instance still stopping that the market prefers is waited for before an on-demand start: its stop takes
    # well under a minute, and on-demand costs several times its price for as long as the work lasts.
    awaited = [i for i in stopping if i.market == SPOT and passed_over(i, snapshot, policy) is None]
    preferred = sum(1 for c in ordered if c.instance.market == SPOT and c.passed_over is None)  # first in order
    waits = min(max(0, missing - preferred), len(awaited))
    chosen, rest = ordered[:missing - waits], ordered[missing - waits:]
    stopping = awaited + [i for i in stopping if i not in awaited]
    # On-demand instances left over stand in for a chosen spot one that EC2 refuses; a spot instance passed over
    # and left stopped says why an on-demand one starts instead.
    spare = [c.instance.instance_id for c in rest if is_on_demand(c)]
    passed = next(((c.instance.instance_id, c.passed_over) for c in rest if c.passed_over is not None), None)
    if passed is None:
        passed = next(((i.instance_id, over) for i in stopping
                       if i.market == SPOT and (over := passed_over(i, snapshot, policy)) is not None), None)
    if passed is None and interrupted:
        # A replacement for an interrupted (spot) instance is a fallback too: spot is going away under the work.
        going, at = min(interrupted.items())
        passed = (going, PassedOver("spot_interrupted", f"spot interrupted, EC2 stops it at {at.isoformat()}"))
    actions: list[Action] = []
    for n, candidate in enumerate(chosen, start=1):
        instance = candidate.instance
        refusal = _budget_refusal(snapshot, policy, n)
        if refusal:
            actions.append(Action("blocked", instance.instance_id, f"{refusal} ({why})"))
        elif instance.market == SPOT:
            note = (candidate.note if candidate.passed_over is None
                    else f"spot though {candidate.passed_over.why}: no on-demand instance left")
            actions.append(Action("start", instance.instance_id, f"{why}; {note}", market=SPOT,
                                  alternative=spare.pop(0) if spare else None))
        elif passed is not None:
            spot_id, over = passed
            actions.append(Action("start", instance.instance_id, f"{why}; {candidate.note} instead of spot {spot_id}: "
                                  f"{over.why}", market=ON_DEMAND, fallback=over.reason, instead_of=spot_id))
        else:
            actions.append(Action("start", instance.instance_id, f"{why}; {candidate.note}", market=ON_DEMAND))
    missing -= len(actions)
    for instance in stopping[:missing]:
        actions.append(Action("none", instance.instance_id, f"{why}: waiting for it to stop, then starting it"))
    missing -= min(missing, len(stopping))
    if missing > 0 and held:
        # No other instance can serve: the jobs wait on the held ones, and say why.
        actions += [Action("blocked", instance_id, hold_reason(refusal)) for instance_id, refusal in sorted(held.items())]
    elif missing > 0:
        actions.append(Action("blocked", None, f"{why}: no stopped instance left to start"))
    return actions


def decide(snapshot: Snapshot, policy: Policy) -> Decision:
    """What to do now. Pure: the same snapshot and policy always give the same decision.

    - Start stopped instances while fewer are running or pending than the work calls for: one when
      jobs that may still run are visible and none runs, another each time that backlog passes
      `backlog_per_instance` per instance, up to `max_instances`, and `min_instances` always. A
      `stopping` instance is waited for and started once `stopped`; a start that would take this
      month's spend plus one hour past `monthly_budget_usd` is `blocked`, with the reason. Spot
      instances go first while lifecycle.market prefers them, then on-demand ones (start_order).
    - An instance whose worker reported a spot interruption notice counts for nothing: its worker takes no
      job, so the work it leaves calls for a replacement now; EC2 stops it at the notice's time, or the
      lifecycle does once that is OVERDUE_INTERRUPTION_S past.
    - Low-priority jobs start nothing: they run on instances that are up anyway (for normal jobs, or idle before a
      stop), which they keep busy (and so running) while they wait.
    - Stop nothing while any job is visible or in flight, nor an instance whose heartbeat lists a
      job (or whose heartbeat is stale while messages are in flight). Otherwise stop each instance
      idle at least `idle_stop_s` since its last activity, the longest idle first, keeping
      `min_instances` running.
    - An instance that cannot serve (`assess_holds`) is stopped whatever waits, counts for no work, and is
      never started while held; jobs that only it could take are `blocked` with its reason.
    """
    now = snapshot.now
    beats = latest_heartbeats(snapshot.heartbeats)
    holds = assess_holds(snapshot, policy, beats)
    by_state = {s: [i for i in snapshot.instances if i.state == s] for s in ("pending", "running", "stopping")}
    interrupted = {i.instance_id: at for i in by_state["running"]
                   if (at := interruption_at(i, beats.get(i.instance_id))) is not None}
    # Neither an instance that cannot serve nor one being interrupted counts for the work.
    serving = [i for i in snapshot.instances if i.instance_id not in holds.stop and i.instance_id not in interrupted]
    running = sorted((i for i in serving if i.state == "running"), key=lambda i: i.instance_id)
    active = [i for i in serving if i.state in ACTIVE_STATES]
    wanted = wanted_instances(snapshot, policy)

    actions = _starts(snapshot, policy, active, wanted, holds.held, interrupted)
    actions += [Action("stop", instance_id, f"cannot serve: {refusal}") for instance_id, refusal in holds.stop.items()]
    busy: dict[str, tuple[str, ...]] = {}
    idle: list[tuple[str, float]] = []
    quiet = snapshot.quiet
    for instance in running:
        beat = beats.get(instance.instance_id)
        jobs = busy_jobs(snapshot, policy, beat)
        if jobs:
            busy[instance.instance_id] = jobs
            continue
        since = last_activity(instance, snapshot)
        idle.append((instance.instance_id, math.inf if since is None else max(0.0, (now - since).total_seconds())))

    stoppable = len(active) - policy.min_instances
    for instance_id, seconds in sorted(idle, key=lambda p: (-p[1], p[0])):
        if not quiet:
            reason = (f"not stopping: {snapshot.queue_visible} visible, {snapshot.queue_in_flight} in flight"
                      + (f", {snapshot.low_visible} low-priority visible, {snapshot.low_in_flight} in flight"
                         if snapshot.low_visible or snapshot.low_in_flight else ""))
        elif seconds < policy.idle_stop_s:
            reason = f"idle {seconds:.0f} s of {policy.idle_stop_s:.0f} s"
        elif stoppable <= 0:
            reason = f"idle {seconds:.0f} s, kept: min_instances={policy.min_instances}"
        else:
            stoppable -= 1
            actions.append(Action("stop", instance_id, f"idle {seconds:.0f} s >= {policy.idle_stop_s:.0f} s"))
            continue
        actions.append(Action("none", instance_id, reason))
    for instance_id, jobs in busy.items():
        actions.append(Action("none", instance_id, f"busy: {', '.join(jobs)}"))
    for instance_id, at in sorted(interrupted.items()):
        overdue = (now - at).total_seconds()
        if overdue >= OVERDUE_INTERRUPTION_S:
            actions.append(Action("stop", instance_id, f"interrupted at {at.isoformat()} but running {overdue:.0f} s "
                                                       "later: its worker takes no job"))
        else:
            actions.append(Action("none", instance_id,
                                  f"interrupted: its spot notice says EC2 stops it at {at.isoformat()}"))
    for instance in sorted(by_state["pending"], key=lambda i: i.instance_id):
        actions.append(Action("none", instance.instance_id, "pending: booting"))
    mentioned = {a.instance_id for a in actions}
    for instance in sorted(by_state["stopping"], key=lambda i: i.instance_id):
        if instance.instance_id not in mentioned:
            actions.append(Action("none", instance.instance_id, "stopping"))
    mentioned = {a.instance_id for a in actions}
    for instance_id, refusal in sorted(holds.held.items()):
        if instance_id not in mentioned:
            actions.append(Action("none", instance_id, f"held: {refusal}"))
    if not actions:
        notes = []
        if snapshot.in_flight and not active:
            notes.append(f"{snapshot.in_flight} in flight with no instance running: "
                         "they return to the queue at their visibility timeout")
        if snapshot.low_visible and not active:
            notes.append(f"{snapshot.low_visible} low-priority job(s) waiting: they start no instance, and run once "
                         "one is up for other work")
        if snapshot.queue_visible > snapshot.waiting:
            notes.append(f"{snapshot.queue_visible - snapshot.waiting} visible message(s) of jobs that expired or "
                         "were cancelled: they start no instance, and the next worker drops them")
        actions.append(Action("none", None, "; ".join(notes) or "nothing to do"))

    idle_s = tuple(sorted(idle))
    return Decision(
        actions=tuple(actions),
        queue_visible=snapshot.queue_visible,
        queue_in_flight=snapshot.queue_in_flight,
        running=len(running) + len(interrupted),
        pending=len(by_state["pending"]),
        stopping=len(by_state["stopping"]),
        wanted=wanted,
        busy=tuple(busy),
        idle_s=idle_s,
        month_spend_usd=snapshot.month_spend_usd,
        cannot_serve=tuple(holds.stop.values()),
        held=tuple(sorted(holds.held)),
        newly_held=holds.newly_held,
        superseded=holds.superseded,
        interrupted=tuple(sorted(interrupted)),
        low_visible=snapshot.low_visible,
        low_in_flight=snapshot.low_in_flight,
        waiting=snapshot.waiting,
    )
