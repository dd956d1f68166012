"""POST /api/v1/gpu/{id}/start under a monthly budget: an operator's start obeys the lifecycle's rule unless told."""

from __future__ import annotations

import pytest

from gpuorch_dev.local.instances import create_local_instance
from lifecycle.live.pool import InstancePool
from tests.conftest import unique_settings


@pytest.fixture
def settings(moto_endpoint, resources):
    """A budget under one hour of a g6e.2xlarge: any start would pass it."""
    return unique_settings(moto_endpoint, resources.names, allow_insecure_inputs=True, monthly_budget_usd=1.0)


def test_a_start_past_the_budget_is_refused_unless_the_operator_says_so(operator, provisioned, settings):
    pool = InstancePool(provisioned.aws.ec2, settings.gpu_pool)
    instance_id = create_local_instance(provisioned.aws.ec2, settings.gpu_pool)

    refused = operator.post(f"/api/v1/gpu/{instance_id}/start")
    assert refused.status_code == 409, refused.json
    assert refused.json["error"]["code"] == "over_budget"
    assert "monthly budget: $0.00 spent of $1.00" in refused.json["error"]["message"]
    assert pool.get(instance_id).state == "stopped"

    started = operator.post(f"/api/v1/gpu/{instance_id}/start?over_budget=true")
    assert (started.status_code, started.json["outcome"]) == (200, "started")
    # A running instance costs nothing more to "start": no budget check.
    assert operator.post(f"/api/v1/gpu/{instance_id}/start").json["outcome"] == "already running"
