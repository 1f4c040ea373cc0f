"""Driving the gateway's Ray runtime from tests: start, find actors, kill their processes."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psycopg
import ray

from smsgw.actors import runtime as rt
from smsgw.actors.workers import namespace_for
from smsgw.db.customers import add_customer
from smsgw.db.providers import add_provider
from smsgw.db.routes import add_mo_route, add_mt_route
from smsgw.settings import Settings
from smsgw.topics import Topics


class Runtime:
    def __init__(
        self,
        ray_address: str,
        bootstrap: str,
        db_url: str,
        topics: Topics,
        listen_port: int,
        **overrides: Any,
    ) -> None:
        self.db_url = db_url
        self.settings = Settings(
            kafka_bootstrap=bootstrap,
            database_url=db_url,
            ray_address=ray_address,
            topic_prefix=topics.prefix,
            topic_partitions=3,
            smpp_listen=f"127.0.0.1:{listen_port}",
            bind_failure_delay_s=0.2,
            provider_failover_after_s=5.0,
            node_name="ray-test",
            **overrides,
        )
        self.port = listen_port
        rt.connect(ray_address)

    def start(self, providers: int = 0) -> dict[str, Any]:
        rt.start_supervisor(self.settings)
        return rt.wait_ready(
            timeout=120, providers=providers, topic_prefix=self.settings.topic_prefix
        )

    def stop(self) -> None:
        rt.stop_all(self.settings.topic_prefix)
        # Detached actors die asynchronously; wait for their names to free up.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not [
                a
                for a in ray.util.list_named_actors(all_namespaces=True)
                if a.get("namespace") == namespace_for(self.settings.topic_prefix)
            ]:
                return
            time.sleep(0.3)

    def status(self) -> dict[str, Any]:
        st = rt.status(self.settings.topic_prefix)
        assert st is not None
        return st

    def actor(self, prefix: str) -> dict[str, Any]:
        for name, a in self.status()["actors"].items():
            if name.startswith(prefix):
                return dict(a, name=name)
        raise KeyError(prefix)

    def kill(self, prefix: str) -> int:
        """SIGKILL the process of the first actor whose name starts with ``prefix``."""
        pid = int(self.actor(prefix)["pid"])
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, prefix: str, old_pid: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                a = self.actor(prefix)
                if a.get("state") == "ALIVE" and a.get("pid") not in (None, old_pid):
                    return a
            except (KeyError, Exception):
                pass
            time.sleep(0.3)
        raise AssertionError(f"{prefix} was not restarted within {timeout} s")

    def configure(
        self,
        *,
        customers: list[str],
        providers: dict[str, dict[str, Any]],
        routes: list[dict[str, Any]],
        mo_routes: dict[str, str] | None = None,
    ) -> None:
        with psycopg.connect(self.db_url) as conn:
            for c in customers:
                add_customer(conn, c, "pw", tps=10_000, max_binds=8)
            for name, kw in providers.items():
                add_provider(conn, name, host="127.0.0.1", system_id=name, password="pw", **kw)
            for r in routes:
                add_mt_route(conn, **r)
            for prefix, customer in (mo_routes or {}).items():
                add_mo_route(conn, prefix, customer)
