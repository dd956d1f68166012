"""Provisioned queues, tables and buckets for the tests: each set made once, then emptied for every test that gets it.

Provisioning a set (four queues, four tables with their indexes and time-to-live, a bucket with its rules)
takes about thirty AWS calls, and hundreds of tests ask for one (tests/conftest.py `provisioned`). A set a test
gives back is emptied before the next test gets it: its queues purged, its tables' items and its bucket's
objects deleted, each read back empty. So a test still starts alone on its resources, as on freshly made ones
(tests count queue messages and table items). A set that cannot be emptied, because a test deleted one of its
queues, tables or its bucket, is dropped. A set is provisioned again when a test's settings differ (names
aside) from those it was provisioned under: Provisioner brings it to what those settings want.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from gpuorch.aws.clients import AwsClients
from gpuorch.provision import Provisioner
from gpuorch.settings import Settings

QUEUE_FIELDS = ("gpu_dead_letter_queue", "gpu_queue", "gpu_low_queue", "control_queue")
TABLE_FIELDS = ("job_table", "result_table", "control_table", "key_table")
NAME_FIELDS = (*QUEUE_FIELDS, *TABLE_FIELDS, "bucket")
# The answer's error code when the resource itself is gone.
MISSING = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "ResourceNotFoundException", "NoSuchBucket"}


def new_names() -> dict[str, str]:
    """Names of resources that do not exist yet, unique to the caller."""
    suffix = uuid.uuid4().hex[:8]
    return {
        "gpu_queue": f"gpu_tasks_queue_{suffix}",
        "gpu_low_queue": f"gpu_tasks_queue_low_{suffix}",
        "gpu_dead_letter_queue": f"gpu_tasks_queue_dlq_{suffix}",
        "control_queue": f"gpu_control_queue_{suffix}",
        "job_table": f"task_store_{suffix}",
        "result_table": f"celery_results_{suffix}",
        "control_table": f"gpuorch_control_{suffix}",
        "key_table": f"gpuorch_keys_{suffix}",
        "bucket": f"gpuorch-jobs-{suffix}",
    }


def names_of(settings: Settings) -> dict[str, str]:
    return {name: getattr(settings, name) for name in NAME_FIELDS}


def without_names(settings: Settings) -> Settings:
    """What provisioning a set under `settings` depends on besides its names (the GPU pool is a test's own)."""
    return dataclasses.replace(settings, **{name: "" for name in NAME_FIELDS}, gpu_pool="")


@dataclass
class ResourceSet:
    names: dict[str, str]
    provisioned_under: Settings | None = None  # without_names() of the settings it was last provisioned under
    queue_urls: dict[str, str] = field(default_factory=dict)
    table_keys: dict[str, list[str]] = field(default_factory=dict)  # each table's key attributes


class ResourcePool:
    """Resource sets on one endpoint (the moto server), each held by one test at a time."""

    def __init__(self, aws: AwsClients):
        self.aws = aws
        self._free: list[ResourceSet] = []

    def take(self) -> ResourceSet:
        """An empty set nobody holds; a new one, not yet provisioned, when none is free."""
        while self._free:
            resources = self._free.pop()
            try:
                self._empty(resources)
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in MISSING:
                    raise
                continue  # a test deleted part of it: dropped
            return resources
        return ResourceSet(new_names())

    def provision(self, resources: ResourceSet, settings: Settings) -> None:
        """Make sure `settings`' resources are provisioned for them (`resources` when they carry its names)."""
        if names_of(settings) != resources.names:
            Provisioner(self.aws, settings).run()  # settings made without the pooled names: provisioned as they are
            return
        if resources.provisioned_under != without_names(settings):
            Provisioner(self.aws, settings).run()
            resources.provisioned_under = without_names(settings)

    def give_back(self, resources: ResourceSet) -> None:
        if resources.provisioned_under is not None:
            self._free.append(resources)

    def _empty(self, resources: ResourceSet) -> None:
        for name in QUEUE_FIELDS:
            self._empty_queue(resources, resources.names[name])
        for name in TABLE_FIELDS:
            self._empty_table(resources, resources.names[name])
        self._empty_bucket(resources.names["bucket"])

    def _empty_queue(self, resources: ResourceSet, queue: str) -> None:
        sqs = self.aws.sqs
        if queue not in resources.queue_urls:
            resources.queue_urls[queue] = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        url = resources.queue_urls[queue]
        if self._queue_count(url):
            sqs.purge_queue(QueueUrl=url)  # visible and in-flight messages alike
            assert self._queue_count(url) == 0, f"queue {queue} still holds messages after a purge"

    def _queue_count(self, url: str) -> int:
        attributes = self.aws.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                                          "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return sum(int(count) for count in attributes.values())

    def _empty_table(self, resources: ResourceSet, table: str) -> None:
        db = self.aws.dynamodb
        if table not in resources.table_keys:
            schema = db.describe_table(TableName=table)["Table"]["KeySchema"]
            resources.table_keys[table] = [key["AttributeName"] for key in schema]
        keys = resources.table_keys[table]
        items = self._scan_keys(table, keys)
        if not items:
            return
        for start in range(0, len(items), 25):  # BatchWriteItem's most
            requests = [{"DeleteRequest": {"Key": item}} for item in items[start:start + 25]]
            unprocessed = {table: requests}
            while unprocessed:
                unprocessed = db.batch_write_item(RequestItems=unprocessed).get("UnprocessedItems")
        assert self._scan_keys(table, keys) == [], f"table {table} still holds items after deleting them"

    def _scan_keys(self, table: str, keys: list[str]) -> list[dict]:
        names = {f"#k{i}": key for i, key in enumerate(keys)}
        pages = self.aws.dynamodb.get_paginator("scan").paginate(
            TableName=table, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
        return [item for page in pages for item in page["Items"]]

    def _empty_bucket(self, bucket: str) -> None:
        s3 = self.aws.s3
        keys = self._object_keys(bucket)
        if not keys:
            return
        for start in range(0, len(keys), 1000):  # DeleteObjects' most
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys[start:start + 1000]]})
        assert self._object_keys(bucket) == [], f"bucket {bucket} still holds objects after deleting them"

    def _object_keys(self, bucket: str) -> list[str]:
        pages = self.aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]
