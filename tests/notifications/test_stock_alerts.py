"""Back in stock near me: one message when the SKU is available where asked, with consent."""

import pytest
from django.core import mail

from customers.services import ConsentChange, consent_record
from notifications import sms
from notifications.models import BackInStockAlert
from notifications.tasks import alerts_check_task
from tests.customers.conftest import identify
from tests.factories import LocationFactory, SkuFactory
from tests.orders.conftest import committed, receive

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SMS_BACKEND = "notifications.sms.LocmemSmsBackend"
    sms.outbox.clear()


@pytest.fixture
def store():
    return LocationFactory(code="PARIS01", name="Paris Rivoli")


@pytest.fixture
def sku():
    return SkuFactory(code="TSHIRT-M", name="T-shirt M")


def consent(customer, channel, granted=True):
    consent_record(
        customer=customer,
        changes=[
            ConsentChange(
                purpose="marketing", channel=channel, granted=granted, wording_version="v1"
            )
        ],
        sales_channel="web",
        actor="test",
    )


def alert(web_client, **fields):
    payload = {
        "customer": {"email": "lea@example.test", "phone": "+33611111111", "language": "en"},
        "sku": "TSHIRT-M",
        "channel": "email",
        **fields,
    }
    with committed():
        return web_client.post(
            "/api/v1/stock-alerts/", payload, format="json", HTTP_IDEMPOTENCY_KEY=str(fields)
        )


def check():
    with committed():
        return alerts_check_task.delay().get()


def test_one_message_when_the_sku_is_back_at_the_chosen_store_then_the_alert_closes(
    web_client, store, sku
):
    # given an email alert for the T-shirt at the store, by a customer who consents
    response = alert(web_client, store="PARIS01")
    assert response.status_code == 201, response.json()
    created = BackInStockAlert.objects.get()
    consent(created.customer, "email")
    assert check() == 0  # nothing in stock yet

    # when stock arrives and the task runs twice
    receive(store, sku, 3)
    assert check() == 1
    assert check() == 0

    # then exactly one message went out, and the alert is closed
    assert [m.subject for m in mail.outbox] == ["T-shirt M is back in stock"]
    created.refresh_from_db()
    assert (created.status, created.notified_location_id) == ("notified", store.pk)


def test_without_consent_for_the_channel_nothing_is_sent_and_the_alert_closes(
    web_client, store, sku
):
    alert(web_client, store="PARIS01", channel="sms")
    consent(BackInStockAlert.objects.get().customer, "email")  # email yes, SMS no
    receive(store, sku, 1)

    assert check() == 1
    assert sms.outbox == [] and mail.outbox == []
    assert BackInStockAlert.objects.get().status == "no_consent"


def test_an_area_alert_fires_for_a_store_within_the_radius_only(web_client, sku):
    # given an alert within 5 km of the Louvre; a store 3 km away and one in Lyon
    alert(web_client, latitude="48.860600", longitude="2.337600", radius_km="5", channel="sms")
    consent(BackInStockAlert.objects.get().customer, "sms")
    lyon = LocationFactory(code="LYON01", latitude="45.764043", longitude="4.835659")
    near = LocationFactory(code="BASTILLE", latitude="48.853100", longitude="2.369100")

    receive(lyon, sku, 5)
    assert check() == 0
    receive(near, sku, 1)
    assert check() == 1

    assert BackInStockAlert.objects.get().notified_location_id == near.pk
    assert len(sms.outbox) == 1 and "BASTILLE" not in sms.outbox[0].body


@pytest.mark.parametrize(
    "fields",
    [
        {"store": "NOPICKUP"},
        {"latitude": "48.86", "longitude": "2.33"},
        {"latitude": "48.86", "longitude": "2.33", "radius_km": "500"},
        {"store": "PARIS01", "quantity": 0},
        {"sku": "NOPE", "store": "PARIS01"},
    ],
)
def test_bad_alerts_are_refused(web_client, store, sku, fields):
    LocationFactory(code="NOPICKUP", allows_pickup=False)
    response = alert(web_client, **fields)
    assert 400 <= response.status_code < 500
    assert BackInStockAlert.objects.count() == 0


def test_a_customer_reference_uses_the_email_on_file(web_client, store, sku):
    known = identify(email="lea.martin@gmail.com", phone="+33612345678").customer
    bare = identify(phone="+33698765432").customer

    by_reference = alert(web_client, customer={"reference": str(known.reference)}, store="PARIS01")
    no_email = alert(web_client, customer={"reference": str(bare.reference)}, store="PARIS01")

    assert by_reference.status_code == 201, by_reference.json()
    assert BackInStockAlert.objects.get(customer=known).contact == "lea.martin@gmail.com"
    assert (no_email.status_code, no_email.json()["code"]) == (400, "invalid")
    assert not BackInStockAlert.objects.filter(customer=bare).exists()
