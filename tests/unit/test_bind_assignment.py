"""Provider binds are assigned to one connector host per node (issue 13): each bind on
exactly one node, spread evenly, a provider added or removed moving no other bind."""

from __future__ import annotations

import collections

from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.fleet import Node, assign_binds, expand_binds, plan
from smsgw.node.binds import bind_key, bind_name
from tests.helpers.depth import examples

Bind = tuple[str, int]


def nodes(n: int) -> list[Node]:
    return [Node(f"{i:02d}" + "ab" * 27, f"10.0.0.{i}") for i in range(n)]


def test_one_connector_host_per_node_and_no_actor_per_bind() -> None:
    specs = plan(nodes(3), {"topic_partitions": 6})
    kinds = collections.Counter(s.kind for s in specs.values())
    assert kinds["connectors"] == 3 and kinds["listener"] == 3
    assert "provider" not in kinds
    hosts = [s for s in specs.values() if s.kind == "connectors"]
    assert all(s.strict for s in hosts)  # pinned to their node
    assert len({s.node for s in hosts}) == 3


def test_every_bind_on_exactly_one_host_spread_evenly() -> None:
    providers = [(f"p{i:03d}", 2) for i in range(100)]
    got = assign_binds(nodes(3), providers)
    assert len(got) == 3
    every = [b for binds in got.values() for b in binds]
    assert sorted(every) == sorted((p, i) for p, n in providers for i in range(n))
    sizes = sorted(len(b) for b in got.values())
    assert sizes[-1] - sizes[0] <= 1, sizes


def test_a_provider_added_or_removed_moves_no_other_bind() -> None:
    """Adding "zz" (sorted last) places only its binds; removing it restores the rest."""
    before = assign_binds(nodes(2), [("a", 2), ("b", 1)])
    after = assign_binds(nodes(2), [("a", 2), ("b", 1), ("zz", 2)], before)
    for host, binds in before.items():
        assert [b for b in after[host] if b[0] != "zz"] == binds
    assert sorted(b for v in after.values() for b in v if b[0] == "zz") == [("zz", 0), ("zz", 1)]


def test_a_node_leaving_hands_its_binds_to_the_others() -> None:
    providers = [("a", 2), ("b", 2)]
    got = assign_binds(nodes(1), providers)
    assert list(got.values()) == [[("a", 0), ("a", 1), ("b", 0), ("b", 1)]]
    assert assign_binds([], providers) == {}


def _moved(before: dict[str, list[Bind]], after: dict[str, list[Bind]]) -> int:
    """Binds that were on one live host and are now on another."""
    where = {b: h for h, binds in before.items() if h in after for b in binds}
    return sum(1 for h, binds in after.items() for b in binds if where.get(b, h) != h)


def _check(got: dict[str, list[Bind]], providers: list[tuple[str, int]]) -> None:
    every = [b for binds in got.values() for b in binds]
    assert sorted(every) == sorted((p, i) for p, n in providers for i in range(n))
    sizes = [len(b) for b in got.values()]
    assert not sizes or max(sizes) - min(sizes) <= 1, sizes


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(st.integers(1, 4), min_size=0, max_size=12),
    st.integers(2, 5),
    st.data(),
)
def test_a_node_lost_moves_only_its_own_binds(
    counts: list[int], n: int, data: st.DataObject
) -> None:
    """The netns host-loss test's 2/1/1 → 2/2: the survivors keep every bind they had."""
    providers = [(f"p{i}", c) for i, c in enumerate(counts)]
    before = assign_binds(nodes(n), providers)
    lost = data.draw(st.integers(0, n - 1))
    alive = [nd for i, nd in enumerate(nodes(n)) if i != lost]
    after = assign_binds(alive, providers, before)
    _check(after, providers)
    assert _moved(before, after) == 0


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.integers(1, 4), min_size=0, max_size=12), st.integers(1, 4))
def test_a_node_added_takes_only_its_share(counts: list[int], n: int) -> None:
    providers = [(f"p{i}", c) for i, c in enumerate(counts)]
    before = assign_binds(nodes(n), providers)
    after = assign_binds(nodes(n + 1), providers, before)
    _check(after, providers)
    newcomer = set(after) - set(before)
    (host,) = newcomer
    assert _moved(before, after) == len(after[host])  # what it runs came from the others
    assert len(after[host]) == sum(c for _p, c in providers) // (n + 1)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=12),
    st.integers(1, 4),
    st.data(),
)
def test_a_provider_removed_moves_only_what_balance_needs(
    counts: list[int], n: int, data: st.DataObject
) -> None:
    providers = [(f"p{i}", c) for i, c in enumerate(counts)]
    before = assign_binds(nodes(n), providers)
    gone = data.draw(st.integers(0, len(providers) - 1))
    rest = providers[:gone] + providers[gone + 1 :]
    after = assign_binds(nodes(n), rest, before)
    _check(after, rest)
    # Evening out after the removal: at most the removed binds' worth move.
    assert _moved(before, after) <= providers[gone][1]


def test_a_restarted_supervisor_keeps_binds_where_the_hosts_report_them() -> None:
    """Placement from the hosts' reports equals placement from the assignment."""
    providers = [("a", 2), ("b", 2), ("c", 1)]
    before = assign_binds(nodes(3), providers)
    reported = {h: [bind_name(b) for b in binds] for h, binds in before.items()}
    placed = {h: [k for k in map(bind_key, names) if k] for h, names in reported.items()}
    assert assign_binds(nodes(3), providers, placed) == before
    assert bind_key("provider:a#b#3") == ("a#b", 3) and bind_key("router#0") is None


def test_status_shows_each_bind_with_its_hosts_process() -> None:
    actors = {
        "connectors@10.0.0.1:00abab": {
            "state": "ALIVE",
            "pid": 42,
            "node": "n1",
            "binds": {"provider:a#0": {"provider": "a", "bind": {"bound": True}}},
        },
        "router#0": {"state": "ALIVE", "pid": 7},
    }
    out = expand_binds(actors)
    assert out["provider:a#0"]["pid"] == 42  # killing "the bind's process" kills its host
    assert out["provider:a#0"]["host"] == "connectors@10.0.0.1:00abab"
    assert out["provider:a#0"]["bind"] == {"bound": True}
    assert out["router#0"] == actors["router#0"]
