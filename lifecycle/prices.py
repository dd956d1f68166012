"""What GPU instances cost on demand, per hour, by region and instance type: one table, with its source and date."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Mapping

log = logging.getLogger(__name__)

G6E_2XLARGE = "g6e.2xlarge"
# The region the simulator's reference traces and spot history come from (lifecycle/simulation/).
REFERENCE_REGION = "us-east-1"

# Linux, shared tenancy, on-demand USD per hour, from AWS's Price List (the EC2 offer file) as SkyPilot's AWS catalog
# records it: github.com/skypilot-org/skypilot-catalog, catalogs/v7/aws/vms.csv, column Price (commit 001367d2), read
# on the date below. The regions are those where that catalog lists the g6e family; the types are the pool's
# (g6e.2xlarge) and the ones a GPUORCH_FALLBACK_INSTANCE_TYPES list would name. To update: the same columns of a newer
# catalog, or `aws pricing get-products --service-code AmazonEC2` (filters instanceType, regionCode,
# operatingSystem=Linux, tenancy=Shared, preInstalledSw=NA, capacitystatus=Used).
SOURCE = "AWS Price List (EC2, Linux, shared tenancy, on-demand) via skypilot-org/skypilot-catalog catalogs/v7/aws"
AS_OF = date(2026, 12, 7)
_TYPES = ("g6e.xlarge", G6E_2XLARGE, "g6e.4xlarge", "g6.2xlarge", "g5.2xlarge")
_BY_REGION = {
    "us-east-1": (1.861, 2.24208, 3.00424, 0.9776, 1.212),
    "us-east-2": (1.861, 2.24208, 3.00424, 0.9776, 1.212),
    "us-west-2": (1.861, 2.24208, 3.00424, 0.9776, 1.212),
    "eu-central-1": (2.327, 2.8035, 3.75651, 1.22249, 1.5156),
    "eu-north-1": (1.974, 2.37822, 3.18666, 1.03688, 1.28549),
    "ap-northeast-1": (2.699, 3.25168, 4.35703, 1.41781, 1.75776),
    "ap-northeast-2": (2.288, 2.75652, 3.69355, 1.20208, 1.4903),
}
ON_DEMAND_USD: Mapping[tuple[str, str], float] = {
    (region, instance_type): usd
    for region, prices in _BY_REGION.items()
    for instance_type, usd in zip(_TYPES, prices, strict=True)
}


def dearest(instance_type: str) -> float | None:
    """The highest price the table knows for `instance_type` in any region (None: the type is not in it)."""
    known = [usd for (_region, kind), usd in ON_DEMAND_USD.items() if kind == instance_type]
    return max(known) if known else None


@dataclass(frozen=True)
class RegionPrices:
    """One region's on-demand prices by instance type. `exact` is False for a region the table does not list:
    its prices are then each type's dearest in the table, so a budget stops starts early rather than late."""

    region: str
    usd_per_hour: Mapping[str, float] = field(default_factory=dict)
    exact: bool = True

    def hourly(self, instance_type: str) -> float:
        """The price of `instance_type`; a type not in the table is priced at the dearest price of the region."""
        return self.usd_per_hour.get(instance_type, max(self.usd_per_hour.values()))

    def describe(self) -> str:
        where = self.region if self.exact else f"{self.region} (not in the table: each type's dearest region)"
        return f"on-demand prices of {where}, {SOURCE}, as of {AS_OF.isoformat()}"


@functools.lru_cache(maxsize=None)
def region_prices(region: str) -> RegionPrices:
    """The prices budgets, the run log and cost reports use in `region` (GPUORCH_REGION).

    A region the table does not list is not refused: the lifecycle must still start and stop the GPU there. Its
    prices are the dearest the table knows for each type, and a warning says so once per process.
    """
    exact = {kind: usd for (where, kind), usd in ON_DEMAND_USD.items() if where == region}
    if exact:
        return RegionPrices(region, exact)
    log.warning("no on-demand prices for %s in lifecycle/prices.py (as of %s): budgets and cost reports use each "
                "instance type's dearest known price; add the region's prices to the table", region, AS_OF)
    return RegionPrices(region, {kind: dearest(kind) for kind in _TYPES}, exact=False)


# The reference price: the simulator's and the bench's default, and the decision's when a snapshot names none.
G6E_2XLARGE_HOURLY_USD = ON_DEMAND_USD[(REFERENCE_REGION, G6E_2XLARGE)]
