"""A boolean filter with a value that is not true or false is a 400, not "no filter"."""

import pytest

from tests.factories import LocationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(api_client_factory):
    return api_client_factory(scopes=["stock:read"])


def test_an_unreadable_boolean_filter_is_refused(reader):
    LocationFactory(code="SHIPS", ships_from_location=True)
    LocationFactory(code="NOSHIP", ships_from_location=False)

    refused = reader.get("/api/v1/locations/?ships_from_location=null")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid")
    assert "ships_from_location" in refused.json()["details"]

    shipping = reader.get("/api/v1/locations/?ships_from_location=true").json()["results"]
    assert [location["code"] for location in shipping] == ["SHIPS"]
    not_shipping = reader.get("/api/v1/locations/?ships_from_location=0").json()["results"]
    assert [location["code"] for location in not_shipping] == ["NOSHIP"]


def test_an_unreadable_flag_of_the_availability_read_is_refused(reader):
    answer = reader.get("/api/v1/availability/?skus=X&include_empty=maybe")
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid")
