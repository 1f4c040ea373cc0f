"""Simulated providers (SMSCs) on a loop thread, and wiring them to a gateway node."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.db.providers import add_provider
from tests.helpers.gateway import GatewayNode
from tests.helpers.loop_thread import LoopThread


class Sims:
    def __init__(self) -> None:
        self.loop = LoopThread("smsc-sims")
        self.sims: dict[str, SmscSimulator] = {}

    def start(self, name: str, **cfg: Any) -> SmscSimulator:
        sim = SmscSimulator(SimConfig(system_id=name, password="pw", seed=1, **cfg))
        self.loop.run(sim.start())
        self.sims[name] = sim
        return sim

    def stop(self) -> None:
        for sim in self.sims.values():
            self.loop.run(sim.stop())
        self.loop.close()


def add_sim_provider(gw: GatewayNode, name: str, port: int, **kw: Any) -> None:
    """A provider row for a simulator started under `name` (its system_id, password "pw")."""
    with psycopg.connect(gw.db_url) as conn:
        add_provider(conn, name, host="127.0.0.1", port=port, system_id=name, password="pw", **kw)


def wait_bound(gw: GatewayNode, sims: Sims, names: list[str], timeout: float = 60) -> None:
    """Until the node serves everything written to PostgreSQL so far and holds every
    configured bind to each simulator named.

    A bind up is not the configuration loaded: routes committed after their provider
    come with a later reload, and a submit in between finds no route.
    """
    gw.wait_synced(timeout)

    def configured() -> dict[str, int]:
        core = gw.gateway.core
        providers = core.config.providers if core else {}
        return {n: providers[n].binds if n in providers else 1 for n in names}

    want = gw.call(configured)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(
            sims.loop.call(lambda s=sims.sims[n]: sum(s.bound.values())) >= want[n] for n in names
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"providers {names} never bound ({want} binds wanted)")
