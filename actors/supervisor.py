"""The supervisor: one named, detached actor that keeps the cluster's actors in line.

It reads the configuration (PostgreSQL, LISTEN/NOTIFY) and Ray's node list,
computes which actors should exist where — a listener and a connector host per
node, routers and correlators spread over nodes — and creates, moves or kills
actors until reality matches. Provider binds are not actors: every bind is
assigned to exactly one node's connector host (spread evenly), which runs it
as an asyncio task; a changed assignment is sent to the hosts it concerns.
Workers are detached too, so a supervisor restart (``max_restarts=-1``)
re-adopts them by name instead of killing them.

The planning and reconciling is ``smsgw.fleet`` (no Ray, unit-tested against a
fake); every Ray call it makes goes through ``actors/backend.py``. What stays
here is the loop, the health and lag probes, the console and the status report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import psycopg
import ray

from smsgw import log
from smsgw.actors.backend import RayBackend
from smsgw.actors.console import ConsoleServer
from smsgw.actors.host import LoopHost
from smsgw.actors.workers import namespace_for
from smsgw.db import status as status_row
from smsgw.db.watch import ConfigWatcher
from smsgw.fleet import ActorBackend, Fleet, expand_binds
from smsgw.kafka.admin import ensure_topic_names, ensure_topics
from smsgw.kafka.lag import Ends, LagProbe, consumer_lag
from smsgw.kafka.security import use_settings as use_kafka_settings
from smsgw.settings import Settings
from smsgw.status import StatusBook
from smsgw.topics import Topics

NAMESPACE = "smsgw"
SUPERVISOR = "supervisor"
LAG_S = 5.0  # consumer lag is measured this often
PUBLISH_S = 2.0  # the report for `smsgw status` goes to PostgreSQL this often


class SupervisorImpl:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings_dict = settings
        self.settings = Settings(**settings)
        use_kafka_settings(self.settings)
        self.topics = Topics(self.settings.topic_prefix)
        self.namespace = namespace_for(self.settings.topic_prefix)
        # The same level and format as every worker (SMSGW_LOG_LEVEL, SMSGW_LOG_JSON).
        log.configure(self.settings.log_level, self.settings.log_json)
        self.snapshot: dict[str, Any] = {"started_at": time.time(), "actors": {}, "nodes": []}
        # Every Ray call of the supervisor goes through the backend; the fleet decides.
        self.backend: ActorBackend[Any] = RayBackend(self.namespace)
        self.fleet = Fleet(self.backend, settings, self._reported)
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
        nodes = await asyncio.to_thread(self.backend.alive_nodes)
        self.snapshot["nodes"] = [{"id": n.id, "address": n.address} for n in nodes]
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
        await self.fleet.reconcile(nodes, providers)

    def _reported(self) -> Mapping[str, Any]:
        """The actors' last answers (the fleet finds a restarted host's binds there)."""
        return self.snapshot.get("actors") or {}

    async def _health(self) -> None:
        """Ask every actor at once; one slow actor must not hold up the others' news."""

        async def ask(name: str, handle: Any) -> tuple[str, dict[str, Any]]:
            # asyncio.wait, not wait_for: a late answer is abandoned, never waited for.
            try:
                answer = asyncio.ensure_future(self.backend.stats(handle))
                done, _ = await asyncio.wait({answer}, timeout=5)
                if not done:
                    return name, {"name": name, "state": "UNREACHABLE", "error": "no answer in 5 s"}
                got: dict[str, Any] = answer.result()
                got["state"] = "ALIVE"
                return name, got
            except Exception as exc:
                return name, {"name": name, "state": "UNREACHABLE", "error": repr(exc)[:200]}

        current = list(self.fleet.actors.items())  # apply may change it from its thread
        answers = await asyncio.gather(*(ask(n, h) for n, (h, _fp) in current))
        self.snapshot["actors"] = expand_binds(dict(answers))
        self.snapshot["updated_at"] = time.time()
        self.book.observe(self.snapshot["actors"])
        if self.console is not None:
            self.console.sample()

    async def _lookup(self, message_id: str) -> dict[str, Any] | None:
        """A message's state as the listeners' state stores know it (each node has all)."""
        actors = list(self.fleet.actors.items())
        listeners = [h for n, (h, _fp) in actors if n.startswith("listener@")]
        for handle in listeners:
            with contextlib.suppress(Exception):
                answer = asyncio.ensure_future(self.backend.message(handle, message_id))
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
        await asyncio.to_thread(self.fleet.stop_all)

    # ------------------------------------------------------------ API
    def pid(self) -> int:
        """This process (benchmarks/binds.py measures every process of the gateway)."""
        return os.getpid()

    def status(self) -> dict[str, Any]:
        return dict(self.snapshot)

    def shutdown(self) -> None:
        """Stop every worker actor (then the caller kills this one)."""
        self.host.stop(timeout=30)


Supervisor = ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)(SupervisorImpl)
