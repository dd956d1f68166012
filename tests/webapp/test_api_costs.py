"""GET /api/v1/costs: the GPU's cost over a period from the runs and jobs in the tables (moto server)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.celery.app import create_celery_app
from gpuorch.jobs import states
from gpuorch.jobs.store import JobStore
from lifecycle.live.pool import PoolInstance
from lifecycle.live.runs import RunLog
from tests.webapp.conftest import keyed
from webapp import create_app

from tests.webapp.test_api_health import closed_port

# The test's own on-demand prices (lifecycle/prices.py has AWS's, which change): runs keep the price they opened with.
PRICES = {"g6e.2xlarge": 2.24, "g6.2xlarge": 0.978}

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
JUNE = datetime(2026, 6, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime = NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def client_for(settings, key: str = "", clock=lambda: NOW):
    """A client of an app over `settings`, sending `key` (the costs are an operator route)."""
    client = create_app(settings, celery_app=create_celery_app(settings), clock=clock).test_client()
    return keyed(client, key) if key else client


@pytest.fixture
def tables(provisioned, settings):
    """Writes runs and finished jobs into the test's tables at chosen moments."""
    clock = Clock()
    run_log = RunLog(provisioned.aws.dynamodb, settings.control_table, prices=PRICES, clock=clock)
    jobs = JobStore(provisioned.aws.dynamodb, settings.job_table, ttl_seconds=86400, clock=clock)

    class Tables:
        @staticmethod
        def run(instance_id: str, start: datetime, stop: datetime, kind: str = "g6e.2xlarge") -> None:
            clock.now = start
            run_log.reconcile([PoolInstance(instance_id, "running", kind, start)])
            clock.now = stop
            run_log.reconcile([PoolInstance(instance_id, "stopped", kind, start)])

        @staticmethod
        def job(job_id: str, created: datetime, started: datetime, finished: datetime, gpu_seconds: float,
                owner: str | None = None) -> None:
            clock.now = created
            jobs.create(job_id, "camera-angle", {}, source="api", owner=owner)
            clock.now = started
            jobs.transition(job_id, states.RUNNING)
            clock.now = finished
            jobs.transition(job_id, states.SUCCEEDED, gpu_seconds=gpu_seconds)

    return Tables()


def test_this_month_so_far_by_default(tables, settings, operator_key):
    start = JUNE + timedelta(days=2)
    tables.run("i-a", start, start + timedelta(hours=2))  # 2 h at $2.24/h
    tables.run("i-b", JUNE - timedelta(hours=1), JUNE - timedelta(minutes=30))  # May: not this month
    tables.job("j1", start - timedelta(seconds=10), start + timedelta(seconds=144), start + timedelta(minutes=5), 600.0)
    tables.job("j2", start + timedelta(minutes=6), start + timedelta(minutes=6), start + timedelta(minutes=20), 840.0)

    answer = client_for(settings, operator_key).get("/api/v1/costs")

    assert answer.status_code == 200, answer.json
    assert answer.json == {
        "period": {"from": "2026-06-01T00:00:00.000000Z", "to": "2026-06-15T12:00:00.000000Z"},
        "starts": 1,
        "gpu_hours": 2.0,
        "dollars": 4.48,
        "busy_share": 0.2,  # 1440 s of 7200
        "boot_share": 0.02,  # 144 s: the first job waited for the start
        "idle_share": 0.78,
        "jobs": 2,
        "cost_per_job": 2.24,
        "interruptions": 0,
        "budget": None,
        # Records made without an estimate (as before estimates existed): nothing to judge.
        "estimates": {"jobs": 0, "gpu_seconds_error_pct": None, "finish_error_s": None, "finished_by_estimate": None},
    }


def test_a_period_of_whole_days_and_the_budget(tables, settings, operator_key):
    tables.run("i-a", datetime(2026, 5, 31, 23, tzinfo=timezone.utc), datetime(2026, 6, 1, 1, tzinfo=timezone.utc))
    tables.run("i-a", datetime(2026, 6, 3, 10, tzinfo=timezone.utc), datetime(2026, 6, 3, 10, 0, 30, tzinfo=timezone.utc))
    budgeted = dataclasses.replace(settings, monthly_budget_usd=100.0)

    answer = client_for(budgeted, operator_key).get("/api/v1/costs?from=2026-05-31&to=2026-05-31")

    assert answer.status_code == 200, answer.json
    assert answer.json["period"] == {"from": "2026-05-31T00:00:00.000000Z", "to": "2026-06-01T00:00:00.000000Z"}
    assert (answer.json["starts"], answer.json["dollars"]) == (1, 2.24)  # its hour in May
    assert (answer.json["jobs"], answer.json["cost_per_job"]) == (0, None)
    # June so far: the hour after midnight and a 30 s start billed as 60 s.
    assert answer.json["budget"] == {"month": "2026-06", "spend_usd": round(3660 * 2.24 / 3600, 4), "budget_usd": 100.0}


