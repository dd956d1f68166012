"""POST /api/v1/batches, GET /api/v1/batches/{batch_id} and POST /api/v1/batches/{batch_id}/cancel: many jobs at once.

A batch is accepted whole or refused whole; each item is an ordinary job request naming its workflow, and becomes a
job of its own. A user key sees only its owner's batches (another owner's answers 404, like a missing one).
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from gpuorch.jobs.batch_store import BatchView
from gpuorch.jobs.batches import MAX_BATCH_ITEMS, count_items
from gpuorch.jobs.idempotency import HEADER, checked_key
from webapp.auth import caller
from webapp.batch_body import read_batch
from webapp.context import current
from webapp.errors import ApiError, error_responses
from webapp.request_body import FORM_MEDIA_TYPE
from webapp.request_schemas import batch_schemas
from webapp.schemas import BatchSchema
from webapp.views.jobs import answers
from webapp.views.submissions import IDEMPOTENCY_PARAMETER, REPLAYED_HEADER, SUBMISSION_ERRORS

blp = Blueprint("batches", __name__, url_prefix="/api/v1",
                description=f"Submit up to {MAX_BATCH_ITEMS} jobs at once; follow and cancel them together.")

BATCH_REQUEST = "BatchRequest"
BATCH_FORM = "BatchForm"

_DESCRIPTION = (
    f"Up to {MAX_BATCH_ITEMS} items, each an ordinary job request (the body POST /api/v1/workflows/{{name}}/jobs "
    "takes, with the job's options) naming its workflow in `workflow`. The batch is accepted whole, each item a job of its "
    "own, or refused whole: a 422 names every bad item's fields as items.<index>.<field>, and nothing is stored, "
    "recorded or queued. Images are URIs, data: URIs, or (multipart/form-data) file parts named "
    "items.<index>.<image parameter>, the batch's JSON in the params part. The limits count items: the key's rate "
    "limit spends one per item (a batch over its burst is a 422), and the backlog limit refuses a batch it cannot "
    "hold whole. An Idempotency-Key makes a retry safe, as for one job."
)


def batch_url(batch_id: str) -> str:
    return url_for("batches.OneBatchView", batch_id=batch_id)


def batch_answer(view: BatchView) -> dict[str, Any]:
    batch = view.batch
    return {
        "batch_id": batch.batch_id,
        "created_at": batch.created_at,
        "owner": batch.owner,
        "source": batch.source,
        "total": len(batch.job_ids),
        "counts": view.counts,
        "finished": view.finished,
        "items": answers(list(view.jobs)),
        "links": {"self": batch_url(batch.batch_id),
                  "cancel": url_for("batches.BatchCancelView", batch_id=batch.batch_id)},
    }


def batch_not_found(batch_id: str) -> ApiError:
    return ApiError(404, "batch_not_found", f"No batch has the id {batch_id[:100]!r}.")


def register_schemas(api, workflows) -> None:
    """Put the batch request's schemas (one item schema per workflow) in the app's OpenAPI document."""
    for name, schema in batch_schemas(workflows, BATCH_REQUEST, BATCH_FORM, MAX_BATCH_ITEMS).items():
        api.spec.components.schema(name, component=schema)


def _ref(component: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component}"}


@blp.route("/batches")
class BatchesView(MethodView):
    @blp.doc(
        summary="Submit a batch of jobs",
        description=_DESCRIPTION,
        requestBody={"required": True, "content": {
            "application/json": {"schema": _ref(BATCH_REQUEST)},
            FORM_MEDIA_TYPE: {"schema": _ref(BATCH_FORM), "encoding": {"params": {"contentType": "application/json"}}},
        }},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @blp.response(202, BatchSchema, description="Accepted: every item recorded and queued.", headers={
        "Location": {"description": "URL of the new batch.", "schema": {"type": "string"}},
        REPLAYED_HEADER: {"description": "true when its Idempotency-Key had accepted this same batch.",
                          "schema": {"type": "string"}},
    })
    @error_responses(blp, *SUBMISSION_ERRORS)
    def post(self):
        context, key = current(), caller()
        idempotency_key = checked_key(request.headers.get(HEADER))
        items = read_batch(context.services.workflows)
        # The limits count items: read before the body's items are checked one by one, after their number is.
        if idempotency_key is None or context.submitter.once.earlier(key.owner, idempotency_key) is None:
            context.admit(key, count_items(items))
        accepted = context.batches.submit_once(idempotency_key, items, source="api", owner=key.owner)
        headers = {"Location": batch_url(accepted.value.batch_id)}
        if accepted.replayed:
            headers[REPLAYED_HEADER] = "true"
        return batch_answer(context.batches.view(accepted.value)), 202, headers


@blp.route("/batches/<string:batch_id>")
class OneBatchView(MethodView):
    @blp.response(200, BatchSchema)
    @error_responses(blp, 404, 503)
    def get(self, batch_id: str):
        """One batch: its items' counts by status, and each item's job record"""
        context = current()
        batch = context.visible_batch(batch_id, caller()) if _could_exist(batch_id) else None
        if batch is None:
            raise batch_not_found(batch_id)
        return batch_answer(context.batches.view(batch))


@blp.route("/batches/<string:batch_id>/cancel")
class BatchCancelView(MethodView):
    @blp.response(200, BatchSchema)
    @error_responses(blp, 404, 503)
    def post(self, batch_id: str):
        """Cancel a batch: each item still queued or running is cancelled, as one job's cancel; the finished ones keep
        their outcome"""
        context = current()
        batch = context.visible_batch(batch_id, caller()) if _could_exist(batch_id) else None
        if batch is None:
            raise batch_not_found(batch_id)
        return batch_answer(context.batches.cancel(batch))


def _could_exist(batch_id: str) -> bool:
    # A batch id is a UUID; DynamoDB refuses a partition key over 2048 bytes (answered 503 as if it were down).
    return len(batch_id.encode("utf-8", "surrogatepass")) <= 200
