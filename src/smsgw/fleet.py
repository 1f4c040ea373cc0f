"""Which actors and provider binds should exist where, and bringing the cluster there.

The supervisor (``smsgw.actors.supervisor``) runs ``Fleet.reconcile`` on every
pass of its loop. Planning is pure (``plan``, ``assign_binds``: nodes and
configuration in, specs and assignments out); ``Fleet`` diffs the plan against
the actors it knows and acts through an ``ActorBackend``: Ray in production
(``smsgw.actors.backend.RayBackend``), an in-memory fake in the unit tests
(``tests/unit/test_fleet.py``). Nothing here knows Ray: this is the seam that
makes the reconciling testable (issue 13).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from smsgw import log
from smsgw.node.binds import BindKey, bind_key

H = TypeVar("H")  # an actor handle, opaque to the fleet


@dataclass(frozen=True)
class Node:
    """A live node of the cluster."""

    id: str  # Ray node id (hex)
    address: str = "node"


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str
    node: str  # Ray node id (hex)
    strict: bool  # pinned (listeners, connector hosts) or only preferred
    args: tuple[Any, ...]

    @property
    def fingerprint(self) -> str:
        """What the actor was made of: an actor whose fingerprint differs is replaced."""
        raw = json.dumps(
            [self.kind, self.node, self.strict, self.args], sort_keys=True, default=str
        )
        return hashlib.sha1(raw.encode()).hexdigest()[:12]


class ActorBackend(Protocol[H]):
    """Everything the fleet does to the cluster. Blocking calls run on a thread."""

    def alive_nodes(self) -> list[Node]: ...

    def find(self, name: str) -> H | None:
        """The live actor of that name (one from before a supervisor restart), if any."""
        ...

    def fingerprint(self, handle: H) -> str | None:
        """The actor's fingerprint, None if it does not answer in time."""
        ...

    def create(self, spec: Spec) -> H | None:
        """A new actor on ``spec.node``; None while the name is still taken (the old one dying)."""
        ...

    def stop(self, handles: Sequence[H]) -> None:
        """Ask each to shut down (bounded, all at once), then kill it."""
        ...

    def kill(self, handles: Sequence[H]) -> None:
        """Kill at once, without restart (an actor of a lost node never answers)."""
        ...

    def assign(self, handle: H, version: int, binds: list[BindKey]) -> None:
        """Send a connector host its binds; fire and forget (the next pass repeats)."""
        ...

    def stats(self, handle: H) -> Awaitable[dict[str, Any]]: ...

    def message(self, handle: H, message_id: str) -> Awaitable[dict[str, Any] | None]: ...


def _node_names(nodes: Sequence[Node], kind: str) -> dict[str, str]:
    """Node id -> the name of that node's actor of a per-node kind."""
    return {n.id: f"{kind}@{n.address}:{n.id[:6]}" for n in nodes}


def plan(
    nodes: Sequence[Node],
    settings: dict[str, Any],
    per_node: int = 1,
) -> dict[str, Spec]:
    """The actors that should exist. Pure: nodes in, specs out."""
    ids = sorted(n.id for n in nodes)
    if not ids:
        return {}
    specs: dict[str, Spec] = {}
    for kind in ("listener", "connectors"):
        for nid, name in _node_names(nodes, kind).items():
            specs[name] = Spec(name, kind, nid, True, (settings,))
    workers = min(len(ids) * per_node, int(settings.get("topic_partitions", 6)))
    for i in range(workers):
        for kind in ("router", "correlator"):
            name = f"{kind}#{i}"
            specs[name] = Spec(name, kind, ids[i % len(ids)], False, (settings,))
    # One history writer: a batch per half second keeps up with far more than a
    # node's traffic, and one writer means one PostgreSQL connection.
    specs["history#0"] = Spec("history#0", "history", ids[0], False, (settings,))
    return specs


