"""EC2 instance ids and ARNs: what an id looks like, so that nothing else is ever sent to EC2 or taken for one, and
the ARN IAM gives an instance's requests (`ec2:SourceInstanceARN`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# "i-" and 8 hex digits (instances made before 2016) or 17 (every one since), in lower case.
INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")


def is_instance_id(text: str) -> bool:
    return INSTANCE_ID.fullmatch(text) is not None


@dataclass(frozen=True)
class InstanceArns:
    """The ARNs of one account's instances in one region, as IAM names the instance a request comes from (the
    `ec2:SourceInstanceARN` of a request signed with an instance role's credentials)."""

    partition: str
    account: str
    region: str

    def of(self, instance_id: str) -> str:
        return f"arn:{self.partition}:ec2:{self.region}:{self.account}:instance/{instance_id}"


def instance_id_of(instance_arn: str) -> str:
    """The instance id an instance ARN ends with."""
    return instance_arn.rsplit("/", 1)[-1]


def caller_instance_arns(sts, region: str) -> InstanceArns:
    """The instance ARNs of the caller's account in `region`: the account and its partition from STS
    GetCallerIdentity, which every principal may call (no policy can deny it)."""
    identity = sts.get_caller_identity()
    return InstanceArns(partition=identity["Arn"].split(":")[1], account=identity["Account"], region=region)
