"""Customer messages write times on the store's clock, in the customer's language."""

from datetime import UTC, datetime

import pytest
from django.core import mail

from notifications import services
from tests.customers.conftest import identify
from tests.factories import LocationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.mark.parametrize(
    "deadline_utc,language,expected",
    [
        # winter: Paris is UTC+1
        (datetime(2026, 12, 4, 11, 0, tzinfo=UTC), "fr", "vendredi 4 décembre 2026, 12:00"),
        (datetime(2026, 12, 4, 11, 0, tzinfo=UTC), "en", "Friday 4 December 2026, 12:00"),
        # summer: Paris is UTC+2
        (datetime(2026, 7, 3, 7, 53, tzinfo=UTC), "fr", "vendredi 3 juillet 2026, 09:53"),
        (datetime(2026, 7, 3, 7, 53, tzinfo=UTC), "en", "Friday 3 July 2026, 09:53"),
    ],
)
def test_the_pickup_deadline_is_written_in_the_store_s_time(deadline_utc, language, expected):
    store = LocationFactory(code="PARIS01", name="Paris Rivoli", timezone="Europe/Paris")
    context = {
        "reference": "O-1",
        "first_name": "Léa",
        "store": store,
        "pickup_deadline": deadline_utc,
        "pickup_code": "ABC123",
        "qr_payload": "OMNISTOCK-PICKUP:O-1:ABC123",
    }

    services.notification_deliver(
        dedupe_key=f"t:{deadline_utc}:{language}",
        kind="order_ready",
        language=language,
        context=context,
        email="lea.martin@gmail.com",
        time_zone=store.timezone,
    )

    assert expected in mail.outbox[0].body


def test_a_store_elsewhere_writes_its_own_clock():
    store = LocationFactory(code="PAPEETE", timezone="Pacific/Tahiti")  # UTC-10
    _, body, sms = services.render(
        "order_ready",
        "en",
        {"store": store, "pickup_deadline": datetime(2026, 12, 4, 22, 0, tzinfo=UTC)},
        store.timezone,
    )
    assert "Friday 4 December 2026, 12:00" in body and "Fri 4 Dec 12:00" in sms


def test_api_timestamps_are_utc_with_a_z(api_client_factory):
    customer = identify(email="lea.martin@gmail.com").customer
    client = api_client_factory(scopes=["customers:read"], channel="backoffice")

    profile = client.get(f"/api/v1/customers/{customer.reference}/").json()
    history = client.get(f"/api/v1/customers/{customer.reference}/history/").json()

    stamps = [profile["created_at"], *(e["occurred_at"] for e in history["results"])]
    assert stamps and all(s.endswith("Z") and "+" not in s for s in stamps), stamps
