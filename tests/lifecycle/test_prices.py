"""The on-demand price table by region and instance type: its lookups, and what a region it does not list gets."""

from __future__ import annotations

import logging

import pytest

from lifecycle.prices import (
    AS_OF, G6E_2XLARGE, G6E_2XLARGE_HOURLY_USD, ON_DEMAND_USD, REFERENCE_REGION, SOURCE, dearest, region_prices,
)

REGIONS = sorted({region for region, _type in ON_DEMAND_USD})
TYPES = sorted({kind for _region, kind in ON_DEMAND_USD})


def test_every_region_prices_every_type_and_the_reference_is_us_east_1s_g6e_2xlarge():
    assert {(region, kind) for region in REGIONS for kind in TYPES} == set(ON_DEMAND_USD)
    assert all(usd > 0 for usd in ON_DEMAND_USD.values())
    assert (REFERENCE_REGION, G6E_2XLARGE_HOURLY_USD) == ("us-east-1", 2.24208)
    assert "AWS Price List" in SOURCE and AS_OF.year >= 2026


@pytest.mark.parametrize("region,instance_type,usd", [
    ("us-east-1", G6E_2XLARGE, 2.24208),
    ("us-west-2", G6E_2XLARGE, 2.24208),
    ("eu-central-1", G6E_2XLARGE, 2.8035),
    ("eu-north-1", "g6e.xlarge", 1.974),
    ("ap-northeast-1", G6E_2XLARGE, 3.25168),
    ("eu-central-1", "p5.48xlarge", 3.75651),  # a type the table lacks: the region's dearest (its g6e.4xlarge)
])
def test_a_listed_region_gets_its_own_prices(region, instance_type, usd):
    prices = region_prices(region)
    assert prices.exact and prices.hourly(instance_type) == usd


def test_a_region_the_table_lacks_gets_each_types_dearest_price_and_a_warning(caplog):
    region_prices.cache_clear()
    with caplog.at_level(logging.WARNING, logger="lifecycle.prices"):
        prices = region_prices("sa-east-1")
        region_prices("sa-east-1")  # once per process
    assert not prices.exact
    assert prices.hourly(G6E_2XLARGE) == dearest(G6E_2XLARGE) == 3.25168  # ap-northeast-1's: a budget stops early
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert "no on-demand prices for sa-east-1" in caplog.text
    assert "not in the table" in prices.describe()


def test_an_unknown_type_has_no_dearest_price():
    assert dearest("p5.48xlarge") is None
