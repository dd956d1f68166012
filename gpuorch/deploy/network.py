"""Where the stack goes: the default VPC's subnets or given ones, the GPU pool in a zone that offers its type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence
from gpuorch.errors import ConfigurationError


class PlacementError(ConfigurationError, ValueError):
    """No placement works with these subnets; the message says what is missing."""


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    zone: str
    public: bool  # instances launched in it get a public address (so they reach AWS and the internet without NAT)


@dataclass(frozen=True)
class Placement:
    vpc_id: str
    load_balancer_subnets: tuple[Subnet, ...]
    host_subnet: Subnet
    gpu_subnet: Subnet
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        lb = ", ".join(f"{s.subnet_id} ({s.zone})" for s in self.load_balancer_subnets)
        return (f"{self.vpc_id}: load balancer in {lb}; host in {self.host_subnet.subnet_id} "
                f"({self.host_subnet.zone}); GPU pool in {self.gpu_subnet.subnet_id} ({self.gpu_subnet.zone})")


def choose_placement(subnets: Sequence[Subnet], offered: Mapping[str, Iterable[str]], *, gpu_type: str,
                     host_type: str, fallback_types: Sequence[str] = ()) -> Placement:
    """Pick the subnets of the load balancer (one per zone, two zones at least, as an application load balancer
    needs), the GPU pool (the first zone, by name, that offers `gpu_type`) and the host (the GPU pool's subnet when
    its zone offers `host_type`). `offered` maps an instance type to the zones that offer it."""
    if not subnets:
        raise PlacementError("no subnets to place the stack in")
    vpcs = sorted({s.vpc_id for s in subnets})
    if len(vpcs) > 1:
        raise PlacementError(f"the subnets belong to several VPCs ({', '.join(vpcs)}): give subnets of one")
    ordered = sorted(subnets, key=lambda s: (s.zone, s.subnet_id))
    per_zone: dict[str, Subnet] = {}
    for subnet in ordered:
        per_zone.setdefault(subnet.zone, subnet)
    if len(per_zone) < 2:
        raise PlacementError("the load balancer needs subnets in two availability zones at least; "
                             f"these are all in {', '.join(per_zone)}")
    gpu_zones = set(offered.get(gpu_type, ()))
    gpu_subnet = next((s for s in ordered if s.zone in gpu_zones), None)
    if gpu_subnet is None:
        where = ", ".join(sorted(gpu_zones)) or "no zone of this region"
        raise PlacementError(f"{gpu_type} is offered in {where}; none of the subnets' zones "
                             f"({', '.join(sorted(per_zone))}) offers it: give a subnet in one that does")
    host_zones = set(offered.get(host_type, ()))
    host_subnet = gpu_subnet if gpu_subnet.zone in host_zones else next((s for s in ordered if s.zone in host_zones),
                                                                         None)
    if host_subnet is None:
        raise PlacementError(f"none of the subnets' zones offers the host's type {host_type}")
    notes = [f"fallback type {kind} is not offered in {gpu_subnet.zone}: the lifecycle cannot fall back to it"
             for kind in fallback_types if gpu_subnet.zone not in set(offered.get(kind, ()))]
    notes += [f"{s.subnet_id} gives no public address: its instances need a NAT gateway to reach AWS and the "
              "internet" for s in dict.fromkeys((host_subnet, gpu_subnet)) if not s.public]
    return Placement(vpcs[0], tuple(per_zone.values()), host_subnet, gpu_subnet, tuple(notes))


def _subnet(item: dict) -> Subnet:
    return Subnet(item["SubnetId"], item["VpcId"], item["AvailabilityZone"], bool(item.get("MapPublicIpOnLaunch")))


def find_subnets(ec2, subnet_ids: Sequence[str] = ()) -> list[Subnet]:
    """The given subnets, or else the default VPC's default subnets (one per zone)."""
    if subnet_ids:
        return [_subnet(item) for item in ec2.describe_subnets(SubnetIds=list(subnet_ids))["Subnets"]]
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise PlacementError("this region has no default VPC: give the subnets to use (--subnets)")
    found = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]},
                                          {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    return [_subnet(item) for item in found]


def offered_zones(ec2, instance_types: Iterable[str]) -> dict[str, set[str]]:
    """instance type -> the availability zones of the region that offer it."""
    offered: dict[str, set[str]] = {kind: set() for kind in instance_types}
    paginator = ec2.get_paginator("describe_instance_type_offerings")
    for page in paginator.paginate(LocationType="availability-zone",
                                   Filters=[{"Name": "instance-type", "Values": sorted(offered)}]):
        for offering in page["InstanceTypeOfferings"]:
            offered[offering["InstanceType"]].add(offering["Location"])
    return offered
