"""GET /api/v1/gpu and POST /api/v1/gpu/{instance_id}/start|stop: the GPU pool's instances (operators only)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from gpuorch.aws.ec2 import is_instance_id
from lifecycle.facade import PoolInstance
from webapp.context import current
from webapp.errors import ApiError, error_responses
from webapp.schemas import GpuActionSchema, GpuPoolSchema, GpuStartQuerySchema

blp = Blueprint("gpu", __name__, url_prefix="/api/v1", description="The GPU instances of the pool (operator keys).")


def describe(instance: PoolInstance) -> dict[str, Any]:
    return {"instance_id": instance.instance_id, "state": instance.state, "instance_type": instance.instance_type,
            "market": instance.market, "launched_at": instance.launched_at}


def act(instance_id: str, action: str, *, over_budget: bool = False) -> dict[str, Any]:
    """Start or stop an instance of the pool, as `gpuorch gpu start|stop` does; the outcome and the new state.

    An instance not in the pool is a 404, no EC2 capacity a 409, EC2 not answering a 503 (webapp.errors)."""
    # What is not an instance id names none and is not sent to EC2, which answers some spellings (control
    # characters) with XML botocore cannot parse.
    if not is_instance_id(instance_id):
        raise ApiError(404, "instance_not_found", f"{instance_id[:40]!r} is not an EC2 instance id.")
    lifecycle = current().lifecycle
    pool = lifecycle.pool
    released = None
    if action == "start":
        # The operator asking: the hold of an instance that could not serve is lifted (after a 404 for an
        # instance of no pool, which has no hold to touch).
        instance = pool.get(instance_id)
        # The monthly budget holds for an operator too, unless the operator says to pass it.
        refusal = None if over_budget or instance.state != "stopped" else lifecycle.start_over_budget(
            instance.instance_type, lifecycle.clock())
        if refusal:
            raise ApiError(409, "over_budget", f"{refusal}; to start {instance_id} anyway: ?over_budget=true")
        released = lifecycle.release(instance_id)
    outcome = getattr(pool, action)(instance_id)
    return {"instance_id": instance_id, "outcome": outcome, "state": pool.get(instance_id).state,
            "released": released}


@blp.route("/gpu")
class GpuPoolView(MethodView):
    @blp.response(200, GpuPoolSchema)
    @error_responses(blp, 503)
    def get(self):
        """The pool's instances: id, state, type, market and launch time"""
        context = current()
        return {"pool": context.services.settings.gpu_pool, "instances": [describe(i) for i in context.lifecycle.pool.describe()]}


@blp.route("/gpu/<string:instance_id>/start")
class GpuStartView(MethodView):
    @blp.response(200, GpuActionSchema)
    @error_responses(blp, 404, 409, 503)
    @blp.arguments(GpuStartQuerySchema, location="query", as_kwargs=True)
    def post(self, instance_id: str, over_budget: bool = False):
        """Start an instance of the pool (nothing happens if it is running or pending); the lifecycle does this itself

        An instance held because it could not serve (its worker refused to start, or it was not ready within its
        boot grace) is released: the lifecycle may start it again, and its worker checks again. A start that would
        take this month's GPU spend plus an hour past GPUORCH_MONTHLY_BUDGET_USD is refused (409 over_budget), as
        the lifecycle refuses its own, unless over_budget=true.
        """
        return act(instance_id, "start", over_budget=over_budget)


@blp.route("/gpu/<string:instance_id>/stop")
class GpuStopView(MethodView):
    @blp.response(200, GpuActionSchema)
    @error_responses(blp, 404, 503)
    def post(self, instance_id: str):
        """Stop an instance of the pool now, whatever runs on it (the lifecycle stops idle ones by itself)"""
        return act(instance_id, "stop")
