"""Spot prices read from moto's EC2 (DescribeSpotPriceHistory) and cached; the market memory in the control table."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gpuorch.aws.clients import AwsClients
from gpuorch.settings import Settings
from gpuorch_dev.local.instances import create_local_instance
from lifecycle.live.build import policy_from
from lifecycle.live.market import SPOT_PRICE_CACHE_S, MarketMemory, SpotPrices
from lifecycle.live.pool import EC2_CLIENT_CONFIG, InstancePool
from lifecycle.model import DEFAULT_SPOT_HOLD_S, DEFAULT_SPOT_MAX_SHARE, SpotSetback
from tests.support.aws_proxy import AwsProxy


@pytest.fixture
def proxied_ec2(moto_endpoint):
    with AwsProxy(moto_endpoint) as proxy:
        yield proxy, AwsClients(Settings(aws_endpoint_url=proxy.url), config=EC2_CLIENT_CONFIG).ec2


def test_the_spot_price_is_read_once_per_cache_period(proxied_ec2, ec2, pool_name, clock):
    proxy, through_proxy = proxied_ec2
    spot = create_local_instance(ec2, pool_name, market="spot")
    create_local_instance(ec2, pool_name)  # on-demand: no price asked
    prices = SpotPrices(through_proxy, clock=clock)
    instances = InstancePool(ec2, pool_name).describe()

    assert prices.of(instances) == {spot: 0.00001}  # moto's price for every type and zone
    clock.advance(SPOT_PRICE_CACHE_S - 1)
    assert prices.of(instances) == {spot: 0.00001}
    assert proxy.operations["DescribeSpotPriceHistory"] == 1
    clock.advance(1)
    prices.of(instances)
    assert proxy.operations["DescribeSpotPriceHistory"] == 2


def test_an_unread_spot_price_is_unknown(proxied_ec2, ec2, pool_name, clock, caplog):
    proxy, through_proxy = proxied_ec2
    create_local_instance(ec2, pool_name, market="spot")
    proxy.fail(operation="DescribeSpotPriceHistory", error="throttle")
    instances = InstancePool(ec2, pool_name).describe()
    assert SpotPrices(through_proxy, clock=clock).of(instances) == {}
    assert "spot price of g6e.2xlarge" in caplog.text and "not read" in caplog.text


def test_the_latest_setback_of_each_instance_is_kept(provisioned, clock):
    memory = MarketMemory(provisioned.aws.dynamodb, provisioned.settings.control_table)
    assert memory.read().setbacks == {}
    first = SpotSetback("refused", clock(), "InsufficientInstanceCapacity: no spot capacity")
    assert memory.record_setback("i-spot", first)
    assert not memory.record_setback("i-spot", first)  # the same one again: once
    assert not memory.record_setback("i-spot", SpotSetback("refused", clock() - timedelta(seconds=5)))
    later = SpotSetback("interrupted", clock() + timedelta(minutes=2), "spot interruption notice")
    assert memory.record_setback("i-spot", later)
    memory.record_start("i-od", "on-demand", clock())
    memory.record_fallback("i-od", "i-spot", "spot_interrupted", "spot interrupted", clock())

    record = memory.read()
    assert record.setbacks == {"i-spot": later}
    assert record.last_start["instance_id"] == "i-od" and record.last_fallback["instead_of"] == "i-spot"
    assert record.view() == {"last_start": record.last_start, "last_fallback": record.last_fallback}


def test_the_settings_defaults_are_the_policys():
    policy = policy_from(Settings())
    assert (policy.spot_max_share, policy.spot_hold_s) == (DEFAULT_SPOT_MAX_SHARE, DEFAULT_SPOT_HOLD_S)
