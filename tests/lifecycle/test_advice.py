"""Advice replays a period's jobs on the deployment its settings describe, not on the cost model's defaults."""

import dataclasses

import pytest

from gpuorch.settings import Settings
from lifecycle.advice import Deployment, alternatives
from lifecycle.cost_model import GP3_PROVISIONED, S3_TO_INSTANCE_STORE, on_demand
from lifecycle.simulation.serverless import Serverless
from lifecycle.simulation.workload import Job


def test_the_deployment_is_the_settings_store_pool_and_wait_value():
    settings = dataclasses.replace(Settings(), models_store="instance-store", max_instances=3,
                                   wait_value_usd_per_hour=0.9)
    deployment = Deployment.of(settings)
    assert deployment.cold_start.source == S3_TO_INSTANCE_STORE
    assert deployment.cold_start.model_bytes > 30e9  # the built-in workflows' declared files
    assert deployment.base.max_instances == 3
    assert deployment.wait_usd_per_s == pytest.approx(0.9 / 3600)
    assert Deployment.of(Settings()).cold_start.source == GP3_PROVISIONED


def test_a_backlog_is_replayed_on_the_deployments_pool():
    burst = [Job(float(n), 60.0) for n in range(40)]  # 40 minutes of work at once
    one, two = (alternatives(burst, on_demand(), dataclasses.replace(Deployment(), base=dataclasses.replace(
        Deployment().base, max_instances=n)), Serverless()) for n in (1, 2))
    learned_one, learned_two = one[-2], two[-2]
    assert learned_one.policy == learned_two.policy == "learned"
    assert learned_two.wait_p95_s < learned_one.wait_p95_s
