"""Why a GPU instance cannot serve, in the control table: its worker's refusal to start, or the lifecycle's finding
that it never became ready; and the fingerprints that tell whether the configuration changed since.

One item per instance, keyed by its ARN (lifecycle.live.instance_items). The GPU worker puts its own before it
exits (its role may put no other); the lifecycle puts one for an instance not ready within its boot grace, marks
the configuration it held the instance against, and deletes an item a later heartbeat superseded; an operator's
start (`gpuorch gpu start`, POST /api/v1/gpu/{id}/start) deletes it. No expiry: a hold lasts until one of those.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from botocore.exceptions import ClientError

import gpuorch
from gpuorch.aws.dynamodb import decode_item, encode_item
from gpuorch.aws.failures import condition_failed
from gpuorch.clock import timestamp
from gpuorch.settings import Settings
from gpuorch.workflows import Workflow
from lifecycle.live.instance_items import INSTANCE_ITEM, REFUSAL, item_key, read_items
from lifecycle.model import Refusal

log = logging.getLogger(__name__)

# Where releases before the items were keyed by instance ARN kept every refusal (sk: the instance id).
LEGACY_PK = "refusal"
# The settings the GPU worker's start-up checks read: a change to any of them may turn a refusal into a pass.
CHECKED_SETTINGS = (
    "task_time_limit", "visibility_timeout", "warmup_workflow", "diffusion_model", "text_encoder", "vae",
    "lightning_4step_lora", "lightning_8step_lora", "camera_lora",
)


def digest(value: Any) -> str:
    """SHA-256 of a JSON value written canonically (sorted keys, no spaces), as hex."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def workflow_digest(workflow: Workflow) -> str:
    """What identifies a workflow: every file of its folder (graph, parameters, declared model files), else its
    template and description when it was not loaded from a folder."""
    if workflow.folder is None:
        return digest({"graph": workflow.graph, "description": workflow.description})
    folder = Path(workflow.folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith((".", "__")) for part in p.relative_to(folder).parts))
    hashed = hashlib.sha256()
    for path in files:
        hashed.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        hashed.update(hashlib.sha256(path.read_bytes()).digest())
    return hashed.hexdigest()


def configuration_parts(settings: Settings, workflows: Iterable[Workflow]) -> dict[str, str]:
    """What a GPU worker's checks depend on that every host shares (one settings file, one release): the release,
    the settings the checks read, and the workflows' identity. The worker adds what only it sees (ComfyUI's
    catalogue)."""
    return {
        "gpuorch": gpuorch.__version__,
        "settings": digest({name: getattr(settings, name) for name in CHECKED_SETTINGS}),
        "workflows": digest({w.name: workflow_digest(w) for w in workflows}),
    }


def fingerprint(parts: Mapping[str, str]) -> str:
    return digest(dict(parts))


@dataclass(frozen=True)
class StoredRefusal:
    """A refusal as stored: the decision's view of it, and the parts its fingerprint was made of."""

    refusal: Refusal
    checked: Mapping[str, str]


