"""Money follows the goods: orders and payments wired together."""

from decimal import Decimal

import pytest

from orders import services
from orders.models import Order
from payments.orders_port import payable_order
from payments.selectors import order_payment_summary
from payments.services import stored_value as sv
from payments.services.tenders import tender_add_gift_card
from tests.factories import LocationFactory
from tests.orders.conftest import act, hand_over, key, line, place_pickup, receive

pytestmark = pytest.mark.django_db


def _gift_card(amount="100.00"):
    return sv.gift_card_issue(
        amount=amount,
        currency="EUR",
        source="goodwill",
        channel="backoffice",
        actor="test",
        idempotency_key=key(),
    )


def _paid_with_gift_card(customer, store, sku, quantity=2):
    receive(store, sku, 5)
    order = place_pickup(customer, store, [line(sku, quantity, "20.00")])
    card = _gift_card()
    tender_add_gift_card(
        order=payable_order(reference=order.reference),
        code=card.code,
        amount=order.total_amount,
        idempotency_key=key(),
        channel="web",
        actor="test",
    )
    return order, card


def _ready(order):
    act(
        services.order_picking_start,
        order_id=order.pk,
        actor="t",
        channel="backoffice",
        idempotency_key=key(),
    )
    act(
        services.order_mark_ready,
        order_id=order.pk,
        actor="t",
        channel="backoffice",
        idempotency_key=key(),
    )


def _collect(order):
    """Ready, then handed over against the right code (what is due taken at the till)."""
    from orders import pickup

    _ready(order)
    order.refresh_from_db()
    code = pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce)
    hand_over(order, code, actor="t", channel="store")


def _balance(card) -> Decimal:
    return card.card.__class__.objects.get(pk=card.card.pk).balance


def test_collecting_captures_the_gift_card_hold(customer, store, sku):
    order, card = _paid_with_gift_card(customer, store, sku)
    assert order_payment_summary(order_reference=order.reference).authorised == Decimal("40.00")
    _collect(order)

    summary = order_payment_summary(order_reference=order.reference)
    assert (summary.paid, summary.due) == (Decimal("40.00"), Decimal("0.00"))
    assert _balance(card) == Decimal("60.00")


def test_cancelling_releases_the_hold_and_costs_nothing(customer, store, sku):
    order, card = _paid_with_gift_card(customer, store, sku)

    act(
        services.order_cancel,
        order_id=order.pk,
        actor="t",
        channel="web",
        idempotency_key=key(),
        reason="changed my mind",
    )

    summary = order_payment_summary(order_reference=order.reference)
    assert (summary.authorised, summary.paid) == (Decimal("0"), Decimal("0"))
    assert _balance(card) == Decimal("100.00")


def test_a_return_in_another_store_refunds_the_gift_card(customer, store, sku):
    order, card = _paid_with_gift_card(customer, store, sku)
    _collect(order)
    elsewhere = LocationFactory(code="LYON01")

    act(
        services.order_return,
        order_id=order.pk,
        location_id=elsewhere.pk,
        actor="t",
        channel="store",
        idempotency_key=key(),
        lines=[services.ReturnLineRequest(line_no=1, quantity=1)],
    )

    assert order_payment_summary(order_reference=order.reference).refunded == Decimal("20.00")
    assert _balance(card) == Decimal("80.00")
    assert Order.objects.get(pk=order.pk).events.filter(kind="refunded").exists()


def test_a_return_of_an_order_paid_outside_is_left_for_customer_service(customer, store, sku):
    # a marketplace order: the marketplace took the money, the payments app has no tender
    receive(store, sku, 5)
    order = place_pickup(customer, store, [line(sku, 1, "20.00")], channel="marketplace")
    _collect(order)

    act(
        services.order_return,
        order_id=order.pk,
        location_id=store.pk,
        actor="t",
        channel="store",
        idempotency_key=key(),
        lines=[services.ReturnLineRequest(line_no=1, quantity=1)],
    )

    manual = Order.objects.get(pk=order.pk).events.get(kind="refund_manual")
    assert manual.data["amount"] == "20.00"


def test_a_collected_order_earns_the_customer_s_points_once(customer, store, sku):
    from loyalty.models import PointsLot
    from loyalty.services import account_open

    account = account_open(customer=customer, channel="web", actor="test")
    receive(store, sku, 5)
    order = place_pickup(customer, store, [line(sku, 2, "20.00")])
    _collect(order)

    lot = PointsLot.objects.get(account=account)
    assert (lot.source_type, lot.source_ref) == ("order", order.reference)
    assert lot.amount > 0


