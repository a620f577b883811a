from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = "Loyalty and personal offers"

    def ready(self):
        from loyalty import customer_hooks

        customer_hooks.register()
