from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations: events and webhooks"

    def ready(self):
        from integrations import customer_hooks

        customer_hooks.register()