def test_a_return_takes_back_the_points_of_the_returned_units(customer, store, sku):
    from loyalty.models import PointsLot
    from loyalty.services import account_open

    account = account_open(customer=customer, channel="web", actor="test")
    receive(store, sku, 5)
    order = place_pickup(customer, store, [line(sku, 2, "20.00")])
    _collect(order)
    earned = PointsLot.objects.get(account=account).amount

    act(
        services.order_return,
        order_id=order.pk,
        location_id=store.pk,
        actor="t",
        channel="store",
        idempotency_key=key(),
        lines=[services.ReturnLineRequest(line_no=1, quantity=1)],
    )

    assert PointsLot.objects.get(account=account).remaining == earned - earned // 2


def test_pickup_code_is_locked_after_five_wrong_attempts(customer, store, sku):
    from orders import pickup
    from orders.exceptions import PickupCodeLocked, WrongPickupCode

    receive(store, sku, 2)
    order = place_pickup(customer, store, [line(sku, 1)])
    _ready(order)
    order.refresh_from_db()
    right = pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce)

    for _ in range(5):
        with pytest.raises(WrongPickupCode):
            services.order_collect(
                order_id=order.pk, code="WRONG1", actor="t", channel="store", idempotency_key=key()
            )
    # even the right code is refused now: guessing is stopped
    with pytest.raises(PickupCodeLocked):
        services.order_collect(
            order_id=order.pk, code=right, actor="t", channel="store", idempotency_key=key()
        )
    assert Order.objects.get(pk=order.pk).status == "ready_for_pickup"


