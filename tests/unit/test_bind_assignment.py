"""Provider binds are assigned to one connector host per node (issue 13): each bind on
exactly one node, spread evenly, a provider added or removed moving no other bind."""

from __future__ import annotations

import collections
from typing import Any

from smsgw.actors.supervisor import assign_binds, expand_binds, plan


def nodes(n: int) -> list[dict[str, Any]]:
    return [
        {"NodeID": f"{i:02d}" + "ab" * 27, "NodeManagerAddress": f"10.0.0.{i}"} for i in range(n)
    ]


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
    after = assign_binds(nodes(2), [("a", 2), ("b", 1), ("zz", 2)])
    for host, binds in before.items():
        assert [b for b in after[host] if b[0] != "zz"] == binds
    assert sorted(b for v in after.values() for b in v if b[0] == "zz") == [("zz", 0), ("zz", 1)]


def test_a_node_leaving_hands_its_binds_to_the_others() -> None:
    providers = [("a", 2), ("b", 2)]
    got = assign_binds(nodes(1), providers)
    assert list(got.values()) == [[("a", 0), ("a", 1), ("b", 0), ("b", 1)]]
    assert assign_binds([], providers) == {}


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
