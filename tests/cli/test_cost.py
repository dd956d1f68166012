"""`gpuorch cost`: the GPU's cost as a table or JSON from the tables on the moto server; bad dates, no AWS."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.jobs import states
from gpuorch.clock import timestamp
from gpuorch.jobs.store import JobStore
from lifecycle.live.pool import PoolInstance
from lifecycle.live.runs import RunLog, month_start

from tests.webapp.test_api_health import closed_port

# The test's own on-demand prices (lifecycle/prices.py has AWS's, which change): runs keep the price they opened with.
PRICES = {"g6e.2xlarge": 2.24, "g6.2xlarge": 0.978}

MAY = datetime(2026, 5, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.now = MAY

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def write(provisioned, settings):
    """Writes runs and finished jobs into the test's tables at chosen moments."""
    clock = Clock()
    run_log = RunLog(provisioned.aws.dynamodb, settings.control_table, prices=PRICES, clock=clock)
    jobs = JobStore(provisioned.aws.dynamodb, settings.job_table, ttl_seconds=86400, clock=clock)

    class Writer:
        @staticmethod
        def run(start: datetime, stop: datetime, kind: str = "g6e.2xlarge") -> None:
            clock.now = start
            run_log.reconcile([PoolInstance("i-1", "running", kind, start)])
            clock.now = stop
            run_log.reconcile([PoolInstance("i-1", "stopped", kind, start)])

        @staticmethod
        def job(job_id: str, created: datetime, started: datetime, gpu_seconds: float, owner: str | None = None) -> None:
            clock.now = created
            jobs.create(job_id, "camera-angle", {}, source="api", owner=owner)
            clock.now = started
            jobs.transition(job_id, states.RUNNING)
            clock.now = started + timedelta(seconds=gpu_seconds + 5)
            jobs.transition(job_id, states.SUCCEEDED, gpu_seconds=gpu_seconds)

    return Writer()


def may(day: int, hour: float = 0) -> datetime:
    return MAY + timedelta(days=day - 1, hours=hour)


@pytest.fixture
def may_runs(write):
    """Two hours of a g6e.2xlarge on May 3 from 10:00; four jobs of 15 minutes, the first waiting for the start."""
    write.run(may(3, 10), may(3, 12))
    write.job("j0", may(3, 10) - timedelta(seconds=3), may(3, 10) + timedelta(seconds=180), 900.0)
    for n in range(1, 4):
        write.job(f"j{n}", may(3, 10 + n * 0.25), may(3, 10 + n * 0.25) + timedelta(seconds=180), 900.0)


def test_a_period_as_a_table(gpuorch, may_runs):
    result = gpuorch("cost", "--from", "2026-05-01", "--to", "2026-05-31")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "period     2026-05-01T00:00:00.000000Z to 2026-06-01T00:00:00.000000Z",
        "starts     1",
        "GPU hours  2.00 billed",
        "cost       $4.48",
        "busy       50%",
        "idle       48%",
        "boot       2%",
        "jobs       4",
        "per job    $1.1200",
    ]


def test_by_owner_adds_a_line_per_owner(gpuorch, write):
    write.run(may(3, 10), may(3, 11))  # $2.24
    write.job("a", may(3, 10) - timedelta(seconds=3), may(3, 10) + timedelta(seconds=180), 900.0, owner="alice")
    write.job("b", may(3, 10.5), may(3, 10.5) + timedelta(seconds=10), 300.0, owner="bob")

    result = gpuorch("cost", "--from", "2026-05-01", "--to", "2026-05-31", "--by", "owner")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-2:] == [
        "owner alice  $1.68 for 1 job(s), 900 GPU s",
        "owner bob    $0.56 for 1 job(s), 300 GPU s",
    ]


def test_a_period_as_json(gpuorch, may_runs, settings):
    result = gpuorch("cost", "--from", "2026-05-03T10:30:00Z", "--to", "2026-05-04", "--json",
                     settings=dataclasses.replace(settings, monthly_budget_usd=250.0))

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # A date as --to includes that day; the run started before the period: no start, its last 90 minutes.
    assert document["period"] == {"from": "2026-05-03T10:30:00.000000Z", "to": "2026-05-05T00:00:00.000000Z"}
    assert (document["starts"], document["gpu_hours"], document["dollars"]) == (0, 1.5, 3.36)
    assert (document["jobs"], document["cost_per_job"]) == (3, 1.12)  # the three that finished after 10:30
    assert document["budget"]["budget_usd"] == 250.0
    assert document["budget"]["month"] == datetime.now(timezone.utc).strftime("%Y-%m")


