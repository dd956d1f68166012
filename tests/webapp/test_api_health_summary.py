"""The health decision: no component failed is 200 (a blocked GPU start included), a failure 503 naming it."""

from datetime import datetime, timedelta

import pytest

from lifecycle.live.check import LifecycleStatus
from webapp.health import ComponentState, Finding, gpu_finding, run_probe, summarize


def test_all_ok_is_200():
    body, status = summarize({"sqs": ComponentState("ok", 1.0, detail={"queue": "q"}), "s3": ComponentState("ok", 2.0)})
    assert status == 200
    assert body == {
        "status": "ok",
        "components": {
            "s3": {"status": "ok", "latency_ms": 2.0},
            "sqs": {"status": "ok", "latency_ms": 1.0, "detail": {"queue": "q"}},
        },
    }


def test_one_failure_is_503_and_names_it():
    body, status = summarize({"sqs": ComponentState("ok", 1.0), "dynamodb": ComponentState("error", 3.0, error="gone")})
    assert status == 503
    assert body["status"] == "degraded"
    assert body["components"]["dynamodb"] == {"status": "error", "latency_ms": 3.0, "error": "gone"}


def test_run_probe_turns_an_exception_into_an_error_state():
    def broken():
        raise ConnectionError("refused")

    state = run_probe(broken)
    assert (state.status, state.error) == ("error", "ConnectionError: refused")
    assert run_probe(lambda: {"bucket": "b"}).detail == {"bucket": "b"}


def test_a_blocked_component_is_not_a_failure():
    body, status = summarize({"sqs": ComponentState("ok", 1.0), "gpu": ComponentState("blocked", 2.0, detail={"b": 1})})
    assert (status, body["status"]) == (200, "ok")
    assert body["components"]["gpu"] == {"status": "blocked", "latency_ms": 2.0, "detail": {"b": 1}}


def test_run_probe_passes_a_finding_on():
    state = run_probe(lambda: Finding("blocked", {"blocked": "why"}))
    assert (state.status, state.detail, state.error) == ("blocked", {"blocked": "why"}, None)


AT = "2026-06-15T12:00:00+00:00"
MARKET = {"last_start": {"instance_id": "i-1", "market": "on-demand", "at": AT},
          "last_fallback": {"instance_id": "i-1", "instead_of": "i-2", "reason": "spot_price", "detail": "...", "at": AT}}


@pytest.mark.parametrize("status,spend,budget,expected", [
    (None, 0.0, 0.0, Finding("ok", {"checked_at": None, "blocked": None, "month_spend_usd": 0.0,
                                    "monthly_budget_usd": None, "market": None})),
    (LifecycleStatus(AT, (), ("start i-1: 2 job(s) waiting",), market=MARKET), 12.345, 100.0,
     Finding("ok", {"checked_at": AT, "blocked": None, "month_spend_usd": 12.35, "monthly_budget_usd": 100.0,
                    "market": MARKET})),
    (LifecycleStatus(AT, ("monthly budget: $99.00 spent of $100.00", "no stopped instance left"), ()), 99.0, 100.0,
     Finding("blocked", {"checked_at": AT, "blocked": "monthly budget: $99.00 spent of $100.00; no stopped instance left",
                         "month_spend_usd": 99.0, "monthly_budget_usd": 100.0, "market": None})),
])
def test_gpu_finding(status, spend, budget, expected):
    assert gpu_finding(status, spend, budget) == expected


def test_an_old_lifecycle_check_makes_the_gpu_component_stale():
    checked = LifecycleStatus(AT, (), ())
    now = datetime.fromisoformat(AT) + timedelta(seconds=200)

    finding = gpu_finding(checked, 1.0, 0.0, now=now, stale_after_s=90)

    assert finding.status == "stale"
    assert finding.detail["stale"] == ("the last lifecycle check ran 200 s ago (limit 90 s): "
                                       "are the control worker and beat running?")
    assert gpu_finding(checked, 1.0, 0.0, now=now, stale_after_s=300).status == "ok"
    assert gpu_finding(None, 1.0, 0.0, now=now, stale_after_s=90).status == "ok"  # no check yet: nothing to judge
