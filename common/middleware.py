from common.api import json_404, outage_response


class ApiJsonNotFoundMiddleware:
    """Unknown URLs under /api/ answer the API's JSON 404 even with DEBUG on (where Django would
    show its HTML debug page): storefront developers see the same contract as production."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code == 404
            and request.path.startswith("/api/")
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return json_404(request)
        return response


class OutageMiddleware:
    """Outside DRF's views (the admin, /healthz's neighbours), a part that is down answers the
    API's 503 with Retry-After too, never a 500 page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        return outage_response(exception)
