"""Create, idempotently, the queues, tables and bucket gpuorch runs on; report what changed."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Callable, NamedTuple

from botocore.exceptions import ClientError

from gpuorch.aws.clients import AwsClients
from gpuorch.jobs.store import OWNER_INDEX, STATUS_INDEX
from gpuorch.settings import Settings
from lifecycle.live.instance_items import INSTANCE_ITEM, INSTANCE_ITEMS_INDEX
from lifecycle.live.refusals import migrate_legacy_refusals

log = logging.getLogger(__name__)

FOURTEEN_DAYS = 14 * 86400  # SQS's longest retention: an accepted job waits out any GPU pause.
CONTROL_VISIBILITY_TIMEOUT = 120
EXPIRING_PREFIXES = ("inputs", "results")


class IndexSpec(NamedTuple):
    """A global secondary index: its name, keys and what it projects ("ALL" the items, or "KEYS_ONLY")."""

    name: str
    hash_key: str
    range_key: str
    projection: str = "ALL"


@dataclass(frozen=True)
class TableSpec:
    """A table gpuorch needs: its keys, the attributes they and the indexes use, its indexes and its expiry."""

    name: str
    key: str
    attributes: dict[str, str]
    ttl_attribute: str | None
    sort_key: str | None = None
    indexes: tuple[IndexSpec, ...] = ()


def table_specs(settings: Settings) -> tuple[TableSpec, ...]:
    """Every table gpuorch runs on (`gpuorch provision` and the CloudFormation stack of `gpuorch deploy` make them)."""
    return (
        TableSpec(settings.job_table, key="task_id",
                  attributes={"task_id": "S", "status": "S", "created_at": "S", "owner": "S"},
                  indexes=(IndexSpec(STATUS_INDEX, "status", "created_at"),
                           IndexSpec(OWNER_INDEX, "owner", "created_at")),
                  ttl_attribute="expires_at"),
        TableSpec(settings.result_table, key="id", attributes={"id": "S"}, ttl_attribute="ttl"),
        # Worker heartbeats, the lifecycle lock, instance runs: small items keyed by kind and id. The heartbeats and
        # refusals, keyed by instance ARN, are listed through their sparse index (lifecycle.live.instance_items).
        TableSpec(settings.control_table, key="pk", sort_key="sk",
                  attributes={"pk": "S", "sk": "S", INSTANCE_ITEM: "S"},
                  indexes=(IndexSpec(INSTANCE_ITEMS_INDEX, INSTANCE_ITEM, "sk", projection="KEYS_ONLY"),),
                  ttl_attribute="expires_at"),
        # API keys, by key id (only each token's hash is stored); revoked keys are kept, so no expiry.
        TableSpec(settings.key_table, key="key_id", attributes={"key_id": "S"}, ttl_attribute=None),
    )


def expiry_rules(settings: Settings) -> list[dict]:
    """The bucket's lifecycle rules: inputs and results expire with their job records (GPUORCH_JOB_TTL_DAYS)."""
    return [
        {"ID": f"gpuorch-expire-{prefix}", "Status": "Enabled", "Filter": {"Prefix": f"{prefix}/"},
         "Expiration": {"Days": settings.job_ttl_days}}
        for prefix in EXPIRING_PREFIXES
    ]


@dataclass(frozen=True)
class Change:
    resource: str
    action: str  # "created", "updated" or "unchanged"
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action:9} {self.resource}" + (f"  ({self.detail})" if self.detail else "")


def queue_attributes(settings: Settings, *, dlq_arn: str | None, visibility: int) -> dict[str, str]:
    """The attributes a gpuorch queue must have (the GPU queue gets the redrive policy)."""
    attributes = {
        "VisibilityTimeout": str(visibility),
        "ReceiveMessageWaitTimeSeconds": str(settings.receive_wait_seconds),
        "MessageRetentionPeriod": str(FOURTEEN_DAYS),
    }
    if dlq_arn:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.max_receive_count)},
            sort_keys=True,
        )
    return attributes


