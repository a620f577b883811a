"""The pickup board as a store associate meets it, in a real Chromium on a shop-floor tablet
(1024×768) and a phone (390×844), on the demo data of `make run`: she logs in and lands on her
store's board, each card says what to pick, an order waiting for its transfer cannot be started,
she starts picking and marks the order ready in two taps, and nothing is wider than the screen."""

import pytest

from demo import data as demo
from orders.models import Order, OrderStatus
from tests.browser.conftest import log_in, no_horizontal_scroll, tappable

# serialized_rollback: the staff groups and their permissions come from data migrations, which
# the flush after a transactional test would otherwise wipe for the next one.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ASSOCIATE = demo.store_staff_username(demo.DEMO_BOARD_STORE, "associate")


def _log_in(page, base: str) -> None:
    log_in(page, base, ASSOCIATE, demo.DEMO_STORE_PASSWORD)


def test_an_associate_lands_on_her_board_and_prepares_an_order_on_a_tablet(tablet, demo_served):
    page = tablet
    _log_in(page, demo_served)

    # She lands on her store's board, and the way back to it is in the header.
    page.wait_for_selector("h1")
    assert "Pickup board – PARIS-RIVOLI" in page.inner_text("h1")
    assert page.locator("a.board-link").count() == 1
    assert page.locator("h1").count() == 1  # the title once

    # Every order of the store (the default view is today's: what is due by tonight).
    page.click("nav.board-views a:has-text('All')")
    page.wait_for_selector("nav.board-views a.selected:has-text('All')")
    # Each card says what to pick: SKU, product, size, quantity and where it comes from.
    to_prepare = page.locator("section.board-column").first
    cards = to_prepare.locator("article.board-card")
    assert cards.count() == 4  # two to prepare, one waiting for its transfer, one late
    late = to_prepare.locator("article.board-late")
    assert late.count() == 1 and "Late" in late.inner_text()
    first = cards.nth(1)  # the late one comes first (earliest ready-by)
    assert "1 ×" in first.inner_text() and "(size " in first.inner_text()
    assert "here" in first.inner_text()

    # The order waiting for its goods says so and offers no "Start picking".
    waiting = to_prepare.locator(
        "article.board-card", has_text="Waiting for a transfer from WH-IDF"
    )
    assert waiting.count() == 1
    assert waiting.locator("button", has_text="Start picking").count() == 0

    # Two taps: start picking, mark ready.
    reference = first.get_attribute("data-order")
    start = first.locator("button", has_text="Start picking")
    assert tappable(page, start)
    start.click()
    page.wait_for_selector(f"article[data-order='{reference}'] button:has-text('Mark ready')")
    assert "show=all" in page.url  # the action brought her back to the view she was on
    assert "is being picked" in page.inner_text(".messagelist")
    page.click(f"article[data-order='{reference}'] button:has-text('Mark ready')")
    page.wait_for_selector(f"article[data-order='{reference}'] input[name=code]")
    assert Order.objects.get(reference=reference).status == OrderStatus.READY_FOR_PICKUP
    assert no_horizontal_scroll(page)


def test_a_wrong_code_is_told_in_plain_words_and_the_board_fits_a_phone(browser, demo_served):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    _log_in(page, demo_served)
    page.wait_for_selector("article.board-card")
    assert no_horizontal_scroll(page)
    assert tappable(page, page.locator("button", has_text="Start picking").first)

    ready = page.locator("article.board-card", has=page.locator("input[name=code]")).first
    ready.locator("input[name=code]").fill("ZZZZZZ")
    ready.locator("button", has_text="Hand over").click()
    page.wait_for_selector(".messagelist")
    message = page.inner_text(".messagelist")
    assert "code" in message.lower() and "wrong_pickup_code" not in message
    context.close()
