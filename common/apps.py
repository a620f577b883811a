from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Platform: API keys and idempotency"

    def ready(self):
        from common import schema  # noqa: F401  (registers the OpenAPI auth extension)
