"""The gateway in the foreground of ``smsgw run``: serve until told to stop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from smsgw import log
from smsgw.settings import Settings


def run_gateway(settings: Settings, runtime: dict[str, Any], stop: threading.Event) -> None:
    asyncio.run(_serve(settings, runtime, stop))


async def _serve(settings: Settings, runtime: dict[str, Any], stop: threading.Event) -> None:
    from smsgw.server.gateway import Gateway

    logger = log.get("smsgw.run")
    gateway = Gateway(settings)
    await gateway.start()
    logger.info(
        "gateway ready",
        smpp=settings.smpp_listen,
        kafka=settings.kafka_bootstrap,
        ray=settings.ray_address,
        dashboard=runtime.get("ray_dashboard"),
    )
    try:
        while not stop.is_set():  # noqa: ASYNC110 - set by a signal handler outside the loop
            await asyncio.sleep(0.2)
    finally:
        await gateway.stop()
