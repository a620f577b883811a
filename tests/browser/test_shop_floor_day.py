"""An associate's day in a real Chromium, on `make run`'s demo data: in French on a tablet she
hands an order over (a wrong code first, then the one from the customer's email) and takes a
return of it; she rejects a damaged line; another store's board is refused; a view-only
colleague is offered no write action; every page fits a tablet and a phone; the API docs list
their operations with no internet. With OMNISTOCK_SCREENSHOTS=1 the board is photographed at
both widths into docs/img/ (README)."""

import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.utils import translation

from demo import data as demo
from orders.models import Order, OrderEvent, OrderStatus, Return
from stores.models import Location, StaffAssignment
from tests.browser.conftest import log_in, no_horizontal_scroll, tappable
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

STORE = demo.DEMO_BOARD_STORE
ASSOCIATE = demo.store_staff_username(STORE, "associate")
TABLET = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}


def french(text: str) -> str:
    with translation.override("fr"):
        translated = translation.gettext(text)
    assert translated != text, f"{text!r} has no French translation"
    return translated


def new_page(browser, viewport, locale="en-GB"):
    context = browser.new_context(viewport=viewport, has_touch=True, locale=locale)
    return context, context.new_page()


def pickup_code_from_email(reference: str) -> str:
    """What the customer shows at the counter: the code in her "ready" email."""
    for message in reversed(mail.outbox):
        if reference in message.subject:
            found = re.search(r"(?:Code de retrait|Pickup code) ?: ([A-Z0-9]{6})", message.body)
            if found:
                return found.group(1)
    raise AssertionError(f"no pickup email for {reference}")


def test_the_associates_day_in_french_hand_over_then_return(browser, demo_served):
    context, page = new_page(browser, TABLET, locale="fr-FR")
    log_in(page, demo_served, ASSOCIATE, demo.DEMO_STORE_PASSWORD)

    # a French browser: the French back office, without choosing anything
    assert page.locator("html").get_attribute("lang") == "fr"
    assert f"{french('Pickup board')} – {STORE}" in page.inner_text("h1") or (
        "Tableau des retraits" in page.inner_text("h1")
    )
    assert page.locator("nav.board-views a", has_text=french("Today")).count() == 1
    assert no_horizontal_scroll(page)

    ready = page.locator("article.board-card", has=page.locator("input[name=code]")).first
    reference = ready.get_attribute("data-order")

    # a wrong code: refused in plain French words, nothing handed over
    ready.locator("input[name=code]").fill("ZZZZZZ")
    ready.locator("button", has_text=french("Hand over")).click()
    page.wait_for_selector(".messagelist")
    assert french("The pickup code does not match this order.") in page.inner_text(".messagelist")
    assert "wrong_pickup_code" not in page.content()
    assert Order.objects.get(reference=reference).status == OrderStatus.READY_FOR_PICKUP

    # the code from her email (typed as a scanner would), with what the till took
    card = page.locator(f"article[data-order='{reference}']")
    card.locator("input[name=code]").fill(pickup_code_from_email(reference))
    if card.locator("input[name=paid_at_till]").count():
        card.locator("input[name=paid_at_till]").check()
    hand_over = card.locator("button", has_text=french("Hand over"))
    assert tappable(page, hand_over)
    hand_over.click()
    page.wait_for_selector(".messagelist")
    assert french("was handed over") in page.inner_text(".messagelist")
    assert Order.objects.get(reference=reference).status == OrderStatus.COLLECTED

    # the customer comes back: a return taken from the board
    page.click(f'nav.board-views a:has-text("{french("Take a return")}")')
    page.fill("input[name=order]", reference)
    page.click(f'button:has-text("{french("Find the order")}")')
    page.wait_for_selector("input[name=quantity_1]")
    assert no_horizontal_scroll(page)
    page.fill("input[name=quantity_1]", "1")
    page.click(f'button:has-text("{french("Record the return")}")')
    page.wait_for_selector(".messagelist")
    assert Return.objects.filter(order__reference=reference).count() == 1
    assert reference in page.inner_text(".messagelist")
    context.close()


def test_she_rejects_a_damaged_line_by_choosing_it_and_a_labelled_reason(browser, demo_served):
    context, page = new_page(browser, TABLET)
    log_in(page, demo_served, ASSOCIATE, demo.DEMO_STORE_PASSWORD)
    page.goto(f"{page.url.split('?')[0]}?show=all")
    two_lines = page.locator(
        "article.board-card", has=page.locator("select[name=line] option >> nth=1")
    ).first
    reference = two_lines.get_attribute("data-order")

    two_lines.locator("summary").click()
    two_lines.locator("select[name=line]").select_option("2")
    two_lines.locator("select[name=reason]").select_option(label="Damaged (some or all units)")
    two_lines.locator("button", has_text="Reject the line").click()
    page.wait_for_selector(".messagelist")
    assert "line rejected and routed again" in page.inner_text(".messagelist")
    assert OrderEvent.objects.filter(order__reference=reference, kind="line_rejected").exists()
    context.close()


