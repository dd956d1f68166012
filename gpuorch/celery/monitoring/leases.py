"""Leases on per-process SQS queues: SQS never expires a queue, so a dead owner's queue is swept by the next one."""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Mapping

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

# The queue tag holding the epoch second after which a per-process queue may be deleted by anyone.
LEASE_TAG = "gpuorch:lease-expires"

# An owner renews its leases at most this often, while it polls; a lease lasts five renewals, so a slow poll
# or a throttled call never costs a live process its queue.
RENEW_S = 60.0
LEASE_S = 5 * RENEW_S

# SQS's shortest retention: a queue left behind holds at most a minute of broadcasts until it is swept.
RETENTION_S = 60

_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def lease_tags(now: float) -> dict[str, str]:
    return {LEASE_TAG: str(int(now + LEASE_S))}


def lease_expiry(tags: Mapping[str, str]) -> float | None:
    """When a queue's lease runs out, if it carries a readable one."""
    try:
        return float(tags[LEASE_TAG])
    except (KeyError, ValueError):
        return None


def expired(tags: Mapping[str, str], created_at: float, now: float) -> bool:
    """Whether a per-process queue's owner stopped renewing it; a queue without a readable lease counts from
    its creation, so one made by a process that died before tagging it still goes."""
    expires_at = lease_expiry(tags)
    return now >= (created_at + LEASE_S if expires_at is None else expires_at)


def is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _MISSING


def queue_urls(sqs, prefix: str) -> list[str]:
    urls: list[str] = []
    for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=prefix, PaginationConfig={"PageSize": 1000}):
        urls.extend(page.get("QueueUrls", []))
    return urls


def sweep(sqs, prefixes: Iterable[str], keep: Callable[[str], bool], now: float) -> list[str]:
    """Delete the queues named with one of `prefixes` whose lease has run out, except those `keep` names
    (this process's own); the deleted URLs. A queue another process deletes meanwhile is skipped."""
    deleted: list[str] = []
    for prefix in prefixes:
        for url in queue_urls(sqs, prefix):
            if keep(url):
                continue
            try:
                tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
                created_at = now if lease_expiry(tags) is not None else _created_at(sqs, url)
                if not expired(tags, created_at, now):
                    continue
                sqs.delete_queue(QueueUrl=url)
            except ClientError as exc:
                if not is_missing(exc):
                    raise
                continue
            log.info("deleted %s: its owner stopped renewing its lease (%s)", url, LEASE_TAG)
            deleted.append(url)
    return deleted


def _created_at(sqs, url: str) -> float:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["CreatedTimestamp"])["Attributes"]
    return float(attributes["CreatedTimestamp"])
