"""What the GPU cost over a period: billed hours, dollars, where the time went, and cost per job."""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Sequence

from gpuorch.provision import FOURTEEN_DAYS
from gpuorch.clock import Clock, timestamp, utc_now
from gpuorch.errors import ParamsInvalid
from gpuorch.jobs.store import Job, JobStore
from lifecycle import billing
from lifecycle.billing import CostReport
from lifecycle.eta import accuracy, actual
from lifecycle.live.chargeback import owner_costs
from lifecycle.live.runs import RunLog, RunRecord, month_start
from lifecycle.prices import region_prices

# The longest span a report covers: a leap year, whole.
MAX_SPAN = timedelta(days=366)
# No report starts earlier: closed runs are kept by the month they stopped in, so a report reads every month
# from its start to now (one query each); nothing ran before gpuorch and the g6e instances it prices existed.
EARLIEST = datetime(2024, 1, 1, tzinfo=timezone.utc)
# A job that finished in a period was created at most this long before it: it waits in the GPU queue at
# most SQS's retention (14 days; then the message is gone) and then runs within its time limit.
LONGEST_JOB_LIFE = timedelta(seconds=FOURTEEN_DAYS, hours=1)


class PeriodError(ParamsInvalid):
    """A period that cannot be reported: `field` ("from" or "to") names the part to blame."""

    def __init__(self, field: str, reason: str):
        super().__init__({field: [reason]}, f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC."""

    start: datetime
    end: datetime


def _as_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def parse_moment(raw: str, *, field: str, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date (its midnight UTC, or with `end_of_day` the next one, so the day is included) or
    date-time (UTC when it names no offset), in UTC."""
    day = _as_date(raw)
    try:
        if day is not None:
            midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            return midnight + timedelta(days=1) if end_of_day else midnight
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise PeriodError(field, f"{raw!r} is not an ISO 8601 date or date-time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    except OverflowError:  # the day after 9999-12-31, or an offset that moves year 1 or 9999 out of range
        raise PeriodError(field, f"{raw!r} is out of range") from None


def parse_period(raw_from: str | None, raw_to: str | None, now: datetime) -> Period:
    """The period `from`/`to` name; an empty or missing `to` is now, an empty or missing `from` the start of
    the month the period ends in (so neither: this month so far). A date alone is that whole day.
    Raises PeriodError naming the field for a bad date, `from` after `to`, or a span over MAX_SPAN."""
    given_from = raw_from if raw_from and raw_from.strip() else None
    given_to = raw_to if raw_to and raw_to.strip() else None
    end = parse_moment(given_to, field="to", end_of_day=True) if given_to else now.astimezone(timezone.utc)
    # The month of the period's last instant: `to=2026-06-30` reports June, not an empty July.
    start = parse_moment(given_from, field="from") if given_from else month_start(end - timedelta(microseconds=1))
    # A date as `to` is a whole day: a `from` that leaves none of it is after it (from=06-10&to=06-09).
    if start > end or (start == end and given_to and _as_date(given_to)):
        until = repr(given_to) if given_to else f"now, {timestamp(end)}"
        raise PeriodError("from", f"{given_from!r} is after to ({until})")
    if end - start > MAX_SPAN:
        raise PeriodError("to" if given_to else "from",
                          f"the period spans {(end - start).days} days; at most {MAX_SPAN.days} are reported")
    if start < EARLIEST:
        raise PeriodError("from" if given_from else "to",
                          f"the period starts before {EARLIEST.date().isoformat()}, when no GPU run was recorded")
    return Period(start, end)


@dataclass(frozen=True)
class JobTimes:
    """A finished job on billing's seconds clock; `gpu_s` is None when it never ran on the GPU."""

    created_s: float
    started_s: float | None
    gpu_s: float | None


def _seconds(stamp: str | None) -> float | None:
    return None if stamp is None else datetime.fromisoformat(stamp).timestamp()


def job_times(job: Job) -> JobTimes:
    """ComfyUI's execution time when the record has it, else the wall time from its (last) start to its end."""
    started, finished = _seconds(job.started_at), _seconds(job.finished_at)
    if job.gpu_seconds is not None:
        gpu = float(job.gpu_seconds)
    elif started is not None and finished is not None:
        gpu = max(0.0, finished - started)
    else:
        gpu = None  # failed before a GPU worker took it (e.g. dead-lettered): no GPU time, not a GPU job
    return JobTimes(_seconds(job.created_at), started, gpu)


def boot_estimate(run: billing.Run, others: Sequence[billing.Run], jobs_by_start: Sequence[JobTimes]) -> float:
    """Seconds `run` spent before its worker took work: from its start to the start of the first job that was
    already waiting when it started and that started while no other run was open (so on this instance).

    The run log does not record when a worker became ready; a job waiting for the start begins the moment it
    is. 0 when no such job is known (that boot then counts as idle). `jobs_by_start` is sorted by start.
    """
    first = bisect.bisect_right(jobs_by_start, run.started_s, key=lambda j: j.started_s)
    for index in range(first, len(jobs_by_start)):
        job = jobs_by_start[index]
        if job.started_s >= run.stopped_s:
            break
        if job.created_s > run.started_s:
            continue
        if any(o.started_s <= job.started_s < o.stopped_s for o in others):
            continue
        return job.started_s - run.started_s
    return 0.0


def period_report(records: Sequence[RunRecord], jobs: Sequence[Job], period: Period, now: datetime) -> CostReport:
    """The cost report of [start, end) from its instance runs (each at the hourly price it opened with) and the
    jobs that finished in it.

    Billed time follows billing.report: per second inside the period, at least 60 s per start inside it. Busy
    is the jobs' GPU seconds, at most what was billed besides boot (a failed job's wall time, counted when
    ComfyUI's is unknown, can overlap the next job's); idle is the rest. Jobs that never ran on the GPU are
    not counted. A spot run EC2 interrupted is billed as any other, and counted among the interruptions when its
    interruption falls in the period.
    """
    times = [job_times(job) for job in jobs]
    ran = sorted((t for t in times if t.started_s is not None), key=lambda t: t.started_s)
    runs = [record.billing_run(now) for record in records]
    booted = [
        dataclasses.replace(run, boot_s=boot_estimate(run, runs[:n] + runs[n + 1:], ran))
        for n, run in enumerate(runs)
    ]
    by_price: dict[float, list[billing.Run]] = {}
    for record, run in zip(records, booted):
        by_price.setdefault(record.hourly_usd, []).append(run)
    window = (period.start.timestamp(), period.end.timestamp())
    parts = [billing.report(group, (), price, period=window) for price, group in by_price.items()]
    billed = sum(p.billed_s for p in parts)
    boot = sum(p.boot_s for p in parts)
    job_gpu_s = [t.gpu_s for t in times if t.gpu_s is not None]
    busy = min(float(sum(job_gpu_s)), max(0.0, billed - boot))
    return CostReport(
        period_s=window[1] - window[0],
        starts=sum(p.starts for p in parts),
        billed_s=billed,
        busy_s=busy,
        boot_s=boot,
        idle_s=max(0.0, billed - busy - boot),
        dollars=sum(p.dollars for p in parts),
        jobs=len(job_gpu_s),
        interruptions=sum(1 for r in records if r.interrupted_at is not None
                          and period.start <= r.interrupted_at < period.end),
    )


def measured_cold_starts(records: Sequence[RunRecord], jobs: Sequence[Job], now: datetime) -> list[float]:
    """The cold starts the runs show: each run's seconds from its start to the first job that waited for it (runs no
    finished job waited for show none)."""
    times = [job_times(job) for job in jobs]
    ran = sorted((t for t in times if t.started_s is not None), key=lambda t: t.started_s)
    runs = [record.billing_run(now) for record in records]
    boots = (boot_estimate(run, runs[:n] + runs[n + 1:], ran) for n, run in enumerate(runs))
    return [boot for boot in boots if boot > 0]


def period_inputs(run_log: RunLog, jobs_store: JobStore, period: Period, *,
                  now: datetime) -> tuple[list[RunRecord], list[Job]]:
    """The runs the log holds over the period (open ones count up to `now`) and the succeeded and failed jobs
    that finished in it."""
    records = run_log.records(period.start, period.end, now=now)
    jobs = jobs_store.finished_between(period.start, period.end, created_since=period.start - LONGEST_JOB_LIFE)
    return records, jobs


def cost_report(run_log: RunLog, jobs_store: JobStore, start: datetime, end: datetime, *, now: datetime) -> CostReport:
    """The cost report of [start, end) (period_inputs, then period_report)."""
    period = Period(start, end)
    records, jobs = period_inputs(run_log, jobs_store, period, now=now)
    return period_report(records, jobs, period, now)


@dataclass(frozen=True)
class MonthBudget:
    """This UTC month's GPU spend so far beside the monthly budget."""

    month: str
    spend_usd: float
    budget_usd: float


def month_budget(run_log: RunLog, monthly_budget_usd: float, now: datetime) -> MonthBudget | None:
    """The month's spend and budget; None when no budget is set (0)."""
    if not monthly_budget_usd:
        return None
    return MonthBudget(now.astimezone(timezone.utc).strftime("%Y-%m"), run_log.month_spend(now), monthly_budget_usd)


def run_log_for(dynamodb, control_table: str, region: str, clock: Clock = utc_now) -> RunLog:
    """A RunLog to read runs with, priced in `region` (each closed run carries the price it opened with)."""
    return RunLog(dynamodb, control_table, prices=region_prices(region).usd_per_hour, clock=clock)


def period_costs(run_log: RunLog, jobs_store: JobStore, period: Period, *, now: datetime,
                 monthly_budget_usd: float, by_owner: bool = False) -> dict[str, Any]:
    """The cost document of a period, with this month's spend beside the budget when one is set, and with
    `by_owner` each owner's part of it (lifecycle.live.chargeback)."""
    records, jobs = period_inputs(run_log, jobs_store, period, now=now)
    report = period_report(records, jobs, period, now)
    document = cost_document(report, period, month_budget(run_log, monthly_budget_usd, now))
    document["estimates"] = estimates_of(jobs)
    if by_owner:
        document["owners"] = [cost.as_dict() for cost in owner_costs(report.dollars, owner_work(jobs))]
    return document


def estimates_of(jobs: Sequence[Job]) -> dict[str, Any]:
    """How good the period's estimates were: each ended job that ran on the GPU, its estimate beside its actual."""
    return accuracy((job.estimate, actual(job.estimate, gpu_seconds=job.gpu_seconds, started_at=job.started_at,
                                          finished_at=job.finished_at))
                    for job in jobs if job.estimate and job.gpu_seconds)


def owner_work(jobs: Sequence[Job]) -> list[tuple[str | None, float | None]]:
    """Each job's owner and GPU seconds, as chargeback splits a cost by."""
    return [(job.owner, job_times(job).gpu_s) for job in jobs]


def owner_month_spend(run_log: RunLog, jobs_store: JobStore, owner: str, now: datetime) -> float:
    """What `owner`'s jobs cost this UTC month so far: its part of the month's cost (0 when it ran nothing)."""
    period = Period(month_start(now), now)
    records, jobs = period_inputs(run_log, jobs_store, period, now=now)
    report = period_report(records, jobs, period, now)
    costs = owner_costs(report.dollars, owner_work(jobs))
    return next((cost.dollars for cost in costs if cost.owner == owner), 0.0)


def cost_document(report: CostReport, period: Period, budget: MonthBudget | None) -> dict[str, Any]:
    """The report as the API answers it and `gpuorch cost --json` prints it."""
    return {
        "period": {"from": timestamp(period.start), "to": timestamp(period.end)},
        "starts": report.starts,
        "gpu_hours": round(report.gpu_hours, 4),
        "dollars": round(report.dollars, 4),
        "busy_share": round(report.busy_share, 4),
        "idle_share": round(report.idle_share, 4),
        "boot_share": round(report.boot_share, 4),
        "jobs": report.jobs,
        "cost_per_job": None if report.cost_per_job is None else round(report.cost_per_job, 6),
        "interruptions": report.interruptions,
        "budget": None if budget is None else {
            "month": budget.month,
            "spend_usd": round(budget.spend_usd, 4),
            "budget_usd": budget.budget_usd,
        },
    }


def format_document(document: dict[str, Any]) -> str:
    """The report for a person: one aligned line per figure."""
    period = document["period"]
    per_job = "-" if document["cost_per_job"] is None else f"${document['cost_per_job']:.4f}"
    rows = [
        ("period", f"{period['from']} to {period['to']}"),
        ("starts", str(document["starts"])),
        ("GPU hours", f"{document['gpu_hours']:.2f} billed"),
        ("cost", f"${document['dollars']:.2f}"),
        ("busy", f"{document['busy_share']:.0%}"),
        ("idle", f"{document['idle_share']:.0%}"),
        ("boot", f"{document['boot_share']:.0%}"),
        ("jobs", str(document["jobs"])),
        ("per job", per_job),
    ]
    estimates = document.get("estimates") or {}
    if estimates.get("jobs"):
        finish = estimates["finish_error_s"] or {}
        rows.append(("estimates", f"{estimates['jobs']} job(s): GPU seconds off by {estimates['gpu_seconds_error_pct']}%"
                                  f" (median), finish off by {finish.get('median', '-')} s (median), "
                                  f"{finish.get('p90', '-')} s (p90)"))
    if document["interruptions"]:  # spot only; an on-demand deployment has none to show
        rows.append(("interrupted", f"{document['interruptions']} run(s) (spot)"))
    budget = document["budget"]
    if budget is not None:
        rows.append((f"budget {budget['month']}", f"${budget['spend_usd']:.2f} spent of ${budget['budget_usd']:.2f}"))
    for owner in document.get("owners", ()):
        rows.append((f"owner {owner['owner'] or '(none)'}",
                     f"${owner['dollars']:.2f} for {owner['jobs']} job(s), {owner['gpu_seconds']:.0f} GPU s"))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
