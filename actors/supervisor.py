"""The supervisor: one named, detached actor that keeps the cluster's actors in line.

It reads the configuration (PostgreSQL, LISTEN/NOTIFY) and Ray's node list,
computes which actors should exist where — a listener and a connector host per
node, routers and correlators spread over nodes — and creates, moves or kills
actors until reality matches. Provider binds are not actors: every bind is
assigned to exactly one node's connector host (spread evenly), which runs it
as an asyncio task; a changed assignment is sent to the hosts it concerns.
Workers are detached too, so a supervisor restart (``max_restarts=-1``)
re-adopts them by name instead of killing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from smsgw import log
from smsgw.actors.console import ConsoleServer
from smsgw.actors.host import LoopHost
from smsgw.actors.workers import (
    ConnectorHostActor,
    CorrelatorActor,
    HistoryActor,
    ListenerActor,
    RouterActor,
    namespace_for,
)
from smsgw.db import status as status_row
from smsgw.db.watch import ConfigWatcher
from smsgw.kafka.admin import ensure_topic_names, ensure_topics
from smsgw.kafka.lag import Ends, LagProbe, consumer_lag
from smsgw.kafka.security import use_settings as use_kafka_settings
from smsgw.node.binds import bind_key
from smsgw.settings import Settings
from smsgw.status import StatusBook
from smsgw.topics import Topics

NAMESPACE = "smsgw"
SUPERVISOR = "supervisor"
# A connector host stopped on purpose gets this long to unbind its binds (each
# waits at most 2 s for unbind_resp, all at once) before it is killed.
STOP_GRACE_S = 8.0
LAG_S = 5.0  # consumer lag is measured this often
PUBLISH_S = 2.0  # the report for `smsgw status` goes to PostgreSQL this often


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str
    node: str  # Ray node id (hex)
    strict: bool  # pinned (listeners, connector hosts) or only preferred
    args: tuple[Any, ...]

    @property
    def fingerprint(self) -> str:
        raw = json.dumps(
            [self.kind, self.node, self.strict, self.args], sort_keys=True, default=str
        )
        return hashlib.sha1(raw.encode()).hexdigest()[:12]


def _node_names(nodes: list[dict[str, Any]], kind: str) -> dict[str, str]:
    """Node id -> the name of that node's actor of a per-node kind."""
    return {
        n["NodeID"]: f"{kind}@{n.get('NodeManagerAddress', 'node')}:{n['NodeID'][:6]}"
        for n in nodes
    }


def plan(
    nodes: list[dict[str, Any]],
    settings: dict[str, Any],
    per_node: int = 1,
) -> dict[str, Spec]:
    """The actors that should exist. Pure: nodes in, specs out."""
    ids = sorted(n["NodeID"] for n in nodes)
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
    nodes: list[dict[str, Any]],
    providers: list[tuple[str, int]],
    previous: Mapping[str, Sequence[tuple[str, int]]] | None = None,
) -> dict[str, list[tuple[str, int]]]:
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
    out: dict[str, list[tuple[str, int]]] = {name: [] for name in names}
    if not names:
        return out
    wanted = sorted((p, i) for p, n in providers for i in range(n))
    wanted_set = set(wanted)
    placed: set[tuple[str, int]] = set()
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
    pool: list[tuple[str, int]] = []
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


_CLASSES = {
    "listener": ListenerActor,
    "router": RouterActor,
    "correlator": CorrelatorActor,
    "history": HistoryActor,
    "connectors": ConnectorHostActor,
}


