from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = gettext_lazy("Payments, gift cards and store credit")

    def ready(self):
        from customers import registry as rcu
        from payments import customer_hooks as hooks
        from payments.services import stored_value, tenders

        stored_value.hold_expired.connect(
            tenders.tender_hold_expired, dispatch_uid="payments-tender-hold-expired"
        )

        # Wallets are unique per (customer, currency): combined by a handler, not moved as links.
        rcu.register_merge_handler(
            "payments.store_credit", merge=hooks.merge_wallets, unmerge=hooks.unmerge_wallets
        )
        rcu.register_merge_blocker("payments.store_credit_held", hooks.open_holds_blocker)
        rcu.register_erasure_blocker("payments.store_credit", hooks.erasure_blocker)
        rcu.register_export_contributor("payments.store_credit", hooks.export_wallets)
        rcu.register_history_provider("payments.store_credit", hooks.store_credit_history)
