"""Order messages go through an outbox: owed in the transaction that owes them, sent after it
commits, retried when the transport fails, and scheduled once per burst, not once per order."""

from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core import mail
from django.utils import timezone

from notifications import sms
from notifications.models import Notification
from orders import services
from orders.exceptions import OutOfStock
from orders.models import PendingNotification
from orders.services import notifications as outbox
from orders.tasks import order_notifications_send_task
from tests.orders.conftest import line, place_pickup, receive

pytestmark = pytest.mark.django_db


class DownSms(sms.BaseSmsBackend):
    """An SMS gateway that is down until told otherwise."""

    down = True

    def send_messages(self, messages):
        if DownSms.down:
            raise OSError("gateway down")
        sms.outbox.extend(messages)
        return len(messages)


def test_a_placed_order_owes_its_confirmation_and_it_is_sent_once_committed(
    customer, store, sku, django_capture_on_commit_callbacks
):
    receive(store, sku, 3)

    with django_capture_on_commit_callbacks(execute=False) as scheduled:
        order = services.order_place(
            channel="web",
            customer=customer,
            lines=[line(sku)],
            fulfilment="pickup",
            pickup_location_id=store.pk,
            idempotency_key="owe-1",
            actor="test",
            contact_email="camille@example.test",
        )
    owed = PendingNotification.objects.get()
    assert (owed.order_id, owed.kind, owed.attempts) == (order.pk, "order_confirmed", 0)
    assert mail.outbox == []  # nothing leaves before the commit

    for callback in scheduled:  # the commit
        callback()

    assert [m.to for m in mail.outbox] == [["camille@example.test"]]
    assert order.reference in mail.outbox[0].subject
    assert not PendingNotification.objects.exists()


def test_a_refused_order_owes_nothing(customer, store, sku):
    with pytest.raises(OutOfStock):
        place_pickup(customer, store, [line(sku)])

    assert not PendingNotification.objects.exists()
    assert mail.outbox == []


def test_a_transport_failure_keeps_the_message_and_a_later_run_sends_it_once(
    customer, store, sku, settings
):
    settings.SMS_BACKEND = "tests.orders.test_notification_outbox.DownSms"
    DownSms.down = True
    receive(store, sku, 3)
    order = place_pickup(customer, store, [line(sku)])  # email sent, SMS failed

    owed = PendingNotification.objects.get()
    assert (owed.attempts, owed.last_error) == (1, "OSError: gateway down")
    assert owed.due_at > timezone.now()  # not before its delay
    assert services.order_notifications_send() == (0, False)

    DownSms.down = False
    PendingNotification.objects.update(due_at=timezone.now())
    assert services.order_notifications_send() == (1, False)

    assert not PendingNotification.objects.exists()
    assert len(mail.outbox) == 1  # the email went the first time and is not sent again
    assert [m.to for m in sms.outbox] == ["+33612345678"]
    assert Notification.objects.filter(subject_reference=order.reference).count() == 2


def test_a_message_that_keeps_failing_stays_for_staff_after_the_last_attempt(
    customer, store, sku, monkeypatch
):
    receive(store, sku, 3)

    def broken(**kwargs):
        raise ValueError("template missing")

    monkeypatch.setattr("orders.services.notifications.order_notification_send", broken)
    place_pickup(customer, store, [line(sku)])
    for _ in range(PendingNotification.MAX_ATTEMPTS + 2):
        PendingNotification.objects.update(due_at=timezone.now() - timedelta(seconds=1))
        services.order_notifications_send()

    owed = PendingNotification.objects.get()
    assert owed.attempts == PendingNotification.MAX_ATTEMPTS
    assert owed.last_error == "ValueError: template missing"


def test_a_claimed_message_is_not_sent_again_by_another_run_until_its_lease_ends(
    customer, store, sku, monkeypatch
):
    receive(store, sku, 3)
    monkeypatch.setattr(outbox, "notifications_kick", lambda: None)  # no send on commit
    place_pickup(customer, store, [line(sku)])

    claimed = outbox._claim_due_notifications(batch_size=10, lease_seconds=300)
    # A worker died holding it: other runs leave it alone until the lease is over.
    assert len(claimed) == 1
    assert services.order_notifications_send() == (0, False)
    PendingNotification.objects.update(due_at=timezone.now())
    assert services.order_notifications_send() == (1, False)
    assert len(mail.outbox) == 1


