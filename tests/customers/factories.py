"""Factories for the customer reference."""

import factory

from customers.identifiers import customer_number_new, name_key
from customers.models import Address, Customer, CustomerIdentifier, IdentifierKind


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    number = factory.LazyFunction(customer_number_new)
    first_name = factory.Sequence(lambda n: f"Camille{n}")
    last_name = "Martin"
    name_key = factory.LazyAttribute(lambda o: name_key(o.first_name, o.last_name))
    created_channel = "web"


class IdentifierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerIdentifier

    customer = factory.SubFactory(CustomerFactory)
    kind = IdentifierKind.EMAIL
    source = ""
    value_normalised = factory.Sequence(lambda n: f"person{n}@mail.test.example")
    value_raw = factory.LazyAttribute(lambda o: o.value_normalised)
    is_primary = True


class AddressFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Address

    customer = factory.SubFactory(CustomerFactory)
    line1 = factory.Sequence(lambda n: f"{n} rue de Rivoli")
    postcode = "75001"
    city = "Paris"
