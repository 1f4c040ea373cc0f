"""A provider bind stopped on purpose unbinds (issue 12 item 5), on the Ray runtime.

Disabling or reconfiguring a provider through the CLI makes the supervisor stop
its bind actors; each must send unbind and wait for unbind_resp (SMPP 3.4 §4.2)
rather than drop the TCP connection, which is what a crash does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

import smsgw.cli_routing  # noqa: F401  (registers the provider commands on main)
from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.cli import main
from tests.helpers.cluster import Runtime
from tests.helpers.loop_thread import LoopThread

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def sim() -> Iterator[tuple[LoopThread, SmscSimulator]]:
    loop = LoopThread("sim")
    s = SmscSimulator(SimConfig(system_id="p1", password="pw"))
    loop.run(s.start())
    yield loop, s
    loop.run(s.stop())
    loop.close()


def _until(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_disabling_or_reconfiguring_a_provider_unbinds_its_binds(
    runtime: Runtime, sim: tuple[LoopThread, SmscSimulator]
) -> None:
    loop, smsc = sim

    def seen() -> tuple[int, int, int]:
        """(bound now, unbinds received, connections so far)"""
        got: tuple[int, int, int] = loop.call(
            lambda: (smsc.bound.get("p1", 0), smsc.stats.unbinds, smsc.stats.connections)
        )
        return got

    def cli(*args: str) -> None:
        result = CliRunner().invoke(main, ["--database-url", runtime.db_url, *args])
        assert result.exit_code == 0, result.output

    runtime.configure(customers=[], providers={"p1": {"port": smsc.port}}, routes=[])
    runtime.start(providers=1)
    _until(lambda: seen()[0] == 1, 60, "p1 bound")
    # Reconfigured: the old bind actor goes (politely), a new one binds.
    cli("provider", "update", "p1", "--tps", "20")
    _until(lambda: seen()[1] == 1, 60, "unbind after reconfiguring")
    _until(lambda: seen()[0] == 1 and seen()[2] >= 2, 90, "p1 bound again")
    # Disabled: unbound, nothing binds again.
    cli("provider", "update", "p1", "--disable")
    _until(lambda: seen()[1] == 2 and seen()[0] == 0, 60, "unbind after disabling")
