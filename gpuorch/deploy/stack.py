"""The stack on AWS: its release bucket, creating or updating it, waiting for it, and what it says it made."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from botocore.exceptions import ClientError

from gpuorch.aws.failures import error_code
from gpuorch.errors import ConfigurationError

DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
# A stack that failed its creation can only be deleted: CloudFormation refuses to update it.
DEAD = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"}
FAILED_EVENT = ("_FAILED",)


class StackFailed(ConfigurationError, RuntimeError):
    """The stack did not reach a complete state; the message holds CloudFormation's reasons."""


@dataclass(frozen=True)
class Outcome:
    action: str  # "created", "updated" or "unchanged"
    status: str
    outputs: Mapping[str, str] = field(default_factory=dict)


def ensure_release_bucket(s3, name: str, region: str) -> bool:
    """The private, encrypted bucket releases and templates are uploaded to; True when it was made now."""
    try:
        s3.head_bucket(Bucket=name)
        return False
    except ClientError as exc:
        if error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise
    spec = {"Bucket": name}
    if region != "us-east-1":
        spec["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**spec)
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    return True


def upload_once(s3, bucket: str, key: str, body: bytes) -> bool:
    """Put `body` at `key` unless it is there already (keys name their content); True when it was uploaded."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return False
    except ClientError as exc:
        if error_code(exc) not in {"404", "NoSuchKey", "NotFound"}:
            raise
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return True


def template_url(bucket: str, key: str, region: str) -> str:
    return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"


def _status(cloudformation, name: str) -> str | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise
    return stacks[0]["StackStatus"] if stacks else None


def _failure_reasons(cloudformation, name: str, since: float) -> list[str]:
    events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    return [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', e['ResourceStatus'])}"
            for e in reversed(events)
            if e["ResourceStatus"].endswith(FAILED_EVENT) and e["Timestamp"].timestamp() >= since]


def apply_stack(cloudformation, name: str, url: str, parameters: Mapping[str, str], *,
                on_status: Callable[[str], None] = lambda status: None, timeout_s: float = 4 * 3600,
                poll_s: float = 15.0, sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.time) -> Outcome:
    """Create the stack, or update it to this template and these parameters, and wait until it is done."""
    started = clock()
    status = _status(cloudformation, name)
    if status in DEAD:
        raise StackFailed(f"stack {name} is {status}: CloudFormation cannot update it. Delete it "
                          f"(aws cloudformation delete-stack --stack-name {name}; its tables and bucket are kept) "
                          "and deploy again")
    request = {"StackName": name, "TemplateURL": url, "Capabilities": ["CAPABILITY_IAM"],
               "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
               "Tags": [{"Key": "gpuorch:stack", "Value": name}]}
    if status is None:
        cloudformation.create_stack(**request)
        action = "created"
    else:
        try:
            cloudformation.update_stack(**request)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
            return Outcome("unchanged", status, stack_outputs(cloudformation, name))
        action = "updated"
    last = None
    while True:
        status = _status(cloudformation, name) or "DELETE_COMPLETE"
        if status != last:
            on_status(status)
            last = status
        if not status.endswith("_IN_PROGRESS"):
            break
        if clock() - started > timeout_s:
            raise StackFailed(f"stack {name} still {status} after {timeout_s:.0f} s; follow it with "
                              f"aws cloudformation describe-stack-events --stack-name {name}")
        sleep(poll_s)
    if status not in DONE:
        reasons = _failure_reasons(cloudformation, name, started - 1) or [status]
        raise StackFailed(f"stack {name} ended {status}:\n  " + "\n  ".join(reasons))
    return Outcome(action, status, stack_outputs(cloudformation, name))


def stack_outputs(cloudformation, name: str) -> dict[str, str]:
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def stop_pool(ec2, instance_ids: list[str]) -> dict[str, str]:
    """Stop the pool's instances that still run (their first boot stops them itself); instance -> state seen."""
    if not instance_ids:
        return {}
    found = ec2.describe_instances(InstanceIds=instance_ids)["Reservations"]
    states = {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}
    running = [i for i, state in states.items() if state in {"pending", "running"}]
    if running:
        ec2.stop_instances(InstanceIds=running)
    return states
