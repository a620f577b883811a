from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request):
    """Liveness and readiness: the database, and the Celery broker when one is configured."""
    checks: dict[str, dict] = {}
    healthy = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # report, don't crash: this is what health checks are for
        healthy = False
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    if settings.REDIS_URL:
        try:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
            checks["broker"] = {"ok": True}
        except Exception as exc:
            healthy = False
            checks["broker"] = {"ok": False, "error": type(exc).__name__}
    else:
        checks["broker"] = {"ok": True, "mode": "in-process (no REDIS_URL)"}
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