class RefusalStore:
    """The refusals in the control table, one item per instance; `instance_arn` gives an instance's ARN from its id,
    as IAM names it (gpuorch.aws.clients.AwsClients.instance_arn)."""

    def __init__(self, dynamodb_client, table: str, *, instance_arn: Callable[[str], str]):
        self._db, self._table = dynamodb_client, table
        self._instance_arn = instance_arn

    def record(self, refusal: Refusal, checked: Mapping[str, str] | None = None) -> None:
        """Put the instance's refusal, replacing any earlier one (a new refusal is held anew)."""
        item = {
            **item_key(REFUSAL, self._instance_arn(refusal.instance_id)), INSTANCE_ITEM: REFUSAL,
            "at": timestamp(refusal.at), "reasons": list(refusal.reasons), "fingerprint": refusal.fingerprint,
            "source": refusal.source, "checked": dict(checked or {}),
        }
        if refusal.held_against is not None:
            item["held_against"] = refusal.held_against
        self._db.put_item(TableName=self._table, Item=encode_item(item))

    def all(self) -> tuple[StoredRefusal, ...]:
        """Every refusal, by instance id."""
        found = [_stored(decode_item(item)) for item in read_items(self._db, self._table, REFUSAL)]
        return tuple(sorted(found, key=lambda s: s.refusal.instance_id))

    def refusals(self) -> tuple[Refusal, ...]:
        """The refusals alone, as `Snapshot.refusals` takes them."""
        return tuple(stored.refusal for stored in self.all())

    def hold(self, refusal: Refusal) -> bool:
        """Store the configuration the refusal is now held against (its `held_against`); False when the item
        changed meanwhile (a newer refusal, or released), which the next check judges afresh."""
        return self._if_unchanged(refusal, self._db.update_item, UpdateExpression="SET held_against = :held",
                                  values={":held": refusal.held_against})

    def clear(self, refusal: Refusal) -> bool:
        """Delete this refusal, and not a newer one of the same instance; False when it was not there."""
        return self._if_unchanged(refusal, self._db.delete_item)

    def release(self, instance_id: str) -> Refusal | None:
        """An operator's start: delete the instance's refusal, whatever it is; the one deleted, if there was one."""
        answer = self._db.delete_item(TableName=self._table, Key=self._key(instance_id), ReturnValues="ALL_OLD")
        old = answer.get("Attributes")
        return _stored(decode_item(old)).refusal if old else None

    def _key(self, instance_id: str) -> dict:
        return encode_item(item_key(REFUSAL, self._instance_arn(instance_id)))

    def _if_unchanged(self, refusal: Refusal, write, *, values: Mapping[str, Any] | None = None, **request) -> bool:
        """Make `write` on the refusal's item only while it still holds this refusal (the same `at`)."""
        try:
            write(TableName=self._table, Key=self._key(refusal.instance_id), ConditionExpression="#at = :at",
                  ExpressionAttributeNames={"#at": "at"},
                  ExpressionAttributeValues=encode_item({":at": timestamp(refusal.at), **(values or {})}), **request)
        except ClientError as exc:
            if condition_failed(exc):
                log.info("the refusal of %s at %s changed meanwhile", refusal.instance_id, timestamp(refusal.at))
                return False
            raise
        return True


def _stored(item: Mapping[str, Any]) -> StoredRefusal:
    refusal = Refusal(
        instance_id=item["sk"],
        at=datetime.fromisoformat(item["at"]),
        reasons=tuple(item.get("reasons", ())),
        fingerprint=item.get("fingerprint", ""),
        source=item.get("source", "worker"),
        held_against=item.get("held_against"),
    )
    return StoredRefusal(refusal, item.get("checked", {}))


def migrate_legacy_refusals(dynamodb, table: str, instance_arn: Callable[[str], str]) -> int:
    """Move the refusals an earlier release kept under LEGACY_PK to their instances' keys, so that they still hold
    their instances; one already there is newer (written since the upgrade) and is kept. How many moved."""
    moved = 0
    query = {"TableName": table, "KeyConditionExpression": "pk = :pk",
             "ExpressionAttributeValues": encode_item({":pk": LEGACY_PK}), "ConsistentRead": True}
    while True:
        page = dynamodb.query(**query)
        for item in page["Items"]:
            instance_id = decode_item(item)["sk"]
            moved_item = {**item, **encode_item({**item_key(REFUSAL, instance_arn(instance_id)),
                                                 INSTANCE_ITEM: REFUSAL})}
            try:
                dynamodb.put_item(TableName=table, Item=moved_item, ConditionExpression="attribute_not_exists(pk)")
                moved += 1
            except ClientError as exc:
                if not condition_failed(exc):
                    raise
                log.info("the refusal of %s has a newer one under its new key: the earlier is dropped", instance_id)
            dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
        if "LastEvaluatedKey" not in page:
            return moved
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