def attribute_drift(wanted: dict[str, str], actual: dict[str, str]) -> dict[str, str]:
    """The wanted attributes whose current value differs (the redrive policy compared as JSON)."""
    drift = {}
    for name, value in wanted.items():
        current = actual.get(name)
        if name == "RedrivePolicy" and current:
            same = {k: str(v) for k, v in json.loads(current).items()} == json.loads(value)
        else:
            same = current == value
        if not same:
            drift[name] = value
    return drift


class Provisioner:
    """Brings one account/region (or the local moto server) to the state gpuorch needs."""

    def __init__(self, clients: AwsClients, settings: Settings, report: Callable[[Change], None] = lambda c: None):
        self.aws = clients
        self.settings = settings
        self.report = report
        self.changes: list[Change] = []

    def _note(self, change: Change) -> None:
        self.changes.append(change)
        self.report(change)
        log.info("provision: %s", change)

    def run(self) -> list[Change]:
        dlq_arn = self.queue(self.settings.gpu_dead_letter_queue, dlq_arn=None, visibility=self.settings.visibility_timeout)
        self.queue(self.settings.gpu_queue, dlq_arn=dlq_arn, visibility=self.settings.visibility_timeout)
        # Low-priority jobs: the same worker, limits and dead-letter queue.
        self.queue(self.settings.gpu_low_queue, dlq_arn=dlq_arn, visibility=self.settings.visibility_timeout)
        self.queue(self.settings.control_queue, dlq_arn=None, visibility=CONTROL_VISIBILITY_TIMEOUT)
        for spec in table_specs(self.settings):
            self.table(spec.name, key=spec.key, sort_key=spec.sort_key, attributes=spec.attributes,
                       indexes=spec.indexes, ttl_attribute=spec.ttl_attribute)
        self.bucket(self.settings.bucket)
        self.legacy_refusals()
        return self.changes

    def queue(self, name: str, *, dlq_arn: str | None, visibility: int) -> str:
        """Create the queue or correct its attributes; returns its ARN."""
        sqs = self.aws.sqs
        wanted = queue_attributes(self.settings, dlq_arn=dlq_arn, visibility=visibility)
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
                raise
            url = sqs.create_queue(QueueName=name, Attributes=wanted)["QueueUrl"]
            self._note(Change(f"sqs queue {name}", "created", _describe(wanted)))
        else:
            actual = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            drift = attribute_drift(wanted, actual)
            if drift:
                sqs.set_queue_attributes(QueueUrl=url, Attributes=drift)
                self._note(Change(f"sqs queue {name}", "updated", _describe(drift)))
            else:
                self._note(Change(f"sqs queue {name}", "unchanged"))
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def table(
        self,
        name: str,
        *,
        key: str,
        attributes: dict[str, str],
        ttl_attribute: str | None,
        indexes: tuple[IndexSpec, ...] = (),
        sort_key: str | None = None,
    ) -> None:
        db = self.aws.dynamodb
        try:
            described = db.describe_table(TableName=name)["Table"]
        except db.exceptions.ResourceNotFoundException:
            self._create_table(name, key=key, sort_key=sort_key, attributes=attributes, indexes=indexes)
            if ttl_attribute:
                self._enable_ttl(name, ttl_attribute)
            detail = "on-demand" + "".join(f", index {index.name}" for index in indexes) + (
                f", ttl on {ttl_attribute}" if ttl_attribute else "")
            self._note(Change(f"dynamodb table {name}", "created", detail))
            return
        updates = []
        present = {index["IndexName"] for index in described.get("GlobalSecondaryIndexes", [])}
        for index in indexes:
            if index.name not in present:
                # An index added in a later version (e.g. the owner index): built in the background by DynamoDB.
                db.update_table(TableName=name, AttributeDefinitions=attribute_definitions(attributes),
                                GlobalSecondaryIndexUpdates=[{"Create": index_spec(index)}])
                updates.append(f"index {index.name}")
        if ttl_attribute:
            ttl = db.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if ttl.get("TimeToLiveStatus") not in {"ENABLED", "ENABLING"} or ttl.get("AttributeName") != ttl_attribute:
                self._enable_ttl(name, ttl_attribute)
                updates.append(f"ttl on {ttl_attribute}")
        if updates:
            self._note(Change(f"dynamodb table {name}", "updated", ", ".join(updates)))
        else:
            self._note(Change(f"dynamodb table {name}", "unchanged"))

    def _create_table(self, name: str, *, key: str, sort_key: str | None, attributes: dict[str, str],
                      indexes: tuple[IndexSpec, ...]) -> None:
        key_schema = [{"AttributeName": key, "KeyType": "HASH"}]
        if sort_key:
            key_schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
        spec = {
            "TableName": name,
            "KeySchema": key_schema,
            "AttributeDefinitions": attribute_definitions(attributes),
            "BillingMode": "PAY_PER_REQUEST",
        }
        if indexes:
            spec["GlobalSecondaryIndexes"] = [index_spec(index) for index in indexes]
        self.aws.dynamodb.create_table(**spec)
        self.aws.dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})

    def _enable_ttl(self, table: str, attribute: str) -> None:
        self.aws.dynamodb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
        )

    def legacy_refusals(self) -> None:
        """Refusals an earlier release wrote before they were keyed by instance ARN, moved to their new keys so that
        they still hold their instances (lifecycle.live.refusals.migrate_legacy_refusals)."""
        table = self.settings.control_table
        moved = migrate_legacy_refusals(self.aws.dynamodb, table, self.aws.instance_arn)
        if moved:
            self._note(Change(f"dynamodb table {table}", "updated",
                              f"{moved} refusal(s) moved to their instance's key"))

    def bucket(self, name: str) -> None:
        s3 = self.aws.s3
        try:
            s3.head_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in {"404", "NoSuchBucket", "NotFound"}:
                raise
            self._create_bucket(name)
            self._set_expiry(name)
            self._note(Change(f"s3 bucket {name}", "created", f"private, encrypted, {self._expiry_detail()}"))
            return
        if self._current_expiry(name) == self._expiry_rules():
            self._note(Change(f"s3 bucket {name}", "unchanged"))
        else:
            self._set_expiry(name)
            self._note(Change(f"s3 bucket {name}", "updated", self._expiry_detail()))

    def _create_bucket(self, name: str) -> None:
        s3 = self.aws.s3
        spec = {"Bucket": name}
        if self.settings.region != "us-east-1":
            spec["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        s3.create_bucket(**spec)
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True,
                "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )

    def _expiry_rules(self) -> list[dict]:
        return expiry_rules(self.settings)

    def _expiry_detail(self) -> str:
        return f"{', '.join(p + '/' for p in EXPIRING_PREFIXES)} expire after {self.settings.job_ttl_days} days"

    def _lifecycle_rules(self, name: str) -> list[dict]:
        try:
            return self.aws.s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration":
                return []
            raise

    def _current_expiry(self, name: str) -> list[dict]:
        keep = ("ID", "Status", "Filter", "Expiration")
        return [{k: r[k] for k in keep if k in r} for r in self._lifecycle_rules(name) if _ours(r)]

    def _set_expiry(self, name: str) -> None:
        # The lifecycle configuration is replaced whole: keep the rules an operator added.
        others = [rule for rule in self._lifecycle_rules(name) if not _ours(rule)]
        self.aws.s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": others + self._expiry_rules()}
        )


def attribute_definitions(attributes: dict[str, str]) -> list[dict[str, str]]:
    return [{"AttributeName": a, "AttributeType": t} for a, t in attributes.items()]


def index_spec(index: IndexSpec) -> dict:
    return {
        "IndexName": index.name,
        "KeySchema": [
            {"AttributeName": index.hash_key, "KeyType": "HASH"},
            {"AttributeName": index.range_key, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": index.projection},
    }


def _ours(rule: dict) -> bool:
    return rule.get("ID", "").startswith("gpuorch-")


def _describe(attributes: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(attributes.items()))
