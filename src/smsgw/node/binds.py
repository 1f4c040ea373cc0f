"""The provider binds of one process: each an asyncio task, supervised on its own.

A bind costs a task group, a Kafka consumer and its sockets, not a process
(issue 13: one Ray actor per bind was ~135 MB and a share of a core while
idle). Each bind keeps its own window, pacing and consumer position; a crash
restarts that bind (``supervise``), never its neighbours. Which binds run here
is either every configured one (``smsgw run``) or the set a supervisor assigned
to this node; either way a provider added, changed or removed starts or stops
its binds alone, as soon as the configuration says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from smsgw import log
from smsgw.db.providers import Provider
from smsgw.db.watch import ConfigWatcher
from smsgw.kafka.admin import ensure_topic_names
from smsgw.kafka.producer import AsyncProducer
from smsgw.pipeline.connector import FETCH_WAIT_S, ProviderBind, held_flush_s
from smsgw.pipeline.smpp_client import UNBIND_GRACE_S
from smsgw.pipeline.supervise import supervise
from smsgw.settings import Settings
from smsgw.topics import Topics

BindKey = tuple[str, int]  # (provider, bind index)
# How long a stopped bind may take to end: its SMPP unbind (UNBIND_GRACE_S per
# link, SMPP 3.4 §4.2), the end of its consumer's wait under way (FETCH_WAIT_S)
# and the consumer's close, with room for a busy machine. Then it is cancelled.
# BindHost adds the time a bind with late messages held sends on (held_flush_s).
STOP_GRACE_S = 2 * UNBIND_GRACE_S + FETCH_WAIT_S + 5.0


def bind_name(key: BindKey) -> str:
    return f"provider:{key[0]}#{key[1]}"


def bind_key(name: str) -> BindKey | None:
    """The key of a ``bind_name`` (None: not one)."""
    head, sep, index = name.rpartition("#")
    if not sep or not head.startswith("provider:") or not index.isdigit():
        return None
    return head.removeprefix("provider:"), int(index)


class RestartRequested(Exception):
    """Raised inside one bind to restart it, the way a crash would."""


@dataclass
class _Running:
    provider: Provider
    stop: asyncio.Event
    task: asyncio.Task[None] | None = None
    bind: ProviderBind | None = None
    started: float = field(default_factory=time.time)
    incarnations: int = 0  # ProviderBinds built so far (1 + restarts after crashes)
    crash: asyncio.Future[None] | None = None


class BindHost:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        config: ConfigWatcher,
        producer: AsyncProducer,
        *,
        stop_grace_s: float | None = None,
    ) -> None:
        assert settings.kafka_bootstrap
        self.settings = settings
        self.bootstrap = settings.kafka_bootstrap
        self.topics = topics
        self.config = config
        self.producer = producer
        self.running: dict[BindKey, _Running] = {}
        # None: every configured bind; else the keys a supervisor assigned here.
        self.assigned: frozenset[BindKey] | None = None
        self._lock = asyncio.Lock()
        if stop_grace_s is None:
            stop_grace_s = STOP_GRACE_S + held_flush_s(settings.produce_timeout_s)
        self.stop_grace_s = stop_grace_s
        self._retiring: set[asyncio.Task[None]] = set()  # binds stopping (``_end``)
        # Per key, the bind still stopping under that key: its successor waits for it.
        self._ending: dict[BindKey, asyncio.Task[None]] = {}
        self._topics_made: set[str] = set()
        self.log = log.get("smsgw.binds")

    def wanted(self) -> dict[BindKey, Provider]:
        return {
            (p.name, i): p
            for p in self.config.providers.values()
            if p.enabled
            for i in range(p.binds)
            if self.assigned is None or (p.name, i) in self.assigned
        }

    async def assign(self, keys: frozenset[BindKey] | None) -> None:
        self.assigned = keys
        await self.reconcile()

    async def reconcile(self) -> None:
        """Start the binds wanted here and not running; stop those gone or changed.

        Stops run on their own (each unbinds within its grace, else is cancelled)
        and nothing waits for them, not even this call, which a configuration
        reload awaits: a provider removed never delays the next reload.
        """
        async with self._lock:
            wanted = self.wanted()
            going = [(key, r) for key, r in self.running.items() if wanted.get(key) != r.provider]
            for key, r in going:
                del self.running[key]
                self._retire(key, r)
                self.log.info("provider bind closed", provider=key[0], bind=key[1])
            new = {k: p for k, p in wanted.items() if k not in self.running}
            names = {self.topics.outbound(p.name) for p in new.values()} - self._topics_made
            if names:
                await asyncio.to_thread(
                    ensure_topic_names, self.bootstrap, names, self.settings.topic_partitions
                )
                self._topics_made |= names
            for key, provider in sorted(new.items()):
                self._start(key, provider)

    def _retire(self, key: BindKey, running: _Running) -> None:
        """Stop one bind in the background, bounded by ``stop_grace_s``."""
        running.stop.set()
        if running.task is None or running.task.done():
            return
        retiring = asyncio.create_task(self._end(key, running.task), name=f"{bind_name(key)}:stop")
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)
        self._ending[key] = retiring
        retiring.add_done_callback(lambda t: self._ended(key, t))

    def _ended(self, key: BindKey, task: asyncio.Task[None]) -> None:
        if self._ending.get(key) is task:
            del self._ending[key]

    async def _end(self, key: BindKey, task: asyncio.Task[None]) -> None:
        """Wait for a stopped bind's task; past its grace, cancel it (logged): an
        unbind or a consumer close that does not end must not hold anything."""
        done, _ = await asyncio.wait({task}, timeout=self.stop_grace_s)
        if done:
            return
        self.log.warning(
            "provider bind did not stop within its grace; cancelled",
            provider=key[0],
            bind=key[1],
            grace_s=self.stop_grace_s,
        )
        task.cancel()
        await asyncio.wait({task}, timeout=self.stop_grace_s)

    def _start(self, key: BindKey, provider: Provider) -> None:
        running = _Running(provider, asyncio.Event())
        name = bind_name(key)
        s = self.settings

        async def make() -> _Incarnation:
            before = self._ending.get(key)
            if before is not None:
                # The bind this one replaces (a changed provider: its bind count, its
                # TPS) is still stopping: it drains, commits and closes its consumer
                # first. Under static membership (a Ray host) both consumers have the
                # bind's static id (KIP-345): started now, the new one fenced the old
                # one, whose drain's commit then failed, and sent again what the old
                # one had sent since its last commit. Bounded: a bind stopping ends
                # within two stop graces (``_end``).
                await asyncio.wait({before})
            running.incarnations += 1
            running.crash = asyncio.get_running_loop().create_future()
            running.bind = ProviderBind(
                provider,
                key[1],
                bootstrap=self.bootstrap,
                topics=self.topics,
                producer=self.producer,
                config=self.config,
                receipt_ttl_s=s.delivery_ttl_s,
                failover_after_s=s.provider_failover_after_s,
                message_ttl_s=s.message_ttl_s,
                produce_timeout_s=s.produce_timeout_s,
            )
            return _Incarnation(running.bind, running.crash)

        running.task = asyncio.create_task(supervise(name, make, running.stop), name=name)
        self.running[key] = running
        self.log.info("provider bind opened", provider=key[0], bind=key[1])

    def restart(self, key: BindKey) -> bool:
        """Restart one bind as a crash would (its neighbours are not touched)."""
        running = self.running.get(key)
        if running is None or running.crash is None or running.crash.done():
            return False
        running.crash.set_exception(RestartRequested(bind_name(key)))
        return True

    def binds(self) -> list[ProviderBind]:
        return [r.bind for r in self.running.values() if r.bind is not None]

    def stats(self) -> dict[str, dict[str, object]]:
        """Per bind: what `smsgw status` and the metrics show of it."""
        out: dict[str, dict[str, object]] = {}
        for key, r in self.running.items():
            b = r.bind
            out[bind_name(key)] = {
                "provider": key[0],
                "index": key[1],
                "bind": vars(b.stats).copy() if b else {},
                "tps_share": b.tps_share if b else 0.0,
                "uptime_s": round(time.time() - r.started, 1),
                "incarnations": r.incarnations,
            }
        return out

    async def stop(self) -> None:
        """Stop every bind, those still stopping included, each within its grace."""
        async with self._lock:
            going, self.running = self.running, {}
            for key, r in going.items():
                self._retire(key, r)
        await asyncio.gather(*self._retiring, return_exceptions=True)


@dataclass
class _Incarnation:
    """One ProviderBind's run, ended early by ``BindHost.restart`` as by a crash."""

    bind: ProviderBind
    crash: asyncio.Future[None]

    async def run(self, stop: asyncio.Event) -> None:
        mine = asyncio.Event()  # this incarnation's stop: the host's, or a restart
        relay = asyncio.create_task(_relay(stop, mine))
        task = asyncio.create_task(self.bind.run(mine))
        try:
            await asyncio.wait({task, self.crash}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()  # given up on (past its grace): the bind unwinds, not left behind
            raise
        finally:
            mine.set()
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
        await task  # unbinds and closes its consumer first; a crash of its own raises here
        if self.crash.done():
            self.crash.result()  # RestartRequested: supervise builds a fresh bind


async def _relay(src: asyncio.Event, dst: asyncio.Event) -> None:
    await src.wait()
    dst.set()