def assign_binds(
    nodes: Sequence[Node],
    providers: list[tuple[str, int]],
    previous: Mapping[str, Sequence[tuple[str, int]]] | None = None,
) -> dict[str, list[BindKey]]:
    """Which connector host runs which bind ``(provider, index)``. Pure.

    Every bind on exactly one node, each node an equal share (±1), and as few
    binds moved as that allows: a bind stays on the host ``previous`` put it on
    while that host lives and is not over its share. A node lost hands on only
    its own binds; a node added takes only its share from the others; a provider
    added or removed moves no other bind unless the shares must be evened out.
    (Each move is an unbind, a bind elsewhere and its in-flight window resent:
    a provider sees it, so moves are kept to what balance needs.)
    """
    hosts = _node_names(nodes, "connectors")
    names = [hosts[nid] for nid in sorted(hosts)]
    out: dict[str, list[BindKey]] = {name: [] for name in names}
    if not names:
        return out
    wanted = sorted((p, i) for p, n in providers for i in range(n))
    wanted_set = set(wanted)
    placed: set[BindKey] = set()
    for name in names:
        for p, i in (previous or {}).get(name, ()):
            bind = (str(p), int(i))  # lists, once through Ray's serialisation
            if bind in wanted_set and bind not in placed:
                out[name].append(bind)
                placed.add(bind)
    # Shares: n // h each, one more for n % h hosts, those keeping the most already.
    base, extra = divmod(len(wanted), len(names))
    by_kept = sorted(names, key=lambda name: (-len(out[name]), names.index(name)))
    share = {name: base + (1 if rank < extra else 0) for rank, name in enumerate(by_kept)}
    pool: list[BindKey] = []
    for name in names:
        binds = sorted(out[name])
        out[name], over = binds[: share[name]], binds[share[name] :]
        pool.extend(over)
    pool.extend(b for b in wanted if b not in placed)
    for bind in sorted(pool):
        name = min(names, key=lambda n: (len(out[n]) - share[n], names.index(n)))
        out[name].append(bind)
    return {name: sorted(binds) for name, binds in out.items()}


