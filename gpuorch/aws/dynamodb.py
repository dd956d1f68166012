"""DynamoDB's attribute-value format for every store, through boto3's serializers; every item of a query or scan.

Python values go in and come out: a float is stored as the number it prints as (boto3 refuses floats, which
may not survive the trip as written), and a number comes back as an int when it is whole, else a float.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def encode(value: Any) -> dict[str, Any]:
    """One value as an attribute value: {"S": ...}, {"N": ...}, {"M": ...}, ..."""
    return _serializer.serialize(_decimals(value))


def decode(attribute: Mapping[str, Any]) -> Any:
    """One attribute value as a Python value."""
    return _plain(_deserializer.deserialize(attribute))


def encode_item(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """An item, a key, or expression attribute values ({":name": value}), each value encoded."""
    return {name: encode(value) for name, value in values.items()}


def decode_item(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {name: decode(attribute) for name, attribute in item.items()}


def all_pages(client, operation: str, **request: Any) -> Iterator[dict[str, Any]]:
    """Every page of a DynamoDB `operation` ("query" or "scan") for `request`, each asked for when needed. Each is
    the client's own call (not a paginator's), so that what wraps the client sees every one."""
    while True:
        page = getattr(client, operation)(**request)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def all_items(client, operation: str, **request: Any) -> Iterator[dict[str, Any]]:
    """Every item of every page of a DynamoDB `operation` (all_pages), as stored."""
    for page in all_pages(client, operation, **request):
        yield from page.get("Items", [])


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_decimals(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
