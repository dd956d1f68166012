"""Replay a job-arrival trace through a lifecycle policy on a simulated clock, queue and GPU instances."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import random
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping, Sequence

from lifecycle.simulation import replaced
from lifecycle.decision import decide
from lifecycle.billing import Run, billed_seconds, report
from lifecycle.simulation.markets import NOTICE_S, SpotMarket
from lifecycle.learning import HOUR_S, Economics, History, learned_idle_s, plan, start_price
from lifecycle.model import ON_DEMAND, SPOT, Action, Heartbeat, Instance, Policy, Snapshot, SpotSetback
from lifecycle.simulation.optimum import optimum
from lifecycle.simulation.policies import parse_policy
from lifecycle.simulation.replaced import ReplacedRule
from lifecycle.simulation.scenario import SimulationParams, SimulationResult, format_table
from lifecycle.simulation.workload import DAY_S, Job, read_trace

# Trace second 0 on the simulated clock: a Monday, 00:00 UTC.
EPOCH = datetime(2025, 1, 6, tzinfo=timezone.utc)
# Past the end of the trace's last day the simulation goes on while jobs are unfinished (up to a
# day), and while more instances run than the policy keeps (min_instances), up to this long, to
# bill the last idle tail.
OVERTIME_S = 2 * 3600.0


@dataclass(eq=False)
class _Job:
    index: int
    arrival_s: float
    gpu_s: float
    low: bool = False
    ttl_s: float | None = None
    receives: int = 0
    received_s: float = 0.0
    started_s: float | None = None
    failed: bool = False
    expired: bool = False

    @property
    def job_id(self) -> str:
        return f"job-{self.index}"


@dataclass(eq=False)
class _Instance:
    instance_id: str
    state: str = "stopped"
    generation: int = 0
    launched_s: float | None = None
    running_since: float | None = None
    worker_up: bool = False
    ready_s: float | None = None
    job: _Job | None = None
    last_activity_s: float | None = None
    market: str = ON_DEMAND
    # A spot instance's current run: its hourly price (fixed at its start) and when EC2 interrupts it, once the
    # notice came.
    hourly_usd: float = 0.0
    interruption_s: float | None = None

    @property
    def ready(self) -> bool:
        return self.ready_s is not None

    @property
    def serving(self) -> bool:
        """Ready, and taking jobs: a worker with an interruption notice takes none."""
        return self.ready and self.interruption_s is None


# Event priorities at one instant: instance transitions, then job ends, then messages becoming
# visible again, then deadlines passing, then arrivals, then the controller, so a decision sees everything of its
# instant.
_TRANSITION, _JOB_DONE, _VISIBLE, _DEADLINE, _ARRIVAL, _TICK = range(6)


@dataclass
class _Sim:
    jobs: list[_Job]
    params: SimulationParams
    instances: list[_Instance]
    market: SpotMarket | None = None
    events: list = field(default_factory=list)
    visible: deque = field(default_factory=deque)
    hidden: int = 0
    # The low-priority queue: its jobs start nothing, and an instance takes them only when `visible` is empty.
    low: deque = field(default_factory=deque)
    hidden_low: int = 0
    runs: list[Run] = field(default_factory=list)
    billed_closed_usd: float = 0.0
    interrupted: int = 0
    spot_interruptions: int = 0
    setbacks: dict[str, float] = field(default_factory=dict)
    starts: int = 0
    seq: itertools.count = field(default_factory=itertools.count)
    rng: random.Random = field(default_factory=random.Random)

    def at(self, t: float, priority: int, kind: str, *payload) -> None:
        heapq.heappush(self.events, (t, priority, next(self.seq), kind, payload))

    # -- the instances ---------------------------------------------------------------------------
    def start(self, inst: _Instance, now: float) -> None:
        if inst.state != "stopped":
            return  # EC2 refuses to start an instance in any other state; start is idempotent
        p = self.params
        inst.state, inst.launched_s = "pending", now
        inst.generation += 1
        self.starts += 1
        inst.hourly_usd, inst.interruption_s = p.hourly_price, None
        if inst.market == SPOT and self.market is not None:
            offer = self.market.offer(now)
            inst.hourly_usd = offer.hourly_usd
            if offer.interruptions_per_hour > 0:
                # EC2 reclaims spot capacity at random: a constant hazard, so the time to it is exponential.
                lasts_s = self.rng.expovariate(offer.interruptions_per_hour / 3600.0)
                ends = now + p.pending_s + lasts_s
                self.at(max(now + p.pending_s, ends - NOTICE_S), _TRANSITION, "notice", inst, inst.generation, ends)
        self.at(now + p.pending_s, _TRANSITION, "running", inst, inst.generation)
        self.at(now + p.boot_s, _TRANSITION, "worker_up", inst, inst.generation)
        self.at(now + p.cold_start_s, _TRANSITION, "ready", inst, inst.generation)

    def stop(self, inst: _Instance, now: float) -> None:
        if inst.state not in ("running", "pending"):
            return
        self.close_run(inst, now)
        if inst.job is not None:  # killed mid-job: its message comes back at its visibility timeout
            self.interrupted += 1
            self.at(inst.job.received_s + self.params.visibility_timeout_s, _VISIBLE, "visible", inst.job)
            inst.job = None
        inst.state, inst.running_since, inst.worker_up, inst.ready_s = "stopping", None, False, None
        inst.interruption_s = None
        inst.generation += 1
        self.at(now + self.params.stop_s, _TRANSITION, "stopped", inst, inst.generation)

    def close_run(self, inst: _Instance, now: float) -> None:
        if inst.running_since is not None:
            boot = (inst.ready_s if inst.ready_s is not None else now) - inst.running_since
            run = Run(inst.instance_id, inst.running_since, now, max(0.0, boot))
            self.runs.append(run)
            self.billed_closed_usd += billed_seconds(run) * inst.hourly_usd / 3600.0
            inst.running_since = None

    def notice(self, inst: _Instance, ends_s: float, now: float) -> None:
        """EC2's interruption notice: the worker takes no more jobs and gives back one it cannot finish in time
        (its message visible again at once); EC2 stops the instance at `ends_s`."""
        inst.interruption_s = ends_s
        job = inst.job
        if job is not None and job.received_s + job.gpu_s > ends_s:
            inst.job = None
            self.take_hidden(job, -1)
            job.started_s = None
            self.queue_of(job).appendleft(job)
        self.at(ends_s, _TRANSITION, "interrupt", inst, inst.generation)

    def interrupt(self, inst: _Instance, now: float) -> None:
        self.spot_interruptions += 1
        self.setbacks[inst.instance_id] = now
        self.stop(inst, now)

    def transition(self, kind: str, inst: _Instance, generation: int, now: float, *extra: float) -> None:
        if generation != inst.generation:
            return
        if kind == "notice":
            self.notice(inst, extra[0], now)
        elif kind == "interrupt":
            self.interrupt(inst, now)
        elif kind == "running":
            inst.state, inst.running_since = "running", now
        elif kind == "worker_up":
            inst.worker_up = True
        elif kind == "ready":
            inst.ready_s = now
        elif kind == "stopped":
            inst.state = "stopped"

    # -- the queue and the workers ---------------------------------------------------------------
    def queue_of(self, job: _Job) -> deque:
        return self.low if job.low else self.visible

    def take_hidden(self, job: _Job, count: int) -> None:
        if job.low:
            self.hidden_low += count
        else:
            self.hidden += count

    def arrive(self, job: _Job) -> None:
        self.queue_of(job).append(job)
        if job.ttl_s is not None:
            self.at(job.arrival_s + job.ttl_s, _DEADLINE, "deadline", job)

    def deadline(self, job: _Job) -> None:
        """A job not received by its deadline expires (the control worker's sweep): it never runs."""
        if job.receives == 0 and job in self.queue_of(job):
            self.queue_of(job).remove(job)
            job.expired = True

    def dispatch(self, now: float) -> None:
        for inst in self.instances:
            if inst.serving and inst.job is None and (self.visible or self.low):
                # The worker drains the normal queue first (gpuorch.celery.sqs_transport).
                job = (self.visible or self.low).popleft()
                job.receives += 1
                job.received_s = job.started_s = now
                inst.job = job
                inst.last_activity_s = now
                self.take_hidden(job, 1)
                self.at(now + job.gpu_s, _JOB_DONE, "done", inst, inst.generation, job)

    def job_done(self, inst: _Instance, generation: int, job: _Job, now: float) -> None:
        if generation != inst.generation or inst.job is not job:
            return
        inst.job = None
        inst.last_activity_s = now
        self.take_hidden(job, -1)

    def message_visible(self, job: _Job) -> None:
        self.take_hidden(job, -1)
        job.started_s = None
        if job.receives >= self.params.max_receive_count:
            job.failed = True  # SQS moves it to the dead-letter queue
        else:
            self.queue_of(job).append(job)

    # -- what the controller sees ----------------------------------------------------------------
    def month_spend(self, now: float) -> float:
        open_usd = sum(billed_seconds(Run(i.instance_id, i.running_since, now)) * i.hourly_usd / 3600.0
                       for i in self.instances if i.running_since is not None)
        return self.billed_closed_usd + open_usd

    def snapshot(self, now: float) -> Snapshot:
        when = EPOCH + timedelta(seconds=now)
        spot = [i for i in self.instances if i.market == SPOT]
        return Snapshot(
            now=when,
            instances=tuple(
                Instance(i.instance_id, i.state, market=i.market,
                         launched_at=None if i.launched_s is None else EPOCH + timedelta(seconds=i.launched_s))
                for i in self.instances),
            queue_visible=len(self.visible),
            queue_in_flight=self.hidden,
            low_visible=len(self.low),
            low_in_flight=self.hidden_low,
            heartbeats=tuple(
                Heartbeat(i.instance_id, when, (i.job.job_id,) if i.job else (), i.ready,
                          None if i.interruption_s is None else EPOCH + timedelta(seconds=i.interruption_s))
                for i in self.instances if i.worker_up),
            last_activity_at={i.instance_id: EPOCH + timedelta(seconds=i.last_activity_s)
                              for i in self.instances if i.last_activity_s is not None},
            month_spend_usd=self.month_spend(now),
            hourly_price_usd=self.params.hourly_price,
            spot_prices={i.instance_id: self.market.offer(now).hourly_usd for i in spot} if self.market else {},
            spot_setbacks={i: SpotSetback("interrupted", EPOCH + timedelta(seconds=t)) for i, t in self.setbacks.items()},
        )

    def apply(self, actions: Sequence[Action], now: float) -> None:
        by_id = {i.instance_id: i for i in self.instances}
        for action in actions:
            if action.kind == "start":
                self.start(by_id[action.instance_id], now)
            elif action.kind == "stop":
                self.stop(by_id[action.instance_id], now)

    def work_left(self) -> bool:
        return (bool(self.visible or self.low) or self.hidden + self.hidden_low > 0
                or any(j.started_s is None and not j.failed and not j.expired for j in self.jobs))

    def running(self) -> int:
        return sum(i.state != "stopped" for i in self.instances)


class _AlarmReplay:
    """The replaced system's CloudWatch alarm, sampled once a minute, and its start on submission."""

    def __init__(self, rule: ReplacedRule) -> None:
        self.rule = rule
        self.tick_s = rule.sample_s
        self.floor = 0
        self.samples: list[int] = []
        self.maxima: list[int] = []
        self.state: replaced.AlarmState = "INSUFFICIENT_DATA"

    def tick(self, sim: _Sim, now: float) -> list[Action]:
        # The replaced system had one queue: every job counted alike.
        self.samples.append(len(sim.visible) + len(sim.low))
        if len(self.samples) * self.rule.sample_s < self.rule.period_s:
            return []
        self.maxima.append(max(self.samples))
        self.samples = []
        previous, self.state = self.state, replaced.alarm_state(self.maxima, self.rule)
        return replaced.on_alarm(previous, self.state, sim.snapshot(now).instances)

    def submitted(self, sim: _Sim, now: float) -> list[Action]:
        return replaced.on_submit(sim.snapshot(now).instances)


@dataclass(frozen=True)
class Learned:
    """A policy that learns from the trace's jobs before each check (lifecycle.learning.plan), from `base`."""

    economics: Economics
    base: Policy = Policy()
    name: str = "learned"


class _LearningLoop:
    """celery beat running `decide` on the policy `plan` learns from the jobs seen so far, as the live check does
    from the job table; the idle time is learned once per simulated hour and price (it reads weeks of history)."""

    def __init__(self, learned: Learned, params: SimulationParams, jobs: Sequence[_Job]) -> None:
        self.learned = learned
        self.tick_s = params.check_interval_s
        self.floor = learned.base.min_instances
        self.on_submit = params.check_on_submit
        self.arrivals = [job.arrival_s for job in jobs]
        # A job's GPU seconds are known once it has run; until then the plan assumes the mean.
        self.gpu_s = [learned.economics.mean_job_s] * len(jobs)
        self.idle: tuple[tuple[int, float], tuple[float, str]] | None = None

    def finished(self, job: _Job) -> None:
        self.gpu_s[job.index] = job.gpu_s

    def policy(self, snapshot: Snapshot, now: float) -> Policy:
        history = History(self.arrivals, self.gpu_s, end=bisect_left(self.arrivals, now))
        economics = self.learned.economics.at_price(start_price(snapshot, self.learned.base))
        key = (int(now // HOUR_S), economics.hourly_usd)
        if self.idle is None or self.idle[0] != key:
            self.idle = (key, learned_idle_s(history, now, economics))
        return plan(history, now, self.learned.base, economics, idle=self.idle[1])[0]

    def tick(self, sim: _Sim, now: float) -> list[Action]:
        snapshot = sim.snapshot(now)
        return list(decide(snapshot, self.policy(snapshot, now)).actions)

    def submitted(self, sim: _Sim, now: float) -> list[Action]:
        return self.tick(sim, now) if self.on_submit else []


class _DecideLoop:
    """celery beat running `decide` every `check_interval_s`, and (`check_on_submit`) each submission."""

    def __init__(self, policy: Policy, params: SimulationParams) -> None:
        self.policy = policy
        self.tick_s = params.check_interval_s
        self.floor = policy.min_instances  # instances it keeps running: no tail to wait for
        self.on_submit = params.check_on_submit

    def tick(self, sim: _Sim, now: float) -> list[Action]:
        return list(decide(sim.snapshot(now), self.policy).actions)

    def submitted(self, sim: _Sim, now: float) -> list[Action]:
        return list(decide(sim.snapshot(now), self.policy).actions) if self.on_submit else []


def simulate(trace: Sequence[Job], policy: Policy | ReplacedRule | Learned, *, name: str | None = None,
             instances: int | None = None, params: SimulationParams | None = None, market: SpotMarket | None = None,
             **param_overrides: float) -> SimulationResult:
    """Replay `trace` under `policy`; keyword arguments override `SimulationParams` fields
    (boot_s, warmup_s, pending_s, stop_s, check_interval_s, hourly_price, ...).

    Each instance goes stopped -> pending (`pending_s`, not billed) -> running: its OS and GPU worker are
    up `boot_s` after the start request and its models loaded `warmup_s` later; from then on it runs one
    job at a time, taking the oldest visible message. A stop makes it `stopping` for `stop_s` (not
    billed), then `stopped`. A job interrupted by a stop keeps its message in flight until its visibility
    timeout, is received again, and goes to the dead-letter queue after `max_receive_count` receives.

    A `Policy` is run through `lifecycle.decision.decide` every `check_interval_s` (celery beat) and,
    with `check_on_submit`, on each submission, on a snapshot built from the simulated state, as the
    control worker runs it; a `ReplacedRule`
    replays the CloudWatch alarm and the start-on-submission of the system gpuorch replaces.

    The pool has `instances` instances (default: the policy's max_instances; one for the replaced
    rule), all stopped at second 0, each billed at `hourly_price`. In a spot `market` each of a policy's on-demand
    instances has a spot one beside it, priced at its start by the day's spot price: the policy's market choice
    picks between them, and EC2 interrupts a running spot instance at the day's rate (a notice two minutes ahead,
    its worker giving back a job it cannot finish; see `_Sim.notice`). The replaced rule knew no spot market. A
    low-priority job (`Job.priority`) waits in a queue of its own, which starts no instance and which a ready
    instance takes from only when no normal job is visible; a job not received within its `ttl_s` of its arrival
    expires, never run (`expired`, not among the waits). The simulation covers whole days, to the end of the
    trace's last
    day, and goes on past it only until every job is done and every instance the policy does not
    keep (min_instances) is stopped (see OVERTIME_S). A job still unserved at the end counts as
    `unserved`, its wait so far in `waits_s`.
    """
    params = params or SimulationParams()
    if param_overrides:
        params = dataclasses.replace(params, **param_overrides)
    jobs = [_Job(n, j.arrival_s, j.gpu_s, j.priority == "low", j.ttl_s) for n, j in enumerate(sorted(trace))]
    if isinstance(policy, ReplacedRule):
        controller: _AlarmReplay | _DecideLoop | _LearningLoop = _AlarmReplay(policy)
        pool = instances or 1
    elif isinstance(policy, Learned):
        controller = _LearningLoop(policy, params, jobs)
        pool = instances or policy.base.max_instances
    else:
        controller = _DecideLoop(policy, params)
        pool = instances or policy.max_instances
    pooled = [_Instance(f"i-gpu{n}") for n in range(pool)]
    if market is not None and not isinstance(policy, ReplacedRule):
        pooled = [spot for n in range(pool) for spot in (_Instance(f"i-gpu{n}-spot", market=SPOT), pooled[n])]
    else:
        market = None
    sim = _Sim(jobs, params, pooled, market, rng=random.Random(market.seed if market else 0))
    for job in jobs:
        sim.at(job.arrival_s, _ARRIVAL, "arrival", job)
    last_arrival = jobs[-1].arrival_s if jobs else 0.0
    end_s = math.ceil((last_arrival + 1.0) / DAY_S) * DAY_S
    sim.at(0.0, _TICK, "tick")

    now = 0.0
    while sim.events:
        now, _, _, kind, payload = heapq.heappop(sim.events)
        if kind == "tick":
            sim.dispatch(now)
            sim.apply(controller.tick(sim, now), now)
            sim.dispatch(now)
            following = now + controller.tick_s
            if (following < end_s or sim.work_left() and following < end_s + DAY_S
                    or sim.running() > controller.floor and following < end_s + OVERTIME_S):
                sim.at(following, _TICK, "tick")
            continue
        if kind == "arrival":
            sim.arrive(payload[0])
            sim.apply(controller.submitted(sim, now), now)
        elif kind == "deadline":
            sim.deadline(payload[0])
        elif kind == "done":
            sim.job_done(*payload, now)
            if isinstance(controller, _LearningLoop):
                controller.finished(payload[2])
        elif kind == "visible":
            sim.message_visible(payload[0])
        else:
            sim.transition(kind, payload[0], payload[1], now, *payload[2:])
        sim.dispatch(now)

    now = max(now, end_s)
    for inst in sim.instances:  # bill what still runs up to the end of the simulated time
        sim.close_run(inst, now)
    done = [j for j in jobs if j.started_s is not None]
    unserved = [j for j in jobs if j.started_s is None and not j.failed and not j.expired]
    return SimulationResult(
        policy=name or getattr(policy, "name", "policy"),
        jobs=len(jobs),
        completed=len(done),
        failed=sum(j.failed for j in jobs),
        unserved=len(unserved),
        interrupted=sim.interrupted,
        starts=sim.starts,
        cost=dataclasses.replace(report(sim.runs, [j.gpu_s for j in done], params.hourly_price),
                                 dollars=sim.billed_closed_usd, interruptions=sim.spot_interruptions),
        waits_s=tuple([j.started_s - j.arrival_s for j in done] + [now - j.arrival_s for j in unserved]),
        runs=tuple(sim.runs),
        expired=sum(j.expired for j in jobs),
    )


def simulate_command(trace_path: str | Path, policy: str | Mapping[str, object] | None = None,
                     **param_overrides: float) -> str:
    """The text `gpuorch simulate --trace FILE [--policy SPEC]` prints: the policy beside the replaced
    rule and the hindsight optimum on that trace. `policy` is a name (`default`, `replaced`,
    `fixed-<minutes>`), `name,key=value,...` overrides, or a mapping of overrides; keyword arguments
    override the simulated hardware (`SimulationParams`). Raises `TraceError` for an unreadable trace
    and `PolicyError` for an unknown policy."""
    trace = read_trace(trace_path)
    name, chosen = parse_policy(policy)
    params = SimulationParams(**param_overrides)
    results = [simulate(trace, chosen, name=name, params=params)]
    if not isinstance(chosen, ReplacedRule):
        results.append(simulate(trace, ReplacedRule(), params=params))
    best = optimum(trace, params=params)
    span_days = (max((j.arrival_s for j in trace), default=0.0) + 1.0) / DAY_S
    lines = [
        f"trace {trace_path}: {len(trace)} jobs, {sum(j.gpu_s for j in trace) / 3600:.2f} GPU h of work "
        f"over {math.ceil(span_days)} day(s)",
        f"instance: ${params.hourly_price:.2f}/h, cold start {params.cold_start_s:.0f} s "
        f"(boot {params.boot_s:.0f} s + model load {params.warmup_s:.0f} s); a policy decides every "
        f"{params.check_interval_s:.0f} s" + (" and on each submission" if params.check_on_submit else "")
        + f", the replaced rule samples the queue every {ReplacedRule().sample_s:.0f} s",
        format_table([*results, best], best),
    ]
    if not isinstance(chosen, ReplacedRule):
        ours, old = results
        change = ours.dollars / old.dollars - 1 if old.dollars else 0.0
        lines.append(f"{name}: ${ours.dollars:.2f} ({change:+.0%} vs replaced ${old.dollars:.2f}), "
                     f"{ours.dollars / best.dollars:.2f}x optimum, p95 wait {ours.wait_p95_s:.0f} s "
                     f"(replaced {old.wait_p95_s:.0f} s)" if best.dollars else f"{name}: no jobs")
    return "\n".join(lines)
