"""Demo data for `make run`: one warehouse, eleven stores in real French cities, ~400 SKUs with
stock spread unevenly (some stores out of some SKUs), API keys and a staff login.

Everything goes through the services, so the demo ledger is as consistent as a real one.
"""

import contextlib
import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from analytics.services import stock_day_take
from common.channels import SalesChannel
from common.models import ApiKey, Scope
from customers.services import customer_identify_or_create
from integrations.models import PosIntegration, PosTill
from inventory import services as stock
from inventory.models import Sku, StockPosition
from inventory.validators import gtin_with_check_digit
from orders import services as orders
from stores.models import Closure, Location, LocationKind, OpeningHours, StaffAssignment

DEMO_STAFF = ("admin", "admin")
DEMO_POS = ("demo-tills", "whsec_demo_pos_secret")  # slug, signing secret
DEMO_KEYS = {
    # name: (raw key, channel, scopes)
    "demo-web-storefront": (
        "osk_demo_web_storefront_key",
        "web",
        [
            Scope.STOCK_READ,
            Scope.ORDERS_READ,
            Scope.ORDERS_WRITE,
            Scope.CUSTOMERS_RESOLVE,
            Scope.CUSTOMERS_READ,
            Scope.CUSTOMERS_WRITE,
            Scope.PAYMENTS_READ,
            Scope.PAYMENTS_WRITE,
            Scope.LOYALTY_WRITE,
        ],
    ),
    "demo-pos": (
        "osk_demo_pos_key",
        "store",
        [
            Scope.STOCK_READ,
            Scope.STOCK_WRITE,
            Scope.ORDERS_READ,
            Scope.ORDERS_WRITE,  # click & collect: picking, ready, hand-over at the counter
            Scope.CUSTOMERS_RESOLVE,
            Scope.CUSTOMERS_CONSENT,  # consents captured at the counter
            Scope.POS_EVENTS,
            Scope.LOYALTY_WRITE,
            Scope.PAYMENTS_READ,
            Scope.PAYMENTS_WRITE,
            Scope.PAYMENTS_REFUND,  # a return at the counter refunds to the order's tenders
        ],
    ),
    "demo-back-office": ("osk_demo_back_office_key", "backoffice", [s.value for s in Scope]),
}