def test_a_burst_of_commits_schedules_one_task_per_delay(monkeypatch):
    """With a broker (tasks not run in-process), the first commit schedules the sending task
    NOTIFY_DELAY_SECONDS ahead; commits until then rely on it; the next one schedules again."""
    scheduled = []
    clock = [1000.0]
    monkeypatch.setitem(order_notifications_send_task.app.conf, "task_always_eager", False)
    monkeypatch.setattr(
        order_notifications_send_task, "apply_async", lambda **options: scheduled.append(options)
    )
    monkeypatch.setattr(outbox.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(outbox, "_last_kick", [float("-inf")])

    for _ in range(50):  # fifty orders committed within a few hundred milliseconds
        outbox.notifications_kick()
        clock[0] += 0.01
    clock[0] += outbox.NOTIFY_DELAY_SECONDS
    outbox.notifications_kick()

    assert scheduled == [{"countdown": outbox.NOTIFY_DELAY_SECONDS}] * 2


def test_the_task_carries_on_in_a_new_task_when_its_time_is_up(monkeypatch):
    queued = []
    monkeypatch.setattr("orders.tasks.services.order_notifications_send", lambda: (7, True))
    monkeypatch.setattr(order_notifications_send_task, "delay", lambda: queued.append(1))

    assert order_notifications_send_task.run() == 7
    assert queued == [1]


def test_staff_see_failing_messages_in_the_admin(admin_client, customer, store, sku, settings):
    settings.SMS_BACKEND = "tests.orders.test_notification_outbox.DownSms"
    DownSms.down = True
    receive(store, sku, 3)
    order = place_pickup(customer, store, [line(sku)])

    page = admin_client.get("/admin/orders/pendingnotification/")

    assert page.status_code == 200
    assert order.reference in page.content.decode()
    assert "gateway down" in page.content.decode()


class BrokenOnceSms(sms.BaseSmsBackend):
    """A gateway client that fails with its own exception (not an OSError) once."""

    fail = True

    def send_messages(self, messages):
        if BrokenOnceSms.fail:
            BrokenOnceSms.fail = False
            raise ValueError("gateway answered 500")
        sms.outbox.extend(messages)
        return len(messages)


def test_a_send_that_fails_with_any_error_is_sent_by_the_retry(customer, store, sku, settings):
    settings.SMS_BACKEND = "tests.orders.test_notification_outbox.BrokenOnceSms"
    BrokenOnceSms.fail = True
    receive(store, sku, 3)
    place_pickup(customer, store, [line(sku)])
    assert PendingNotification.objects.get().attempts == 1

    PendingNotification.objects.update(due_at=timezone.now())
    assert services.order_notifications_send() == (1, False)

    assert [m.to for m in sms.outbox] == ["+33612345678"]  # sent, not just marked as sent
    assert not PendingNotification.objects.exists()


def owe_confirmations(customer, store, sku, count, monkeypatch):
    monkeypatch.setattr(outbox, "notifications_kick", lambda: None)
    receive(store, sku, count)
    for _ in range(count):
        place_pickup(customer, store, [line(sku)])
    return list(PendingNotification.objects.order_by("pk"))


def test_a_run_out_of_time_puts_what_it_claimed_back_in_the_queue(
    customer, store, sku, monkeypatch
):
    owed = owe_confirmations(customer, store, sku, 3, monkeypatch)
    clock = [0.0]
    monkeypatch.setattr(outbox.time, "monotonic", lambda: clock[0])
    real_send = outbox.order_notification_send

    def slow_send(**kwargs):
        clock[0] += 20  # each message takes 20 s of the 30 s budget
        return real_send(**kwargs)

    monkeypatch.setattr("orders.services.notifications.order_notification_send", slow_send)
    assert services.order_notifications_send(time_budget_seconds=30) == (2, True)

    left = PendingNotification.objects.get()
    assert left.pk == owed[2].pk
    assert left.due_at <= timezone.now()  # due again now, not after the 5-minute lease


def test_a_stopped_task_releases_its_claims_and_stops(customer, store, sku, monkeypatch):
    owed = owe_confirmations(customer, store, sku, 2, monkeypatch)

    def stopped(**kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr("orders.services.notifications.order_notification_send", stopped)
    with pytest.raises(SoftTimeLimitExceeded):
        services.order_notifications_send()

    assert [p.pk for p in PendingNotification.objects.order_by("pk")] == [p.pk for p in owed]
    assert all(
        p.attempts == 0 and p.due_at <= timezone.now() for p in PendingNotification.objects.all()
    )


def test_a_broker_that_is_down_does_not_fail_the_order_and_the_next_commit_tries_again(
    customer, store, sku, monkeypatch
):
    scheduled = []

    def broker(**options):
        if not scheduled:
            scheduled.append("failed")
            raise OSError("broker down")
        scheduled.append(options)

    monkeypatch.setitem(order_notifications_send_task.app.conf, "task_always_eager", False)
    monkeypatch.setattr(order_notifications_send_task, "apply_async", broker)
    monkeypatch.setattr(outbox, "_last_kick", [float("-inf")])
    receive(store, sku, 2)

    first = place_pickup(customer, store, [line(sku)])  # committed, though the publish failed
    place_pickup(customer, store, [line(sku)])

    assert first.pk and PendingNotification.objects.count() == 2
    assert scheduled == ["failed", {"countdown": outbox.NOTIFY_DELAY_SECONDS}]
