from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = gettext_lazy("Platform: API keys and idempotency")

    def ready(self):
        from common import schema  # noqa: F401  (registers the OpenAPI auth extension)
