"""GET /api/v1/dead-letters and POST /api/v1/dead-letters/redrive: the GPU dead-letter queue, for operators."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from gpuorch.jobs.redrive import DeadLetters
from gpuorch.celery.names import GPU_TASK_WORKFLOWS
from webapp.context import current
from webapp.errors import error_responses

blp = Blueprint("dead_letters", __name__, url_prefix="/api/v1",
                description="The GPU queue's dead letters: why each is there, and redrive of those that can still run.")


class DeadLetterSchema(ma.Schema):
    """One message in the GPU dead-letter queue."""

    message_id = ma.fields.String(required=True, metadata={"description": "Its SQS message id in the DLQ."})
    source_message_id = ma.fields.String(
        allow_none=True, metadata={"description": "The GPU queue message a worker copied here (null: SQS moved it)."})
    job_id = ma.fields.String(allow_none=True, metadata={"description": "The job it names, if it names one."})
    task = ma.fields.String(allow_none=True)
    workflow = ma.fields.String(allow_none=True)
    reason = ma.fields.String(required=True, metadata={
        "description": "Why it is here: a GPU worker's reason for rejecting it, or 'delivered N times, its worker "
        "died each time' when SQS's redrive policy moved it."})
    rejected = ma.fields.Boolean(required=True,
                                 metadata={"description": "A GPU worker rejected it (vs. SQS moved it)."})
    receive_count = ma.fields.Integer(allow_none=True, metadata={
        "description": "SQS's ApproximateReceiveCount (reads of the dead-letter queue count too)."})
    job_status = ma.fields.String(allow_none=True, metadata={"description": "Its job's status; null without a record."})
    job_error = ma.fields.String(allow_none=True)
    redriven_as = ma.fields.String(allow_none=True, metadata={"description": "The job it was resubmitted as, if any."})
    fixable = ma.fields.Boolean(required=True, metadata={"description": "Redrive would resubmit it."})
    unfixable = ma.fields.String(allow_none=True, metadata={"description": "Why redrive would leave it."})


class DeadLetterListSchema(ma.Schema):
    dead_letters = ma.fields.List(ma.fields.Nested(DeadLetterSchema), required=True)


class RedriveRequestSchema(ma.Schema):
    ids = ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=1)), load_default=list, metadata={
        "description": "Dead letters to redrive, each by message id, job id or source message id."})
    all = ma.fields.Boolean(load_default=False, metadata={"description": "Every fixable dead letter."})
    dry_run = ma.fields.Boolean(load_default=False, metadata={"description": "Say what would happen; change nothing."})

    @ma.validates_schema
    def _one_selection(self, data: dict[str, Any], **_: Any) -> None:
        if bool(data.get("ids")) == bool(data.get("all")):
            raise ma.ValidationError("give ids or all: true, not both", "_schema")


class RedriveOutcomeSchema(ma.Schema):
    id = ma.fields.String(required=True, metadata={"description": "The id asked for (the message id, for all)."})
    action = ma.fields.String(required=True, metadata={
        "enum": ["redriven", "would-redrive", "left", "not-found"],
        "description": "redriven: resubmitted as new_job_id and removed from the queue; left: stays, reason says "
        "why; not-found: no such dead letter (another reader may hold it a moment)."})
    message_id = ma.fields.String(allow_none=True)
    job_id = ma.fields.String(allow_none=True)
    new_job_id = ma.fields.String(allow_none=True, metadata={"description": "The new job (its redrive_of is job_id)."})
    reason = ma.fields.String(allow_none=True)


class RedriveAnswerSchema(ma.Schema):
    outcomes = ma.fields.List(ma.fields.Nested(RedriveOutcomeSchema), required=True)


def dead_letters(*, publishing: bool) -> DeadLetters:
    context = current()
    return DeadLetters(context.services, GPU_TASK_WORKFLOWS, context.submitter if publishing else None)


@blp.route("/dead-letters")
class DeadLetterListView(MethodView):
    @blp.response(200, DeadLetterListSchema)
    @error_responses(blp, 503)
    def get(self):
        """Every message in the GPU dead-letter queue: its job, why it is there, and whether redrive can resubmit it

        Nothing is removed. A message another reader (the control worker's sweep) holds at that moment is missed.
        """
        return {"dead_letters": [item.as_dict() for item in dead_letters(publishing=False).list()]}


@blp.route("/dead-letters/redrive")
class RedriveView(MethodView):
    @blp.arguments(RedriveRequestSchema, unknown=ma.RAISE)
    @blp.response(200, RedriveAnswerSchema)
    @error_responses(blp, 422, 503)
    def post(self, body: dict[str, Any]):
        """Resubmit dead-lettered jobs that can still run, each as a new job linked to the old one

        Unfixable ones (not a task message, unknown task, invalid parameters, no job record, a job that succeeded
        or was cancelled) are reported and left in place. Safe to repeat: a job is never resubmitted twice.
        """
        outcomes = dead_letters(publishing=not body["dry_run"]).redrive(
            body["ids"], everything=body["all"], dry_run=body["dry_run"])
        return {"outcomes": [outcome.as_dict() for outcome in outcomes]}