class SupervisorImpl:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings_dict = settings
        self.settings = Settings(**settings)
        use_kafka_settings(self.settings)
        self.topics = Topics(self.settings.topic_prefix)
        self.namespace = namespace_for(self.settings.topic_prefix)
        # The same level and format as every worker (SMSGW_LOG_LEVEL, SMSGW_LOG_JSON).
        log.configure(self.settings.log_level, self.settings.log_json)
        self.actors: dict[str, tuple[Any, str]] = {}  # name -> (handle, fingerprint)
        self._node_of: dict[str, str] = {}  # name -> the Ray node id it was placed on
        # Connector host -> (version, binds) as last sent; versions only grow.
        self.assigned: dict[str, tuple[int, list[tuple[str, int]]]] = {}
        self._assign_version = 0
        self.snapshot: dict[str, Any] = {"started_at": time.time(), "actors": {}, "nodes": []}
        self.log = log.get("smsgw.supervisor")
        self._wake: asyncio.Event | None = None
        self._topics_made: set[str] = set()
        self.console: ConsoleServer | None = None
        self.book = StatusBook()
        self.host = LoopHost("supervisor", self._main)

    # ------------------------------------------------------------ loop
    async def _main(self, stop: asyncio.Event) -> None:
        s = self.settings
        assert s.database_url and s.kafka_bootstrap
        await asyncio.to_thread(
            ensure_topics, s.kafka_bootstrap, self.topics.specs(s.topic_partitions)
        )
        config = ConfigWatcher(s.database_url)
        await config.start()
        self._wake = asyncio.Event()
        config.on_change(self._wake.set)
        try:
            self.console = ConsoleServer(self.settings, self.status, self._lookup)
            await self.console.start()
        except OSError as exc:  # no token file (home not writable here): run without it
            self.log.error("console not started", error=repr(exc))
            self.console = None
        self.book = await asyncio.to_thread(self._resume_book)
        # Lag is measured on a thread of its own and read when there: a probe can block
        # for its timeouts (committed offsets while a coordinator loads or moves), and
        # nothing here ever waits for one.
        bootstrap = s.kafka_bootstrap
        settled: dict[str, tuple[Ends, float]] = {}  # the probe thread's own
        lag = LagProbe(lambda groups: consumer_lag(bootstrap, groups, settled=settled), LAG_S)
        lag.groups = self._lag_groups(config)
        lag.start()
        lag_seen, last_publish = 0, 0.0
        # Each step runs as a task of its own and is started again only once the
        # previous run ended: a call stuck in a thread (a Kafka or GCS request to
        # a node going away) delays that one step, never the loop. (wait_for
        # would not do: cancelling a thread's future waits for the thread.)
        steps: dict[str, asyncio.Future[None]] = {}

        def launch(name: str, make: Callable[[], Awaitable[None]]) -> None:
            previous = steps.get(name)
            if previous is not None and not previous.done():
                return
            if previous is not None and previous.exception() is not None:
                self.log.error(f"{name} failed", error=repr(previous.exception()))
            steps[name] = asyncio.ensure_future(make())

        while not stop.is_set():
            launch("reconcile", lambda: self._reconcile(config))
            launch("health", self._health)
            lag.groups = self._lag_groups(config)
            if lag.version != lag_seen:
                lag_seen = lag.version
                self.snapshot["lag"] = lag.latest
                self.book.observe_lag(lag.latest)
            if time.monotonic() - last_publish > PUBLISH_S:
                last_publish = time.monotonic()
                launch("publish", self._publish)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
        lag.stop()
        if self.console is not None:
            await self.console.stop()
        await self._kill_all()
        await config.stop()

    async def _reconcile(self, config: ConfigWatcher) -> None:
        nodes = [n for n in await asyncio.to_thread(ray.nodes) if n.get("Alive")]
        self.snapshot["nodes"] = [
            {"id": n["NodeID"], "address": n.get("NodeManagerAddress")} for n in nodes
        ]
        providers = [(p.name, p.binds) for p in config.providers.values() if p.enabled]
        names = {self.topics.outbound(p[0]) for p in providers} - self._topics_made
        if names and self.settings.kafka_bootstrap:
            await asyncio.to_thread(
                ensure_topic_names,
                self.settings.kafka_bootstrap,
                names,
                self.settings.topic_partitions,
            )
            self._topics_made |= names
        desired = plan(nodes, self.settings_dict)
        wanted = assign_binds(nodes, providers, self._placed())
        # The hosts that live get their binds first: a lost node's binds reopen
        # elsewhere at once, not after the actors below are stopped or created.
        self._send_assignments(wanted)
        # Ray's actor API calls block on the GCS; off the loop, so the step's
        # timeout can still fire if one of them hangs.
        alive = {n["NodeID"] for n in nodes}
        await asyncio.to_thread(self._apply, desired, alive)
        self._send_assignments(wanted)  # hosts created just now

    def _placed(self) -> dict[str, list[tuple[str, int]]]:
        """Where the binds are: as last assigned, else (a restarted supervisor) as the
        hosts last reported running them; assign_binds keeps them there."""
        placed = {host: binds for host, (_version, binds) in self.assigned.items()}
        for host, entry in (self.snapshot.get("actors") or {}).items():
            if host not in placed and isinstance(entry, dict) and entry.get("binds"):
                keys = (bind_key(name) for name in entry["binds"])
                placed[host] = [k for k in keys if k is not None]
        return placed

    def _send_assignments(self, wanted: dict[str, list[tuple[str, int]]]) -> None:
        """Tell each connector host its binds, if they changed (or it lost them: a
        restarted host reports version 0). Fire and forget: the next pass repeats."""
        reported = self.snapshot.get("actors") or {}
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
            entry[0].assign.remote(self._assign_version, binds)
            self.log.info("binds assigned", host=host, binds=len(binds))
        for host in set(self.assigned) - set(wanted):
            del self.assigned[host]

    def _apply(self, desired: dict[str, Spec], alive: set[str]) -> None:
        """Kill what is not wanted (or wanted elsewhere), adopt or create what is missing.

        An actor of a node that is gone is killed at once: asked to stop, it would
        hold this pass for the whole grace (Ray cannot restart it on its pinned
        node, so the call never ends).
        """
        going = [
            (name, handle)
            for name, (handle, fp) in self.actors.items()
            if name not in desired or desired[name].fingerprint != fp
        ]
        for name, _handle in going:
            self.log.info("stopping actor", actor=name)
            del self.actors[name]
        lost = [(n, h) for n, h in going if self._node_of.pop(n, None) not in alive]
        _kill(lost)
        _stop([g for g in going if g not in lost])
        for name, spec in desired.items():
            if name in self.actors:
                continue
            handle = self._adopt(spec)
            if handle is None:
                handle = self._create(spec)
            if handle is not None:
                self.actors[name] = (handle, spec.fingerprint)
                self._node_of[name] = spec.node

    def _adopt(self, spec: Spec) -> Any:
        """An actor of this name from before a supervisor restart, if it fits the spec."""
        try:
            handle = ray.get_actor(spec.name, namespace=self.namespace)
        except ValueError:
            return None
        fp: str | None = None
        with contextlib.suppress(Exception):
            fp = str(ray.get(handle.fingerprint.remote(), timeout=3))
        if fp == spec.fingerprint:
            return handle
        _stop([(spec.name, handle)])
        return None  # its name frees up; created on a later pass

    def _create(self, spec: Spec) -> Any:
        cls = _CLASSES[spec.kind]
        try:
            handle = cls.options(  # type: ignore[attr-defined]
                name=spec.name,
                namespace=self.namespace,
                lifetime="detached",
                scheduling_strategy=NodeAffinitySchedulingStrategy(spec.node, soft=not spec.strict),
            ).remote(spec.name, *spec.args[:3], fingerprint=spec.fingerprint)
        except ValueError as exc:  # the old actor of that name is still dying
            self.log.info("actor name busy, retrying", actor=spec.name, error=str(exc))
            return None
        self.log.info("started actor", actor=spec.name, node=spec.node[:8])
        return handle

    async def _health(self) -> None:
        """Ask every actor at once; one slow actor must not hold up the others' news."""

        async def ask(name: str, handle: Any) -> tuple[str, dict[str, Any]]:
            # asyncio.wait, not wait_for: a late answer is abandoned, never waited for.
            try:
                answer = asyncio.wrap_future(handle.stats.remote().future())
                done, _ = await asyncio.wait({answer}, timeout=5)
                if not done:
                    return name, {"name": name, "state": "UNREACHABLE", "error": "no answer in 5 s"}
                got: dict[str, Any] = answer.result()
                got["state"] = "ALIVE"
                return name, got
            except Exception as exc:
                return name, {"name": name, "state": "UNREACHABLE", "error": repr(exc)[:200]}

        current = list(self.actors.items())  # _apply may change the dict from its thread
        answers = await asyncio.gather(*(ask(n, h) for n, (h, _fp) in current))
        self.snapshot["actors"] = expand_binds(dict(answers))
        self.snapshot["updated_at"] = time.time()
        self.book.observe(self.snapshot["actors"])
        if self.console is not None:
            self.console.sample()

    async def _lookup(self, message_id: str) -> dict[str, Any] | None:
        """A message's state as the listeners' state stores know it (each node has all)."""
        listeners = [h for n, (h, _fp) in list(self.actors.items()) if n.startswith("listener@")]
        for handle in listeners:
            with contextlib.suppress(Exception):
                answer = asyncio.wrap_future(handle.message.remote(message_id).future())
                done, _ = await asyncio.wait({answer}, timeout=5)
                if done:
                    found: dict[str, Any] | None = answer.result()
                    if found is not None:
                        return found
        return None

    def _lag_groups(self, config: ConfigWatcher) -> dict[str, str]:
        """``{consumer group: its input topic}`` for every stage whose lag is shown."""
        t, prefix = self.topics, self.topics.prefix
        groups = {
            f"{prefix}router": t.submit,
            f"{prefix}correlator": t.inbound,
            f"{prefix}deliverer": t.deliver,
        }
        for p in list(config.providers):
            groups[f"{prefix}provider.{p}"] = t.outbound(p)
        return groups

    def _resume_book(self) -> StatusBook:
        """Counter totals continue from the previous supervisor's last report."""
        assert self.settings.database_url
        try:
            with psycopg.connect(self.settings.database_url, connect_timeout=5) as conn:
                got = status_row.read(conn, self.namespace)
        except psycopg.Error as exc:
            self.log.warning("previous status not readable; totals start at 0", error=str(exc))
            return StatusBook()
        totals = (got[1].get("totals") or {}) if got else {}
        return StatusBook.resumed({k: float(v) for k, v in totals.items()})

    async def _publish(self) -> None:
        report = self.book.report(dict(self.snapshot.get("actors") or {}))
        self.snapshot["report"] = report
        await asyncio.to_thread(self._write_status, dict(self.snapshot), report)

    def _write_status(self, snapshot: dict[str, Any], report: dict[str, Any]) -> None:
        assert self.settings.database_url
        snapshot = {k: v for k, v in snapshot.items() if k != "report"}
        with psycopg.connect(self.settings.database_url, connect_timeout=5) as conn:
            status_row.publish(conn, self.namespace, snapshot, report)

    async def _kill_all(self) -> None:
        going = [(name, handle) for name, (handle, _fp) in self.actors.items()]
        await asyncio.to_thread(_stop, going)
        self.actors.clear()

    # ------------------------------------------------------------ API
    def pid(self) -> int:
        """This process (benchmarks/binds.py measures every process of the gateway)."""
        return os.getpid()

    def status(self) -> dict[str, Any]:
        return dict(self.snapshot)

    def reconcile_now(self) -> None:
        if self._wake is not None:
            self.host.loop.call_soon_threadsafe(self._wake.set)

    def shutdown(self) -> None:
        """Stop every worker actor (then the caller kills this one)."""
        self.host.stop(timeout=30)


def _stop(actors: list[tuple[str, Any]]) -> None:
    """Stop actors on purpose: each shuts down first (bounded), then is killed idle.

    Connector hosts unbind their binds from the SMSC and listeners ask their
    customers to unbind (SMPP 3.4 §4.2) instead of dropping TCP connections; every actor
    closes its Kafka clients. A kill in the middle of its work is what made an
    expected stop look like a crash.
    """
    polite = [handle.shutdown.remote() for _name, handle in actors]
    if polite:
        with contextlib.suppress(Exception):
            ray.wait(polite, num_returns=len(polite), timeout=STOP_GRACE_S)
    _kill(actors)


def _kill(actors: list[tuple[str, Any]]) -> None:
    for _name, handle in actors:
        with contextlib.suppress(Exception):
            ray.kill(handle, no_restart=True)


Supervisor = ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)(SupervisorImpl)
