"""The KPI dashboard as a store manager meets it, in real Chromium, on the demo with a week of
history made by the services (`load_demo --history-weeks 1`): the header's link opens it, the
six charts are drawn with data, and the tables hold her store only."""

import pytest
from django.core.management import call_command

from demo import data as demo
from orders.models import Order, OrderStatus
from tests.browser.conftest import log_in, no_horizontal_scroll, staff_groups_restore

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

MANAGER = demo.store_staff_username(demo.DEMO_BOARD_STORE, "manager")


@pytest.fixture
def demo_with_history(live_server):
    staff_groups_restore()
    call_command("load_demo", "--history-weeks", "1", verbosity=0)
    return live_server.url


def test_a_store_manager_reads_her_stores_kpis_in_charts(browser, demo_with_history):
    # the history made orders in several states, through the services
    assert Order.objects.filter(status=OrderStatus.COLLECTED).exists()
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="fr-FR")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda r: errors.append(r.url) if r.status >= 400 and "favicon" not in r.url else None,
    )
    log_in(page, demo_with_history, MANAGER, demo.DEMO_STORE_PASSWORD)
    page.click("a.kpi-link")
    page.wait_for_selector("canvas#chart-sales")
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-sales')", timeout=10_000)
    assert not errors, errors

    drawn = page.evaluate(
        """() => [...document.querySelectorAll('canvas[data-chart]')].map(c => {
             const chart = Chart.getChart(c);
             return [c.dataset.chart, chart ? chart.data.datasets.reduce(
                 (n, d) => n + d.data.filter(v => v !== null && v !== 0).length, 0) : -1];
           })"""
    )
    counts = dict(drawn)
    assert set(counts) == {"sales", "funnel", "on_time", "stock_outs", "unified", "o2o"}
    for name in ("sales", "funnel", "unified"):
        assert counts[name] > 0, f"the {name} chart has no data: {drawn}"

    # her store only, and the page fits the tablet
    stores_table = page.locator("#table-stores tbody tr")
    assert stores_table.count() == 1 and demo.DEMO_BOARD_STORE in stores_table.inner_text()
    assert "Indicateurs" in page.inner_text("h1")
    assert no_horizontal_scroll(page)
    context.close()
