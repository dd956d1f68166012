"""Celery's DynamoDB result backend, storing a task's state in one conditional put rather than a read and a put."""

from __future__ import annotations

from botocore.exceptions import ClientError
from celery import states
from celery.backends.dynamodb import DynamoDBBackend
from kombu.utils.encoding import bytes_to_str

# The state beside the encoded result, so that the put's condition can see it.
STATE_FIELD = "state"


class ResultBackend(DynamoDBBackend):
    """Celery reads a task's result before each store so that nothing overwrites a SUCCESS (a lost worker's late
    write, say). Here the put carries that condition itself: one call per store instead of two (a GPU job stores
    one per step of its progress, and its end right after its record's final write, while its caller is being told).
    """

    def _store_result(self, task_id, result, state, traceback=None, request=None, **kwargs):
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        # The key as Celery's own set() writes it, so that its get() and AsyncResult read it.
        put = self._prepare_put_request(str(self.get_key_for_task(task_id)), self.encode(meta))
        put["Item"][STATE_FIELD] = {"S": state}
        put["ConditionExpression"] = "attribute_not_exists(#state) OR #state <> :success"
        put["ExpressionAttributeNames"] = {"#state": STATE_FIELD}
        put["ExpressionAttributeValues"] = {":success": {"S": states.SUCCESS}}
        try:
            self.client.put_item(**put)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        return result
