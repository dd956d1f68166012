"""The local stack's GPU instances: stopped instances of the pool, on-demand or spot (a persistent request that
stops on interruption, as DEPLOYMENT.md creates it), created on the moto server and never on AWS."""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlparse

from lifecycle.live.pool import POOL_TAG
from lifecycle.model import G6E_2XLARGE, ON_DEMAND, SPOT

log = logging.getLogger(__name__)

# A Linux AMI that moto's EC2 knows; any id works there, since moto does not validate AMIs by default.
LOCAL_IMAGE_ID = "ami-1e749f67"
# A spot instance EC2 may stop and start again: a persistent request that stops it on interruption.
SPOT_MARKET_OPTIONS = {
    "MarketType": SPOT,
    "SpotOptions": {"SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop"},
}


class NotLocalEndpoint(RuntimeError):
    """The EC2 client does not talk to a server on loopback: RunInstances there would launch (and bill) a real GPU."""


def is_loopback_endpoint(endpoint_url: str | None) -> bool:
    """True for an endpoint on this machine's loopback (the local moto server), false for anything else."""
    host = urlparse(endpoint_url or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_local_instance(ec2_client, pool: str, *, image_id: str = LOCAL_IMAGE_ID,
                          instance_type: str = G6E_2XLARGE, market: str = ON_DEMAND) -> str:
    """Create an instance tagged into `pool` on the moto server, stopped as a new deployment's is; returns its id.

    Refused (NotLocalEndpoint) unless the client's endpoint is on loopback.
    """
    endpoint = ec2_client.meta.endpoint_url
    if not is_loopback_endpoint(endpoint):
        raise NotLocalEndpoint(f"create_local_instance runs only against a local moto server on loopback, "
                               f"not {endpoint}")
    answer = ec2_client.run_instances(
        ImageId=image_id,
        InstanceType=instance_type,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{
            "ResourceType": "instance",
            "Tags": [{"Key": POOL_TAG, "Value": pool}, {"Key": "Name", "Value": f"gpuorch-{pool}-{market}"}],
        }],
        **({"InstanceMarketOptions": SPOT_MARKET_OPTIONS} if market == SPOT else {}),
    )
    instance_id = answer["Instances"][0]["InstanceId"]
    ec2_client.stop_instances(InstanceIds=[instance_id])
    log.info("created local instance %s (%s, %s) in pool %s, stopped", instance_id, instance_type, market, pool)
    return instance_id
