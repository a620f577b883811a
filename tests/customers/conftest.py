import pytest

from customers import services
from customers.identifiers import junk_rules_clear
from customers.registry import registry


@pytest.fixture(autouse=True)
def _fresh_junk_rules():
    """Rows of a previous test were rolled back without a signal: start from the database."""
    junk_rules_clear()
    yield
    junk_rules_clear()


@pytest.fixture
def sandbox_registry():
    """Lets a test register what another app (orders, loyalty…) would, and undoes it after."""
    saved = registry.snapshot()
    yield registry
    registry.restore(saved)


def identify(
    *, email=None, phone=None, card=None, external=None, channel="web", actor="test", **profile
):
    """identify-or-create with keyword identifiers, as a channel would send them."""
    identifiers = []
    if card is not None:
        identifiers.append(("loyalty_card", card, ""))
    if external is not None:
        source, value = external
        identifiers.append(("external", value, source))
    if email is not None:
        identifiers.append(("email", email, ""))
    if phone is not None:
        identifiers.append(("phone", phone, ""))
    return services.customer_identify_or_create(
        identifiers=identifiers, sales_channel=channel, actor=actor, **profile
    )


def snapshot_db():
    """Row counts and identifier owners of every customers table: `assert snapshot_db() == before`
    proves a refused call changed nothing."""
    from django.apps import apps

    counts = {
        model._meta.label: model._base_manager.count()
        for model in apps.get_app_config("customers").get_models()
    }
    from customers.models import Customer, CustomerIdentifier

    owners = sorted(
        CustomerIdentifier.objects.values_list(
            "kind", "value_normalised", "customer_id", "is_primary"
        )
    )
    customers = sorted(
        Customer.objects.values_list("pk", "status", "merged_into_id", "first_name", "last_name")
    )
    return counts, owners, customers
