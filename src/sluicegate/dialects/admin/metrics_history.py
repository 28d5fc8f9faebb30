"""``GET /admin/v1/metrics/history``: the last minutes of the produce rate, produce and
commit p99 latency and storage gauges, as columns ready to chart
(``observability/history.py`` says how they are sampled and why in-process). Needs the
admin permission on ``*``."""

from __future__ import annotations

from sluicegate.dialects.admin.access import require_admin
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response
from sluicegate.http.router import Route
from sluicegate.observability.history import MetricsHistory

__all__ = ["routes"]


def routes(history: MetricsHistory) -> list[Route]:
    """The metrics history admin route."""

    async def show_history(request: Request) -> Response:
        require_admin(request)
        return json_response(history.render())

    return [Route("/admin/v1/metrics/history", show_history, frozenset({"GET"}), dialect="admin")]
