from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = gettext_lazy("Integrations: events and webhooks")

    def ready(self):
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from common.outbox import events_committed
        from integrations import customer_hooks
        from integrations.models import PosIntegration, PosTill
        from integrations.pos import integration_scope_changed
        from integrations.webhooks import outbox_relay_kick

        customer_hooks.register()
        events_committed.connect(outbox_relay_kick, dispatch_uid="integrations-webhooks")

        def till_changed(instance, **kwargs):
            integration_scope_changed(instance.integration_id)

        def integration_changed(instance, **kwargs):
            integration_scope_changed(instance.pk)

        for signal in (post_save, post_delete):
            signal.connect(till_changed, sender=PosTill, dispatch_uid=f"pos-till-{signal}")
            signal.connect(
                integration_changed, sender=PosIntegration, dispatch_uid=f"pos-integration-{signal}"
            )
        m2m_changed.connect(
            integration_changed,
            sender=PosIntegration.stores.through,
            dispatch_uid="pos-integration-stores",
        )
