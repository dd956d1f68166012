"""kombu's SQS transport made to carry Celery's events and remote control, through SNS topics."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError
from kombu.exceptions import ChannelError
from kombu.transport import SQS
from kombu.transport.SQS.exceptions import DoesNotExistQueueException
from kombu.utils.json import dumps
from kombu.utils.objects import cached_property

from gpuorch.celery import sqs_transport
from gpuorch.celery.monitoring import leases
from gpuorch.celery.monitoring.background import BackgroundPublisher
from gpuorch.celery.monitoring.names import NAMESPACE_OPTION, BroadcastNames, reply_queue_name

log = logging.getLogger(__name__)

# Broadcast queues are consumed without acknowledgement: a message is hidden only between its receipt and
# its deletion, so the GPU queue's long visibility timeout has no business here.
BROADCAST_VISIBILITY_S = 30

# A reply queue is read with a short long-poll, so an inspect's timeout holds instead of stretching to the
# transport's wait of up to 20 s.
REPLY_WAIT_S = 1

# Sweeping lists queues: once per process per renewal period bounds what dead processes leave.
SWEEP_INTERVAL_S = leases.RENEW_S

# A worker's events go out from one thread that must not fall behind, a remote-control command from its caller, who
# waits: an SNS call that hangs must give up in seconds, not after botocore's default of 60 s per attempt (an event
# lost is only an event).
SNS_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 2})

# A closing channel waits this long for its queued events (a worker's last ones: task-succeeded, worker-offline).
EVENTS_FLUSH_S = 5.0


class _Owners:
    """This process's channels holding broadcast queues, so its per-process ones go when it exits."""

    def __init__(self):
        self.channels: weakref.WeakSet[Channel] = weakref.WeakSet()
        self.exiting = False
        self.last_sweep = float("-inf")
        self.lock = threading.Lock()

    def sweep_due(self, now: float) -> bool:
        with self.lock:
            if now - self.last_sweep < SWEEP_INTERVAL_S:
                return False
            self.last_sweep = now
            return True

    def owned_urls(self) -> set[str]:
        return {url for channel in list(self.channels) for url in channel.owned_urls()}

    def release_all(self) -> None:
        self.exiting = True
        for channel in list(self.channels):
            channel.release_owned_queues()


_owners = _Owners()
atexit.register(_owners.release_all)