WAREHOUSE = (
    "WH-IDF",
    "Entrepôt Île-de-France",
    "Bussy-Saint-Georges",
    "77600",
    "2 avenue de l'Europe",
    "48.840600",
    "2.701000",
)
# code, name, city, postcode, street, latitude, longitude, Sunday opening?
STORES = [
    (
        "PARIS-RIVOLI",
        "Paris Rivoli",
        "Paris",
        "75001",
        "112 rue de Rivoli",
        "48.860600",
        "2.340500",
        True,
    ),
    (
        "PARIS-MARAIS",
        "Paris Marais",
        "Paris",
        "75004",
        "24 rue des Francs-Bourgeois",
        "48.857500",
        "2.359200",
        True,
    ),
    (
        "LYON-REPUBLIQUE",
        "Lyon République",
        "Lyon",
        "69002",
        "45 rue de la République",
        "45.763300",
        "4.835700",
        False,
    ),
    (
        "MARSEILLE-CANEB",
        "Marseille Canebière",
        "Marseille",
        "13001",
        "60 La Canebière",
        "43.297600",
        "5.378600",
        False,
    ),
    (
        "BORDEAUX-STECATH",
        "Bordeaux Sainte-Catherine",
        "Bordeaux",
        "33000",
        "80 rue Sainte-Catherine",
        "44.840000",
        "-0.573500",
        False,
    ),
    (
        "LILLE-GRANDPLACE",
        "Lille Grand Place",
        "Lille",
        "59000",
        "10 place du Général de Gaulle",
        "50.636800",
        "3.063500",
        False,
    ),
    (
        "TOULOUSE-CAPITOLE",
        "Toulouse Capitole",
        "Toulouse",
        "31000",
        "5 rue du Taur",
        "43.604500",
        "1.444000",
        False,
    ),
    (
        "NANTES-COMMERCE",
        "Nantes Commerce",
        "Nantes",
        "44000",
        "2 place du Commerce",
        "47.213000",
        "-1.559600",
        False,
    ),
    (
        "STRASBOURG-KLEBER",
        "Strasbourg Kléber",
        "Strasbourg",
        "67000",
        "1 place Kléber",
        "48.583300",
        "7.745800",
        False,
    ),
    (
        "NICE-MASSENA",
        "Nice Masséna",
        "Nice",
        "06000",
        "12 avenue Jean Médecin",
        "43.700600",
        "7.267900",
        True,
    ),
    (
        "RENNES-REPUBLIQUE",
        "Rennes République",
        "Rennes",
        "35000",
        "3 quai Lamartine",
        "48.110800",
        "-1.679700",
        False,
    ),
]
PRODUCTS = [
    ("TEE", "Organic cotton T-shirt", "tops"),
    ("POLO", "Piqué polo", "tops"),
    ("SHIRT", "Oxford shirt", "shirts"),
    ("LINEN", "Linen shirt", "shirts"),
    ("KNIT", "Merino crew-neck", "knitwear"),
    ("CARDI", "Cardigan", "knitwear"),
    ("CHINO", "Slim chino", "trousers"),
    ("JEAN", "Straight jeans", "denim"),
    ("DRESS", "Wrap dress", "dresses"),
    ("SKIRT", "Pleated skirt", "skirts"),
    ("JACKET", "Denim jacket", "outerwear"),
    ("COAT", "Wool coat", "outerwear"),
    ("TRENCH", "Trench coat", "outerwear"),
    ("HOOD", "Hoodie", "sweatshirts"),
    ("SWEAT", "Crew sweatshirt", "sweatshirts"),
    ("SHORT", "Bermuda shorts", "trousers"),
]
SIZES = ["XS", "S", "M", "L", "XL"]
COLOURS = [("NVY", "navy"), ("BLK", "black"), ("WHT", "white"), ("OLV", "olive"), ("ECR", "ecru")]
# The README's and docs' examples (run as written by tests/demo/test_docs_examples.py) hold,
# sell and order these at these stores: they must be on the shelf.
README_SHELF = {
    "PARIS-RIVOLI": {"TEE-NVY-M": 8, "JEAN-BLK-L": 3},
    "PARIS-MARAIS": {"TEE-NVY-M": 3, "JEAN-BLK-L": 2, "COAT-BLK-S": 2},
}
FRENCH_HOLIDAYS_2026_27 = [date(2026, 12, 25), date(2027, 1, 1), date(2027, 5, 1)]


def load(*, seed: int = 7, stocked_at: datetime | None = None) -> bool:
    """Load the demo once. Returns False when it is already there. `stocked_at` dates the
    locations and the first deliveries in the past (the history's orders come after them)."""
    if Location.objects.filter(code=WAREHOUSE[0]).exists():
        return False
    with time_machine.travel(stocked_at, tick=True) if stocked_at else contextlib.nullcontext():
        _catalogue_and_stock(random.Random(seed))
    _board_orders()
    # today's stock rollup, so the KPI dashboard's stock charts have a day to show at once
    stock_day_take(day=timezone.localdate())
    return True


