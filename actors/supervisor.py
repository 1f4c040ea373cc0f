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
from smsgw.actors.workers import SUPERVISOR as ACTOR_NAME
from smsgw.actors.workers import namespace_for
from smsgw.db import status as status_row
from smsgw.db.watch import ConfigWatcher
from smsgw.fleet import ActorBackend, Fleet, all_well, expand_binds
from smsgw.kafka.admin import ensure_topic_names, ensure_topics
from smsgw.kafka.lag import LagMeter, LagProbe
from smsgw.kafka.security import use_settings as use_kafka_settings
from smsgw.settings import Settings
from smsgw.status import StatusBook
from smsgw.status import digest as status_digest
from smsgw.topics import Topics

NAMESPACE = "smsgw"
SUPERVISOR = ACTOR_NAME  # the name workers announce themselves to (workers.py)
LAG_S = 5.0  # consumer lag is measured this often
# The reconcile and health rounds run on events (a configuration change, an actor
# (re)started, the set of live nodes changed) and besides on a timer: every
# ROUND_BUSY_S while anything is changing or not well, every ROUND_IDLE_S once
# all is (issue 13: a fixed 1-s round over 200 binds idled at ~6 % of a core).
ROUND_BUSY_S = 1.0
ROUND_IDLE_S = 5.0
SETTLE_S = 10.0  # after a change, the busy cadence holds this long
# Ray has no callback for a node joining or leaving: the live nodes are read this
# often (one GCS call), and a changed set starts a round at once.
NODES_S = 1.0
# The report for `smsgw status` goes to PostgreSQL when it changed, else this often
# (a heartbeat: `smsgw status` calls a report older than STALE_S, 30 s, stale).
PUBLISH_S = 10.0


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
        self._changed_at = 0.0  # monotonic: the last change seen (see _settled)
        self._nodes: frozenset[str] = frozenset()  # live node ids, as last read
        self._status_conn: psycopg.Connection[Any] | None = None  # the publish thread's
        self._published: tuple[bytes, float] | None = None  # (digest, monotonic) last written
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
        lag = LagProbe(LagMeter(s.kafka_bootstrap), LAG_S)  # the meter: the probe thread's
        lag.groups = self._lag_groups(config)
        lag.start()
        lag_seen = 0
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

        next_round = 0.0
        next_nodes = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if self._wake.is_set():  # configuration changed, an actor started, a node
                self._wake.clear()
                self._changed_at = now
                next_round = now
            if now >= next_nodes:
                next_nodes = now + NODES_S
                launch("nodes", self._check_nodes)
            if now >= next_round:
                launch("reconcile", lambda: self._reconcile(config))
                launch("health", self._health_and_publish)
                next_round = now + (ROUND_IDLE_S if self._settled() else ROUND_BUSY_S)
            lag.groups = self._lag_groups(config)
            if lag.version != lag_seen:
                lag_seen = lag.version
                self.snapshot["lag"] = lag.latest
                self.book.observe_lag(lag.latest)
            with contextlib.suppress(TimeoutError):
                timeout = max(0.0, min(next_round, next_nodes) - time.monotonic())
                await asyncio.wait_for(self._wake.wait(), timeout)
        lag.stop()
        if self.console is not None:
            await self.console.stop()
        await self._kill_all()
        await config.stop()
        await asyncio.to_thread(self._close_status)

    async def _check_nodes(self) -> None:
        """A node joined or left: a round now, not at the next tick of the idle cadence."""
        nodes = frozenset(n.id for n in await asyncio.to_thread(self.backend.alive_nodes))
        if nodes != self._nodes and self._wake is not None:
            self._wake.set()

    def _settled(self) -> bool:
        """Nothing changed for SETTLE_S and all is well (``fleet.all_well``): a round
        every ROUND_IDLE_S is enough; else every ROUND_BUSY_S."""
        if time.monotonic() - self._changed_at < SETTLE_S:
            return False
        actors: Mapping[str, Any] = self.snapshot.get("actors") or {}
        return all_well(actors, list(self.fleet.actors), self.fleet.assigned)

    async def _reconcile(self, config: ConfigWatcher) -> None:
        nodes = await asyncio.to_thread(self.backend.alive_nodes)
        self._nodes = frozenset(n.id for n in nodes)
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
        before = (dict(self.fleet.actors), dict(self.fleet.assigned))
        await self.fleet.reconcile(nodes, providers)
        if (self.fleet.actors, self.fleet.assigned) != before:  # actors or binds moved
            self._changed_at = time.monotonic()

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

    async def _health_and_publish(self) -> None:
        await self._health()
        await self._publish()

    async def _publish(self) -> None:
        """The report to PostgreSQL if it changed (or PUBLISH_S passed since the last)."""
        actors = dict(self.snapshot.get("actors") or {})
        report = self.book.report(actors)
        self.snapshot["report"] = report
        digest = status_digest(self.snapshot.get("nodes"), actors, self.snapshot.get("lag"), report)
        last = self._published
        if last is not None and last[0] == digest and time.monotonic() - last[1] < PUBLISH_S:
            return
        await asyncio.to_thread(self._write_status, dict(self.snapshot), report)
        self._published = (digest, time.monotonic())

    def _write_status(self, snapshot: dict[str, Any], report: dict[str, Any]) -> None:
        """On a connection kept from one write to the next (a new one each time cost a
        login and a server process every 2 s); a failed one is opened again next time."""
        assert self.settings.database_url
        snapshot = {k: v for k, v in snapshot.items() if k != "report"}
        if self._status_conn is None or self._status_conn.closed:
            self._status_conn = psycopg.connect(
                self.settings.database_url, connect_timeout=5, autocommit=True
            )
        try:
            status_row.publish(self._status_conn, self.namespace, snapshot, report)
        except psycopg.Error:
            self._close_status()
            raise

    def _close_status(self) -> None:
        conn, self._status_conn = self._status_conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    async def _kill_all(self) -> None:
        await asyncio.to_thread(self.fleet.stop_all)

    # ------------------------------------------------------------ API
    def pid(self) -> int:
        """This process (benchmarks/binds.py measures every process of the gateway)."""
        return os.getpid()

    def status(self) -> dict[str, Any]:
        return dict(self.snapshot)

    def changed(self, name: str) -> None:
        """A worker actor (re)started (each says so when it starts), or a listener's
        customers changed: a round now, not at the next idle one. A host Ray restarted
        gets its binds back at once; the other listeners learn where a customer is
        bound (PeerListeners) within a second or two, as with 1-s rounds."""
        wake = self._wake
        if wake is not None:
            self.host.loop.call_soon_threadsafe(wake.set)
        self.log.debug("actor changed", actor=name)

    def shutdown(self) -> None:
        """Stop every worker actor (then the caller kills this one)."""
        self.host.stop(timeout=30)


Supervisor = ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)(SupervisorImpl)
