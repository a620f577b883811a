"""Real-browser tests: Debian's Chromium (installed by `make test` where missing) driven by
Playwright (the Python package drives it with `executable_path`; no browser is downloaded),
against pytest-django's live server."""

import os
import shutil

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
# two page actions are synchronous all the same.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package.")
    return found


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def tablet(browser):
    """A shop-floor tablet: 1024×768, touch."""
    context = browser.new_context(viewport={"width": 1024, "height": 768}, has_touch=True)
    yield context.new_page()
    context.close()


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth + 1")


def tappable(page, locator) -> bool:
    """The element is at least 44 px each way and nothing covers its centre."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    if not box or box["width"] < 44 or box["height"] < 44:
        return False
    return page.evaluate(
        "([x, y, el]) => { const hit = document.elementFromPoint(x, y);"
        " return hit === el || el.contains(hit); }",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, locator.element_handle()],
    )


def staff_groups_restore() -> None:
    """The staff groups and their permissions, as the data migrations create them: a
    transactional test before this one flushed them (permissions come back, groups do not)."""
    from importlib import import_module

    from django.contrib.auth.models import Group, Permission

    grants = {}
    for module in (
        "orders.migrations.0003_staff_groups",
        "orders.migrations.0010_staff_groups_stock_and_returns",
        "orders.migrations.0012_staff_groups_see_counts_and_returns",
        "analytics.migrations.0002_store_managers_see_kpis",
    ):
        migration = import_module(module)
        for name, dotted in getattr(migration, "GROUPS", getattr(migration, "GRANTS", {})).items():
            grants.setdefault(name, []).extend(dotted)
    for name, dotted_names in grants.items():
        group, _ = Group.objects.get_or_create(name=name)
        for dotted in dotted_names:
            app_label, codename = dotted.split(".")
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission is not None:
                group.permissions.add(permission)


@pytest.fixture
def demo_served(live_server):
    """`make run`'s demo data behind pytest-django's live server."""
    from django.core.management import call_command

    staff_groups_restore()
    call_command("load_demo", verbosity=0)
    return live_server.url


def log_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools, .errornote")
