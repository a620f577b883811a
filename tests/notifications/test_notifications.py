"""Email + swappable SMS notifications: rendering in fr/en, once per message, retry on failure."""

import io

import pytest
from django.core import mail

from notifications import services, sms
from notifications.models import Notification


@pytest.fixture(autouse=True)
def _locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SMS_BACKEND = "notifications.sms.LocmemSmsBackend"
    sms.outbox.clear()
    yield
    sms.outbox.clear()


class FlakySms(sms.BaseSmsBackend):
    calls = 0

    def send_messages(self, messages):
        FlakySms.calls += 1
        if FlakySms.calls == 1:
            raise OSError("gateway down")
        return len(messages)


def deliver(**overrides):
    params = {
        "dedupe_key": "order:W1:order_cancelled",
        "kind": "order_cancelled",
        "language": "fr",
        "context": {"reference": "W1", "first_name": "Léa", "alternatives": []},
        "email": "lea@example.test",
        "phone": "+33612345678",
        "subject_reference": "W1",
    }
    params.update(overrides)
    return services.notification_deliver(**params)


def test_the_console_backend_writes_the_message():
    stream = io.StringIO()
    sent = sms.ConsoleSmsBackend(stream=stream).send_messages(
        [sms.SmsMessage("+33600000000", "Hi")]
    )
    assert sent == 1 and stream.getvalue() == "SMS to +33600000000: Hi\n"


def test_the_backend_is_chosen_by_settings(settings):
    settings.SMS_BACKEND = "notifications.sms.ConsoleSmsBackend"
    assert isinstance(sms.get_sms_backend(), sms.ConsoleSmsBackend)
    settings.SMS_BACKEND = "notifications.sms.LocmemSmsBackend"
    sms.send_sms("+33611111111", "Bonjour")
    assert sms.outbox == [sms.SmsMessage(to="+33611111111", body="Bonjour")]


@pytest.mark.parametrize(
    ("language", "subject"), [("fr", "Commande W1 annulée"), ("en", "Order W1 cancelled")]
)
def test_messages_are_rendered_in_the_customer_s_language(db, language, subject):
    deliver(language=language)
    assert mail.outbox[0].subject == subject
    assert "W1" in sms.outbox[0].body


def test_an_unknown_language_falls_back_to_english(db):
    deliver(language="de")
    assert mail.outbox[0].subject == "Order W1 cancelled"


def test_a_message_is_sent_once_even_when_the_task_runs_twice(db):
    assert deliver() == 2
    assert deliver() == 0
    assert (len(mail.outbox), len(sms.outbox)) == (1, 1)
    assert Notification.objects.count() == 2


def test_a_transport_failure_releases_the_claim_so_the_retry_sends(db, settings):
    settings.SMS_BACKEND = "tests.notifications.test_notifications.FlakySms"
    FlakySms.calls = 0
    with pytest.raises(OSError):
        deliver(email="")
    assert Notification.objects.count() == 0
    assert deliver(email="") == 1
    assert Notification.objects.get().status == "sent"


def test_a_channel_without_consent_is_recorded_as_skipped_and_not_sent(db):
    sent = deliver(allowed_channels=frozenset({"email"}))
    assert sent == 1 and sms.outbox == []
    assert Notification.objects.get(channel="sms").status == "skipped"
