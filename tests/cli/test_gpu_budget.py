"""`gpuorch gpu start` under a monthly budget: refused like the lifecycle's own starts, unless --over-budget."""

from __future__ import annotations

import pytest

from gpuorch_dev.local.instances import create_local_instance
from lifecycle.live.pool import InstancePool
from tests.conftest import unique_settings


@pytest.fixture
def settings(moto_endpoint, resources):
    """A budget under one hour of a g6e.2xlarge: any start would pass it."""
    return unique_settings(moto_endpoint, resources.names, monthly_budget_usd=1.0)


def test_a_start_past_the_budget_is_refused_unless_over_budget(gpuorch, provisioned, settings):
    pool = InstancePool(provisioned.aws.ec2, settings.gpu_pool)
    instance_id = create_local_instance(provisioned.aws.ec2, settings.gpu_pool)

    refused = gpuorch("gpu", "start", instance_id)
    assert refused.exit_code == 1 and "monthly budget: $0.00 spent of $1.00" in refused.stderr
    assert pool.get(instance_id).state == "stopped"

    started = gpuorch("gpu", "start", "--over-budget", instance_id)
    assert started.exit_code == 0, started.output
    assert pool.get(instance_id).state == "running"
