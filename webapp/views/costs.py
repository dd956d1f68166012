"""GET /api/v1/costs: what the GPU cost over a period, where its time went, cost per job, and the budget."""

from __future__ import annotations


import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from lifecycle.facade import parse_period
from webapp.context import current
from webapp.errors import error_responses
from webapp.schemas import CostQuerySchema, CostReportSchema

blp = Blueprint("costs", __name__, url_prefix="/api/v1", description="What the GPU cost.")


@blp.route("/costs")
class CostView(MethodView):
    # Query parameters a client misspells are refused, not silently ignored.
    @blp.arguments(CostQuerySchema, location="query", unknown=ma.RAISE, as_kwargs=True)
    @blp.response(200, CostReportSchema)
    @error_responses(blp, 422, 503)
    def get(self, from_: str | None = None, to: str | None = None, by: str | None = None, compare: bool = False):
        """GPU cost of a period (default: this month so far)

        Hours billed (per second, at least 60 s per start, each run at the hourly price of its instance type
        and market), dollars, the shares of that time spent busy, idle and booting, the jobs that finished in
        the period and the cost per job; with a monthly budget set, this month's spend beside it; with by=owner,
        each owner's part; with compare=true, what the period's jobs would have cost run otherwise and the setting
        the history recommends. A bad date, from after to, or a period over a year is a 422 naming the parameter.
        """
        context = current()
        now = context.clock()
        # A bad period raises PeriodError, an invalid request answered 422 naming its field.
        period = parse_period(from_, to, now)
        document = context.costs(period, now, by_owner=by == "owner")
        if compare:
            document["compare"] = context.lifecycle.compare(context.services.jobs, period, now)
        return document