def test_this_month_so_far_by_default_with_the_budget(gpuorch, write, settings):
    now = datetime.now(timezone.utc)
    start = month_start(now)
    stop = start + min(now - start, timedelta(hours=1))  # closed before the command reads the clock
    write.run(start, stop)
    billed_s = max(60.0, (stop - start).total_seconds())

    result = gpuorch("cost", "--json", settings=dataclasses.replace(settings, monthly_budget_usd=100.0))

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["period"]["from"] == timestamp(start)
    assert document["period"]["to"] >= timestamp(now)
    assert document["dollars"] == pytest.approx(billed_s * 2.24 / 3600, abs=1e-4)
    assert document["budget"] == {"month": now.strftime("%Y-%m"), "spend_usd": document["dollars"], "budget_usd": 100.0}
    table = gpuorch("cost", settings=dataclasses.replace(settings, monthly_budget_usd=100.0)).stdout
    assert table.splitlines()[-1] == f"budget {now:%Y-%m}  ${document['dollars']:.2f} spent of $100.00"


@pytest.mark.parametrize("args,message", [
    (("--from", "last monday"), "error: --from: 'last monday' is not an ISO 8601 date or date-time"),
    (("--to", "2026-02-30"), "error: --to: '2026-02-30' is not an ISO 8601 date or date-time"),
    (("--from", "2026-05-10", "--to", "2026-05-09"), "error: --from: '2026-05-10' is after to ('2026-05-09')"),
    (("--from", "2020-01-01", "--to", "2026-01-01"), "error: --to: the period spans 2193 days; at most 366 are reported"),
])
def test_a_bad_date_is_exit_1_naming_the_option(gpuorch, args, message):
    result = gpuorch("cost", *args)

    assert result.exit_code == 1
    assert result.stderr.strip() == message
    assert result.stdout == ""


def test_unreachable_aws_is_exit_2(gpuorch, settings):
    endpoint = f"http://127.0.0.1:{closed_port()}"

    result = gpuorch("cost", settings=dataclasses.replace(settings, aws_endpoint_url=endpoint))

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot read the runs and jobs from {endpoint}: ")
    assert "Could not connect" in result.stderr


def test_compare_replays_the_periods_jobs_and_recommends_a_setting(gpuorch, write):
    # A day of sparse jobs: one an hour, each after a start; what ran is beside what the alternatives would cost.
    for hour in range(8):
        start = may(3, 8 + hour)
        write.run(start, start + timedelta(minutes=40))
        write.job(f"j{hour}", start - timedelta(seconds=3), start + timedelta(seconds=150), 30.0)

    result = gpuorch("cost", "--from", "2026-05-03", "--to", "2026-05-03", "--compare", "--json")

    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)["compare"]
    assert comparison["jobs"] == 8 and comparison["priced_as"] == "g6e.2xlarge on-demand"
    policies = [row["policy"] for row in comparison["alternatives"]]
    assert policies[0] == "replaced" and policies[-2:] == ["learned", "serverless"]
    assert "idle 1 min" in policies and "idle 60 min" in policies
    paid = comparison["dollars"]
    cheapest_fixed = min(row["dollars"] for row in comparison["alternatives"] if row["policy"].startswith("idle"))
    # 40 minutes kept for each lone job is dear: the best fixed idle time in hindsight costs less than what was paid.
    assert cheapest_fixed < paid
    assert comparison["best_fixed_idle_s"] in {m * 60 for m in (1, 2, 3, 5, 10, 15, 30, 60)}
    assert "would have cost" in comparison["recommendation"]


def test_compare_says_so_when_no_job_ran(gpuorch, write):
    result = gpuorch("cost", "--from", "2026-05-03", "--to", "2026-05-03", "--compare")
    assert result.exit_code == 0, result.output
    assert "No job ran on the GPU in this period" in result.stdout
