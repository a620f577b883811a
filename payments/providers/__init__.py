"""Payment providers: pluggable card-processor backends behind one interface (see base.py).

`settings.PAYMENT_PROVIDERS` maps a name to a dotted class path (default: the sandbox only);
`settings.PAYMENT_PROVIDER` names the one new card tenders use. A tender remembers the provider
that took it, so refunds and webhooks go back to the right one after a switch.
"""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from payments.exceptions import UnknownProvider
from payments.providers.base import PaymentProvider

DEFAULT_PROVIDERS = {"sandbox": "payments.providers.sandbox.SandboxProvider"}


def _registry() -> dict[str, str]:
    return getattr(settings, "PAYMENT_PROVIDERS", None) or DEFAULT_PROVIDERS


@cache
def _load(path: str) -> PaymentProvider:
    return import_string(path)()


def get_provider(name: str | None = None) -> PaymentProvider:
    name = name or getattr(settings, "PAYMENT_PROVIDER", "sandbox")
    path = _registry().get(name)
    if path is None:
        raise UnknownProvider(details={"provider": [name]})
    provider = _load(path)
    if provider.name != name:  # pragma: no cover - a configuration mistake
        raise UnknownProvider(f"{path} calls itself {provider.name!r}, not {name!r}.")
    return provider