def test_another_stores_board_and_orders_are_refused(browser, demo_served):
    context, page = new_page(browser, TABLET)
    log_in(page, demo_served, ASSOCIATE, demo.DEMO_STORE_PASSWORD)
    other = Location.objects.exclude(code=STORE).filter(allows_pickup=True).first()

    answer = page.goto(f"{demo_served}/admin/orders/order/board/{other.pk}/")
    assert answer.status == 403

    theirs = Order.objects.exclude(pickup_location__code=STORE).filter(
        pickup_location__isnull=False
    ).first() or _an_order_at(other)
    page.goto(f"{demo_served}/admin/orders/order/{theirs.pk}/change/")
    assert "/board/" in page.url  # back on her own board
    assert "not by one of your stores" in page.inner_text(".messagelist")
    context.close()


def _an_order_at(store):
    from customers.models import Customer
    from inventory.models import StockPosition
    from orders import services

    position = StockPosition.objects.filter(location=store, available__gte=1).first()
    return services.order_place(
        channel="web",
        customer=Customer.objects.first(),
        lines=[services.OrderLineRequest(sku_id=position.sku_id, quantity=1, unit_price="10.00",
                                         currency="EUR", sku_code="")],
        fulfilment="pickup",
        pickup_location_id=store.pk,
        idempotency_key="browser:other-store",
        actor="test",
    )  # fmt: skip


def test_a_view_only_colleague_is_offered_no_write_action(browser, demo_served):
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.set_password("view-only")
    viewer.save()
    group = Group.objects.create(name="Store viewer")
    group.permissions.set(
        Permission.objects.filter(
            codename__in=["view_order", "view_stockposition", "view_transfer", "view_stockcount"]
        )
    )
    viewer.groups.add(group)
    StaffAssignment.objects.create(user=viewer, location=Location.objects.get(code=STORE))

    context, page = new_page(browser, TABLET)
    log_in(page, demo_served, "viewer", "view-only")
    # her board shows the orders, with no button that changes one
    page.wait_for_selector("article.board-card")
    assert page.locator("article.board-card button").count() == 0
    assert page.locator("nav.board-views a.board-return").count() == 0
    for listing in ("inventory/stockposition", "inventory/transfer", "orders/order"):
        page.goto(f"{demo_served}/admin/{listing}/")
        page.wait_for_selector("#changelist")
        assert page.locator("select[name=action] option[value]:not([value=''])").count() == 0, (
            listing
        )
    context.close()


@pytest.mark.parametrize("viewport", [TABLET, PHONE], ids=["tablet", "phone"])
def test_the_pages_she_uses_fit_the_screen(browser, demo_served, viewport):
    context, page = new_page(browser, viewport, locale="fr-FR")  # French words are longer
    log_in(page, demo_served, ASSOCIATE, demo.DEMO_STORE_PASSWORD)
    board = page.url
    assert no_horizontal_scroll(page)
    if os.environ.get("OMNISTOCK_SCREENSHOTS"):
        out = Path(settings.BASE_DIR) / "docs" / "img"
        out.mkdir(exist_ok=True)
        page.screenshot(path=str(out / f"board-{viewport['width']}.png"), full_page=True)
    order = Order.objects.filter(pickup_location__code=STORE).first()
    for path in (
        f"/admin/orders/order/{order.pk}/change/",
        "/admin/orders/return/add/",
        "/admin/inventory/stockcount/",
    ):
        page.goto(f"{demo_served}{path}")
        page.wait_for_selector("#content")
        assert no_horizontal_scroll(page), path
    # the order page's rows have no repeated heading ("1#1 1 × 149")
    page.goto(f"{demo_served}/admin/orders/order/{order.pk}/change/")
    assert page.locator("fieldset.omnistock-readonly td.original p:visible").count() == 0
    if viewport == TABLET:
        # the orders list shows every column, up to the last, on the tablet's screen
        page.goto(f"{demo_served}/admin/orders/order/?all=1")
        last = page.locator("#result_list thead th").last
        box = last.bounding_box()
        assert box["x"] + box["width"] <= viewport["width"]
    page.goto(board)
    assert tappable(page, page.locator("article.board-card button").first)
    context.close()


def test_the_api_docs_list_their_operations_with_no_internet(browser, live_server):
    context = browser.new_context(viewport=TABLET)
    page = context.new_page()
    outside = []

    def only_this_server(route):
        if route.request.url.startswith(live_server.url):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", only_this_server)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() > 50
    assert not outside, outside
    context.close()
