"""The reports API as a BI tool and a store manager meet it: a KPI table as JSON or CSV for a
period, `reports:read` required, store staff limited to their stores, bad input refused."""

import csv
import io

import pytest
from django.contrib.auth.models import Group

from common.models import Scope
from stores.models import StaffAssignment
from tests.factories import LocationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def bi_client(api_client_factory):
    return api_client_factory(scopes=[Scope.REPORTS_READ], channel="backoffice")


@pytest.fixture
def stores(db):
    return LocationFactory(code="PARIS-1"), LocationFactory(code="LYON-1")


def test_a_kpi_table_comes_as_json_and_as_csv(bi_client, stores):
    answer = bi_client.get("/api/v1/kpis/stores/", {"from": "2026-11-02", "to": "2026-11-08"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["name"] == "stores"
    assert {row["location"] for row in body["rows"]} == {"PARIS-1", "LYON-1"}

    as_csv = bi_client.get("/api/v1/kpis/stores/", {"format": "csv"})
    assert as_csv.status_code == 200 and as_csv["Content-Type"].startswith("text/csv")
    assert 'filename="stores.csv"' in as_csv["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(as_csv.content.decode())))
    assert lines[0][0] == "location" and {line[0] for line in lines[1:]} == {"PARIS-1", "LYON-1"}


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"from": "2026-11-09", "to": "2026-11-08"}, "invalid"),
        ({"from": "2025-01-01", "to": "2026-11-08"}, "invalid"),
        ({"granularity": "hour"}, "invalid"),
        ({"channel": "fax"}, "invalid"),
        ({"from": "yesterday"}, "invalid"),
        ({"colour": "blue"}, "invalid"),
        ({"location": "NOWHERE"}, "not_found"),
    ],
)
def test_bad_report_parameters_are_refused_in_json(bi_client, stores, query, code):
    answer = bi_client.get("/api/v1/kpis/sales/", query)
    assert 400 <= answer.status_code < 500
    assert answer.json()["code"] == code


def test_an_unknown_table_is_a_404_and_a_key_without_the_scope_a_403(api_client_factory, bi_client):
    assert bi_client.get("/api/v1/kpis/weather/").json()["code"] == "not_found"
    web = api_client_factory(scopes=[Scope.ORDERS_READ], channel="web")
    assert web.get("/api/v1/kpis/sales/").status_code == 403


def test_a_store_manager_sees_her_store_only_and_an_associate_nothing(client, stores):
    paris, lyon = stores
    manager = UserFactory(username="manon", is_staff=True)
    manager.groups.add(Group.objects.get(name="Store manager"))
    StaffAssignment.objects.create(user=manager, location=paris)
    client.force_login(manager)
    rows = client.get("/api/v1/kpis/stores/").json()["rows"]
    assert [row["location"] for row in rows] == ["PARIS-1"]
    # asking for another store's figures gives nothing of it
    rows = client.get("/api/v1/kpis/stores/", {"location": "LYON-1"}).json()["rows"]
    assert rows == []
    assert client.get("/admin/analytics/catalogueday/dashboard/").status_code == 200

    associate = UserFactory(username="alice", is_staff=True)
    associate.groups.add(Group.objects.get(name="Store associate"))
    StaffAssignment.objects.create(user=associate, location=paris)
    client.force_login(associate)
    assert client.get("/api/v1/kpis/stores/").status_code == 403
    assert client.get("/admin/analytics/catalogueday/dashboard/").status_code == 403
