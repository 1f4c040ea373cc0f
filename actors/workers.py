"""The worker actors: listener and connector host (per node), router, correlator, history.

Thin ``@ray.remote`` shells around plain classes from ``smsgw``; every piece
of work they handle lives in Kafka, so Ray may kill and restart them freely.
All take ``num_cpus=0``: they are IO-bound and must not starve each other of
scheduling slots on a two-core node.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ray

from smsgw import log
from smsgw.actors.host import LoopHost, settings_from
from smsgw.actors.metrics import MetricsExporter
from smsgw.db.watch import ConfigWatcher
from smsgw.kafka import dlq
from smsgw.kafka.consumer import use_static_membership
from smsgw.kafka.producer import AsyncProducer
from smsgw.node.binds import BindHost, BindKey
from smsgw.node.gateway import Gateway
from smsgw.pipeline.correlator import Correlator
from smsgw.pipeline.history import HistoryWriter
from smsgw.pipeline.router import Router
from smsgw.pipeline.supervise import Worker, supervise
from smsgw.sealing import Sealer
from smsgw.topics import Topics

ACTOR_OPTIONS: dict[str, Any] = {"max_restarts": -1, "max_task_retries": -1, "num_cpus": 0}
NAMESPACE = "smsgw"
SUPERVISOR = "supervisor"  # the supervisor actor's name (actors/supervisor.py)


def gauge_refresh_s() -> float:
    """How often (seconds) a connector host exports an unchanged bind's metrics.

    Ray ages out a gauge series not recorded for two metrics report intervals
    (``RAY_metrics_report_interval_ms``, default 10 s; ray-project/ray#64633):
    half an interval, at least the export loop's 1 s.
    """
    report_ms = float(ray._config.metrics_report_interval_ms())
    return max(1.0, report_ms / 2000)


def namespace_for(topic_prefix: str) -> str:
    """One Ray namespace per deployment (its topic prefix): "smsgw." -> "smsgw".

    Two deployments sharing a Ray cluster (or tests one after another) never
    see, adopt or collide with each other's actor names.
    """
    return topic_prefix.rstrip(".") or NAMESPACE


class _Base:
    kind = "worker"

    def __init__(self, name: str, settings: dict[str, Any], *, fingerprint: str = "") -> None:
        self.name = name
        self._fingerprint = fingerprint
        self.settings = settings_from(settings)
        self.topics = Topics(self.settings.topic_prefix)
        self.started = time.time()
        log.configure(
            self.settings.log_level, self.settings.log_json, unmasked=self.settings.log_unmasked
        )
        use_static_membership(name)
        self.metrics = MetricsExporter(self.kind, name)
        self.host = LoopHost(name, self._main)
        self._announce()

    def _announce(self) -> None:
        """Tell the supervisor this actor (re)started: it acts on that at once (a
        restarted connector host needs its binds) instead of at its next round."""
        with contextlib.suppress(Exception):  # no supervisor (a test's own actor)
            sup = ray.get_actor(SUPERVISOR, namespace=namespace_for(self.settings.topic_prefix))
            sup.changed.remote(self.name)

    async def _main(self, stop: asyncio.Event) -> None:
        raise NotImplementedError

    def _stats(self) -> dict[str, Any]:
        return {}

    def _samples(self) -> dict[str, Any]:
        """Latency samples since the last export (drained: only the exporter calls this)."""
        return {}

    def pid(self) -> int:
        return os.getpid()

    def fingerprint(self) -> str:
        """The supervisor's spec hash: lets a restarted supervisor re-adopt this actor."""
        return self._fingerprint

    def node_id(self) -> str:
        return str(ray.get_runtime_context().get_node_id())

    def stats(self) -> dict[str, Any]:
        try:
            stats = self.host.call(self._stats, timeout=5)
        except Exception as exc:
            stats = {"error": repr(exc)}
        return {
            "name": self.name,
            "kind": self.kind,
            "pid": os.getpid(),
            "node": self.node_id(),
            "uptime_s": round(time.time() - self.started, 1),
            "error": self.host.error,
            **stats,
        }

    def shutdown(self) -> None:
        """Stop on purpose: end the work (binds unbind, Kafka clients close) before a kill."""
        self.host.stop()

    async def _supervised(
        self,
        stop: asyncio.Event,
        make: Callable[[], Awaitable[Worker] | Worker],
        *cleanup: Callable[[], Awaitable[None]],
    ) -> None:
        """Run the worker under in-process restarts, export metrics, then close resources."""
        exporter = asyncio.create_task(self._export_loop(stop))
        try:
            await supervise(self.name, make, stop)
        finally:
            exporter.cancel()
            for close in cleanup:
                await close()

    async def _export_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(1.0)
            try:
                self.metrics.export({**self._stats(), **self._samples()})
            except Exception as exc:
                log.get("smsgw.metrics").warning("metrics export failed", error=repr(exc))


class PeerListeners:
    """Which other listeners hold a customer's receiving binds, and delivery through them.

    The directory comes from the supervisor's status once a second (binds
    change rarely); a delivery batch is one actor call, never one per message.
    """

    def __init__(
        self, me: str, namespace: str, own: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        self.me = me
        self.namespace = namespace
        # This listener's customers as its stats show them (binds, receivers, sessions):
        # when the supervisor's copy differs, it is told, and asks at once instead of
        # at its next round (every 5 s at rest), so the other listeners learn soon.
        self.own = own
        self.directory: dict[str, list[str]] = {}
        self.lag: dict[str, int] = {}  # per topic, as the supervisor last measured it
        self.bind_counts: dict[str, int] = {}  # customer -> binds on other listeners
        self.homes: dict[str, dict[str, str]] = {}  # customer -> receiving session -> listener

    def targets(self, customer: str) -> list[str]:
        return self.directory.get(customer, [])

    def sessions(self, customer: str) -> dict[str, str]:
        return self.homes.get(customer, {})

    def binds_elsewhere(self, system_id: str) -> int:
        return self.bind_counts.get(system_id, 0)

    async def send(self, target: str, deliveries: list[bytes]) -> list[int]:
        handle = ray.get_actor(target, namespace=self.namespace)
        ref: Any = handle.deliver_from_peer.remote(deliveries)
        result: list[int] = await asyncio.wrap_future(ref.future())
        return result

    async def refresh_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(1.0)
            try:
                sup = ray.get_actor("supervisor", namespace=self.namespace)
                status: dict[str, Any] = await asyncio.wrap_future(sup.status.remote().future())
            except Exception:
                continue
            if self.own is not None:
                mine, seen = self.own(), status.get("actors", {}).get(self.me) or {}
                if any(seen.get(k) != v for k, v in mine.items()):
                    sup.changed.remote(self.me)
            self.lag = dict(status.get("lag") or {})
            directory: dict[str, list[str]] = {}
            counts: dict[str, int] = {}
            homes: dict[str, dict[str, str]] = {}
            for name, a in status.get("actors", {}).items():
                if not name.startswith("listener@") or name == self.me:
                    continue
                for customer, n in (a.get("binds") or {}).items():
                    counts[customer] = counts.get(customer, 0) + int(n)
                for customer in a.get("receivers") or []:
                    directory.setdefault(customer, []).append(name)
                for customer, sessions in (a.get("sessions") or {}).items():
                    homes.setdefault(customer, {}).update(dict.fromkeys(sessions, name))
            self.directory = directory
            self.bind_counts = counts
            self.homes = homes


class ListenerImpl(_Base):
    """The node's SMPP listener and its deliverer (deliver_sm needs the local binds)."""

    kind = "listener"
    gateway: Gateway | None = None

    peers: PeerListeners | None = None

    async def _main(self, stop: asyncio.Event) -> None:
        namespace = namespace_for(self.settings.topic_prefix)
        self.peers = peers = PeerListeners(self.name, namespace, own=self._customers)
        self.gateway = Gateway(
            self.settings, self.topics, roles=frozenset({"deliverer"}), remote=peers
        )
        await self.gateway.start()
        exporter = asyncio.create_task(self._export_loop(stop))
        refresher = asyncio.create_task(peers.refresh_loop(stop))
        try:
            await stop.wait()
        finally:
            exporter.cancel()
            refresher.cancel()
            await self.gateway.stop()

    def _samples(self) -> dict[str, Any]:
        core = self.gateway.core if self.gateway else None
        if core is None:
            return {}
        return {
            "accept_latency_ms": core.drain_latencies(),
            "e2e_latency_ms": core.drain_e2e(),
            "lag": self.peers.lag if self.peers else {},
        }

    def message(self, message_id: str) -> dict[str, Any] | None:
        """What this node's state store knows of one message (the console's lookup)."""
        gw = self.gateway
        if gw is None or gw.core is None:
            return None
        core = gw.core
        record = self.host.call(lambda: core.states.get(message_id), timeout=5)
        return None if record is None else dict(record.public())

    def deliver_from_peer(self, deliveries: list[bytes]) -> list[int]:
        """Another node's deliverer hands over deliveries for binds on this node."""
        gw = self.gateway
        if gw is None or gw.pipeline is None or gw.pipeline.deliverer is None:
            return [-1] * len(deliveries)
        coro = gw.pipeline.deliverer.deliver_here(deliveries)
        return asyncio.run_coroutine_threadsafe(coro, self.host.loop).result(30)

    def _customers(self) -> dict[str, Any]:
        """Who is bound here: what the other listeners learn through the supervisor."""
        gw = self.gateway
        if gw is None or gw.core is None:
            return {}
        core = gw.core
        return {
            "binds": core.binds.customers(),
            "receivers": sorted(c for c in core.binds.customers() if core.binds.receivers(c)),
            # Receiving sessions per customer: other nodes send a receipt to its session here.
            "sessions": {
                c: [b.bind_id for b in core.binds.receivers(c)] for c in core.binds.customers()
            },
        }

    def _stats(self) -> dict[str, Any]:
        gw = self.gateway
        if gw is None or gw.core is None:
            return {}
        core = gw.core
        out: dict[str, Any] = {
            "listen": self.settings.smpp_listen,
            "tls_listen": self.settings.smpp_tls_listen,
            "tls_sha256": gw.tls_fingerprint,
            **self._customers(),
            "in_flight": core.producer.in_flight,
            "counters": [[*k, v] for k, v in core.counters.items()],
            "failures": [r.public() for r in list(core.states.failures)[-20:]],
        }
        if gw.pipeline and gw.pipeline.deliverer:
            out["deliverer"] = vars(gw.pipeline.deliverer.stats).copy()
        return out


class RouterImpl(_Base):
    kind = "router"
    router: Router | None = None

    async def _main(self, stop: asyncio.Event) -> None:
        assert self.settings.database_url and self.settings.kafka_bootstrap
        config = ConfigWatcher(self.settings.database_url)
        await config.start()
        bootstrap = self.settings.kafka_bootstrap

        async def make() -> Router:
            self.router = await asyncio.to_thread(
                Router,
                bootstrap,
                self.topics,
                config,
                transactional_id=f"{self.topics.prefix}{self.name}",
                outbound_partitions=self.settings.topic_partitions,
                multipart_expiry_s=self.settings.multipart_expiry_s,
                message_ttl_s=self.settings.message_ttl_s,
                produce_timeout_s=self.settings.produce_timeout_s,
            )
            return self.router

        await self._supervised(stop, make, config.stop)

    def _stats(self) -> dict[str, Any]:
        if self.router is None:
            return {}
        return {
            "router": dict(self.router.counts),
            "final": dict(self.router.final),
            "no_route_by_customer": dict(self.router.no_route_by_customer),
        }


class CorrelatorImpl(_Base):
    kind = "correlator"
    correlator: Correlator | None = None

    async def _main(self, stop: asyncio.Event) -> None:
        s = self.settings
        assert s.kafka_bootstrap
        producer = AsyncProducer.stage_producer(s.kafka_bootstrap)
        bootstrap = s.kafka_bootstrap

        def make() -> Correlator:
            self.correlator = Correlator(
                bootstrap,
                self.topics,
                producer,
                park_timeout_s=s.receipt_park_s,
                receipt_ttl_s=s.delivery_ttl_s,
            )
            return self.correlator

        await self._supervised(stop, make, producer.close)

    def _stats(self) -> dict[str, Any]:
        return {"correlator": vars(self.correlator.stats).copy()} if self.correlator else {}


class HistoryImpl(_Base):
    """Writes every message's events to PostgreSQL in batches (``smsgw message``)."""

    kind = "history"
    writer: HistoryWriter | None = None

    async def _main(self, stop: asyncio.Event) -> None:
        s = self.settings
        assert s.database_url and s.kafka_bootstrap
        bootstrap, url = s.kafka_bootstrap, s.database_url

        def make() -> HistoryWriter:
            self.writer = HistoryWriter(
                bootstrap, self.topics, url, retention_days=s.history_retention_days
            )
            return self.writer

        await self._supervised(stop, make)

    def _stats(self) -> dict[str, Any]:
        return {"history": vars(self.writer.stats).copy()} if self.writer else {}


class ConnectorHostImpl(_Base):
    """All provider binds the supervisor assigned to this node, as asyncio tasks.

    One process per node instead of one per bind (issue 13). The assignment
    arrives by ``assign`` (versioned: a late, older one is ignored); a restarted
    host has none until the supervisor, seeing version 0 in its stats, sends it
    again, and its binds resume from their committed offsets.
    """

    kind = "connectors"
    binds: BindHost | None = None

    def __init__(self, name: str, settings: dict[str, Any], *, fingerprint: str = "") -> None:
        self.version = 0
        self.wanted: frozenset[BindKey] = frozenset()
        self.exporters: dict[str, MetricsExporter] = {}
        super().__init__(name, settings, fingerprint=fingerprint)

    async def _main(self, stop: asyncio.Event) -> None:
        s = self.settings
        assert s.database_url and s.kafka_bootstrap
        config = ConfigWatcher(s.database_url, Sealer.for_home(s.home))
        await config.start()
        producer = AsyncProducer.stage_producer(s.kafka_bootstrap)
        self.binds = binds = BindHost(s, self.topics, config, producer)
        await binds.assign(self.wanted)
        config.on_change(binds.reconcile)  # a provider changed: its binds restart alone
        exporter = asyncio.create_task(self._export_loop(stop))
        try:
            await stop.wait()
        finally:
            exporter.cancel()
            await binds.stop()
            await producer.close()
            await config.stop()

    def assign(self, version: int, keys: list[tuple[str, int]]) -> int:
        """The binds this node runs from now on (the supervisor's plan); returns the
        version in force. Does not wait for binds to open or close."""
        if version > self.version:
            self.version = version
            self.wanted = frozenset((p, int(i)) for p, i in keys)
            if self.binds is not None:
                binds, wanted = self.binds, self.wanted
                asyncio.run_coroutine_threadsafe(binds.assign(wanted), self.host.loop)
        return self.version

    def restart_bind(self, name: str) -> bool:
        """Restart one bind as its crash would (an operator's remedy, and the tests')."""
        provider, _, index = name.removeprefix("provider:").rpartition("#")
        binds = self.binds
        if binds is None:
            return False
        return bool(self.host.call(lambda: binds.restart((provider, int(index))), timeout=5))

    def _stats(self) -> dict[str, Any]:
        return {
            "assigned_version": self.version,
            "binds": self.binds.stats() if self.binds else {},
        }

    async def _export_loop(self, stop: asyncio.Event) -> None:
        """One exporter per bind: the provider metrics stay tagged per bind.

        A bind whose counters did not move since its last export is skipped, unless
        the process's dead letters moved (every exporter counts those): 200 idle
        binds made 200 exports a second. Every bind is exported again each
        ``gauge_refresh_s()`` all the same: Ray drops a gauge series not recorded
        for two metrics report intervals (ray-project/ray#64633), and
        ``smsgw_provider_bound`` of an idle bind vanished from Prometheus.
        """
        exported: dict[str, dict[str, Any]] = {}
        dead: dict[Any, int] = {}
        refreshed, refresh_s = time.monotonic(), gauge_refresh_s()
        while not stop.is_set():
            await asyncio.sleep(1.0)
            try:
                binds = self._stats()["binds"]
                for name in exported.keys() - binds.keys():
                    del exported[name]
                moved, dead = dlq.dead_lettered != dead, dict(dlq.dead_lettered)
                if time.monotonic() - refreshed >= refresh_s:
                    moved, refreshed = True, time.monotonic()
                for name, st in binds.items():
                    if not moved and exported.get(name) == st.get("bind"):
                        continue
                    exporter = self.exporters.get(name)
                    if exporter is None:
                        exporter = self.exporters[name] = MetricsExporter("provider", name)
                    exporter.export(st)
                    exported[name] = copy.deepcopy(st.get("bind") or {})
            except Exception as exc:
                log.get("smsgw.metrics").warning("metrics export failed", error=repr(exc))


# Threaded: deliveries from peers wait for customers' answers without blocking status calls.
ListenerActor = ray.remote(**{**ACTOR_OPTIONS, "max_concurrency": 16})(ListenerImpl)
RouterActor = ray.remote(**ACTOR_OPTIONS)(RouterImpl)
CorrelatorActor = ray.remote(**ACTOR_OPTIONS)(CorrelatorImpl)
HistoryActor = ray.remote(**ACTOR_OPTIONS)(HistoryImpl)
ConnectorHostActor = ray.remote(**ACTOR_OPTIONS)(ConnectorHostImpl)
