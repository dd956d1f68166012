"""What the lifecycle knows of the markets: current spot prices (EC2's DescribeSpotPriceHistory, cached briefly), and
in the control table each spot instance's latest setback (refused, interrupted) and the last start and fallback."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from gpuorch.aws.dynamodb import all_items, decode_item, encode_item
from gpuorch.aws.failures import condition_failed
from gpuorch.clock import timestamp, utc_now
from lifecycle.live.pool import PoolInstance
from lifecycle.model import SPOT, SpotSetback

log = logging.getLogger(__name__)

# EC2 moves spot prices gradually, with long-term supply and demand: a check every 30 s reads a type's price in
# a zone at most once in five minutes.
SPOT_PRICE_CACHE_S = 300.0
# The GPU instances run Linux; EC2 lists the spot prices of instances in a VPC under either description.
PRODUCT_DESCRIPTIONS = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")

MARKET_PK = "spot-market"
SETBACK_PREFIX = "setback#"
LAST_START = "last-start"
LAST_FALLBACK = "last-fallback"


class SpotPrices:
    """The current spot price of an instance type in a zone, read from EC2 at most once per `cache_s`."""

    def __init__(self, ec2_client, *, cache_s: float = SPOT_PRICE_CACHE_S,
                 clock: Callable[[], datetime] = utc_now):
        self._ec2, self._cache_s, self._clock = ec2_client, cache_s, clock
        self._cache: dict[tuple[str, str], tuple[datetime, float]] = {}
        self._lock = threading.Lock()

    def current(self, instance_type: str, zone: str) -> float | None:
        """$/h now; None when EC2 does not say (an error is logged: the check then prefers on-demand)."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get((instance_type, zone))
        if cached is not None and (now - cached[0]).total_seconds() < self._cache_s:
            return cached[1]
        try:
            # With StartTime and EndTime both now, EC2 answers the price in effect now (its last change before).
            answer = self._ec2.describe_spot_price_history(
                InstanceTypes=[instance_type], ProductDescriptions=list(PRODUCT_DESCRIPTIONS),
                Filters=[{"Name": "availability-zone", "Values": [zone]}], StartTime=now, EndTime=now,
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning("spot price of %s in %s not read: %s", instance_type, zone, exc)
            return None
        history = [h for h in answer.get("SpotPriceHistory", []) if h.get("AvailabilityZone") == zone]
        if not history:
            log.warning("EC2 lists no spot price of %s in %s", instance_type, zone)
            return None
        price = float(max(history, key=lambda h: h["Timestamp"])["SpotPrice"])
        with self._lock:
            self._cache[(instance_type, zone)] = (now, price)
        return price

    def of(self, instances: Iterable[PoolInstance]) -> dict[str, float]:
        """The current price of each spot instance whose zone is known, by instance id."""
        prices = {}
        for instance in instances:
            if instance.market == SPOT and instance.zone:
                price = self.current(instance.instance_type, instance.zone)
                if price is not None:
                    prices[instance.instance_id] = price
        return prices


@dataclass(frozen=True)
class MarketRecord:
    """What the control table remembers: each spot instance's latest setback, the last start the lifecycle made
    and its last fallback to on-demand (each as the API shows it)."""

    setbacks: Mapping[str, SpotSetback] = field(default_factory=dict)
    last_start: dict[str, Any] | None = None
    last_fallback: dict[str, Any] | None = None

    def view(self) -> dict[str, Any]:
        """For the lifecycle status and /health."""
        return {"last_start": self.last_start, "last_fallback": self.last_fallback}


class MarketMemory:
    """One partition of the control table (pk="spot-market"): a setback item per spot instance, the last start
    and the last fallback; read in one query per check, so a setback holds across checks and processes."""

    def __init__(self, dynamodb_client, table: str):
        self._db, self._table = dynamodb_client, table

    def read(self) -> MarketRecord:
        items = list(map(decode_item, all_items(
            self._db, "query", TableName=self._table, KeyConditionExpression="pk = :pk", ConsistentRead=True,
            ExpressionAttributeValues=encode_item({":pk": MARKET_PK}))))
        setbacks, last = {}, {}
        for item in items:
            key = item.pop("sk")
            item.pop("pk")
            if key.startswith(SETBACK_PREFIX):
                setbacks[key.removeprefix(SETBACK_PREFIX)] = SpotSetback(
                    item["kind"], datetime.fromisoformat(item["at"]), item.get("reason", ""))
            else:
                last[key] = item
        return MarketRecord(setbacks, last.get(LAST_START), last.get(LAST_FALLBACK))

    def record_setback(self, instance_id: str, setback: SpotSetback) -> bool:
        """Keep `setback` as the instance's latest; False when a later one is stored (or this one already is)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item=encode_item({"pk": MARKET_PK, "sk": SETBACK_PREFIX + instance_id, "kind": setback.kind,
                                  "at": timestamp(setback.at), "reason": setback.reason}),
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues=encode_item({":at": timestamp(setback.at)}),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        log.info("spot %s of %s at %s: %s", setback.kind, instance_id, timestamp(setback.at), setback.reason)
        return True

    def record_start(self, instance_id: str, market: str, at: datetime) -> dict[str, Any]:
        return self._put(LAST_START, {"instance_id": instance_id, "market": market, "at": timestamp(at)})

    def record_fallback(self, instance_id: str, instead_of: str, reason: str, detail: str,
                        at: datetime) -> dict[str, Any]:
        """An on-demand start in place of the spot instance `instead_of`, and why (a FALLBACK_REASONS label)."""
        return self._put(LAST_FALLBACK, {"instance_id": instance_id, "instead_of": instead_of, "reason": reason,
                                         "detail": detail, "at": timestamp(at)})

    def _put(self, key: str, values: dict[str, Any]) -> dict[str, Any]:
        self._db.put_item(TableName=self._table, Item=encode_item({"pk": MARKET_PK, "sk": key, **values}))
        return values
