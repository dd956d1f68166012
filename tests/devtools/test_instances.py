"""The local stack's GPU instance: made on the moto server, tagged into the pool and stopped; refused off loopback."""

import uuid

import boto3
import pytest

from gpuorch.aws.clients import AwsClients
from gpuorch.settings import Settings
from gpuorch_dev.local.instances import NotLocalEndpoint, create_local_instance, is_loopback_endpoint
from lifecycle.live.pool import POOL_TAG


def test_the_local_instance_is_tagged_into_the_pool_and_stopped(moto_endpoint):
    ec2 = AwsClients(Settings(aws_endpoint_url=moto_endpoint)).ec2
    pool_name = f"gpu-{uuid.uuid4().hex[:8]}"
    instance_id = create_local_instance(ec2, pool_name)
    item = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert item["State"]["Name"] == "stopped" and item["InstanceType"] == "g6e.2xlarge"
    assert {"Key": POOL_TAG, "Value": pool_name} in item["Tags"]


@pytest.mark.parametrize("endpoint,local", [
    ("http://127.0.0.1:5000", True),
    ("http://localhost:5000", True),
    ("http://[::1]:5000", True),
    ("https://ec2.us-east-1.amazonaws.com", False),
    ("https://ec2.cn-north-1.amazonaws.com.cn", False),
    ("http://10.0.0.5:5000", False),  # a moto server elsewhere is still not this machine's
    ("http://moto.internal:5000", False),
    ("", False),
])
def test_only_a_loopback_endpoint_counts_as_local(endpoint, local):
    assert is_loopback_endpoint(endpoint) is local


def test_real_aws_is_refused_before_any_call():
    # No credentials reach AWS: the refusal comes from the endpoint alone, before RunInstances is sent.
    real = boto3.client("ec2", region_name="us-east-1")
    with pytest.raises(NotLocalEndpoint, match="moto server on loopback"):
        create_local_instance(real, "gpu")
