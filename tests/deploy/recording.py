"""Reading a moto server's request recording as the IAM requests AWS would authorize.

Each process of the live test signs with its own access key id, so the recording says who made each call.
Every request becomes one or more `iam.Request`s (an action on a resource ARN, with the condition keys the
documents use: the DynamoDB leading key, the pool tag of an instance, and the instance whose role credentials a
key stands for: `ec2:SourceInstanceARN`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from tests.deploy.iam import Request, bucket_arn, instance_arn, object_arn, queue_arn, table_arn

CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
S3_SUBRESOURCES = {"lifecycle", "encryption", "publicAccessBlock", "delete", "tagging", "policy", "acl", "versioning",
                   "uploads", "uploadId", "location", "cors", "website", "notification", "ownershipControls"}


@dataclass
class Schema:
    """What the recording alone does not say: tables' key attributes, and instances' tags."""

    region: str
    account: str
    # table -> (hash key attribute, {index name: its hash key attribute})
    tables: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    instance_tags: dict[str, dict[str, str]] = field(default_factory=dict)
    # access key id -> the ARN of the instance whose role credentials it plays (IAM's ec2:SourceInstanceARN)
    source_instances: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    """One recorded HTTP request: who signed it, for which service, and the IAM requests it needs."""

    key: str
    service: str
    operation: str
    requests: tuple[Request, ...]


def _body(entry: Mapping[str, Any]) -> str:
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        return base64.b64decode(body).decode("utf-8", "replace")
    return body


def _signer(headers: Mapping[str, str], url: str) -> tuple[str, str] | None:
    match = CREDENTIAL.search(headers.get("authorization", ""))
    if match is None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        credential = (query.get("X-Amz-Credential") or [""])[0]
        parts = credential.split("/")
        if len(parts) == 5:
            return parts[0], parts[3]
        return None
    return match.group(1), match.group(3)


def _value(attribute: Mapping[str, Any]) -> str:
    (kind, value), = attribute.items()
    return str(value)


def _leading_from_query(request: Mapping[str, Any], hash_key: str) -> list[str]:
    expression = request.get("KeyConditionExpression", "")
    names = request.get("ExpressionAttributeNames", {})
    values = request.get("ExpressionAttributeValues", {})
    for name, placeholder in re.findall(r"(#?\w+)\s*=\s*(:\w+)", expression):
        if names.get(name, name) == hash_key and placeholder in values:
            return [_value(values[placeholder])]
    return []


def _dynamodb(operation: str, request: Mapping[str, Any], schema: Schema, origin: str) -> list[Request]:
    def one(action: str, item: Mapping[str, Any], item_operation: str) -> Request:
        table = item["TableName"]
        index = item.get("IndexName")
        hash_key, indexes = schema.tables.get(table, ("", {}))
        context: dict[str, Any] = {}
        if index:
            hash_key = indexes.get(index, "")
        if item_operation == "Query":
            context["dynamodb:LeadingKeys"] = _leading_from_query(item, hash_key)
        elif "Key" in item or "Item" in item:
            record = item.get("Key") or item.get("Item")
            if hash_key in record:
                context["dynamodb:LeadingKeys"] = [_value(record[hash_key])]
        return Request(action, table_arn(schema.region, schema.account, table, index), context, origin)

    if operation == "TransactWriteItems":
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
        return [one(f"dynamodb:{kinds[kind]}", body, kinds[kind])
                for item in request["TransactItems"] for kind, body in item.items()]
    if operation == "BatchGetItem":  # one authorization per table, for every key asked of it
        requests = []
        for table, wanted in request["RequestItems"].items():
            hash_key = schema.tables.get(table, ("", {}))[0]
            leading = [_value(key[hash_key]) for key in wanted["Keys"] if hash_key in key]
            requests.append(Request("dynamodb:BatchGetItem", table_arn(schema.region, schema.account, table),
                                    {"dynamodb:LeadingKeys": leading}, origin))
        return requests
    if "TableName" not in request:
        return [Request(f"dynamodb:{operation}", "*", {}, origin)]
    return [one(f"dynamodb:{operation}", request, operation)]


def _sqs(operation: str, request: Mapping[str, Any], path: str, schema: Schema, origin: str) -> list[Request]:
    action = f"sqs:{operation.replace('Batch', '')}"
    if operation == "ListQueues":
        return [Request(action, "*", {}, origin)]
    name = request.get("QueueName") or (request.get("QueueUrl") or path).rstrip("/").rsplit("/", 1)[-1]
    requests = [Request(action, queue_arn(schema.region, schema.account, name), {}, origin)]
    if operation == "CreateQueue" and (request.get("tags") or request.get("Tags")):
        requests.append(Request("sqs:TagQueue", queue_arn(schema.region, schema.account, name), {}, origin))
    return requests


def _sns(operation: str, request: Mapping[str, Any], schema: Schema, origin: str) -> list[Request]:
    action = f"sns:{operation.removesuffix('Batch')}"  # PublishBatch is authorized as sns:Publish
    if operation in {"ListTopics", "ListSubscriptions"}:
        return [Request(action, "*", {}, origin)]
    if operation == "CreateTopic":
        arn = f"arn:aws:sns:{schema.region}:{schema.account}:{request['Name']}"
        requests = [Request(action, arn, {}, origin)]
        if any(k.startswith("Tags.") for k in request):
            requests.append(Request("sns:TagResource", arn, {}, origin))
        return requests
    if operation == "Unsubscribe":
        arn = request["SubscriptionArn"].rsplit(":", 1)[0]  # authorized against the topic
        return [Request(action, arn, {}, origin)]
    return [Request(action, request.get("TopicArn", "*"), {}, origin)]


def _ec2(operation: str, request: Mapping[str, Any], schema: Schema, origin: str) -> list[Request]:
    action = f"ec2:{operation}"
    ids = [v for k, v in sorted(request.items()) if re.fullmatch(r"(InstanceId|ResourceId)(\.\d+)?", k)]
    if operation.startswith("Describe") or not ids:
        return [Request(action, "*", {}, origin)]
    requests = []
    for instance_id in ids:
        tags = schema.instance_tags.get(instance_id, {})
        context = {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
        requests.append(Request(action, instance_arn(schema.region, schema.account, instance_id), context, origin))
    return requests


def _s3(method: str, url: str, host: str, body: str, origin: str) -> tuple[str, list[Request]]:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    path = urllib.parse.unquote(parts.path).lstrip("/")
    hostname = host.split(":")[0]
    if re.fullmatch(r"[\d.]+|localhost", hostname):
        bucket, _, key = path.partition("/")
    else:
        bucket, key = hostname.split(".", 1)[0], path
    sub = sorted(set(query) & S3_SUBRESOURCES)
    if sub == ["delete"] and method == "POST":
        keys = [el.text or "" for el in ET.fromstring(body).iter() if el.tag.endswith("Key")]
        return "DeleteObjects", [Request("s3:DeleteObject", object_arn(bucket, k), {}, origin) for k in keys]
    names = {
        ("GET", "lifecycle"): "s3:GetLifecycleConfiguration", ("PUT", "lifecycle"): "s3:PutLifecycleConfiguration",
        ("PUT", "encryption"): "s3:PutEncryptionConfiguration",
        ("PUT", "publicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    }
    if sub:
        action = names.get((method, sub[0]), f"s3:?{method}?{sub[0]}")
        return action.split(":", 1)[1], [Request(action, bucket_arn(bucket), {}, origin)]
    if not key:
        action = {"HEAD": "s3:ListBucket", "GET": "s3:ListBucket", "PUT": "s3:CreateBucket"}.get(method, f"s3:?{method}")
        return action.split(":", 1)[1], [Request(action, bucket_arn(bucket), {}, origin)]
    action = {"GET": "s3:GetObject", "HEAD": "s3:GetObject", "PUT": "s3:PutObject", "DELETE": "s3:DeleteObject"}.get(
        method, f"s3:?{method}")
    return action.split(":", 1)[1], [Request(action, object_arn(bucket, key), {}, origin)]


def parse_entry(entry: Mapping[str, Any], schema: Schema) -> Recorded | None:
    """The IAM requests of one recorded request; None for a request nobody signed (moto's own API)."""
    recorded = _parse(entry, schema)
    if recorded is None or recorded.key not in schema.source_instances:
        return recorded
    source = {"ec2:SourceInstanceARN": schema.source_instances[recorded.key]}
    return dataclasses.replace(recorded, requests=tuple(
        dataclasses.replace(r, context={**r.context, **source}) for r in recorded.requests))


def _parse(entry: Mapping[str, Any], schema: Schema) -> Recorded | None:
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    url = entry["url"]
    signer = _signer(headers, url)
    if signer is None:
        return None
    key, service = signer
    body = _body(entry)
    path = urllib.parse.urlsplit(url).path
    target = headers.get("x-amz-target", "")
    if target:
        operation = target.rsplit(".", 1)[-1]
        request = json.loads(body or "{}")
    elif service != "s3":
        request = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}
        if body and "=" in body and not body.lstrip().startswith(("{", "<")):
            request.update({k: v[0] for k, v in urllib.parse.parse_qs(body, keep_blank_values=True).items()})
        operation = request.get("Action", "?")
    origin = f"{key}: {service} {target.rsplit('.', 1)[-1] if target else entry['method'] + ' ' + path}"
    if service == "dynamodb":
        return Recorded(key, service, operation, tuple(_dynamodb(operation, request, schema, origin)))
    if service == "sqs":
        return Recorded(key, service, operation, tuple(_sqs(operation, request, path, schema, origin)))
    if service == "sns":
        return Recorded(key, service, operation, tuple(_sns(operation, request, schema, origin)))
    if service == "ec2":
        return Recorded(key, service, operation, tuple(_ec2(operation, request, schema, origin)))
    if service == "s3":
        operation, requests = _s3(entry["method"], url, headers.get("host", ""), body, origin)
        return Recorded(key, service, operation, tuple(requests))
    if service == "sts" and operation == "GetCallerIdentity":
        return Recorded(key, service, operation, ())  # needs no permission
    return Recorded(key, service, operation, (Request(f"{service}:{operation}", "?", {}, origin),))


def read_recording(lines: Iterable[str], schema: Schema) -> list[Recorded]:
    recorded = []
    for line in lines:
        if line.strip():
            parsed = parse_entry(json.loads(line), schema)
            if parsed is not None:
                recorded.append(parsed)
    return recorded
