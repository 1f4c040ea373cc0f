"""Configuration in memory, kept current by PostgreSQL LISTEN/NOTIFY.

Every config table has a trigger that notifies ``smsgw_config``; the watcher
reloads on each notification (coalescing bursts) and on reconnect, so a
running gateway picks up a change within a second and never serves from a
stale cache after losing its database connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg.abc import RV, PQGen
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from smsgw import log
from smsgw.db.customers import Customer, load_customers
from smsgw.db.providers import Provider, load_providers
from smsgw.db.routes import load_mo_routes, load_mt_routes
from smsgw.routing import MoRoutingTable, RoutingTable
from smsgw.sealing import Sealer

CHANNEL = "smsgw_config"
# psycopg wakes a coroutine waiting on its socket every 100 ms (its
# ``_WAIT_INTERVAL``, there to let a blocking wait see Ctrl-C), which on an
# asyncio loop only costs: the LISTEN of every actor's watcher woke its loop 10
# times a second with nothing to read (issue 13). A notification, or the socket
# closing, still wakes the wait at once; this only spaces the idle checks.
LISTEN_CHECK_S = 30.0


class _ListeningConnection(psycopg.AsyncConnection[Any]):
    """The watcher's LISTEN connection, waiting on its socket without a 100-ms timer."""

    async def wait(
        self, gen: PQGen[RV], interval: float = LISTEN_CHECK_S, timeout: float | None = None
    ) -> RV:
        return await super().wait(gen, interval=LISTEN_CHECK_S, timeout=timeout)


def _fields(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return {"value": obj}


def changes(kind: str, old: dict[Any, Any], new: dict[Any, Any]) -> list[str]:
    """What changed between two versions of one config table, for the log line:
    ``provider smsc1 changed (tps, binds)``, ``route 3 added``; secrets by name only."""
    out = [f"{kind} {k} added" for k in sorted(new.keys() - old.keys(), key=str)]
    out += [f"{kind} {k} removed" for k in sorted(old.keys() - new.keys(), key=str)]
    for k in sorted(old.keys() & new.keys(), key=str):
        a, b = _fields(old[k]), _fields(new[k])
        diff = sorted(f for f in a.keys() | b.keys() if a.get(f) != b.get(f))
        if diff:
            out.append(f"{kind} {k} changed ({', '.join(diff)})")
    return out


STOP_TIMEOUT_S = 10.0


class ConfigWatcher:
    def __init__(self, url: str, sealer: Sealer | None = None) -> None:
        self.url = url
        self.sealer = sealer  # opens provider passwords (issue 11); None: as stored
        self.customers: dict[str, Customer] = {}
        self.providers: dict[str, Provider] = {}
        self.routing = RoutingTable([])
        self.mo_routing = MoRoutingTable([])
        self.version = 0
        self.last_changes: list[str] = []
        self._mt: dict[int, Any] = {}
        self._mo: dict[int, Any] = {}
        self._listeners: list[Callable[[], Awaitable[None] | None]] = []
        self._task: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()
        self.log = log.get("smsgw.config")

    def on_change(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        self._listeners.append(callback)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="config-watcher")
        await asyncio.wait_for(self._loaded.wait(), 30)

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Cancel the watcher (a reload under way with it); one that does not end in
        ``timeout_s`` is left behind, logged."""
        if self._task:
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
            if not done:
                self.log.warning("configuration watcher did not stop", after_s=timeout_s)

    async def _reload(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction():  # one snapshot: routes match their providers
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            customers = await load_customers(conn)
            providers = await load_providers(conn, self.sealer)
            mt_routes = await load_mt_routes(conn)
            mo_routes = await load_mo_routes(conn)
        routing, mo_routing = RoutingTable(mt_routes), MoRoutingTable(mo_routes)
        mt, mo = {r.id: r for r in mt_routes}, {r.id: r for r in mo_routes}
        self.last_changes = [
            *changes("customer", self.customers, customers),
            *changes("provider", self.providers, providers),
            *changes("route", self._mt, mt),
            *changes("mo-route", self._mo, mo),
        ]
        self._mt, self._mo = mt, mo
        # Swap all at once: a reader never sees routes of one version with
        # providers of another.
        self.customers, self.providers = customers, providers
        self.routing, self.mo_routing = routing, mo_routing
        self.version += 1
        self._loaded.set()
        for cb in self._listeners:
            result = cb()
            if asyncio.iscoroutine(result):
                await result

    async def _run(self) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((psycopg.OperationalError, OSError)),
            wait=wait_exponential_jitter(multiplier=0.2, max=5),
        ):
            with attempt:
                await self._listen()

    async def _listen(self) -> None:
        async with await _ListeningConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            await self._reload(conn)
            # psycopg's notifies() holds the connection's lock while it is suspended
            # (even at a yield): unless it is closed first, a watcher cancelled inside
            # a reload leaves the lock taken and the connection's exit (a rollback
            # that takes it) waits forever; a gateway's stop hung on it.
            async with (
                await psycopg.AsyncConnection.connect(self.url, autocommit=True) as reader,
                contextlib.aclosing(conn.notifies()) as gen,
            ):
                async for _note in gen:
                    # Coalesce a burst (a CLI command may touch several rows).
                    await asyncio.sleep(0.05)
                    await self._reload(reader)
                    if self.last_changes:  # a notification may change nothing we keep
                        self.log.info(
                            "configuration reloaded",
                            version=self.version,
                            changes="; ".join(self.last_changes),
                        )
