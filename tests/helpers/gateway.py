"""A real gateway node for integration tests, in a thread with its own event loop.

Its own loop because tests drive it with python-smpplib, whose client is
blocking: on a shared loop a blocking call would starve the server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import psycopg

from smsgw.db.customers import add_customer, load_customers, update_customer
from smsgw.db.providers import load_providers
from smsgw.db.routes import load_mo_routes, load_mt_routes
from smsgw.message import AcceptedMessage, decode, is_withdrawal
from smsgw.node.gateway import Gateway
from smsgw.settings import Settings
from smsgw.topics import Topics
from tests.helpers.kafka import drain

T = TypeVar("T")


class GatewayNode:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        *,
        with_pipeline: bool = False,
        roles: frozenset[str] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.host = "127.0.0.1"
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="gateway")
        self.gateway = Gateway(settings, topics, with_pipeline=with_pipeline, roles=roles)

    @property
    def bootstrap(self) -> str:
        assert self.settings.kafka_bootstrap
        return self.settings.kafka_bootstrap

    @property
    def db_url(self) -> str:
        assert self.settings.database_url
        return self.settings.database_url

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the gateway's loop (its state is not thread-safe)."""
        fut: Future[T] = Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(10)

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.gateway.start(), self.loop).result(60)
        self.port = self.gateway.port

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.gateway.stop(), self.loop).result(60)
        except TimeoutError:
            # What the stop waits on: every task's stack, printed from the node's loop.
            def dump() -> None:
                for task in asyncio.all_tasks(self.loop):
                    task.print_stack(limit=8)

            self.loop.call_soon_threadsafe(dump)
            import time

            time.sleep(1)
            raise
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def add_customer(
        self, system_id: str, password: str, *, tps: int = 1000, max_binds: int = 4, **kw: Any
    ) -> None:
        """Add a customer and wait until this node's config cache has it."""
        with psycopg.connect(self.db_url) as conn:
            add_customer(conn, system_id, password, tps=tps, max_binds=max_binds, **kw)
        # Not "the version moved": a provider or route added just before by the
        # test moves it too, and a bind could then come before the customer
        # (ESME_RBINDFAIL once under load).
        import time

        deadline = time.monotonic() + 30
        while not self.call(
            lambda: bool(self.gateway.core and system_id in self.gateway.core.config.customers)
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"customer {system_id!r} never reached the config cache")
            time.sleep(0.02)

    def update_customer(self, system_id: str, **kw: Any) -> None:
        """Change a customer and wait until this node serves the change."""
        with psycopg.connect(self.db_url) as conn:
            update_customer(conn, system_id, **kw)
        self.wait_synced()

    def wait_synced(self, timeout: float = 30.0) -> None:
        """Block until this node's configuration holds exactly what PostgreSQL holds now.

        Rows written straight to PostgreSQL (or by the CLI) reach the node by NOTIFY and a
        reload. "The version moved" is not enough: a reload that began before the write
        also moves it (a bind once came before its customer, a submit before its route).
        Comparing the node's tables with a fresh read of the database is.
        """
        import time

        async def synced() -> bool:
            core = self.gateway.core
            if core is None:
                return False
            cfg = core.config
            conn = await psycopg.AsyncConnection.connect(self.db_url, autocommit=True)
            async with conn as c, c.transaction():
                await c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                customers = await load_customers(c)
                providers = await load_providers(c, cfg.sealer)
                mt = {r.id: r for r in await load_mt_routes(c)}
                mo = {r.id: r for r in await load_mo_routes(c)}
            # No await from here: the watcher swaps its tables together on this loop.
            return (cfg.customers, cfg.providers, cfg._mt, cfg._mo) == (
                customers,
                providers,
                mt,
                mo,
            )

        deadline = time.monotonic() + timeout
        while not asyncio.run_coroutine_threadsafe(synced(), self.loop).result(timeout):
            if time.monotonic() > deadline:
                raise AssertionError(f"the gateway did not load the configuration in {timeout} s")
            time.sleep(0.05)

    def wait_routes(
        self, *routes: tuple[str, str], customer: str = "", timeout: float = 30.0
    ) -> None:
        """Block until the node's configuration routes each ``(destination, provider)`` pair.

        Routes written straight to PostgreSQL reach the node by NOTIFY and a reload; a test
        that submits before that races the reload (its messages find no route).
        """
        import time

        def routed() -> bool:
            core = self.gateway.core
            if core is None:
                return False
            for dest, provider in routes:
                r = core.config.routing.route(customer, "", dest)
                if r is None or r.provider != provider or provider not in core.config.providers:
                    return False
            return True

        deadline = time.monotonic() + timeout
        while not self.call(routed):
            if time.monotonic() > deadline:
                raise AssertionError(f"the gateway did not load the routes {routes} in {timeout} s")
            time.sleep(0.02)

    def read_submits(self, expect: int | None, timeout: float = 30.0) -> list[AcceptedMessage]:
        """The accepted messages on ``submit`` (withdrawal markers left out)."""
        return [
            decode(m.value() or b"")
            for m in drain(self.bootstrap, self.topics.submit, expect=expect, timeout=timeout)
            if not is_withdrawal(m.value())
        ]

    def counters(self) -> dict[tuple[str, str, str], int]:
        return self.call(lambda: dict(self.gateway.core.counters) if self.gateway.core else {})

    def pipeline_stats(self) -> dict[str, object]:
        """Counters of this node's pipeline workers (for assertions and failure messages)."""

        def collect() -> dict[str, object]:
            p = self.gateway.pipeline
            if p is None:
                return {}
            out: dict[str, object] = {}
            if p.router:
                out["router"] = dict(p.router.counts)
            if p.correlator:
                out["correlator"] = vars(p.correlator.stats).copy()
            if p.deliverer:
                out["deliverer"] = vars(p.deliverer.stats).copy()
            out["binds"] = {b.name: vars(b.stats).copy() for b in p.provider_binds()}
            return out

        return self.call(collect)
