"""common.sql.insert_values takes a value as it is only where the field would write it
unchanged: for every field of the models written in plain SQL, the value sent is the ORM's."""

from decimal import Decimal

import pytest
from django.db import connection

from common import sql
from orders.models import Allocation, AllocationKind, Order, OrderEvent, OrderLine, OrderStatus
from tests.factories import LocationFactory


@pytest.mark.django_db
def test_values_taken_as_they_are_are_those_the_orm_would_send():
    store = LocationFactory()
    order = Order(
        reference="W123",
        created_by_key="key",
        channel="web",
        customer_id=7,
        currency="EUR",
        total_amount=Decimal("19.90"),
        fulfilment="pickup",
        pickup_location=store,
        status=OrderStatus.ALLOCATED,  # a str subclass: the field is asked
        placed_at=None,
    )
    rows = [
        (order, sql.insert_columns(Order)),
        (OrderLine(order=order, line_no=2, sku_id=5, quantity=3, unit_price="4.50"), None),
        (Allocation(order=order, location=store, kind=AllocationKind.TRANSFER), None),
        (OrderEvent(order=order, kind="placed", actor="x", channel="web", data={"a": 1}), None),
    ]
    checked = 0
    for instance, columns in rows:
        columns = columns or sql.insert_columns(type(instance))
        sent = dict(zip(columns, sql.insert_values(instance, columns), strict=True))
        for field in columns:
            value = getattr(instance, field.attname)
            taken = sql._none_is_null(field) if value is None else sql._written_as_is(field)
            if not taken:
                continue  # asked of the field itself, as the ORM does
            checked += 1
            orm = field.get_db_prep_save(field.pre_save(instance, True), connection=connection)
            assert sent[field] == orm and type(sent[field]) is type(orm), field
    assert checked > 25
    assert sql._written_as_is(Order._meta.get_field("status")) == (str, "")
    assert sql._written_as_is(Order._meta.get_field("total_amount")) is None
    assert sql._written_as_is(OrderEvent._meta.get_field("data")) is None
