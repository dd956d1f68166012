"""Each API key's webhook secret: made at random, shown once, kept where only the deliverer reads it.

A secret reads ``whsec_<base64 of 32 random bytes>``, as Standard Webhooks libraries take it. It signs, so the
deliverer needs it itself, not a hash: it is kept in the control table (pk "webhook-secret", sk the key id), which
DynamoDB encrypts at rest, and which the IAM policies let only the control worker read and only `gpuorch keys`
write (configs/deploy/iam/). The API never reads it; nothing lists or logs it.
"""

from __future__ import annotations

import base64
import secrets as random

from gpuorch.aws.dynamodb import decode_item, encode_item

PREFIX = "whsec_"
SECRET_PK = "webhook-secret"


def new_secret() -> str:
    return PREFIX + base64.b64encode(random.token_bytes(32)).decode("ascii")


class SecretStore:
    """The webhook secrets in the control table, by API key id."""

    def __init__(self, dynamodb_client, table: str):
        self._db, self._table = dynamodb_client, table

    def _key(self, key_id: str) -> dict:
        return encode_item({"pk": SECRET_PK, "sk": key_id})

    def put(self, key_id: str, secret: str) -> None:
        """Keep `secret` as the key's, replacing its earlier one (a rotation: receivers must take the new one)."""
        self._db.put_item(TableName=self._table, Item=encode_item({"pk": SECRET_PK, "sk": key_id, "secret": secret}))

    def get(self, key_id: str) -> str | None:
        item = self._db.get_item(TableName=self._table, Key=self._key(key_id), ConsistentRead=True).get("Item")
        return decode_item(item)["secret"] if item else None