class Channel(sqs_transport.Channel):
    """An SQS channel whose Celery broadcasts reach every process.

    kombu 5.7 fans messages out on SQS through SNS (transport option `supports_fanout`), but that alone does not make
    Celery's monitoring work; this subclass adds what is missing:

    - Celery declares its events exchange as a topic exchange, whose bindings a virtual transport keeps in each
      process's memory: a worker never learns of Flower's queue. Here that exchange is a fanout, so events go to an
      SNS topic every receiver's queue is subscribed to.
    - The transport does not claim fanout, so a Celery worker leaves its remote-control (pidbox) consumer out.
    - A remote-control reply is routed by a binding only the caller holds. Here the worker finds the caller's reply
      queue by its name (gpuorch.celery.monitoring.remote_control), and drops the reply if the caller has given up and deleted it.
    - A consumer without kombu's event loop (Flower's event thread, `celery inspect`) fails on its first no-ack
      message: kombu deletes it with its asynchronous client, which needs that loop. Here it is deleted synchronously.
    - SQS has no auto-delete or expiring queues. A process deletes its own queues (event receivers', reply queues;
      gpuorch.celery.monitoring.names) when their channel closes or it exits. They carry a lease their owner renews while
      it polls, and the next process to declare one sweeps those whose lease ran out (their owner died), with their
      SNS subscriptions. A worker's pidbox queue is named after the worker and kept, so a restarted worker takes it
      up again: SQS refuses to re-create a queue deleted less than 60 s before, which would stop the worker.
    - Events are published from a thread of their own (gpuorch.celery.monitoring.background), a few per SNS call,
      not from the worker's event loop, which would otherwise hand each job to its pool only after an SNS round trip.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._events = BackgroundPublisher(self._publish_events, name="gpuorch-events")
        self._owned: dict[str, str] = {}  # broadcast queue declared on this channel -> its URL
        self._renewed_at = time.monotonic()
        self._pid = os.getpid()

    @cached_property
    def broadcast(self) -> BroadcastNames:
        return BroadcastNames(self.transport_options[NAMESPACE_OPTION])

    def owned_urls(self) -> list[str]:
        return list(self._owned.values())

    def _new_boto_client(self, service, region, access_key_id, secret_access_key, session_token=None, config=None):
        if service == "sns":
            config = SNS_CLIENT_CONFIG if config is None else SNS_CLIENT_CONFIG.merge(config)
        return super()._new_boto_client(service, region, access_key_id, secret_access_key, session_token, config)

    # Events: the topic exchange Celery asks for is a fanout, carried by an SNS topic.

    def exchange_declare(self, exchange=None, type="direct", *args, **kwargs):
        if exchange == self.broadcast.events_exchange:
            type = "fanout"
        return super().exchange_declare(exchange, type, *args, **kwargs)

    def typeof(self, exchange, default="direct"):
        if exchange == self.broadcast.events_exchange:
            return self.exchange_types["fanout"]
        return super().typeof(exchange, default)

    def _put_fanout(self, exchange, message, routing_key, **kwargs):
        if exchange != self.broadcast.events_exchange:
            return super()._put_fanout(exchange, message, routing_key, **kwargs)  # remote control: at once
        self._events.submit(message)
        return None

    def _publish_events(self, events: list[tuple[tuple, dict]]) -> None:
        """One SNS call for a batch of events (at most 10), each published as kombu's _put_fanout publishes one."""
        exchange = self.broadcast.events_exchange
        entries = []
        for i, ((message,), _) in enumerate(events):
            entry = {"Id": str(i), "Message": dumps(message)}
            attributes = self.fanout.serialise_message_attributes(
                message.get("properties", {}).get("message_attributes"))
            if attributes:
                entry["MessageAttributes"] = attributes
            entries.append(entry)
        answer = self.fanout.get_client(exchange).publish_batch(
            TopicArn=self.fanout._get_or_create_topic(exchange), PublishBatchRequestEntries=entries)
        if answer.get("Failed"):
            log.warning("%d of %d event(s) not published: %s", len(answer["Failed"]), len(entries),
                        answer["Failed"][0].get("Message") or answer["Failed"][0].get("Code"))

    # Remote-control replies: routed by the reply queue's name.

    def _lookup(self, exchange, routing_key, default=None):
        if exchange == self.broadcast.reply_exchange:
            return [reply_queue_name(exchange, routing_key)]
        return super()._lookup(exchange, routing_key, default)

    def _put(self, queue, message, **kwargs):
        if not self.broadcast.is_reply_queue(queue):
            return super()._put(queue, message, **kwargs)
        name = self.canonical_queue_name(queue)
        self._queue_cache.pop(name, None)  # listed when this channel opened: the caller may have deleted it since
        try:
            return super()._put(queue, message, **kwargs)
        except (DoesNotExistQueueException, ClientError) as exc:
            if isinstance(exc, ClientError) and not leases.is_missing(exc):
                raise
            log.debug("reply to %s dropped: the caller no longer waits for it", name)
            return None
        finally:
            self._queue_cache.pop(name, None)  # a reply queue serves one call: no cache entry per call

    def _receive_message(self, queue, max_number_of_messages=1, wait_time_seconds=None):
        if self.broadcast.is_reply_queue(queue):
            wait_time_seconds = REPLY_WAIT_S
        return super()._receive_message(queue, max_number_of_messages, wait_time_seconds)

    def _delete_message(self, queue_name, message):
        if self.hub is not None:
            return super()._delete_message(queue_name, message)
        # No event loop runs kombu's asynchronous client here: delete the no-ack message right away.
        self.sqs().delete_message(QueueUrl=self._new_queue(queue_name), ReceiptHandle=message["ReceiptHandle"])
        return None

    # Broadcast queues: declaring one creates it (or takes up a worker's kept one); using one never creates it.

    def queue_declare(self, queue=None, passive=False, **kwargs):
        if queue and not passive and self.broadcast.is_broadcast_queue(queue) and queue not in self._owned:
            self._declare_broadcast(queue)
        return super().queue_declare(queue, passive, **kwargs)

    def _new_queue(self, queue, **kwargs):
        if not self.broadcast.is_broadcast_queue(queue):
            return super()._new_queue(queue, **kwargs)
        if queue in self._owned:
            return self._owned[queue]
        # Not declared here (a worker replying to a caller): look it up, never create it, as a queue made
        # now would have no owner to delete it.
        name = self.canonical_queue_name(queue)
        if name not in self._queue_cache:
            url = self._queue_url(name)
            if url is None:
                raise DoesNotExistQueueException(f"queue {name} does not exist")
            self._queue_cache[name] = url
        return self._queue_cache[name]

    def _queue_url(self, name: str) -> str | None:
        # GetQueueUrl, not kombu's ListQueues: a queue created a moment ago may not be listed yet.
        try:
            return self.sqs().get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if leases.is_missing(exc):
                return None
            raise

    def _declare_broadcast(self, queue: str) -> None:
        name = self.canonical_queue_name(queue)
        per_process = self.broadcast.is_per_process(queue)
        # A worker's pidbox queue kept since its last run is taken up as it is (creating it again with other
        # attributes than it was made with would fail).
        url = None if per_process else self._queue_url(name)
        if url is None:
            if _owners.exiting:
                raise ChannelError(f"not creating {name}: the process is exiting")
            if per_process:
                self._sweep()
            attributes = {"VisibilityTimeout": str(BROADCAST_VISIBILITY_S),
                          "MessageRetentionPeriod": str(leases.RETENTION_S)}
            lease = {"tags": leases.lease_tags(time.time())} if per_process else {}
            url = self.sqs().create_queue(QueueName=name, Attributes=attributes, **lease)["QueueUrl"]
        self._queue_cache[name] = self._owned[queue] = url
        _owners.channels.add(self)

    def _delete(self, queue, exchange=None, *args, **kwargs):
        if queue in self._owned:
            return self._release(queue)
        return super()._delete(queue, exchange, *args, **kwargs)

    def after_reply_message_received(self, queue):
        # kombu deletes a reply queue once its call is over; done here without walking the bindings.
        self._release(queue)

    def close(self):
        if not self._events.flush(EVENTS_FLUSH_S):
            log.warning("closing with events not yet published after %.0f s", EVENTS_FLUSH_S)
        self.release_owned_queues()
        super().close()

    def release_owned_queues(self) -> None:
        """Delete this channel's per-process queues and their subscriptions, keep its pidbox queue (on close
        and at exit)."""
        if os.getpid() != self._pid:
            return  # a forked child holds a copy of its parent's channels, not their queues
        for queue in list(self._owned):
            try:
                self._release(queue)
            except Exception:  # noqa: BLE001 - the others must go too; the lease sweep deletes this one later
                log.warning("could not delete %s; a lease sweep will", queue, exc_info=True)

    def _release(self, queue: str) -> None:
        url = self._owned.pop(queue, None)
        name = self.canonical_queue_name(queue)
        self._queue_cache.pop(name, None)
        if url is None or not self.broadcast.is_per_process(queue):
            return
        if self.connection is not None:
            for binding in list(self.state.queue_bindings(queue)):
                if self._exchange_is_fanout(binding.exchange):
                    self.fanout.subscriptions.unsubscribe_queue(queue_name=queue, exchange_name=binding.exchange)
            self.state.queue_bindings_delete(queue)
        try:
            self.sqs().delete_queue(QueueUrl=url)
        except ClientError as exc:
            if not leases.is_missing(exc):
                raise
        log.debug("deleted %s", name)

    def _sweep(self) -> None:
        if not _owners.sweep_due(time.monotonic()):
            return
        prefixes = [self.canonical_queue_name(prefix) for prefix in self.broadcast.per_process_prefixes]
        try:
            if leases.sweep(self.sqs(), prefixes, _owners.owned_urls().__contains__, time.time()):
                for exchange in self.broadcast.fanout_exchanges:
                    self.fanout.subscriptions.cleanup(exchange)  # drops the deleted queues' subscriptions
        except ClientError:
            log.warning("sweeping broadcast queues whose lease ran out failed; the next sweep will", exc_info=True)

    def _renew_leases(self) -> None:
        now = time.monotonic()
        if not self._owned or now - self._renewed_at < leases.RENEW_S:
            return
        self._renewed_at = now
        tags = leases.lease_tags(time.time())
        for queue, url in [(q, u) for q, u in self._owned.items() if self.broadcast.is_per_process(q)]:
            try:
                self.sqs().tag_queue(QueueUrl=url, Tags=tags)
            except ClientError:
                log.warning("could not renew the lease of %s", queue, exc_info=True)

    def _get_bulk(self, queue, *args, **kwargs):
        self._renew_leases()
        return super()._get_bulk(queue, *args, **kwargs)

    def _get_async(self, queue, *args, **kwargs):
        self._renew_leases()
        return super()._get_async(queue, *args, **kwargs)


class Transport(sqs_transport.Transport):
    """The SQS transport declaring fanout (through SNS), so a Celery worker takes remote-control commands."""

    Channel = Channel

    implements = SQS.Transport.implements.extend(exchange_type=frozenset(["direct", "fanout"]))

    def __init__(self, client, **kwargs: Any):
        options = client.transport_options
        if not options.get("supports_fanout") or NAMESPACE_OPTION not in options:
            raise ValueError(f"{__name__}.Transport needs the transport options supports_fanout and {NAMESPACE_OPTION}")
        super().__init__(client, **kwargs)
