"""Every AWS call each gpuorch process makes, and which IAM policy document grants it.

Found with `grep -rn "\\.sqs\\.\\|\\.dynamodb\\.\\|\\.s3\\.\\|\\.ec2\\.\\|sns" gpuorch lifecycle workers webapp` (plus
the operations named as strings, like InstancePool's `_call("start_instances")`), and by reading the two
libraries that call AWS for us: kombu's SQS transport (ListQueues when a channel starts and to find a queue's
URL; SendMessage; GetQueueAttributes for a queue's depth when a publisher declares it, and for the redrive policy
before deleting a rejected message; ReceiveMessage; DeleteMessage on ack; ChangeMessageVisibility to give a
message back) with its SNS fanout, which gpuorch/celery/monitoring/transport.py uses for Celery's events and remote
control (topics, subscriptions, per-worker and per-process queues); and Celery's DynamoDB result backend
(DescribeTable and DescribeTimeToLive when its client starts; one conditional PutItem to store a state,
gpuorch/celery/results.py).
kombu calls neither GetQueueUrl nor CreateQueue on the job queues: `gpuorch provision` creates them first, and
kombu finds their URLs with ListQueues.

tests/deploy/test_iam_live.py checks the same against the calls the real processes make on a moto server.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tests.deploy.iam import Request, bucket_arn, instance_arn, object_arn, queue_arn, table_arn

# A month partition of the closed instance runs (lifecycle/live/runs.py: CLOSED_PK_PREFIX + "YYYY-MM").
SOME_MONTH = "run#2026-01"
# A key's rate-limit item (gpuorch/access/ratelimit.py: PARTITION + key id).
SOME_RATE = "rate#0123456789ab"
# An idempotency key's claim (gpuorch/jobs/idempotency.py: PARTITION + the SHA-256 of the owner and key).
# A batch's record (gpuorch/jobs/batch_store.py: PARTITION + its id).
SOME_BATCH = "batch#3f0a1c52-7a55-4b6a-9d59-0b6c1f3ad9e1"
SOME_CLAIM = "idem#9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
POOL_TAG = "gpuorch:pool"
# The GPU instance whose items the calls name (lifecycle/live/instance_items.py: "<kind>#<instance ARN>"), and the
# one the GPU role's calls come from: its role credentials carry its ARN (ec2:SourceInstanceARN).
GPU_INSTANCE = "i-0123456789abcdef0"
OWN = "{instance_arn}"


@dataclass(frozen=True)
class Call:
    """One AWS operation a process calls: `resource` is symbolic (see `resolve`), `where` is the code."""

    service: str
    operation: str
    resource: str
    where: str


# The role each policy document is for, and the documents attached to it (monitoring on, the default).
ROLE_DOCUMENTS: dict[str, tuple[str, ...]] = {
    "api": ("api-policy.json",),
    "control": ("control-policy.json", "control-monitoring-policy.json"),
    "control+fallback": ("control-policy.json", "control-monitoring-policy.json", "control-fallback-types-policy.json"),
    "gpu": ("gpu-instance-policy.json", "gpu-monitoring-policy.json"),
    "gpu+inputs": ("gpu-instance-policy.json", "gpu-monitoring-policy.json", "gpu-input-buckets-policy.json"),
    "gpu+models": ("gpu-instance-policy.json", "gpu-monitoring-policy.json", "gpu-models-policy.json"),
    "client": ("client-policy.json",),
    "flower": ("flower-policy.json",),
    "provision": ("provision-policy.json",),
}

KOMBU_START = "kombu SQS channel start and queue URL lookup (_update_queue_cache)"
KOMBU_DECLARE = "kombu queue_declare reports the queue's depth (_size) when a publisher first declares it"
MONITORING = "gpuorch/celery/monitoring/transport.py (kombu SNS fanout)"


def monitored_worker(name: str) -> list[Call]:
    """What a worker does for Celery's events and remote control (GPUORCH_MONITORING): its pidbox queue named
    after the worker (`<ns>.pidbox.<name>@<host>`), SNS topics for events and commands, replies to callers."""
    return [
        Call("sns", "CreateTopic", "topic_events", f"{MONITORING}: exchange declare"),
        Call("sns", "CreateTopic", "topic_pidbox", f"{MONITORING}: exchange declare"),
        Call("sns", "TagResource", "topic_events", "kombu SNS creates topics with tags"),
        Call("sns", "TagResource", "topic_pidbox", "kombu SNS creates topics with tags"),
        Call("sns", "ListSubscriptionsByTopic", "topic_events", "kombu SNS subscriptions.cleanup"),
        Call("sns", "ListSubscriptionsByTopic", "topic_pidbox", "kombu SNS subscriptions.cleanup"),
        Call("sns", "Unsubscribe", "topic_events", "kombu SNS cleanup of subscriptions whose queue is gone"),
        Call("sns", "Unsubscribe", "topic_pidbox", "kombu SNS cleanup of subscriptions whose queue is gone"),
        Call("sns", "PublishBatch", "topic_events", "worker events (task-received, heartbeats ...), up to 10 a call "
             "(gpuorch/celery/monitoring/transport.py)"),
        Call("sns", "Subscribe", "topic_pidbox", "the worker's pidbox queue takes remote-control commands"),
        Call("sqs", "CreateQueue", f"pidbox_{name}", f"{MONITORING}: the worker's pidbox queue"),
        Call("sqs", "TagQueue", f"pidbox_{name}", "CreateQueue with a lease tag"),
        Call("sqs", "GetQueueAttributes", f"pidbox_{name}", "kombu SNS: QueueArn and Policy before subscribing"),
        Call("sqs", "SetQueueAttributes", f"pidbox_{name}", "kombu SNS: the queue policy letting the topic send"),
        Call("sqs", "ReceiveMessage", f"pidbox_{name}", "kombu consume of remote-control commands"),
        Call("sqs", "DeleteMessage", f"pidbox_{name}", "kombu ack of a command"),
        Call("sqs", "ChangeMessageVisibility", f"pidbox_{name}", "kombu release on shutdown"),
        Call("sqs", "GetQueueUrl", "broadcast_queue", "kombu SNS cleanup checks each subscribed queue still exists"),
        Call("sqs", "GetQueueUrl", "reply_queue", f"{MONITORING} _put: find the caller's reply queue"),
        Call("sqs", "SendMessage", "reply_queue", "a remote-control reply"),
        Call("sqs", "ListQueueTags", "event_queue", "gpuorch/celery/monitoring/leases.py sweep"),
        Call("sqs", "ListQueueTags", "reply_queue", "gpuorch/celery/monitoring/leases.py sweep"),
        Call("sqs", "GetQueueAttributes", "event_queue", "leases.sweep (CreatedTimestamp)"),
        Call("sqs", "GetQueueAttributes", "reply_queue", "leases.sweep (CreatedTimestamp)"),
        Call("sqs", "DeleteQueue", "event_queue", "leases.sweep: a dead process's queue"),
        Call("sqs", "DeleteQueue", "reply_queue", "leases.sweep: a dead process's queue"),
    ]


CALLS: dict[str, list[Call]] = {
    "api": [
        Call("sqs", "ListQueues", "*", KOMBU_START),
        Call("sqs", "SendMessage", "gpu_queue", "kombu publish from WorkflowTask.submit (gpuorch/tasks.py)"),
        Call("sqs", "SendMessage", "control_queue", "lifecycle trigger after a submission (celery_app.lifecycle_trigger)"),
        Call("sqs", "GetQueueUrl", "gpu_queue", "webapp/health.py probe_sqs"),
        Call("sqs", "GetQueueAttributes", "gpu_queue", "webapp/health.py probe_sqs; " + KOMBU_DECLARE),
        Call("sqs", "SendMessage", "gpu_low_queue", "CeleryPublisher: a low-priority job"),
        Call("sqs", "GetQueueUrl", "gpu_low_queue", "webapp BacklogGauge (both GPU queues' depth)"),
        Call("sqs", "GetQueueAttributes", "gpu_low_queue", "BacklogGauge.depth; " + KOMBU_DECLARE),
        Call("sqs", "GetQueueAttributes", "control_queue", KOMBU_DECLARE),
        Call("dynamodb", "PutItem", "job_table", "JobStore.create (gpuorch/jobs/submission.py accept)"),
        Call("dynamodb", "GetItem", "job_table", "JobStore.get (GET /api/v1/jobs/{id}, cancel)"),
        Call("dynamodb", "UpdateItem", "job_table", "JobStore.transition (POST /api/v1/jobs/{id}/cancel)"),
        Call("dynamodb", "DeleteItem", "job_table", "JobStore.delete when publishing failed (submission.accept)"),
        Call("dynamodb", "Query", "job_index", "JobStore.list and finished_between (GET /api/v1/jobs, costs)"),
        Call("dynamodb", "DescribeTable", "job_table", "webapp/health.py probe_dynamodb"),
        Call("dynamodb", "GetItem", "control_table@status", "lifecycle StatusStore.read (/health, job answers)"),
        Call("dynamodb", "Query", "control_table@run-head",
             "RunLog.heads (/health month spend, costs, a quote's price)"),
        Call("dynamodb", "Query", f"control_table@{SOME_MONTH}", "RunLog.records (/health month spend, costs)"),
        Call("dynamodb", "Query", "control_index@heartbeat", "HeartbeatStore.all (/health gpu_instances): the index"),
        Call("dynamodb", "BatchGetItem", f"control_table@heartbeat#{OWN}", "HeartbeatStore.all: the items"),
        Call("dynamodb", "Query", "control_index@refusal", "RefusalStore.all (/health gpu_instances): the index"),
        Call("dynamodb", "BatchGetItem", f"control_table@refusal#{OWN}", "RefusalStore.all: the items"),
        Call("dynamodb", "DeleteItem", f"control_table@refusal#{OWN}",
             "RefusalStore.release (POST /api/v1/gpu/{id}/start lifts a hold)"),
        Call("s3", "HeadBucket", "bucket", "webapp/health.py probe_s3"),
        Call("s3", "PutObject", "inputs", "submission.store_inputs (inline images)"),
        Call("s3", "DeleteObjects", "inputs", "submission.discard_inputs (a refused or unqueued job)"),
        Call("s3", "GetObject", "results", "gpuorch/jobs/outputs.py presigned output URLs (signed with the API's credentials)"),
        Call("sqs", "GetQueueUrl", "dlq", "gpuorch/jobs/redrive.py DeadLetters (GET /api/v1/dead-letters, redrive)"),
        Call("sqs", "ReceiveMessage", "dlq", "gpuorch/jobs/deadletters.py receive_all (dead-letter list, redrive)"),
        Call("sqs", "ChangeMessageVisibilityBatch", "dlq", "gpuorch/jobs/deadletters.py release (after a look)"),
        Call("sqs", "DeleteMessage", "dlq", "gpuorch/jobs/redrive.py DeadLetters._one (a redriven dead letter)"),
        Call("dynamodb", "GetItem", "key_table", "KeyStore.verify (webapp/auth.py: each request's key, cached)"),
        Call("dynamodb", "Query", "job_owner_index", "JobStore.list of one owner's jobs (GET /api/v1/jobs)"),
        Call("dynamodb", "GetItem", f"control_table@{SOME_RATE}", "RateLimiter.spend (a submission)"),
        Call("dynamodb", "PutItem", f"control_table@{SOME_RATE}", "RateLimiter.spend, conditional (a submission)"),
        Call("dynamodb", "GetItem", f"control_table@{SOME_CLAIM}", "IdempotencyStore.read (a submission's key)"),
        Call("dynamodb", "PutItem", f"control_table@{SOME_CLAIM}", "IdempotencyStore.claim, conditional"),
        Call("dynamodb", "DeleteItem", f"control_table@{SOME_CLAIM}", "IdempotencyStore.release (a refused one)"),
        Call("dynamodb", "PutItem", f"control_table@{SOME_BATCH}", "BatchStore.create (POST /api/v1/batches)"),
        Call("dynamodb", "GetItem", f"control_table@{SOME_BATCH}", "BatchStore.get (GET .../batches/{id}, cancel)"),
        Call("dynamodb", "DeleteItem", f"control_table@{SOME_BATCH}", "BatchStore.delete (a batch not queued whole)"),
        Call("dynamodb", "BatchGetItem", "job_table",
             "JobStore.get_many (a batch's items; gpuorch/jobs/watch.py: requests waiting for jobs)"),
        Call("dynamodb", "Query", "control_table@delivery#0f1e2d3c", "DeliveryStore.for_job (GET .../deliveries, resend)"),
        Call("ec2", "DescribeInstances", "*", "GET /api/v1/gpu, InstancePool.get before a start or stop (operators)"),
        Call("ec2", "StartInstances", "pool_instance", "POST /api/v1/gpu/{id}/start (operators)"),
        Call("ec2", "StopInstances", "pool_instance", "POST /api/v1/gpu/{id}/stop (operators)"),
    ],
    "control": [
        Call("sqs", "ListQueues", "*", KOMBU_START),
        Call("sqs", "ReceiveMessage", "control_queue", "kombu consume (control worker)"),
        Call("sqs", "DeleteMessage", "control_queue", "kombu ack (control worker)"),
        Call("sqs", "ChangeMessageVisibility", "control_queue", "kombu: a message given back or released on shutdown"),
        Call("sqs", "GetQueueAttributes", "control_queue", "kombu: redrive policy before deleting a rejected message"),
        Call("sqs", "SendMessage", "control_queue", "celery beat publishing the periodic checks and sweeps"),
        Call("sqs", "GetQueueUrl", "gpu_queue", "lifecycle/tasks.py lifecycle_check (queue_url)"),
        Call("sqs", "GetQueueAttributes", "gpu_queue", "lifecycle/live/check.py snapshot (visible and in-flight counts)"),
        Call("sqs", "GetQueueUrl", "gpu_low_queue", "lifecycle/live/build.py lifecycle_check (low_queue_url)"),
        Call("sqs", "GetQueueAttributes", "gpu_low_queue", "lifecycle/live/check.py snapshot (low-priority counts)"),
        Call("dynamodb", "Query", "job_index", "JobStore.count_startable (check) and overdue (expire_jobs)"),
        Call("sqs", "GetQueueUrl", "dlq", "gpuorch/control_tasks.py sweep_dead_letter_queue"),
        Call("sqs", "ReceiveMessage", "dlq", "gpuorch/jobs/deadletters.py sweep_dead_letters"),
        Call("sqs", "ChangeMessageVisibilityBatch", "dlq", "gpuorch/jobs/deadletters.py release (after a sweep)"),
        Call("dynamodb", "UpdateItem", "job_table", "JobStore.transition to failed (dead letters) or expired"),
        Call("dynamodb", "GetItem", "job_table", "JobStore.get after a refused transition"),
        Call("dynamodb", "PutItem", "control_table@lock", "lifecycle/live/lease.py Lease.acquire"),
        Call("dynamodb", "DeleteItem", "control_table@lock", "lifecycle/live/lease.py Lease.release"),
        Call("dynamodb", "Query", "control_index@heartbeat", "lifecycle/live/heartbeats.py HeartbeatStore.all"),
        Call("dynamodb", "BatchGetItem", f"control_table@heartbeat#{OWN}", "HeartbeatStore.all: the items"),
        Call("dynamodb", "Query", "control_table@run-head", "lifecycle/live/runs.py RunLog.heads"),
        Call("dynamodb", "Query", f"control_table@{SOME_MONTH}", "lifecycle/live/runs.py RunLog.records"),
        Call("dynamodb", "UpdateItem", "control_table@run-head", "lifecycle/live/runs.py RunLog._open"),
        Call("dynamodb", "TransactWriteItems", "control_table@run-head+put", "lifecycle/live/runs.py RunLog._close"),
        Call("dynamodb", "PutItem", "control_table@status", "lifecycle/live/check.py StatusStore.write"),
        Call("dynamodb", "Query", "control_index@refusal", "lifecycle/live/refusals.py RefusalStore.all"),
        Call("dynamodb", "BatchGetItem", f"control_table@refusal#{OWN}", "RefusalStore.all: the items"),
        Call("dynamodb", "PutItem", f"control_table@refusal#{OWN}",
             "RefusalStore.record (not ready within the boot grace)"),
        Call("dynamodb", "UpdateItem", f"control_table@refusal#{OWN}",
             "RefusalStore.hold (held against the configuration)"),
        Call("dynamodb", "DeleteItem", f"control_table@refusal#{OWN}",
             "RefusalStore.clear (a later heartbeat superseded it)"),
        Call("dynamodb", "GetItem", "control_table@delivery#0f1e2d3c", "gpuorch/webhooks/store.py DeliveryStore.get"),
        Call("dynamodb", "PutItem", "control_table@delivery#0f1e2d3c", "DeliveryStore.open (a delivery's first try)"),
        Call("dynamodb", "UpdateItem", "control_table@delivery#0f1e2d3c", "DeliveryStore.record and reopen"),
        Call("dynamodb", "PutItem", "control_table@delivery-due", "DeliveryStore.record (a later try's due marker)"),
        Call("dynamodb", "Query", "control_table@delivery-due", "DeliveryStore.due (the webhook sweep)"),
        Call("dynamodb", "DeleteItem", "control_table@delivery-due", "DeliveryStore.claim (the webhook sweep)"),
        Call("dynamodb", "GetItem", "control_table@webhook-secret", "gpuorch/webhooks/secrets.py SecretStore.get (signing)"),
        Call("s3", "GetObject", "results", "gpuorch/jobs/outputs.py presigned output URLs in a webhook's job record"),
        Call("dynamodb", "UpdateItem", "control_table@run-head", "lifecycle/live/runs.py RunLog.mark_interrupted"),
        Call("dynamodb", "Query", "control_table@spot-market", "lifecycle/live/market.py MarketMemory.read"),
        Call("dynamodb", "PutItem", "control_table@spot-market",
             "lifecycle/live/market.py MarketMemory: a spot setback, the last start, the last fallback"),
        Call("ec2", "DescribeInstances", "*", "lifecycle/live/pool.py InstancePool.describe and get"),
        Call("ec2", "DescribeSpotPriceHistory", "*", "lifecycle/live/market.py SpotPrices.current (spot instances)"),
        Call("ec2", "StartInstances", "pool_instance", "lifecycle/live/pool.py InstancePool.start"),
        Call("ec2", "StopInstances", "pool_instance", "lifecycle/live/pool.py InstancePool.stop"),
        *monitored_worker("control"),
    ],
    "control+fallback": [
        Call("ec2", "ModifyInstanceAttribute", "pool_instance",
             "lifecycle/live/pool.py _start_stopped / _restore_type (GPUORCH_FALLBACK_INSTANCE_TYPES)"),
    ],
    "gpu": [
        Call("sqs", "ListQueues", "*", KOMBU_START),
        Call("sqs", "GetQueueUrl", "gpu_queue", "workers/gpu.py main (visibility check)"),
        Call("sqs", "GetQueueAttributes", "gpu_queue", "workers/checks.py queue_visibility_timeout; kombu redrive check"),
        Call("sqs", "ReceiveMessage", "gpu_queue", "kombu consume (GPU worker)"),
        Call("sqs", "ReceiveMessage", "gpu_low_queue", "kombu consume, once the normal queue came back empty"),
        Call("sqs", "DeleteMessage", "gpu_low_queue", "kombu ack when a low-priority job ends"),
        Call("sqs", "ChangeMessageVisibility", "gpu_low_queue", "kombu: a message given back or released"),
        Call("sqs", "GetQueueAttributes", "gpu_low_queue", "kombu redrive check before deleting a rejected message"),
        Call("sqs", "DeleteMessage", "gpu_queue", "kombu ack when a job ends (task_acks_late)"),
        Call("sqs", "ChangeMessageVisibility", "gpu_queue", "kombu: a message given back (worker lost) or released on "
             "shutdown; gpuorch/celery/tasks.py gives an interrupted instance's job back at once"),
        Call("sqs", "GetQueueUrl", "dlq", "gpuorch/celery/gate.py MessageGate (the DLQ's URL)"),
        Call("sqs", "SendMessage", "dlq", "gpuorch/celery/gate.py MessageGate.dead_letter (a message that can never run)"),
        Call("dynamodb", "GetItem", "job_table", "gpuorch/execution/runner.py run_job (JobStore.get)"),
        Call("dynamodb", "UpdateItem", "job_table", "JobStore.transition and report_progress"),
        Call("dynamodb", "DescribeTable", "result_table", "celery DynamoDB backend client start (_get_or_create_table)"),
        Call("dynamodb", "DescribeTimeToLive", "result_table", "celery DynamoDB backend client start (_set_table_ttl)"),
        Call("dynamodb", "PutItem", "result_table", "gpuorch/celery/results.py: PROGRESS (update_state) and the result, "
             "each one conditional put"),
        Call("dynamodb", "UpdateItem", f"control_table@heartbeat#{OWN}",
             "lifecycle/live/heartbeats.py HeartbeatStore.beat (its own instance's)"),
        Call("sqs", "SendMessage", "control_queue", "gpuorch/webhooks/announce.py: a webhook delivery for the control worker"),
        Call("sqs", "GetQueueAttributes", "control_queue", KOMBU_DECLARE),
        Call("dynamodb", "PutItem", f"control_table@refusal#{OWN}",
             "workers/startup.py record_refusal (RefusalStore.record, its own instance's)"),
        Call("s3", "GetObject", "inputs", "gpuorch/inputs/s3.py fetch_s3 (job inputs)"),
        Call("s3", "GetObject", "results", "gpuorch/inputs/s3.py fetch_s3 (an earlier job's output as input)"),
        Call("s3", "PutObject", "results", "gpuorch/execution/runner.py (outputs under results/{job_id}/)"),
        *monitored_worker("gpu"),
    ],
    "gpu+inputs": [
        Call("s3", "GetObject", "input_bucket", "gpuorch/inputs/s3.py fetch_s3 (GPUORCH_INPUT_BUCKETS)"),
    ],
    "gpu+models": [
        Call("s3", "HeadObject", "model_object", "gpuorch/modelsync/fetch.py S3Source.size (`gpuorch models sync`)"),
        Call("s3", "GetObject", "model_object", "gpuorch/modelsync/fetch.py S3Source.read: its ranged GETs"),
    ],
    "client": [
        Call("sqs", "ListQueues", "*", KOMBU_START),
        Call("sqs", "SendMessage", "gpu_queue", "kombu publish from task.delay()"),
        Call("sqs", "SendMessage", "gpu_low_queue", "kombu publish of a low-priority job from task.delay()"),
        Call("sqs", "GetQueueAttributes", "gpu_low_queue", KOMBU_DECLARE),
        Call("sqs", "SendMessage", "control_queue", "lifecycle trigger after task.delay()"),
        Call("sqs", "GetQueueAttributes", "gpu_queue", KOMBU_DECLARE),
        Call("sqs", "GetQueueAttributes", "control_queue", KOMBU_DECLARE),
        Call("dynamodb", "PutItem", "job_table", "JobStore.create (task.delay writes the record first)"),
        Call("dynamodb", "DeleteItem", "job_table", "JobStore.delete when publishing failed"),
        Call("dynamodb", "GetItem", "job_table", "JobStore.get: the job an idempotency key accepted (delay)"),
        Call("dynamodb", "GetItem", f"control_table@{SOME_CLAIM}", "IdempotencyStore.read (delay's key)"),
        Call("dynamodb", "PutItem", f"control_table@{SOME_CLAIM}", "IdempotencyStore.claim, conditional"),
        Call("dynamodb", "DeleteItem", f"control_table@{SOME_CLAIM}", "IdempotencyStore.release (a refused one)"),
        Call("dynamodb", "PutItem", f"control_table@{SOME_BATCH}", "BatchStore.create (submit_batch)"),
        Call("dynamodb", "GetItem", f"control_table@{SOME_BATCH}", "BatchStore.get (submit_batch's idempotency key)"),
        Call("dynamodb", "DeleteItem", f"control_table@{SOME_BATCH}", "BatchStore.delete (a batch not queued whole)"),
        Call("dynamodb", "DescribeTable", "result_table", "celery DynamoDB backend client start"),
        Call("dynamodb", "DescribeTimeToLive", "result_table", "celery DynamoDB backend client start"),
        Call("dynamodb", "GetItem", "result_table", "AsyncResult.get() / .state / .info"),
        Call("dynamodb", "GetItem", "job_table", "gpuorch.tasks.job, wait and follow (JobStore.get)"),
        Call("dynamodb", "BatchGetItem", "job_table", "gpuorch.tasks.wait and follow (JobWatch's reads)"),
        Call("s3", "PutObject", "inputs", "submission.store_inputs (data: URI images)"),
        Call("s3", "DeleteObjects", "inputs", "submission.discard_inputs"),
    ],
    "flower": [
        Call("sqs", "ListQueues", "*", KOMBU_START + "; leases.sweep lists the per-process queues"),
        Call("sns", "CreateTopic", "topic_events", f"{MONITORING}: exchange declare"),
        Call("sns", "CreateTopic", "topic_pidbox", f"{MONITORING}: exchange declare"),
        Call("sns", "TagResource", "topic_events", "kombu SNS creates topics with tags"),
        Call("sns", "TagResource", "topic_pidbox", "kombu SNS creates topics with tags"),
        Call("sns", "ListSubscriptionsByTopic", "topic_events", "kombu SNS subscriptions.cleanup"),
        Call("sns", "ListSubscriptionsByTopic", "topic_pidbox", "kombu SNS subscriptions.cleanup"),
        Call("sns", "Unsubscribe", "topic_events", "unsubscribing its event queue on exit; stale subscriptions"),
        Call("sns", "Unsubscribe", "topic_pidbox", "kombu SNS cleanup of subscriptions whose queue is gone"),
        Call("sns", "Subscribe", "topic_events", "Flower's event queue receives the workers' events"),
        Call("sns", "Publish", "topic_pidbox", "remote-control broadcasts (inspect: active, stats, registered ...)"),
        Call("sqs", "GetQueueUrl", "broadcast_queue", "kombu SNS cleanup checks each subscribed queue still exists"),
        *[Call("sqs", op, queue, f"{MONITORING}: {why}")
          for queue in ("event_queue", "reply_queue")
          for op, why in (("CreateQueue", "a per-process queue"), ("TagQueue", "its lease, at creation and renewed"),
                          ("GetQueueAttributes", "QueueArn and Policy; sweep"), ("SetQueueAttributes", "the SNS policy"),
                          ("ListQueueTags", "leases.sweep"), ("ReceiveMessage", "consume"), ("DeleteMessage", "ack"),
                          ("ChangeMessageVisibility", "release on shutdown"), ("DeleteQueue", "on exit; sweep"))],
    ],
    "provision": [
        Call("sqs", "GetQueueUrl", "every_queue", "gpuorch/provision.py Provisioner.queue"),
        Call("sqs", "CreateQueue", "every_queue", "Provisioner.queue"),
        Call("sqs", "GetQueueAttributes", "every_queue", "Provisioner.queue (drift, QueueArn)"),
        Call("sqs", "SetQueueAttributes", "every_queue", "Provisioner.queue (corrects drift)"),
        Call("dynamodb", "DescribeTable", "every_table", "Provisioner.table and the table_exists waiter"),
        Call("dynamodb", "CreateTable", "every_table", "Provisioner._create_table"),
        Call("dynamodb", "DescribeTimeToLive", "every_table", "Provisioner.table"),
        Call("dynamodb", "UpdateTimeToLive", "every_table", "Provisioner._enable_ttl"),
        Call("s3", "HeadBucket", "bucket", "Provisioner.bucket"),
        Call("s3", "CreateBucket", "bucket", "Provisioner._create_bucket"),
        Call("s3", "PutPublicAccessBlock", "bucket", "Provisioner._create_bucket"),
        Call("s3", "PutBucketEncryption", "bucket", "Provisioner._create_bucket"),
        Call("s3", "GetBucketLifecycleConfiguration", "bucket", "Provisioner._lifecycle_rules"),
        Call("s3", "PutBucketLifecycleConfiguration", "bucket", "Provisioner._set_expiry"),
        Call("dynamodb", "DescribeTable", "key_table", "Provisioner.table and the table_exists waiter"),
        Call("dynamodb", "CreateTable", "key_table", "Provisioner._create_table"),
        Call("dynamodb", "UpdateTable", "job_table", "Provisioner.table: an index added since the table was made"),
        Call("dynamodb", "UpdateTable", "control_table", "Provisioner.table: the index of heartbeats and refusals"),
        Call("dynamodb", "Query", "control_table@refusal", "Provisioner.legacy_refusals: an earlier release's"),
        Call("dynamodb", "PutItem", f"control_table@refusal#{OWN}", "Provisioner.legacy_refusals: moved"),
        Call("dynamodb", "DeleteItem", "control_table@refusal", "Provisioner.legacy_refusals: moved"),
        Call("dynamodb", "PutItem", "key_table", "gpuorch keys create (KeyStore.create)"),
        Call("dynamodb", "Scan", "key_table", "gpuorch keys list (KeyStore.list)"),
        Call("dynamodb", "UpdateItem", "key_table", "gpuorch keys revoke and webhook (KeyStore.revoke, set_webhook)"),
        Call("dynamodb", "GetItem", "key_table", "gpuorch keys webhook --new-secret (KeyStore.get)"),
        Call("dynamodb", "PutItem", "control_table@webhook-secret", "gpuorch keys create, webhook --new-secret (SecretStore.put)"),
    ],
}

# boto3 operations the code calls that need no permission (no policy can deny them).
NEEDS_NO_PERMISSION = {
    "get_caller_identity": "gpuorch/aws/ec2.py caller_instance_arns: the account whose instance ARNs key the "
                           "heartbeats and refusals",
}

# boto3 operations the code names that no deployed process calls against AWS.
NOT_CALLED_ON_AWS = {
    "create_tags": "InstancePool.tag: no process calls it; the operator tags the GPU instance (DEPLOYMENT.md)",
    "describe_instances": "also devtools/gpuorch_dev/local/agent.py, the local host agent (not deployed)",
}

# S3 API operations whose IAM action has another name.
S3_IAM_ACTION = {
    "HeadBucket": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "DeleteObjects": "s3:DeleteObject",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
}


def iam_action(service: str, operation: str) -> str:
    if service in ("sqs", "sns"):  # a batch call needs its single operation's action (SNS PublishBatch: sns:Publish)
        return f"{service}:{operation.removesuffix('Batch')}"
    if service == "s3":
        return S3_IAM_ACTION.get(operation, f"s3:{operation}")
    return f"{service}:{operation}"


def resolve(call: Call, settings: Any, account: str) -> list[Request]:
    """The IAM requests one call makes with these settings (TransactWriteItems: one per item)."""
    region = settings.region
    where = f"{call.operation}: {call.where}"
    action = iam_action(call.service, call.operation)
    name, _, leading = call.resource.partition("@")
    leading = leading.replace(OWN, instance_arn(region, account, GPU_INSTANCE))

    def control(pk: str, op: str = action) -> Request:
        return Request(op, table_arn(region, account, settings.control_table), {"dynamodb:LeadingKeys": [pk]}, where)

    ns = settings.monitoring_namespace
    queues = {
        "gpu_queue": settings.gpu_queue, "gpu_low_queue": settings.gpu_low_queue,
        "control_queue": settings.control_queue, "dlq": settings.gpu_dead_letter_queue,
        "event_queue": f"{ns}-events-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "reply_queue": f"{ns}-reply-0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "pidbox_gpu": f"{ns}-pidbox-gpu_ip-10-0-1-23",
        "pidbox_control": f"{ns}-pidbox-control_ip-10-0-0-5",
        "broadcast_queue": f"{ns}-pidbox-gpu_ip-10-0-1-99",
    }
    topics = {"topic_events": f"{ns}-events", "topic_pidbox": f"{ns}-pidbox"}
    if name in topics:
        return [Request(action, f"arn:aws:sns:{region}:{account}:{topics[name]}", {}, where)]
    if name == "*":
        return [Request(action, "*", {}, where)]
    if name in queues:
        return [Request(action, queue_arn(region, account, queues[name]), {}, where)]
    if name == "every_queue":
        return [Request(action, queue_arn(region, account, q), {}, where)
                for q in (settings.gpu_queue, settings.gpu_low_queue, settings.gpu_dead_letter_queue,
                          settings.control_queue)]
    if name == "job_table":
        return [Request(action, table_arn(region, account, settings.job_table), {}, where)]
    if name == "job_index":
        from gpuorch.jobs.store import STATUS_INDEX

        return [Request(action, table_arn(region, account, settings.job_table, STATUS_INDEX), {}, where)]
    if name == "job_owner_index":
        from gpuorch.jobs.store import OWNER_INDEX

        return [Request(action, table_arn(region, account, settings.job_table, OWNER_INDEX), {}, where)]
    if name == "key_table":
        return [Request(action, table_arn(region, account, settings.key_table), {}, where)]
    if name == "result_table":
        return [Request(action, table_arn(region, account, settings.result_table), {}, where)]
    if name == "control_table" and not leading:
        return [Request(action, table_arn(region, account, settings.control_table), {}, where)]
    if name == "every_table":
        return [Request(action, table_arn(region, account, t), {}, where)
                for t in (settings.job_table, settings.result_table, settings.control_table)]
    if name == "control_table" and call.operation == "TransactWriteItems":
        head, _, _ = leading.partition("+")
        return [control(head, "dynamodb:UpdateItem"), control(SOME_MONTH, "dynamodb:PutItem")]
    if name == "control_table":
        return [control(leading)]
    if name == "control_index":  # the index's partition key, the item's kind
        from lifecycle.live.instance_items import INSTANCE_ITEMS_INDEX

        return [Request(action, table_arn(region, account, settings.control_table, INSTANCE_ITEMS_INDEX),
                        {"dynamodb:LeadingKeys": [leading]}, where)]
    if name == "bucket":
        return [Request(action, bucket_arn(settings.bucket), {}, where)]
    if name in {"inputs", "results"}:
        return [Request(action, object_arn(settings.bucket, f"{name}/0f1e2d3c/image.png"), {}, where)]
    if name == "input_bucket":
        return [Request(action, object_arn(bucket, "any/key.png"), {}, where) for bucket in settings.input_buckets]
    if name == "model_object":  # a file under the mirror: <prefix>/<folder>/<name>
        from gpuorch.aws.s3 import parse_s3_prefix

        at = parse_s3_prefix(settings.models_mirror)
        return [Request(action, object_arn(at.bucket, f"{at.key}/loras/x.safetensors".lstrip("/")), {}, where)]
    if name == "pool_instance":
        arn = instance_arn(region, account, "i-0123456789abcdef0")
        context = {f"aws:ResourceTag/{POOL_TAG}": settings.gpu_pool}
        if call.operation == "ModifyInstanceAttribute":  # a fallback type, and back to the pool's own
            return [Request(action, arn, {**context, "ec2:Attribute/InstanceType": kind}, where)
                    for kind in (*settings.fallback_instance_types, settings.gpu_instance_type)]
        return [Request(action, arn, context, where)]
    raise ValueError(f"unknown resource {call.resource!r}")


def role_requests(role: str, settings: Any, account: str) -> list[Request]:
    """The requests of a role; a role with an optional document also makes its base role's calls. The GPU role's
    come from GPU_INSTANCE (IAM knows it by the instance role credentials that sign them)."""
    base = role.split("+", 1)[0]
    calls = CALLS[base] + (CALLS[role] if role != base else [])
    requests = [request for call in calls for request in resolve(call, settings, account)]
    if base == "gpu":
        source = {"ec2:SourceInstanceARN": instance_arn(settings.region, account, GPU_INSTANCE)}
        requests = [dataclasses.replace(r, context={**r.context, **source}) for r in requests]
    return requests
