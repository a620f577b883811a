from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = gettext_lazy("Loyalty and personal offers")

    def ready(self):
        from loyalty import customer_hooks

        customer_hooks.register()
