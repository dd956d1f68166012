"""The one DynamoDB attribute-value codec: the format every store wrote by hand, and back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gpuorch.aws.dynamodb import decode, decode_item, encode, encode_item

# (Python value, the attribute value the stores wrote for it by hand before the codec)
WIRE = [
    ("queued", {"S": "queued"}),
    ("", {"S": ""}),
    (3, {"N": "3"}),
    (1700000000, {"N": "1700000000"}),
    (1.861, {"N": "1.861"}),  # a price: repr(float(price))
    (2.0, {"N": "2.0"}),
    (Decimal("1767225600.125"), {"N": "1767225600.125"}),  # the lease's epoch, to the millisecond
    (True, {"BOOL": True}),
    (None, {"NULL": True}),
    (["job-1", "job-2"], {"L": [{"S": "job-1"}, {"S": "job-2"}]}),
    ((), {"L": []}),
    ({"seed": 7, "scale": 0.5, "tags": ["a"]}, {"M": {"seed": {"N": "7"}, "scale": {"N": "0.5"},
                                                      "tags": {"L": [{"S": "a"}]}}}),
]


@pytest.mark.parametrize("value, wire", WIRE)
def test_values_are_written_as_the_stores_wrote_them(value, wire):
    assert encode(value) == wire


@pytest.mark.parametrize("wire, value", [
    ({"S": "queued"}, "queued"),
    ({"N": "3"}, 3),
    ({"N": "1.861"}, 1.861),
    ({"N": "2.0"}, 2),  # a whole number reads as an int, however it was written
    ({"BOOL": False}, False),
    ({"NULL": True}, None),
    ({"L": [{"S": "job-1"}]}, ["job-1"]),
    ({"M": {"scale": {"N": "0.5"}, "seed": {"N": "7"}}}, {"scale": 0.5, "seed": 7}),
])
def test_numbers_come_back_as_ints_and_floats(wire, value):
    decoded = decode(wire)
    assert decoded == value and type(decoded) is type(value)


def test_an_item_survives_the_table(provisioned, settings):
    """Written and read through the moto server: what a store puts is what it gets back."""
    db = provisioned.aws.dynamodb
    item = {"pk": "codec", "sk": "round-trip", "price": 2.24, "count": 3, "ready": True, "jobs": ["a", "b"],
            "params": {"seed": 7, "scale": 0.25, "note": None}}
    db.put_item(TableName=settings.control_table, Item=encode_item(item))
    stored = db.get_item(TableName=settings.control_table, Key=encode_item({"pk": "codec", "sk": "round-trip"}),
                         ConsistentRead=True)["Item"]
    assert decode_item(stored) == item