def _catalogue_and_stock(rng: random.Random) -> None:
    with transaction.atomic():
        warehouse = _location(WAREHOUSE, kind=LocationKind.WAREHOUSE)
        stores = [_location(row[:7], sunday=row[7]) for row in STORES]
        skus = _skus()
        _api_keys()
        _staff()
        _pos(stores)
    stock.stock_receive(
        location_id=warehouse.pk,
        idempotency_key="demo:receipt:warehouse",
        reference="DEMO-INIT",
        lines=[(sku.pk, rng.randint(20, 300)) for sku in skus if rng.random() > 0.03],
    )
    by_code = {sku.code: sku for sku in skus}
    for store in stores:
        # Stores stock a part of the range, often one or two units: some are out of some SKUs.
        quantities = {
            sku.pk: rng.choice([1, 1, 2, 2, 3, 4, 6, 10]) for sku in skus if rng.random() < 0.55
        }
        # ... and the Paris shelves hold what the README's examples ask of them.
        for code, units in README_SHELF.get(store.code, {}).items():
            quantities[by_code[code].pk] = units
        lines = list(quantities.items())
        stock.stock_receive(
            location_id=store.pk,
            idempotency_key=f"demo:receipt:{store.code}",
            reference="DEMO-INIT",
            lines=lines,
        )
    stock.safety_stock_set(location_id=warehouse.pk, quantity=5)
    for store in stores:
        stock.safety_stock_set(location_id=store.pk, quantity=1)
    _store_staff(stores)


# Every store has a manager and an associate (group, store assignment), so a newcomer can walk
# the back office as store staff: <store code in lower case>.associate / DEMO_STORE_PASSWORD.
DEMO_STORE_PASSWORD = "demo"  # noqa: S105 - demo data, local use only (README)
DEMO_BOARD_STORE = "PARIS-RIVOLI"


def store_staff_username(store_code: str, role: str) -> str:
    return f"{store_code.lower()}.{role}"


def _store_staff(stores) -> None:
    groups = {
        "associate": Group.objects.get(name="Store associate"),
        "manager": Group.objects.get(name="Store manager"),
    }
    users = get_user_model()
    for store in stores:
        for role, group in groups.items():
            user = users.objects.create_user(
                username=store_staff_username(store.code, role),
                password=DEMO_STORE_PASSWORD,
                first_name=role.capitalize(),
                last_name=store.name,
                is_staff=True,
            )
            user.groups.add(group)
            StaffAssignment.objects.create(user=user, location=store)


def _board_orders() -> None:
    """Click & collect orders on the PARIS-RIVOLI board in every state — to prepare (one of them
    waiting for a transfer from the warehouse), being picked, ready, late (placed two days ago
    and still not prepared) — placed and moved by the order services. They take SKUs the
    README's examples do not use."""
    store = Location.objects.get(code=DEMO_BOARD_STORE)
    examples = {code for shelf in README_SHELF.values() for code in shelf}
    on_shelf = [
        position.sku
        for position in StockPosition.objects.filter(location=store, available__gte=2)
        .exclude(sku__code__in=examples)
        .select_related("sku")
        .order_by("sku__code")[:4]
    ]
    at_store = StockPosition.objects.filter(location=store, on_hand__gt=0).values("sku_id")
    from_warehouse = (
        StockPosition.objects.filter(location__code=WAREHOUSE[0], available__gte=10)
        .exclude(sku_id__in=at_store)
        .exclude(sku__code__in=examples)
        .select_related("sku")
        .order_by("sku__code")
        .first()
        .sku
    )
    shoppers = [("Léa", "Martin"), ("Hugo", "Bernard"), ("Chloé", "Petit"), ("Nathan", "Durand"),
                ("Inès", "Moreau"), ("Jules", "Laurent")]  # fmt: skip
    plans = [  # (SKUs, what happens next)
        ([on_shelf[0]], "to prepare"),
        ([on_shelf[1], on_shelf[2]], "to prepare"),
        ([from_warehouse], "waiting for a transfer"),
        ([on_shelf[3]], "picking"),
        ([on_shelf[0]], "ready"),
        ([on_shelf[1]], "late"),
    ]
    for n, ((first, last), (skus, state)) in enumerate(zip(shoppers, plans, strict=True), 1):
        email = f"{first.lower()}.{last.lower()}@gmail.com".replace("é", "e").replace("è", "e")
        customer = customer_identify_or_create(
            identifiers=[("email", email, "web")],
            first_name=first,
            last_name=last,
            language="fr",
            sales_channel=SalesChannel.WEB,
            actor="demo",
        ).customer
        order = orders.order_place(
            channel=SalesChannel.WEB,
            customer=customer,
            lines=[
                orders.OrderLineRequest(
                    sku_id=sku.pk, quantity=1, unit_price="29.90", currency="EUR", sku_code=sku.code
                )
                for sku in skus
            ],
            fulfilment="pickup",
            pickup_location_id=store.pk,
            idempotency_key=f"demo:board:{n}",
            actor="demo",
            contact_email=email,
            at=timezone.now() - timedelta(days=2) if state == "late" else None,
        )
        step = {"actor": "demo", "channel": SalesChannel.STORE}
        if state in ("picking", "ready"):
            orders.order_picking_start(order_id=order.pk, idempotency_key=f"demo:pick:{n}", **step)
        if state == "ready":
            orders.order_mark_ready(order_id=order.pk, idempotency_key=f"demo:ready:{n}", **step)


