"""Running an asyncio worker on its own thread inside an actor process."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from smsgw import log
from smsgw.kafka.security import use_settings as use_kafka_settings
from smsgw.settings import Settings

NODE_LISTEN_ENV = "SMSGW_NODE_SMPP_LISTEN"  # per-node listen address (several nodes, one host)
NODE_TLS_LISTEN_ENV = "SMSGW_NODE_SMPP_TLS_LISTEN"  # ... and its TLS listener's


def settings_from(values: dict[str, Any]) -> Settings:
    for env, key in ((NODE_LISTEN_ENV, "smpp_listen"), (NODE_TLS_LISTEN_ENV, "smpp_tls_listen")):
        listen = os.environ.get(env)
        if listen:
            values = {**values, key: listen}
    settings = Settings(**values)
    use_kafka_settings(settings)  # this actor's process: every Kafka client authenticates
    return settings


class LoopHost:
    """Owns one event loop thread; ``main`` runs there until ``stop()``."""

    def __init__(self, name: str, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        self.name = name
        self._main = main
        # An actor's start-up heap (Ray, librdkafka bindings, pydantic, smpplib) is
        # large and lives forever; a full collection walks all of it and stalls every
        # session on this loop. Frozen objects are skipped by the collector.
        gc.collect()
        gc.freeze()
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def body() -> None:
            self.stop_event = asyncio.Event()
            try:
                await self._main(self.stop_event)
            except Exception as exc:  # the actor reports it; Ray restarts on process death
                self.error = repr(exc)
                log.get("smsgw.actor").error("worker ended", actor=self.name, error=repr(exc))
                os._exit(1)  # let Ray restart the whole actor: state comes back from Kafka

        self.loop.run_until_complete(body())

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` on the worker's loop (its state is not thread-safe) and return the result."""

        async def wrapper() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def stop(self, timeout: float = 20.0) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout)
