"""GET /api/v1/jobs/{job_id}/deliveries and POST .../deliveries/resend: a job's webhook deliveries, seen and sent
again by its owner (or an operator)."""

from __future__ import annotations

import dataclasses

from flask.views import MethodView
from flask_smorest import Blueprint

from gpuorch.webhooks.events import STATUS_EVENTS
from webapp.auth import caller
from webapp.context import current
from webapp.errors import ApiError, error_responses
from webapp.schemas import DeliveryListSchema, ResendAcceptedSchema, ResendSchema
from webapp.views.jobs import could_exist, job_not_found

blp = Blueprint("deliveries", __name__, url_prefix="/api/v1",
                description="A job's webhook deliveries: each try, its answer, the next one; and a resend.")


def _visible(job_id: str):
    job = current().visible_job(job_id, caller()) if could_exist(job_id) else None
    if job is None:
        raise job_not_found(job_id)
    return job


@blp.route("/jobs/<string:job_id>/deliveries")
class DeliveriesView(MethodView):
    @blp.response(200, DeliveryListSchema)
    @error_responses(blp, 404, 503)
    def get(self, job_id: str):
        """The job's webhook deliveries: each event's tries (when, the receiver's status code, why one failed), its
        state and its next try"""
        _visible(job_id)
        found = current().celery.deliveries.for_job(job_id)
        return {"deliveries": [dataclasses.asdict(d) for d in sorted(found, key=lambda d: (d.created_at, d.topic))]}


@blp.route("/jobs/<string:job_id>/deliveries/resend")
class ResendView(MethodView):
    @blp.arguments(ResendSchema, required=False)
    @blp.response(202, ResendAcceptedSchema, description="Queued: the control worker tries it at once, then on the "
                                                          "retry schedule until it is answered 2xx.")
    @error_responses(blp, 404, 503)
    def post(self, body: dict, job_id: str):
        """Deliver one of the job's status events again (a new round of tries); 404 when the job has no delivery of
        it"""
        _visible(job_id)
        context = current()
        deliveries = [d for d in context.celery.deliveries.for_job(job_id) if d.event in STATUS_EVENTS.values()]
        wanted = (body or {}).get("event")
        chosen = [d for d in deliveries if wanted is None or d.topic == wanted]
        if not chosen:
            what = f"a delivery of {wanted}" if wanted else "a webhook delivery"
            raise ApiError(404, "delivery_not_found", f"Job {job_id} has no {what}.")
        delivery = max(chosen, key=lambda d: (d.created_at, d.topic))
        context.celery.enqueue_resend(job_id, delivery.topic)
        return {"job_id": job_id, "topic": delivery.topic, "url": delivery.url}
