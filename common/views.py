from django.http import JsonResponse
from django.views.decorators.http import require_GET

from common import health


def _answer(checks: dict[str, dict]) -> JsonResponse:
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
        headers=None if healthy else {"Retry-After": "30"},
    )


@require_GET
def healthz(request):
    """The operator's view: the database, the broker, and whether the schedule runs (503 when
    any of them does not)."""
    return _answer(health.all_checks())


@require_GET
def healthz_node(request):
    """The load balancer's view: can this node serve requests (the database and the broker).
    A late scheduler is not this node's fault: taking every node out would not restart it."""
    return _answer(health.node_checks())