def test_refund_per_line_through_the_api(api_client_factory, customer, store, sku):
    order, card = _paid_with_gift_card(customer, store, sku, quantity=2)  # 2 × 20.00
    _collect(order)
    client = api_client_factory(scopes=["payments:refund"], channel="store")
    url = f"/api/v1/payments/orders/{order.reference}/refunds/"

    too_many = client.post(
        url,
        {"lines": [{"line": 1, "quantity": 3}], "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="r-0",
    )
    both = client.post(
        url,
        {"lines": [{"line": 1, "quantity": 1}], "amount": "5.00", "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="r-1",
    )
    refunded = client.post(
        url,
        {"lines": [{"line": 1, "quantity": 1}], "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="r-2",
    )

    assert (too_many.status_code, too_many.json()["code"]) == (409, "refund_exceeds_line")
    assert too_many.json()["details"] == {"line": 1, "refundable": 2, "requested": 3}
    assert both.status_code == 400
    assert refunded.status_code == 201
    assert [line["amount"] for line in refunded.json()["lines"]] == ["20.00"]
    assert _balance(card) == Decimal("80.00")


def _paid_two_lines(customer, store, sku, sku2):
    """Line 1: 2 × 20.00, line 2: 1 × 30.00, paid 70.00 with a 100.00 gift card, collected."""
    receive(store, sku, 5)
    receive(store, sku2, 5)
    order = place_pickup(customer, store, [line(sku, 2, "20.00"), line(sku2, 1, "30.00")])
    card = _gift_card()
    tender_add_gift_card(
        order=payable_order(reference=order.reference),
        code=card.code,
        amount=order.total_amount,
        idempotency_key=key(),
        channel="web",
        actor="test",
    )
    _collect(order)
    return order, card


def _refund_lines(client, order, lines, idempotency_key):
    return client.post(
        f"/api/v1/payments/orders/{order.reference}/refunds/",
        {"lines": [{"line": n, "quantity": q} for n, q in lines], "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=idempotency_key,
    )


def test_a_line_refunds_at_most_its_units_over_several_refunds(
    api_client_factory, customer, store, sku, sku2
):
    order, card = _paid_two_lines(customer, store, sku, sku2)  # card: 100 − 70 = 30.00
    client = api_client_factory(scopes=["payments:refund"], channel="store")

    first = _refund_lines(client, order, [(1, 1)], "lr-1")
    second = _refund_lines(client, order, [(1, 2)], "lr-2")  # only 1 unit left on line 1
    mixed = _refund_lines(client, order, [(2, 1), (1, 2)], "lr-3")  # refused as a whole

    assert first.status_code == 201
    assert (second.status_code, second.json()["code"]) == (409, "refund_exceeds_line")
    assert second.json()["details"] == {"line": 1, "refundable": 1, "requested": 2}
    assert mixed.status_code == 409
    summary = order_payment_summary(order_reference=order.reference)
    assert summary.refunded == Decimal("20.00")  # not 60.00
    assert _balance(card) == Decimal("50.00")

    last = _refund_lines(client, order, [(1, 1), (2, 1)], "lr-4")
    assert last.status_code == 201
    assert [line["amount"] for line in last.json()["lines"]] == ["50.00"]
    assert order_payment_summary(order_reference=order.reference).refunded == Decimal("70.00")
    assert _refund_lines(client, order, [(2, 1)], "lr-5").status_code == 409


def test_a_retried_line_refund_refunds_once_and_a_reused_key_is_refused(
    api_client_factory, customer, store, sku, sku2
):
    order, card = _paid_two_lines(customer, store, sku, sku2)
    client = api_client_factory(scopes=["payments:refund"], channel="store")

    first = _refund_lines(client, order, [(1, 1)], "same-key")
    retry = _refund_lines(client, order, [(1, 1)], "same-key")
    other = _refund_lines(client, order, [(2, 1)], "same-key")

    assert first.status_code == retry.status_code == 201
    assert retry.json()["lines"] == first.json()["lines"]
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert _balance(card) == Decimal("50.00")
    assert order.lines.get(line_no=1).quantity_refunded == 1


def test_returns_and_line_refunds_never_pay_the_same_unit_twice(
    api_client_factory, customer, store, sku, sku2
):
    order, card = _paid_two_lines(customer, store, sku, sku2)
    client = api_client_factory(scopes=["payments:refund"], channel="store")
    assert _refund_lines(client, order, [(1, 1)], "kept-damaged").status_code == 201  # 20.00

    # Then both units of line 1 come back: only the one not refunded yet is paid.
    record = act(
        services.order_return,
        order_id=order.pk,
        location_id=store.pk,
        actor="t",
        channel="store",
        idempotency_key=key(),
        lines=[services.ReturnLineRequest(line_no=1, quantity=2)],
    )
    assert record.refund_amount == Decimal("20.00")
    assert order_payment_summary(order_reference=order.reference).refunded == Decimal("40.00")

    # Line 2 returned first, then refunded per line: refused, it was paid back by the return.
    act(
        services.order_return,
        order_id=order.pk,
        location_id=store.pk,
        actor="t",
        channel="store",
        idempotency_key=key(),
        lines=[services.ReturnLineRequest(line_no=2, quantity=1)],
    )
    refused = _refund_lines(client, order, [(2, 1)], "after-return")
    assert (refused.status_code, refused.json()["code"]) == (409, "refund_exceeds_line")
    assert order_payment_summary(order_reference=order.reference).refunded == Decimal("70.00")
    assert _balance(card) == Decimal("100.00")


def test_partial_pickup_takes_some_lines_pays_for_them_and_puts_the_rest_back(
    customer, store, sku, sku2
):
    from loyalty.models import PointsLot
    from loyalty.services import account_open
    from orders import pickup
    from tests.orders.conftest import active_reservations, position

    account = account_open(customer=customer, channel="web", actor="test")
    receive(store, sku, 5)
    receive(store, sku2, 5)
    order = place_pickup(customer, store, [line(sku, 2, "20.00"), line(sku2, 1, "30.00")])
    card = _gift_card()
    tender_add_gift_card(
        order=payable_order(reference=order.reference),
        code=card.code,
        amount="70.00",
        idempotency_key=key(),
        channel="web",
        actor="test",
    )
    _ready(order)
    order.refresh_from_db()

    # the shopper takes one of the two T-shirts and refuses the jeans
    act(
        services.order_collect,
        order_id=order.pk,
        actor="t",
        channel="store",
        idempotency_key=key(),
        taken={1: 1},
        code=pickup.pickup_code(reference=order.reference, nonce=order.pickup_nonce),
    )

    assert Order.objects.get(pk=order.pk).status == "collected"
    assert (position(store, sku).on_hand, position(store, sku).reserved) == (4, 0)
    assert (position(store, sku2).on_hand, position(store, sku2).reserved) == (5, 0)
    assert active_reservations(order) == []
    summary = order_payment_summary(order_reference=order.reference)
    assert (summary.paid, summary.authorised) == (Decimal("20.00"), Decimal("0"))
    assert _balance(card) == Decimal("80.00")
    lot = PointsLot.objects.get(account=account)
    assert lot.source_ref == order.reference and lot.amount > 0
    journal = Order.objects.get(pk=order.pk).events.get(kind="collected").data
    assert journal == {"taken": {"1": 1}, "refused": {"1": 1, "2": 1}}