def _location(row, *, kind=LocationKind.STORE, sunday=False) -> Location:
    code, name, city, postcode, street, latitude, longitude = row
    is_store = kind == LocationKind.STORE
    location = Location.objects.create(
        code=code,
        name=name,
        kind=kind,
        city=city,
        postcode=postcode,
        address_line=street,
        latitude=Decimal(latitude),
        longitude=Decimal(longitude),
        timezone="Europe/Paris",
        allows_pickup=is_store,
        ships_from_location=not is_store or code in {"PARIS-RIVOLI", "LYON-REPUBLIQUE"},
        preparation_minutes=120 if is_store else 240,
        pickup_hold_days=7,
        routing_priority=10 if not is_store else 50,
        low_stock_threshold=1 if is_store else 10,
        daily_order_capacity=60 if is_store else None,
        phone="0140000000" if code.startswith("PARIS") else "",
    )
    if is_store:
        hours = [(day, time(10), time(19, 30)) for day in range(5)] + [(5, time(10), time(20))]
        if sunday:
            hours.append((6, time(11), time(19)))
    else:  # the warehouse works in two shifts on weekdays
        hours = [(day, time(6), time(22)) for day in range(5)]
    OpeningHours.objects.bulk_create(
        [OpeningHours(location=location, weekday=d, opens_at=o, closes_at=c) for d, o, c in hours]
    )
    Closure.objects.bulk_create(
        [
            Closure(location=location, date=day, reason="Public holiday")
            for day in FRENCH_HOLIDAYS_2026_27
        ]
    )
    return location


def _skus() -> list[Sku]:
    skus, number = [], 0
    for product_code, product_name, category in PRODUCTS:
        for colour_code, colour in COLOURS:
            for size in SIZES:
                number += 1
                skus.append(
                    Sku(
                        code=f"{product_code}-{colour_code}-{size}",
                        name=f"{product_name}, {colour}, {size}",
                        barcode=gtin_with_check_digit(f"376012345{number:03d}"),
                        category=category,
                        attributes={"size": size, "colour": colour, "model": product_code},
                    )
                )
    return Sku.objects.bulk_create(skus)


def _api_keys() -> None:
    for name, (raw, channel, scopes) in DEMO_KEYS.items():
        key = ApiKey(name=name, channel=channel, scopes=[str(s) for s in scopes])
        key.set_key(raw)
        key.save()


def _pos(stores) -> None:

    slug, secret = DEMO_POS
    integration = PosIntegration.objects.create(
        slug=slug, name="Demo tills", vendor="Demo POS", secret=secret
    )
    integration.stores.add(*stores)
    PosTill.objects.bulk_create(
        [
            PosTill(integration=integration, location=store, code=code)
            for store in stores
            for code in ("T1", "T2")
        ]
    )


def _staff() -> None:
    username, password = DEMO_STAFF
    get_user_model().objects.create_superuser(
        username=username, email="admin@example.com", password=password
    )
