from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle

from common.auth import caller_owner


class PerCallerRateThrottle(SimpleRateThrottle):
    """A rate per API key (or staff user), for endpoints where many calls mean guessing.

    Views set `throttle_scope`; rates live in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]. (DRF's
    own throttles key on a user's pk, which API-key callers do not have.)"""

    # A rate limit must not fail open: without Redis the guarded call answers 503.
    cache = caches["counters"]

    def get_rate(self):
        # Read at call time (DRF copies the rates into a class attribute at import).
        from rest_framework.settings import api_settings

        self.scope = getattr(self.view, "throttle_scope", None)
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def allow_request(self, request, view):
        self.view = view
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def __init__(self):  # the rate is known only once the view is
        pass

    def get_cache_key(self, request, view):
        return f"throttle:{self.scope}:{caller_owner(request)}"