@pytest.mark.parametrize("query,field,reason", [
    ("from=last-week", "from", "is not an ISO 8601 date or date-time"),
    ("to=2026-06-31", "to", "is not an ISO 8601 date or date-time"),
    ("from=2026-06-10&to=2026-06-09", "from", "is after to"),
    ("from=2026-07-01", "from", "is after to"),
    ("from=2025-01-01&to=2026-06-01", "to", "at most 366 are reported"),
    ("since=2026-06-01", "since", "Unknown field."),
    # Found by schemathesis-style probing: the day after 9999-12-31 overflowed (a 500), and a period in year 1
    # read every month since then, one DynamoDB query each.
    ("to=9999-12-31", "to", "is out of range"),
    ("from=0001-01-01T00:00:00%2B01:00", "from", "is out of range"),
    ("to=0001-01-01", "to", "starts before 2024-01-01"),
    ("from=0001-01-01&to=0001-01-02", "from", "starts before 2024-01-01"),
])
def test_a_bad_period_is_422_naming_the_field(settings, operator_key, query, field, reason):
    answer = client_for(settings, operator_key).get(f"/api/v1/costs?{query}")

    assert answer.status_code == 422
    error = answer.json["error"]
    assert error["code"] == "invalid_params"
    assert list(error["fields"]) == [field]
    assert reason in error["fields"][field][0]
    assert field in error["message"]


def test_unreachable_aws_is_503(settings):
    # Any well-formed key: the key table is as unreachable as the rest, so the key cannot even be checked.
    answer = client_for(dataclasses.replace(settings, aws_endpoint_url=f"http://127.0.0.1:{closed_port()}"),
                        "gpo_000000000000_unreachable").get(
        "/api/v1/costs"
    )

    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "unavailable"


def test_the_openapi_document_describes_the_report(settings):
    document = client_for(settings).get("/openapi.json").json

    operation = document["paths"]["/api/v1/costs"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"from", "to", "by", "compare"}
    assert {"200", "422", "503"} <= set(operation["responses"])
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CostReport"
    }
    report = document["components"]["schemas"]["CostReport"]
    assert set(report["properties"]) == {
        "period", "starts", "gpu_hours", "dollars", "busy_share", "idle_share", "boot_share", "jobs", "cost_per_job",
        "interruptions", "budget", "owners", "compare", "estimates",
    }
    assert set(document["components"]["schemas"]["CostPeriod"]["properties"]) == {"from", "to"}


def test_by_owner_each_owner_pays_its_share_of_the_gpu_seconds_boot_and_idle_included(tables, settings,
                                                                                       operator_key):
    start = JUNE + timedelta(days=2)
    tables.run("i-a", start, start + timedelta(hours=1))  # $2.24
    tables.job("a1", start, start + timedelta(seconds=150), start + timedelta(minutes=4), 300.0, owner="alice")
    tables.job("a2", start, start + timedelta(minutes=5), start + timedelta(minutes=9), 300.0, owner="alice")
    tables.job("b1", start, start + timedelta(minutes=10), start + timedelta(minutes=14), 600.0, owner="bob")
    tables.job("p1", start, start + timedelta(minutes=15), start + timedelta(minutes=16), 0.0)  # from Python

    answer = client_for(settings, operator_key).get("/api/v1/costs?by=owner")

    assert answer.status_code == 200, answer.json
    owners = answer.json["owners"]
    assert owners == [
        {"owner": "alice", "jobs": 2, "gpu_seconds": 600.0, "dollars": 1.12},
        {"owner": "bob", "jobs": 1, "gpu_seconds": 600.0, "dollars": 1.12},
        {"owner": None, "jobs": 1, "gpu_seconds": 0.0, "dollars": 0.0},
    ]
    assert sum(o["dollars"] for o in owners) == pytest.approx(answer.json["dollars"])


def test_by_anything_else_is_a_422_naming_it(settings, operator_key, provisioned):
    answer = client_for(settings, operator_key).get("/api/v1/costs?by=team")
    assert answer.status_code == 422 and "by" in answer.json["error"]["fields"]


def test_compare_adds_what_the_periods_jobs_would_have_cost_otherwise(tables, settings, operator_key):
    start = JUNE + timedelta(days=2)
    tables.run("i-a", start, start + timedelta(hours=1))
    tables.job("a1", start, start + timedelta(seconds=150), start + timedelta(minutes=4), 30.0, owner="alice")

    answer = client_for(settings, operator_key).get("/api/v1/costs?compare=true")

    assert answer.status_code == 200, answer.json
    comparison = answer.json["compare"]
    assert comparison["jobs"] == 1 and comparison["dollars"] == answer.json["dollars"]
    serverless = comparison["alternatives"][-1]
    assert serverless["policy"] == "serverless" and serverless["x_actual"] < 1  # one lone job: serverless wins
    assert "serverless would have been cheaper" in comparison["recommendation"]
