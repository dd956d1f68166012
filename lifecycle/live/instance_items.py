"""The control table's items a GPU instance writes about itself (its heartbeat, its refusal), keyed so that IAM lets
each instance write only its own, and found by their readers through a sparse index.

DynamoDB's IAM conditions see an item's partition key alone (`dynamodb:LeadingKeys`), and a request signed with an
instance role's credentials carries the instance's ARN (`${ec2:SourceInstanceARN}`). So each such item is keyed
pk = "<kind>#<instance ARN>", sk = <instance id>, and the GPU role may write only the partitions named by its own
ARN (configs/deploy/iam/gpu-instance-policy.json). Each item also carries INSTANCE_ITEM = <kind>, which no other
item of the table has: the index on it lists exactly these items, never the run log, which grows. The index keeps
keys only; the items themselves are read from the table with strongly consistent reads, as the lifecycle's
decisions read them.
"""

from __future__ import annotations

import time
from typing import Iterator

from gpuorch.aws.dynamodb import all_items, encode_item
from gpuorch.aws.ec2 import instance_id_of
from gpuorch.errors import Unavailable

HEARTBEAT = "heartbeat"
REFUSAL = "refusal"
# The attribute that marks an instance's item, and the sparse index on it (sk, the instance id, as its range key).
INSTANCE_ITEM = "instance_item"
INSTANCE_ITEMS_INDEX = "instance_item-sk-index"
# BatchGetItem's most keys per call.
BATCH_GET_LIMIT = 100
# Keys BatchGetItem leaves unprocessed (throttling) are asked again this many times, backing off, before it fails.
UNPROCESSED_ATTEMPTS = 6


class UnreadItems(Unavailable):
    """DynamoDB kept leaving some items unread."""


def item_key(kind: str, instance_arn: str) -> dict[str, str]:
    """The key of the instance's item of this kind: its ARN in the partition key, which IAM conditions see."""
    return {"pk": f"{kind}#{instance_arn}", "sk": instance_id_of(instance_arn)}


def item_keys(dynamodb, table: str, kind: str) -> Iterator[dict]:
    """The keys of every instance's item of this kind, from the index."""
    for item in all_items(dynamodb, "query", TableName=table, IndexName=INSTANCE_ITEMS_INDEX,
                          KeyConditionExpression="#item = :kind", ExpressionAttributeNames={"#item": INSTANCE_ITEM},
                          ExpressionAttributeValues=encode_item({":kind": kind})):
        yield {"pk": item["pk"], "sk": item["sk"]}


def read_items(dynamodb, table: str, kind: str, *, sleep=time.sleep) -> list[dict]:
    """Every instance's item of this kind, as stored (attribute values), read consistently from the table; an item
    deleted since the index listed it is left out."""
    keys = list(item_keys(dynamodb, table, kind))
    found: list[dict] = []
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        found += _batch_get(dynamodb, table, keys[start:start + BATCH_GET_LIMIT], sleep)
    return found


def _batch_get(dynamodb, table: str, keys: list[dict], sleep) -> list[dict]:
    found: list[dict] = []
    wanted = {table: {"Keys": keys, "ConsistentRead": True}}
    for attempt in range(UNPROCESSED_ATTEMPTS):
        answer = dynamodb.batch_get_item(RequestItems=wanted)
        found += answer["Responses"].get(table, [])
        wanted = answer.get("UnprocessedKeys") or {}
        if not wanted:
            return found
        sleep(min(1.0, 0.05 * 2 ** attempt))  # as AWS advises for unprocessed keys: back off, then ask again
    raise UnreadItems(f"DynamoDB left {len(wanted[table]['Keys'])} items of {table} unread "
                      f"after {UNPROCESSED_ATTEMPTS} attempts")
