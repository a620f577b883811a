"""API authentication: `Authorization: Api-Key <key>` (or `X-Api-Key`), plus staff sessions."""

from dataclasses import dataclass

from django.core.cache import cache, caches
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from common.channels import SalesChannel, is_online
from common.models import ApiKey, Scope, hash_api_key

_LAST_USED_WRITE_EVERY_SECONDS = 60
local_cache = caches["local"]


@dataclass(frozen=True)
class ApiClient:
    """Who is calling: the `request.user` of an API-key request."""

    api_key_id: int
    name: str
    channel: str
    scopes: frozenset

    is_authenticated = True
    is_staff = False

    @property
    def owner(self) -> str:
        return f"key:{self.api_key_id}"

    @property
    def pk(self) -> None:  # DRF's throttling and auditing look for it
        return None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        raw_key = self._raw_key(request)
        if raw_key is None:
            return None
        # Read on every request, so that a revoked key stops at once; the caller's identity is
        # all a request needs, not a model instance.
        row = (
            ApiKey.objects.filter(key_hash=hash_api_key(raw_key), is_active=True)
            .values_list("pk", "name", "channel", "scopes")
            .first()
        )
        if row is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        api_key_id, name, channel, scopes = row
        self._touch(api_key_id)
        client = ApiClient(
            api_key_id=api_key_id, name=name, channel=channel, scopes=frozenset(scopes or [])
        )
        return client, None

    def authenticate_header(self, request):
        return self.keyword

    def _raw_key(self, request) -> str | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header.startswith(self.keyword + " "):
            return header[len(self.keyword) + 1 :].strip()
        return request.META.get("HTTP_X_API_KEY") or None

    @staticmethod
    def _touch(api_key_id: int) -> None:
        # Writing last_used_at on every request would turn every read into a write; once a
        # minute is enough to see which integrations are alive. Each process remembers its own
        # minute first, so most requests skip the shared cache's round trip as well.
        marker = f"apikey-touched:{api_key_id}"
        if not local_cache.add(marker, 1, _LAST_USED_WRITE_EVERY_SECONDS):
            return
        if cache.add(marker, 1, _LAST_USED_WRITE_EVERY_SECONDS):
            ApiKey.objects.filter(pk=api_key_id).update(last_used_at=timezone.now())


def caller_channel(request) -> str:
    user = request.user
    if isinstance(user, ApiClient):
        return user.channel
    return SalesChannel.BACKOFFICE


def caller_is_customer_facing(request) -> bool:
    """An API key of an online channel (web shop, app, marketplace, call centre): it acts for
    shoppers. Store tills, the back office and staff sessions act for the retailer."""
    user = request.user
    return isinstance(user, ApiClient) and is_online(user.channel)


def caller_is_staff_session(request) -> bool:
    """A staff member signed in to the back office, calling the API with their session: their
    groups' permissions and their stores apply, as in the admin."""
    user = request.user
    return not isinstance(user, ApiClient) and bool(getattr(user, "is_authenticated", False))


def caller_sees_orders_of(request, channel: str) -> bool:
    """The one rule for who may see an order (and its payments): a customer-facing key sees
    the orders of its own channel only; the retailer's callers see every order."""
    return not caller_is_customer_facing(request) or channel == caller_channel(request)


def caller_owner(request) -> str:
    user = request.user
    if isinstance(user, ApiClient):
        return user.owner
    return f"user:{user.pk}"


def caller_label(request) -> str:
    user = request.user
    if isinstance(user, ApiClient):
        return f"api:{user.name}"
    return f"staff:{user.get_username()}"


class HasScopes(permissions.BasePermission):
    """Views declare `required_scopes` (a dict method -> scopes, or one list for every method).

    API keys need every listed scope; an entry that is a tuple is satisfied by any one of its
    scopes (`(CUSTOMERS_WRITE, CUSTOMERS_CONSENT)`: a CRM or a till). Authenticated staff users
    (admin session) have them all.
    """

    message = "This API key does not have the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            raise exceptions.NotAuthenticated("Send an API key: `Authorization: Api-Key <key>`.")
        required = self.required_scopes(request, view)
        if isinstance(user, ApiClient):
            missing = [
                " or ".join(need) if isinstance(need, tuple) else need
                for need in required
                if not (set(need) if isinstance(need, tuple) else {need}) & user.scopes
            ]
            if missing:
                raise exceptions.PermissionDenied(
                    f"This API key lacks the scope(s): {', '.join(missing)}."
                )
            return True
        return bool(user.is_staff)

    @staticmethod
    def required_scopes(request, view) -> list[str]:
        scopes = getattr(view, "required_scopes", None)
        if scopes is None:
            return []
        if isinstance(scopes, dict):
            return scopes.get(request.method, scopes.get("*", []))
        return list(scopes)


ALL_SCOPES = [choice.value for choice in Scope]
