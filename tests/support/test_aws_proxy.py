"""The test support's fault-injecting AWS proxy, in front of the moto server, driven by real boto3 clients."""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from tests.support.aws_proxy import AwsProxy, Request, error_response

ONE_TRY = Config(retries={"mode": "standard", "total_max_attempts": 1})
RETRYING = Config(retries={"mode": "standard", "max_attempts": 5})


@pytest.fixture
def proxy(moto_endpoint):
    with AwsProxy(moto_endpoint) as running:
        yield running


def client(service: str, endpoint: str, config: Config = ONE_TRY):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", config=config)


@pytest.fixture
def table(proxy, moto_endpoint):
    name = f"proxy-{uuid.uuid4().hex[:8]}"
    client("dynamodb", moto_endpoint).create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
    )
    return name


def test_forwards_every_service_unchanged(proxy, moto_endpoint):
    bucket = f"proxy-{uuid.uuid4().hex[:8]}"
    s3 = client("s3", proxy.url)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/b.png", Body=b"\x89PNG" * 1000)
    assert client("s3", moto_endpoint).get_object(Bucket=bucket, Key="a/b.png")["Body"].read() == b"\x89PNG" * 1000
    sqs = client("sqs", proxy.url)
    url = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]] == ["hello"]
    assert proxy.forwarded >= 5 and proxy.refused == 0


def test_fails_matching_requests_n_times_then_forwards(proxy, table):
    db = client("dynamodb", proxy.url)
    rule = proxy.fail(target="PutItem", times=2, error="internal")
    for _ in range(2):
        with pytest.raises(ClientError) as failed:
            db.put_item(TableName=table, Item={"k": {"S": "1"}})
        assert failed.value.response["Error"]["Code"] == "InternalServerError"
        assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    db.get_item(TableName=table, Key={"k": {"S": "1"}})  # another operation is not matched
    db.put_item(TableName=table, Item={"k": {"S": "1"}})
    assert rule.matched == 2 and rule.exhausted


def test_botocore_retries_an_injected_throttle_and_succeeds(proxy, table):
    rule = proxy.fail(target="UpdateItem", times=3, error="throttle")
    client("dynamodb", proxy.url, RETRYING).update_item(
        TableName=table, Key={"k": {"S": "2"}}, UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"N": "1"}},
    )
    assert rule.matched == 3
    item = client("dynamodb", proxy.url).get_item(TableName=table, Key={"k": {"S": "2"}})["Item"]
    assert item["v"] == {"N": "1"}


def test_s3_errors_are_xml_and_match_on_path_and_method(proxy, moto_endpoint):
    bucket = f"proxy-{uuid.uuid4().hex[:8]}"
    client("s3", moto_endpoint).create_bucket(Bucket=bucket)
    s3 = client("s3", proxy.url)
    rule = proxy.fail(method="PUT", path=r"/results/", times=None, error="throttle")
    s3.put_object(Bucket=bucket, Key="inputs/x", Body=b"x")  # another path passes
    with pytest.raises(ClientError) as failed:
        s3.put_object(Bucket=bucket, Key="results/J/out.png", Body=b"x")
    assert failed.value.response["Error"]["Code"] == "SlowDown"
    proxy.clear()
    s3.put_object(Bucket=bucket, Key="results/J/out.png", Body=b"x")
    assert rule.matched == 1


def test_down_resets_every_connection_until_up(proxy, table):
    db = client("dynamodb", proxy.url)
    db.get_item(TableName=table, Key={"k": {"S": "3"}})  # a kept-alive connection, reset too
    proxy.down()
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        db.get_item(TableName=table, Key={"k": {"S": "3"}})
    assert proxy.refused == 1
    proxy.up()
    db.get_item(TableName=table, Key={"k": {"S": "3"}})


@pytest.mark.parametrize("headers,kind,status,code", [
    ({"x-amz-target": "DynamoDB_20120810.PutItem"}, "throttle", 400, "ThrottlingException"),
    ({"content-type": "application/x-amz-json-1.0"}, "internal", 500, "InternalServerError"),
    ({}, "throttle", 503, "SlowDown"),
    ({}, "internal", 500, "InternalError"),
])
def test_error_response_speaks_the_request_protocol(headers, kind, status, code):
    answer_status, _, body = error_response(kind, Request("POST", "/", headers, b""))
    assert answer_status == status and code.encode() in body


def test_unknown_error_kind_is_refused(proxy):
    with pytest.raises(ValueError):
        proxy.fail(error="teapot")


def test_a_lost_answer_still_reaches_moto(proxy, table, moto_endpoint):
    rule = proxy.fail(target="PutItem", times=1, error="lost")
    with pytest.raises(ConnectionClosedError):
        client("dynamodb", proxy.url).put_item(TableName=table, Item={"k": {"S": "4"}})
    assert rule.matched == 1
    assert "Item" in client("dynamodb", moto_endpoint).get_item(TableName=table, Key={"k": {"S": "4"}})
