"""The supervisor's reconciling (``smsgw.fleet``) against an in-memory cluster, no Ray
(issue 13): nodes joining and leaving, stale actors, providers added and removed,
a supervisor restart and a failed create, each checked by what reached the cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from smsgw.fleet import Fleet, Node, Spec, plan
from smsgw.node.binds import BindKey, bind_name

SETTINGS: dict[str, Any] = {"topic_partitions": 6}


@dataclass
class Actor:
    name: str
    node: str
    fingerprint: str
    binds: list[BindKey] = field(default_factory=list)
    version: int = 0  # the last assignment's version; 0 after a restart


@dataclass
class FakeCluster:
    """What the fleet sees of Ray: live nodes and named actors, and a log of its calls."""

    nodes: list[Node]
    actors: dict[str, Actor] = field(default_factory=dict)  # live, by name
    calls: list[tuple[str, str]] = field(default_factory=list)  # (what, actor name)
    fail: dict[str, str] = field(default_factory=dict)  # name -> "busy" | "error", once

    # ---- ActorBackend
    def alive_nodes(self) -> list[Node]:
        return list(self.nodes)

    def find(self, name: str) -> Actor | None:
        return self.actors.get(name)

    def fingerprint(self, handle: Actor) -> str | None:
        return handle.fingerprint

    def create(self, spec: Spec) -> Actor | None:
        failure = self.fail.pop(spec.name, None)
        if failure == "error":
            raise RuntimeError("the GCS did not answer")
        if failure == "busy" or spec.name in self.actors:
            return None  # Ray: the name is still taken
        self.calls.append(("create", spec.name))
        actor = Actor(spec.name, spec.node, spec.fingerprint)
        self.actors[spec.name] = actor
        return actor

    def stop(self, handles: Sequence[Actor]) -> None:
        self._end("stop", handles)

    def kill(self, handles: Sequence[Actor]) -> None:
        self._end("kill", handles)

    def _end(self, what: str, handles: Sequence[Actor]) -> None:
        for actor in handles:
            self.calls.append((what, actor.name))
            if self.actors.get(actor.name) is actor:
                del self.actors[actor.name]

    def assign(self, handle: Actor, version: int, binds: list[BindKey]) -> None:
        self.calls.append(("assign", handle.name))
        if version > handle.version:  # a host ignores an older assignment
            handle.version, handle.binds = version, list(binds)

    async def stats(self, handle: Actor) -> dict[str, Any]:
        return self.report()[handle.name]

    async def message(self, handle: Actor, message_id: str) -> dict[str, Any] | None:
        return None

    # ---- the test's side
    def report(self) -> dict[str, dict[str, Any]]:
        """What each actor answers to ``stats`` (the supervisor's snapshot of them)."""
        return {
            name: {"binds": {bind_name(k): {} for k in a.binds}, "assigned_version": a.version}
            for name, a in self.actors.items()
        }

    def binds(self) -> dict[str, list[BindKey]]:
        """Each connector host's binds as it runs them."""
        return {n: a.binds for n, a in self.actors.items() if n.startswith("connectors@")}

    def on(self, node: Node) -> set[str]:
        return {n for n, a in self.actors.items() if a.node == node.id}

    def since(self, mark: int, what: str) -> set[str]:
        return {name for w, name in self.calls[mark:] if w == what}


def node(i: int) -> Node:
    return Node(f"{i:02d}" + "ab" * 27, f"10.0.0.{i}")


def host(n: Node) -> str:
    return f"connectors@{n.address}:{n.id[:6]}"


def listener(n: Node) -> str:
    return f"listener@{n.address}:{n.id[:6]}"


def fleet_on(cluster: FakeCluster) -> Fleet[Actor]:
    return Fleet(cluster, SETTINGS, cluster.report)


def reconcile(fleet: Fleet[Actor], cluster: FakeCluster, providers: list[tuple[str, int]]) -> None:
    asyncio.run(fleet.reconcile(cluster.alive_nodes(), providers))


def every_bind(binds: Mapping[str, list[BindKey]]) -> list[BindKey]:
    return sorted(b for v in binds.values() for b in v)


def all_of(providers: list[tuple[str, int]]) -> list[BindKey]:
    return sorted((p, i) for p, n in providers for i in range(n))


PROVIDERS = [("a", 2), ("b", 2), ("c", 2)]


def test_a_first_pass_creates_the_plan_and_deals_every_bind() -> None:
    cluster = FakeCluster([node(0), node(1)])
    fleet = fleet_on(cluster)
    reconcile(fleet, cluster, PROVIDERS)
    assert set(cluster.actors) == set(plan(cluster.nodes, SETTINGS))
    assert every_bind(cluster.binds()) == all_of(PROVIDERS)
    assert sorted(len(b) for b in cluster.binds().values()) == [3, 3]


def test_a_node_joining_gets_a_listener_a_host_and_its_share_of_binds() -> None:
    cluster = FakeCluster([node(0)])
    fleet = fleet_on(cluster)
    reconcile(fleet, cluster, PROVIDERS)
    before = cluster.binds()[host(node(0))]
    assert before == all_of(PROVIDERS)

    cluster.nodes.append(node(1))
    mark = len(cluster.calls)
    reconcile(fleet, cluster, PROVIDERS)
    assert {listener(node(1)), host(node(1))} <= cluster.since(mark, "create")
    assert not cluster.since(mark, "stop") | cluster.since(mark, "kill")
    got = cluster.binds()
    assert len(got[host(node(1))]) == 3  # its share, in the same pass it was created
    assert set(got[host(node(0))]) <= set(before)  # the old host only gave binds up
    assert every_bind(got) == all_of(PROVIDERS)


def test_a_node_leaving_is_killed_at_once_and_only_its_binds_move() -> None:
    cluster = FakeCluster([node(0), node(1), node(2)])
    fleet = fleet_on(cluster)
    reconcile(fleet, cluster, PROVIDERS)
    before = cluster.binds()
    gone = cluster.on(node(2))
    assert {listener(node(2)), host(node(2))} <= gone

    cluster.nodes.remove(node(2))
    mark = len(cluster.calls)
    reconcile(fleet, cluster, PROVIDERS)
    # Killed, not asked to stop: an actor of a lost node never answers, and a polite
    # stop would hold the pass for its whole grace.
    assert cluster.since(mark, "kill") == gone
    assert not cluster.since(mark, "stop")
    got = cluster.binds()
    assert set(got) == {host(node(0)), host(node(1))}
    for survivor in got:
        assert set(before[survivor]) <= set(got[survivor])  # sticky
    assert every_bind(got) == all_of(PROVIDERS)
    # The survivors take the lost binds before anything is killed or created.
    survivors = [i for i, (w, n) in enumerate(cluster.calls[mark:]) if w == "assign"]
    ends = [i for i, (w, _n) in enumerate(cluster.calls[mark:]) if w == "kill"]
    assert survivors and max(survivors) < min(ends)


def test_an_actor_wanted_elsewhere_is_stopped_and_created_again() -> None:
    """A node joining with a lower id takes ``router#0``: its spec (node) changed."""
    cluster = FakeCluster([node(1)])
    fleet = fleet_on(cluster)
    reconcile(fleet, cluster, PROVIDERS)
    old = cluster.actors["router#0"]
    assert old.node == node(1).id

    cluster.nodes.append(node(0))
    mark = len(cluster.calls)
    reconcile(fleet, cluster, PROVIDERS)
    assert {"router#0", "correlator#0"} <= cluster.since(mark, "stop")  # politely: alive
    assert cluster.actors["router#0"] is not old
    assert cluster.actors["router#0"].node == node(0).id
    assert not cluster.since(mark, "kill")
    assert listener(node(1)) not in cluster.since(mark, "stop")


def test_a_restarted_supervisor_adopts_fitting_actors_and_replaces_a_stale_one() -> None:
    cluster = FakeCluster([node(0), node(1)])
    reconcile(fleet_on(cluster), cluster, PROVIDERS)
    stale = cluster.actors[listener(node(0))]
    stale.fingerprint = "0ld"  # made by an older supervisor from other settings
    adopted = {n: a for n, a in cluster.actors.items() if a is not stale}

    mark = len(cluster.calls)
    reconcile(fleet_on(cluster), cluster, PROVIDERS)  # a new supervisor, same cluster
    assert cluster.since(mark, "stop") == {listener(node(0))}
    assert cluster.since(mark, "create") == {listener(node(0))}
    assert cluster.actors[listener(node(0))] is not stale
    assert all(cluster.actors[n] is a for n, a in adopted.items())


def test_a_restarted_supervisor_keeps_the_binds_where_the_hosts_run_them() -> None:
    """The placement a node's joining left (not what a fresh deal would give) stays."""
    cluster = FakeCluster([node(0)])
    fleet = fleet_on(cluster)
    reconcile(fleet, cluster, PROVIDERS)
    cluster.nodes.append(node(1))
    reconcile(fleet, cluster, PROVIDERS)
    running = cluster.binds()
    fresh = FakeCluster([node(0), node(1)])
    reconcile(fleet_on(fresh), fresh, PROVIDERS)
    assert fresh.binds() != running  # else this test would show nothing

    mark = len(cluster.calls)
    reconcile(fleet_on(cluster), cluster, PROVIDERS)
    assert not cluster.since(mark, "create") | cluster.since(mark, "stop")
    assert not cluster.since(mark, "kill")
    assert cluster.binds() == running


def test_a_host_restarted_by_ray_gets_its_binds_again() -> None:
    cluster = FakeCluster([node(0), node(1)])
    fleet = fleet_on(cluster)
    reconcile(fleet, cluster, PROVIDERS)
    restarted = cluster.actors[host(node(1))]
    binds = list(restarted.binds)
    restarted.binds, restarted.version = [], 0  # same actor, a new process

    mark = len(cluster.calls)
    reconcile(fleet, cluster, PROVIDERS)
    assert cluster.since(mark, "assign") == {host(node(1))}
    assert restarted.binds == binds


def test_a_provider_added_or_removed_changes_only_its_binds() -> None:
    cluster = FakeCluster([node(0), node(1)])
    fleet = fleet_on(cluster)
    providers = [("a", 2), ("b", 2)]
    reconcile(fleet, cluster, providers)
    before = cluster.binds()

    mark = len(cluster.calls)
    reconcile(fleet, cluster, [*providers, ("new", 1)])
    got = cluster.binds()
    for h, binds in before.items():
        assert [b for b in got[h] if b[0] != "new"] == binds
    assert every_bind(got) == all_of([*providers, ("new", 1)])
    (changed,) = [h for h in got if got[h] != before[h]]
    assert cluster.since(mark, "assign") == {changed}  # the other host hears nothing
    assert not {w for w, _n in cluster.calls[mark:]} - {"assign"}  # no actor touched

    mark = len(cluster.calls)
    reconcile(fleet, cluster, providers)
    assert cluster.binds() == before
    assert cluster.since(mark, "assign") == {changed}


@pytest.mark.parametrize("failure", ["busy", "error"])
def test_a_failed_create_is_retried_next_pass_without_touching_the_rest(failure: str) -> None:
    cluster = FakeCluster([node(0), node(1)])
    cluster.fail[host(node(0))] = failure  # ahead of most specs in the plan's order
    fleet = fleet_on(cluster)
    reconcile(fleet, cluster, PROVIDERS)
    wanted = set(plan(cluster.nodes, SETTINGS))
    assert set(cluster.actors) == wanted - {host(node(0))}  # the others were created
    assert len(cluster.binds()[host(node(1))]) == 3  # and the live host has its share
    untouched = dict(cluster.actors)

    mark = len(cluster.calls)
    reconcile(fleet, cluster, PROVIDERS)
    assert cluster.since(mark, "create") == {host(node(0))}
    assert not cluster.since(mark, "stop") | cluster.since(mark, "kill")
    assert cluster.since(mark, "assign") == {host(node(0))}
    assert all(cluster.actors[n] is a for n, a in untouched.items())
    assert every_bind(cluster.binds()) == all_of(PROVIDERS)
