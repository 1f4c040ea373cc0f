"""Route precedence, exactly as documented in smsgw.routing."""

from __future__ import annotations

import random
from itertools import count

from smsgw.routing import MoRoute, MoRoutingTable, MtRoute, RoutingTable, normalize_number
from tests.helpers.depth import examples

_ids = count(1)


def mt(prefix: str, provider: str, **kw: object) -> MtRoute:
    return MtRoute(id=next(_ids), prefix=prefix, provider=provider, **kw)  # type: ignore[arg-type]


def via(table: RoutingTable, dest: str, customer: str = "shop", source: str = "12345") -> str:
    found = table.route(customer, source, dest)
    return found.provider if found else "-"


def test_longest_destination_prefix_wins() -> None:
    t = RoutingTable([mt("", "any"), mt("44", "uk"), mt("4479", "uk-mobile")])
    assert via(t, "447912345678") == "uk-mobile"
    assert via(t, "441234567890") == "uk"
    assert via(t, "33612345678") == "any"


def test_no_route_without_catch_all() -> None:
    t = RoutingTable([mt("44", "uk")])
    assert t.route("shop", "1", "33612345678") is None
    assert RoutingTable([]).route("shop", "1", "44") is None


def test_prefix_longer_than_number_does_not_match() -> None:
    t = RoutingTable([mt("4479", "long"), mt("44", "short")])
    assert via(t, "447") == "short"
    assert via(t, "4479") == "long"


def test_customer_route_beats_generic_at_equal_prefix() -> None:
    t = RoutingTable([mt("44", "generic", priority=99), mt("44", "own", customer="shop")])
    assert via(t, "4479", customer="shop") == "own"
    assert via(t, "4479", customer="other") == "generic"


def test_longer_generic_prefix_beats_shorter_customer_route() -> None:
    t = RoutingTable([mt("44", "own", customer="shop"), mt("4479", "generic")])
    assert via(t, "447900", customer="shop") == "generic"
    assert via(t, "441100", customer="shop") == "own"


def test_matching_source_prefix_beats_none_and_longer_beats_shorter() -> None:
    t = RoutingTable(
        [
            mt("44", "plain", priority=50),
            mt("44", "src49", source_prefix="49"),
            mt("44", "src4917", source_prefix="4917"),
        ]
    )
    assert via(t, "4479", source="491701") == "src4917"
    assert via(t, "4479", source="491801") == "src49"
    assert via(t, "4479", source="33601") == "plain"


def test_customer_beats_source_prefix() -> None:
    t = RoutingTable(
        [mt("44", "generic-src", source_prefix="49"), mt("44", "own", customer="shop")]
    )
    assert via(t, "4479", source="4917") == "own"


def test_non_matching_source_falls_through_to_shorter_prefix() -> None:
    t = RoutingTable([mt("4479", "bank-only", source_prefix="BANK"), mt("44", "uk")])
    assert via(t, "447900", source="bank") == "bank-only"  # case-insensitive
    assert via(t, "447900", source="SHOP") == "uk"


def test_higher_priority_wins_last() -> None:
    t = RoutingTable([mt("44", "low", priority=1), mt("44", "high", priority=7)])
    assert via(t, "4479") == "high"
    t = RoutingTable(
        [
            mt("44", "own-low", customer="shop", priority=1),
            mt("44", "own-high", customer="shop", priority=2),
        ]
    )
    assert via(t, "4479") == "own-high"


def test_candidates_in_precedence_order_for_failover_of_disabled() -> None:
    routes = [
        mt("", "catch", priority=5),
        mt("44", "g-low", priority=0),
        mt("44", "g-high", priority=3),
        mt("44", "g-src", source_prefix="1"),
        mt("44", "own", customer="shop"),
        mt("447", "longest"),
        mt("447", "other-customer", customer="x"),
    ]
    t = RoutingTable(random.Random(4).sample(routes, len(routes)))
    got = [r.provider for r in t.candidates("shop", "123", "4479")]
    assert got == ["longest", "own", "g-src", "g-high", "g-low", "catch"]
    assert len(t) == len(routes)


def test_plus_is_stripped_but_00_is_not() -> None:
    assert normalize_number(" +4479 ") == "4479"
    assert normalize_number("004479") == "004479"
    t = RoutingTable([mt("44", "uk"), mt("", "any")])
    assert via(t, "+447900") == "uk"
    assert via(t, "00447900") == "any"
    t = RoutingTable([mt("+44", "uk")])
    assert via(t, "447900") == "uk"


def test_failover_names_kept_in_order() -> None:
    t = RoutingTable([mt("44", "a", failover=("c", "b"))])
    found = t.route("shop", "1", "4479")
    assert found is not None and found.failover == ("c", "b")


def test_mo_longest_prefix_and_full_number() -> None:
    t = MoRoutingTable(
        [
            MoRoute(1, "4477009", "bank"),
            MoRoute(2, "447700900123", "shop"),
            MoRoute(3, "", "default"),
        ]
    )
    assert (r := t.route("447700900123")) is not None and r.customer == "shop"
    assert (r := t.route("+447700900999")) is not None and r.customer == "bank"
    assert (r := t.route("33612345678")) is not None and r.customer == "default"
    assert (r := t.route("4477009001234")) is not None and r.customer == "shop"
    assert MoRoutingTable([MoRoute(1, "44", "x")]).route("33") is None
    assert len(t) == 3


# Aggregator scale at full depth; the unit profile builds a quarter (the table's
# build is most of this file's time), `make test` the 100k.
BIG = min(100_000, examples(100_000))


def _big_table(rng: random.Random, n: int = BIG) -> RoutingTable:
    routes = [mt("", "catch")]
    customers = [f"c{i}" for i in range(200)]
    for i in range(n):
        prefix = str(rng.randrange(1, 10**9))[: rng.randint(2, 9)]
        customer = rng.choice(customers) if i % 3 == 0 else None
        routes.append(mt(prefix, f"p{i % 50}", customer=customer, priority=i))
    return RoutingTable(routes)


def test_100k_routes_answer_like_the_reference_walk() -> None:
    """At aggregator scale (100k routes, BIG) the fast lookup still agrees with candidates().

    How fast it is: ``python -m benchmarks.routing`` (speed belongs to benchmarks,
    a timed unit test fails on a loaded machine).
    """
    rng = random.Random(7)
    table = _big_table(rng)
    for _ in range(2000):
        customer = rng.choice(["c7", "c150", "nobody"])
        dest = str(rng.randrange(10**10, 10**11))
        found = table.route(customer, "447700900123", dest)
        assert found is not None  # the catch-all is always a candidate
        assert found == next(iter(table.candidates(customer, "447700900123", dest)))


def test_route_is_the_first_candidate() -> None:
    """route() is a hand-inlined candidates(); they must never disagree."""
    rng = random.Random(11)
    routes = [
        mt(
            str(rng.randrange(10**6))[: rng.randint(0, 4)],
            f"p{i}",
            customer=rng.choice([None, "shop", "bank"]),
            source_prefix=rng.choice([None, "4", "49", "BANK"]),
            priority=rng.randint(0, 3),
        )
        for i in range(300)
    ]
    table = RoutingTable(routes)
    for _ in range(2000):
        customer = rng.choice(["shop", "bank", "other"])
        source = rng.choice(["491", "4", "bank1", "33"])
        dest = str(rng.randrange(10**8))
        first = next(iter(table.candidates(customer, source, dest)), None)
        assert table.route(customer, source, dest) == first
