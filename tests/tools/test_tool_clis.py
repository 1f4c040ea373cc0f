"""The load generator's and the simulator's command lines: what an operator types."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from benchmarks.smsc_sim import SimConfig, SmscSimulator
from smsgw.cluster.procs import free_port
from tests.helpers.loop_thread import LoopThread

PY = sys.executable


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def slow_receipts() -> Iterator[SmscSimulator]:
    """A simulator whose receipts come long after any --receipt-timeout here."""
    loop = LoopThread("tool-cli-sim")
    sim = SmscSimulator(SimConfig(system_id="smsc", password="pw", receipt_delay=120.0))
    loop.run(sim.start())
    yield sim
    loop.run(sim.stop())
    loop.close()


def test_loadgen_asks_how_fast_and_how_much_instead_of_flooding() -> None:
    no_rate = run("benchmarks.loadgen", "--count", "5")
    assert no_rate.returncode == 2 and "--rate N" in no_rate.stderr
    no_count = run("benchmarks.loadgen", "--rate", "10")
    assert no_count.returncode == 2 and "--count N" in no_count.stderr


def test_loadgen_fails_when_receipts_are_missing(slow_receipts: SmscSimulator) -> None:
    base = ("benchmarks.loadgen", "--port", str(slow_receipts.port), "--quiet", "--count", "3")
    done = run(*base, "--rate", "50", "--receipt-timeout", "1")
    assert done.returncode == 1, done.stderr
    assert "3 of 3 receipts missing after 1 s" in done.stderr
    without = run(*base, "--rate", "50", "--registered-delivery", "0")
    assert without.returncode == 0, without.stderr


def test_simulator_says_its_port_is_taken_without_a_traceback() -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = run("benchmarks.smsc_sim", "--port", str(port), "--duration", "1", timeout=30)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
