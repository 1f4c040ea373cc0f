"""Restart a crashed in-process worker, like Ray's ``max_restarts`` does for actors."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from smsgw import log


class Worker(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


async def supervise(
    name: str, factory: Callable[[], Awaitable[Worker] | Worker], stop: asyncio.Event
) -> None:
    """Build and run a worker until ``stop``; on a crash build a fresh one (state from Kafka)."""
    logger = log.get("smsgw.supervise").bind(worker=name)
    delay = 0.2
    while not stop.is_set():
        try:
            made = factory()
            worker = await made if asyncio.iscoroutine(made) else made
            await worker.run(stop)  # type: ignore[union-attr]
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.error("worker crashed; restarting", error=repr(exc), delay=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), random.uniform(0.5, 1.0) * delay)
            delay = min(delay * 2, 10.0)
