"""`gpuorch provision` creates what the replaced system listed, and a second run changes nothing."""

import json
from datetime import datetime, timezone

from gpuorch.aws.clients import AwsClients
from gpuorch.aws.dynamodb import encode_item
from gpuorch.provision import Provisioner, attribute_drift, queue_attributes
from gpuorch.jobs.store import OWNER_INDEX, STATUS_INDEX
from lifecycle.live.instance_items import INSTANCE_ITEM, INSTANCE_ITEMS_INDEX
from lifecycle.live.refusals import LEGACY_PK, RefusalStore
from lifecycle.model import Refusal


def test_first_run_creates_everything_and_second_changes_nothing(settings):
    aws = AwsClients(settings)
    first = Provisioner(aws, settings).run()
    assert {c.resource for c in first if c.action == "created"} == {
        f"sqs queue {settings.gpu_queue}",
        f"sqs queue {settings.gpu_low_queue}",
        f"sqs queue {settings.gpu_dead_letter_queue}",
        f"sqs queue {settings.control_queue}",
        f"dynamodb table {settings.job_table}",
        f"dynamodb table {settings.result_table}",
        f"dynamodb table {settings.control_table}",
        f"dynamodb table {settings.key_table}",
        f"s3 bucket {settings.bucket}",
    }
    second = Provisioner(aws, settings).run()
    assert [c.action for c in second] == ["unchanged"] * len(second)


def test_gpu_queue_attributes_and_redrive(settings):
    aws = AwsClients(settings)
    Provisioner(aws, settings).run()
    attrs = aws.sqs.get_queue_attributes(QueueUrl=aws.queue_url(settings.gpu_queue), AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "300"
    assert attrs["ReceiveMessageWaitTimeSeconds"] == str(settings.receive_wait_seconds)
    redrive = json.loads(attrs["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == 3
    assert redrive["deadLetterTargetArn"].endswith(settings.gpu_dead_letter_queue)


def test_job_table_shape(settings):
    aws = AwsClients(settings)
    Provisioner(aws, settings).run()
    table = aws.dynamodb.describe_table(TableName=settings.job_table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "task_id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in table["GlobalSecondaryIndexes"]}
    assert indexes == {STATUS_INDEX: ["status", "created_at"], OWNER_INDEX: ["owner", "created_at"]}
    ttl = aws.dynamodb.describe_time_to_live(TableName=settings.job_table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at" and ttl["TimeToLiveStatus"] == "ENABLED"


def test_changed_visibility_is_corrected_and_reported(settings):
    import dataclasses

    aws = AwsClients(settings)
    Provisioner(aws, settings).run()
    longer = dataclasses.replace(settings, visibility_timeout=900)
    changes = Provisioner(AwsClients(longer), longer).run()
    updated = [c for c in changes if c.action == "updated"]
    assert [c.resource for c in updated] == [f"sqs queue {settings.gpu_dead_letter_queue}",
                                             f"sqs queue {settings.gpu_queue}", f"sqs queue {settings.gpu_low_queue}"]
    assert "VisibilityTimeout=900" in updated[1].detail and "VisibilityTimeout=900" in updated[2].detail


def test_drift_compares_redrive_policy_as_json(settings):
    wanted = queue_attributes(settings, dlq_arn="arn:aws:sqs:us-east-1:1:dlq", visibility=300)
    actual = dict(wanted, RedrivePolicy='{"maxReceiveCount":3,"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:dlq"}')
    assert attribute_drift(wanted, actual) == {}
    assert attribute_drift(wanted, dict(actual, VisibilityTimeout="30")) == {"VisibilityTimeout": "300"}


def test_key_table_shape(settings):
    aws = AwsClients(settings)
    Provisioner(aws, settings).run()
    table = aws.dynamodb.describe_table(TableName=settings.key_table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "key_id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_a_job_table_without_the_owner_index_gets_it(settings):
    """A deployment provisioned before jobs had owners: the index is added, once, and the rest is kept."""
    aws = AwsClients(settings)
    aws.dynamodb.create_table(
        TableName=settings.job_table,
        KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("task_id", "status", "created_at")],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[{
            "IndexName": STATUS_INDEX,
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}, {"AttributeName": "created_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    )
    changes = {c.resource: c for c in Provisioner(aws, settings).run()}
    change = changes[f"dynamodb table {settings.job_table}"]
    assert change.action == "updated" and f"index {OWNER_INDEX}" in change.detail
    table = aws.dynamodb.describe_table(TableName=settings.job_table)["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {STATUS_INDEX, OWNER_INDEX}
    again = {c.resource: c for c in Provisioner(aws, settings).run()}
    assert again[f"dynamodb table {settings.job_table}"].action == "unchanged"


def test_refusals_of_an_earlier_release_are_moved_to_their_instance_keys_and_still_hold(settings):
    """Before heartbeats and refusals were keyed by instance ARN, every refusal was under pk "refusal": provision
    moves each to its instance's key, whatever it held, and keeps a newer one already there."""
    aws = AwsClients(settings)
    Provisioner(aws, settings).run()
    store = RefusalStore(aws.dynamodb, settings.control_table, instance_arn=aws.instance_arn)
    earlier = {"pk": LEGACY_PK, "at": "2026-11-27T12:00:00+00:00", "reasons": ["no vae"], "fingerprint": "f" * 64,
               "source": "worker", "checked": {"settings": "s1"}, "held_against": "conf-1"}
    for instance_id in ("i-0aaa", "i-0bbb"):
        aws.dynamodb.put_item(TableName=settings.control_table, Item=encode_item({**earlier, "sk": instance_id}))
    newer = Refusal("i-0bbb", datetime(2026, 11, 28, tzinfo=timezone.utc), ("no lora",), "e" * 64)
    store.record(newer)  # its worker refused again under this release

    changes = {c.resource: c for c in Provisioner(aws, settings).run()}

    change = changes[f"dynamodb table {settings.control_table}"]
    assert (change.action, change.detail) == ("updated", "1 refusal(s) moved to their instance's key")
    moved, kept = store.all()
    assert moved.refusal == Refusal("i-0aaa", datetime(2026, 11, 27, 12, tzinfo=timezone.utc), ("no vae",), "f" * 64,
                                    held_against="conf-1")
    assert moved.checked == {"settings": "s1"} and kept.refusal == newer
    legacy = aws.dynamodb.query(TableName=settings.control_table, KeyConditionExpression="pk = :pk",
                                ExpressionAttributeValues=encode_item({":pk": LEGACY_PK}))["Items"]
    assert legacy == []
    again = {c.resource: c for c in Provisioner(aws, settings).run()}
    assert again[f"dynamodb table {settings.control_table}"].action == "unchanged"


def test_a_control_table_of_an_earlier_release_gets_the_index_of_heartbeats_and_refusals(settings):
    aws = AwsClients(settings)
    aws.dynamodb.create_table(
        TableName=settings.control_table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk")],
    )
    change = {c.resource: c for c in Provisioner(aws, settings).run()}[f"dynamodb table {settings.control_table}"]
    assert change.action == "updated" and f"index {INSTANCE_ITEMS_INDEX}" in change.detail
    [index] = aws.dynamodb.describe_table(TableName=settings.control_table)["Table"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == INSTANCE_ITEMS_INDEX
    assert [k["AttributeName"] for k in index["KeySchema"]] == [INSTANCE_ITEM, "sk"]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}  # the items are read from the table