def expand_binds(actors: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The hosts' answers plus one entry per bind (``provider:<name>#<i>``), as when
    each bind was an actor: `smsgw status`, the console and the tests read those."""
    out = dict(actors)
    for host, a in actors.items():
        if not host.startswith("connectors@"):
            continue
        for bind, b in (a.get("binds") or {}).items():
            out[bind] = {
                **b,
                "name": bind,
                "kind": "provider",
                "host": host,
                "pid": a.get("pid"),
                "node": a.get("node"),
                "state": a.get("state"),
                "error": a.get("error"),
            }
    return out


def all_well(
    actors: Mapping[str, Any],
    expected: Iterable[str],
    assigned: Mapping[str, tuple[int, Sequence[BindKey]]],
) -> bool:
    """Every actor ``expected`` answered ALIVE (``actors``: the last health round, binds
    expanded), every connector host runs the binds last sent to it (``assigned``:
    host -> (version, binds)) and every bind is bound. Pure: while it holds, the
    supervisor's rounds can be rare; while not, they come every second."""
    if any(name not in actors for name in expected):
        return False
    for name, a in actors.items():
        if a.get("state") != "ALIVE":
            return False
        if name.startswith("provider:") and not (a.get("bind") or {}).get("bound"):
            return False
        if name.startswith("connectors@"):
            sent = assigned.get(name)
            if sent is None or a.get("assigned_version") != sent[0]:
                return False
    return True


class Fleet(Generic[H]):
    """The actors the supervisor keeps, and the binds it gave each connector host.

    ``reported`` is the hosts' last answers (name -> stats): where a restarted
    supervisor finds the binds, and which host restarted (``assigned_version`` 0).
    """

    def __init__(
        self,
        backend: ActorBackend[H],
        settings: dict[str, Any],
        reported: Callable[[], Mapping[str, Any]] = dict,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.reported = reported
        self.actors: dict[str, tuple[H, str]] = {}  # name -> (handle, fingerprint)
        self._node_of: dict[str, str] = {}  # name -> the node id it was placed on
        # Connector host -> (version, binds) as last sent; versions only grow.
        self.assigned: dict[str, tuple[int, list[BindKey]]] = {}
        self._assign_version = 0
        self.log = log.get("smsgw.supervisor")

    async def reconcile(self, nodes: Sequence[Node], providers: list[tuple[str, int]]) -> None:
        """One pass: binds to the live hosts, then actors stopped, adopted or created."""
        desired = plan(nodes, self.settings)
        wanted = assign_binds(nodes, providers, self.placed())
        # The hosts that live get their binds first: a lost node's binds reopen
        # elsewhere at once, not after the actors below are stopped or created.
        self.send_assignments(wanted)
        # The backend's calls block (Ray's on the GCS): off the loop, so the
        # supervisor's other steps go on if one of them hangs.
        await asyncio.to_thread(self.apply, desired, {n.id for n in nodes})
        self.send_assignments(wanted)  # hosts created just now

    def placed(self) -> dict[str, list[BindKey]]:
        """Where the binds are: as last assigned, else (a restarted supervisor) as the
        hosts last reported running them; assign_binds keeps them there."""
        placed = {host: binds for host, (_version, binds) in self.assigned.items()}
        for host, entry in self.reported().items():
            if host not in placed and isinstance(entry, dict) and entry.get("binds"):
                keys = (bind_key(name) for name in entry["binds"])
                placed[host] = [k for k in keys if k is not None]
        return placed

    def send_assignments(self, wanted: dict[str, list[BindKey]]) -> None:
        """Tell each connector host its binds, if they changed (or it lost them: a
        restarted host reports version 0). Fire and forget: the next pass repeats."""
        reported = self.reported()
        for host, binds in wanted.items():
            entry = self.actors.get(host)
            if entry is None:
                continue
            sent = self.assigned.get(host)
            known = (reported.get(host) or {}).get("assigned_version")
            if sent is not None and sent[1] == binds and known != 0:
                continue
            # Versions outlive a supervisor restart (a host ignores older ones).
            self._assign_version = max(self._assign_version + 1, time.time_ns())
            self.assigned[host] = (self._assign_version, binds)
            self.backend.assign(entry[0], self._assign_version, binds)
            self.log.info("binds assigned", host=host, binds=len(binds))
        for host in set(self.assigned) - set(wanted):
            del self.assigned[host]

    def apply(self, desired: dict[str, Spec], alive: set[str]) -> None:
        """Kill what is not wanted (or wanted elsewhere), adopt or create what is missing.

        An actor of a node that is gone is killed at once: asked to stop, it would
        hold this pass for the whole grace (Ray cannot restart it on its pinned
        node, so the call never ends). A spec whose adoption or creation fails is
        left for the next pass; the others go on.
        """
        going = [
            (name, handle)
            for name, (handle, fp) in self.actors.items()
            if name not in desired or desired[name].fingerprint != fp
        ]
        for name, _handle in going:
            self.log.info("stopping actor", actor=name)
            del self.actors[name]
        lost = {n for n, _h in going if self._node_of.pop(n, None) not in alive}
        self.backend.kill([h for n, h in going if n in lost])
        self.backend.stop([h for n, h in going if n not in lost])
        for name, spec in desired.items():
            if name in self.actors:
                continue
            try:
                handle = self._adopt(spec)
                if handle is None:
                    handle = self._create(spec)
            except Exception as exc:
                self.log.error("actor not started, retrying", actor=name, error=repr(exc))
                continue
            if handle is not None:
                self.actors[name] = (handle, spec.fingerprint)
                self._node_of[name] = spec.node

    def _adopt(self, spec: Spec) -> H | None:
        """An actor of this name from before a supervisor restart, if it fits the spec."""
        handle = self.backend.find(spec.name)
        if handle is None:
            return None
        if self.backend.fingerprint(handle) == spec.fingerprint:
            return handle
        self.backend.stop([handle])
        return None  # its name frees up; created on a later pass

    def _create(self, spec: Spec) -> H | None:
        handle = self.backend.create(spec)
        if handle is None:
            self.log.info("actor name busy, retrying", actor=spec.name)
            return None
        self.log.info("started actor", actor=spec.name, node=spec.node[:8])
        return handle

    def stop_all(self) -> None:
        """Stop every actor (the gateway is stopping)."""
        self.backend.stop([handle for handle, _fp in self.actors.values()])
        self.actors.clear()
