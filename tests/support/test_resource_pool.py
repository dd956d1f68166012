"""The resource pool behind `provisioned`: a set comes back empty, a damaged one is dropped, new settings re-provision."""

from __future__ import annotations

import dataclasses

import pytest

from gpuorch.aws.clients import AwsClients
from tests.conftest import unique_settings
from tests.support.resource_pool import ResourcePool


@pytest.fixture
def pool(moto_endpoint) -> ResourcePool:
    """A pool of the test's own (the session's serves the other tests)."""
    return ResourcePool(AwsClients(unique_settings(moto_endpoint)))


def provisioned_set(pool: ResourcePool, endpoint: str, **overrides):
    resources = pool.take()
    settings = unique_settings(endpoint, resources.names, **overrides)
    pool.provision(resources, settings)
    return resources, settings


def queue_counts(aws: AwsClients, queue: str) -> tuple[str, str]:
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=aws.queue_url(queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]


def test_a_set_given_back_full_is_handed_out_again_empty(pool, moto_endpoint):
    resources, settings = provisioned_set(pool, moto_endpoint)
    aws = pool.aws
    for queue in (settings.gpu_queue, settings.control_queue, settings.gpu_dead_letter_queue):
        aws.sqs.send_message(QueueUrl=aws.queue_url(queue), MessageBody="left behind")
        aws.sqs.send_message(QueueUrl=aws.queue_url(queue), MessageBody="in flight")
        aws.sqs.receive_message(QueueUrl=aws.queue_url(queue), MaxNumberOfMessages=1)
    aws.dynamodb.put_item(TableName=settings.job_table, Item={"task_id": {"S": "job"}, "status": {"S": "queued"}})
    aws.dynamodb.put_item(TableName=settings.control_table, Item={"pk": {"S": "lease"}, "sk": {"S": "gpu"}})
    for n in range(30):  # more than one BatchWriteItem
        aws.dynamodb.put_item(TableName=settings.key_table, Item={"key_id": {"S": f"key-{n}"}})
    aws.s3.put_object(Bucket=settings.bucket, Key="inputs/house.png", Body=b"png")
    pool.give_back(resources)

    again = pool.take()

    assert again is resources
    for queue in (settings.gpu_queue, settings.control_queue, settings.gpu_dead_letter_queue):
        assert queue_counts(aws, queue) == ("0", "0"), queue
    for table in (settings.job_table, settings.result_table, settings.control_table, settings.key_table):
        assert aws.dynamodb.scan(TableName=table, Select="COUNT")["Count"] == 0, table
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=settings.bucket)
    # Still provisioned for these settings: handed out as it is.
    pool.provision(again, unique_settings(moto_endpoint, again.names))
    assert aws.dynamodb.describe_table(TableName=settings.job_table)["Table"]["GlobalSecondaryIndexes"]


def test_a_set_missing_a_table_is_dropped(pool, moto_endpoint):
    resources, settings = provisioned_set(pool, moto_endpoint)
    pool.aws.dynamodb.delete_table(TableName=settings.control_table)
    pool.give_back(resources)

    fresh = pool.take()

    assert fresh is not resources and fresh.provisioned_under is None
    assert set(fresh.names.values()).isdisjoint(resources.names.values())


def test_other_settings_provision_the_set_for_them(pool, moto_endpoint):
    resources, settings = provisioned_set(pool, moto_endpoint)
    pool.give_back(resources)
    again = pool.take()

    longer = dataclasses.replace(unique_settings(moto_endpoint, again.names), visibility_timeout=900)
    pool.provision(again, longer)

    attributes = pool.aws.sqs.get_queue_attributes(QueueUrl=pool.aws.queue_url(longer.gpu_queue),
                                                   AttributeNames=["VisibilityTimeout"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "900"
