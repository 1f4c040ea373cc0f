"""Fixtures for the simulator/load generator tests: everything on 127.0.0.1, no services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from benchmarks.smsc_sim import SimConfig, SmscSimulator

SimFactory = Callable[..., Awaitable[SmscSimulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """`sim = await make_sim(tps_limit=50, ...)`: started now, stopped after the test."""
    started: list[SmscSimulator] = []

    async def factory(**overrides: Any) -> SmscSimulator:
        sim = SmscSimulator(SimConfig(**{"port": 0, "seed": 7, **overrides}))
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll `predicate` until it holds; fail the test after `within` seconds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the state lives in protocol callbacks
            await asyncio.sleep(0.01)
