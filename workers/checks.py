"""Start-up checks of a GPU worker: pure rules about timeouts, and the reading of the queue they judge."""

from __future__ import annotations

# Time allowed beyond the jobs themselves: receiving, uploading outputs, the final DynamoDB writes.
SAFETY_MARGIN_S = 30


def visibility_problems(visibility_timeout: int, task_time_limit: int, *, messages_held: int = 1) -> list[str]:
    """Why a GPU queue's visibility timeout cannot protect jobs run under this time limit (empty: it can).

    Invariant 1: a message must stay hidden while its job runs, or SQS hands it to another consumer and
    the job runs twice. With prefetch 1 a worker also holds one more message while the current job runs,
    and that message's clock starts at receipt: it needs the running job's time plus its own.
    """
    problems = []
    required = (1 + messages_held) * task_time_limit + SAFETY_MARGIN_S
    if visibility_timeout < required:
        problems.append(
            f"the GPU queue's visibility timeout ({visibility_timeout} s) must be at least "
            f"{required} s: {1 + messages_held} x the task time limit ({task_time_limit} s) "
            f"+ {SAFETY_MARGIN_S} s margin; raise GPUORCH_VISIBILITY_TIMEOUT and run "
            f"`gpuorch provision`, or lower GPUORCH_TASK_TIME_LIMIT"
        )
    return problems


def queue_visibility_timeout(sqs_client, queue_url: str) -> int:
    attributes = sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])
    return int(attributes["Attributes"]["VisibilityTimeout"])
