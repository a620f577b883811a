"""The router's pure functions: ranking, single location first, fewest shipments, speed."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from orders import routing
from orders.routing import Candidate, Need


def candidate(
    id,
    code,
    *,
    kind="warehouse",
    ships=True,
    lat=48.85,
    lon=2.35,
    priority=100,
    stock=None,
    capacity=None,
):
    return Candidate(
        id=id,
        code=code,
        kind=kind,
        can_ship=ships,
        allows_pickup=kind == "store",
        receives_transfers=True,
        priority=priority,
        latitude=lat,
        longitude=lon,
        capacity_left=capacity,
        stock=dict(stock or {}),
    )


def test_rules_rank_lexicographically_and_the_code_breaks_the_last_ties():
    # given three candidates at the same distance with different priorities
    needs = [Need(line=1, sku_id=1, quantity=1)]
    a = candidate(1, "B", priority=5, stock={1: 9})
    b = candidate(2, "A", priority=5, stock={1: 9})
    c = candidate(3, "C", priority=1, stock={1: 9})

    ranked = routing.rank([a, b, c], needs, rules=["distance", "priority"], origin=(48.85, 2.35))

    assert [cand.code for cand, _ in ranked] == ["C", "A", "B"]
    assert ranked[0][1] == (0.0, 1)


def test_stock_depth_prefers_the_deepest_stock_after_the_order():
    needs = [Need(line=1, sku_id=1, quantity=2), Need(line=2, sku_id=2, quantity=1)]
    shallow = candidate(1, "S", stock={1: 3, 2: 50})
    deep = candidate(2, "D", stock={1: 10, 2: 10})
    ranked = routing.rank([shallow, deep], needs, rules=["stock_depth"], origin=None)
    assert [cand.code for cand, _ in ranked] == ["D", "S"]


def test_a_line_is_split_across_locations_only_when_no_location_has_it_all():
    needs = [Need(line=1, sku_id=1, quantity=5, sku_code="X")]
    a = candidate(1, "A", stock={1: 3})
    b = candidate(2, "B", stock={1: 4}, lat=45.0)
    plan = routing.route_delivery(needs, [a, b], rules=["distance"], origin=(48.85, 2.35))
    assert plan.ok and plan.outcome == "split"
    # B holds more, so it is taken first (fewest locations), A completes
    assert [(x.location.code, [u for _, u in x.lines]) for x in plan.assignments] == [
        ("B", [4]),
        ("A", [1]),
    ]


def test_refusal_names_each_short_line_with_what_the_network_holds():
    needs = [Need(line=1, sku_id=1, quantity=5, sku_code="X"), Need(line=2, sku_id=2, quantity=1)]
    plan = routing.route_delivery(
        needs, [candidate(1, "A", stock={1: 3, 2: 1})], rules=["distance"], origin=None
    )
    assert not plan.ok and plan.assignments == []
    assert plan.short == [{"line": 1, "sku": "X", "requested": 5, "available": 3, "elsewhere": []}]


def test_pickup_uses_the_store_s_partial_units_only_as_a_last_resort():
    needs = [Need(line=1, sku_id=1, quantity=3, sku_code="X")]
    shop = candidate(1, "SHOP", kind="store", ships=False, stock={1: 1})
    depot = candidate(2, "DEPOT", stock={1: 2})
    plan = routing.route_pickup(needs, shop, [shop, depot], rules=["distance"])
    assert plan.ok and plan.outcome == "pickup_transfer"
    assert sorted((a.location.code, a.kind, a.lines[0][1]) for a in plan.assignments) == [
        ("DEPOT", "transfer", 2),
        ("SHOP", "pickup_local", 1),
    ]


def build_network(locations=500, skus=10, seed=7):
    rng = random.Random(seed)
    candidates = [
        candidate(
            i,
            f"L{i:03d}",
            kind="warehouse" if i % 50 == 0 else "store",
            ships=i % 3 == 0,
            lat=rng.uniform(43, 50),
            lon=rng.uniform(-1, 7),
            priority=rng.randint(1, 200),
            stock={s: rng.randint(0, 6) for s in range(skus) if rng.random() < 0.6},
            capacity=None if i % 7 else rng.randint(0, 20),
        )
        for i in range(locations)
    ]
    needs = [Need(line=s + 1, sku_id=s, quantity=1 + s % 2, sku_code=f"S{s}") for s in range(skus)]
    return candidates, needs


def test_a_ten_line_order_over_500_locations_gets_a_plan_that_serves_every_line():
    # How fast is measured by `make bench` (bench/bench_orders.py), not here.
    candidates, needs = build_network()
    rules = ["distance", "protect_last_units", "priority", "stock_depth"]

    plan = routing.route_delivery(needs, candidates, rules=rules, origin=(48.86, 2.33))

    assert plan.ok
    served = {}
    for assignment in plan.assignments:
        for need, units in assignment.lines:
            served[need.sku_id] = served.get(need.sku_id, 0) + units
            assert assignment.location.stock[need.sku_id] >= units
    assert served == {need.sku_id: need.quantity for need in needs}


# ---- properties ------------------------------------------------------------------------------

stock_maps = st.dictionaries(st.integers(0, 4), st.integers(0, 5), max_size=5)
networks = st.lists(
    st.tuples(stock_maps, st.booleans(), st.integers(1, 200)), min_size=1, max_size=12
)
orders = st.dictionaries(st.integers(0, 4), st.integers(1, 6), min_size=1, max_size=5)


def _network(rows):
    return [
        candidate(i + 1, f"L{i:02d}", ships=ships, priority=priority, stock=stock)
        for i, (stock, ships, priority) in enumerate(rows)
    ]


@settings(max_examples=300, deadline=None)
@given(networks, orders)
def test_a_delivery_plan_serves_exactly_the_order_from_what_shipping_locations_hold(rows, wanted):
    candidates = _network(rows)
    needs = [Need(line=i + 1, sku_id=sku, quantity=q) for i, (sku, q) in enumerate(wanted.items())]
    plan = routing.route_delivery(needs, candidates, rules=["priority"], origin=None)

    shippers = [c for c in candidates if c.can_ship]
    network_has = {n.sku_id: sum(c.stock.get(n.sku_id, 0) for c in shippers) for n in needs}
    if plan.ok:
        served: dict[int, int] = {}
        for assignment in plan.assignments:
            assert assignment.location.can_ship
            taken: dict[int, int] = {}
            for need, units in assignment.lines:
                assert units > 0
                served[need.line] = served.get(need.line, 0) + units
                taken[need.sku_id] = taken.get(need.sku_id, 0) + units
            for sku, units in taken.items():
                assert units <= assignment.location.stock.get(sku, 0)  # never more than held
        assert served == {n.line: n.quantity for n in needs}  # every unit, no more
        if any(all(c.stock.get(n.sku_id, 0) >= n.quantity for n in needs) for c in shippers):
            assert len(plan.assignments) == 1  # one location when one can serve everything
    else:
        assert plan.assignments == []
        # refused only when the network as a whole lacks some line
        assert any(network_has[n.sku_id] < n.quantity for n in needs)
        short = {line["line"] for line in plan.short}
        assert all(network_has[n.sku_id] < n.quantity for n in needs if n.line in short)
