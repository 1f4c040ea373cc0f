"""An idle gateway does not poll (issue 13): with 20 provider binds bound and no
traffic, the event loop that runs them and every pipeline stage stays asleep.

Before, each bind's send loop woke every 2 ms and every consumer every 5 ms
(a bind actor idled at ~3 % of a core); now they wait on events. Measured as
the CPU time of the loop's own thread (librdkafka's threads and the waiting
consumers' threads are not the loop), real Kafka, PostgreSQL and simulator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psutil
import psycopg
import pytest

from smsgw.db.providers import add_provider
from smsgw.topics import Topics
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims
from tests.integration.conftest import gateway_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROVIDERS = 10  # of 2 binds each
IDLE_S = 10.0


@pytest.fixture
def node(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    gw = GatewayNode(gateway_settings(bootstrap, db_url), topics, with_pipeline=True)
    gw.start()
    yield gw
    gw.stop()


def loop_cpu_s(gw: GatewayNode) -> float:
    """CPU seconds the gateway's event-loop thread has used."""
    tid = gw.thread.native_id
    for t in psutil.Process().threads():
        if t.id == tid:
            return float(t.user_time + t.system_time)
    raise AssertionError("the gateway's loop thread is gone")


def test_twenty_idle_binds_and_the_stages_leave_the_loop_asleep(
    node: GatewayNode, sims: Sims
) -> None:
    sim = sims.start("idle", receipt_delay=0.2)
    with psycopg.connect(node.db_url) as conn:
        for i in range(PROVIDERS):
            add_provider(
                conn, f"idle{i}", host="127.0.0.1", port=sim.port, system_id="idle",
                password="pw", binds=2,
            )  # fmt: skip
    deadline = time.monotonic() + 120
    while sims.loop.call(lambda: sim.bound.get("idle", 0)) < 2 * PROVIDERS:
        assert time.monotonic() < deadline, "the binds did not come up"
        time.sleep(0.2)
    time.sleep(3)  # group joins and first commits settle
    before, t0 = loop_cpu_s(node), time.monotonic()
    time.sleep(IDLE_S)
    used = loop_cpu_s(node) - before
    share = 100 * used / (time.monotonic() - t0)
    print(f"\nidle event loop with {2 * PROVIDERS} binds: {share:.2f} % of a core")
    # Polling every 2 ms per bind and 5 ms per consumer cost tens of % here.
    assert share < 3.0, f"the idle loop used {share:.2f} % of a core"


def wakeups(tid: int) -> int:
    """Times thread ``tid`` of this process went to sleep and was woken (voluntary
    context switches): what an idle poll costs, whatever the machine's load."""
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    raise AssertionError(f"no context switch count for thread {tid}")


def test_idle_stages_and_producers_sleep_until_there_is_work(node: GatewayNode) -> None:
    """No traffic: the router, correlator, history writer and deliverer long-poll
    (LONG_WAIT_S) instead of returning to the loop every 100 ms, and a producer
    with nothing queued sleeps instead of polling every 50 ms.

    Before: the loop woke ~50 times a second (four stages at 10 Hz, the state
    follower), each producer's thread 20 times a second.
    """
    producers = [t for t in threading.enumerate() if t.name == "kafka-producer"]
    assert producers, "the node runs no AsyncProducer"
    time.sleep(5)  # group joins, first fetches and commits settle
    threads = {"loop": [node.thread.native_id], "producers": [t.native_id for t in producers]}
    ids = [i for tids in threads.values() for i in tids if i is not None]
    before, t0 = {i: wakeups(i) for i in ids}, time.monotonic()
    time.sleep(IDLE_S)
    elapsed = time.monotonic() - t0
    rate = {
        kind: sum(wakeups(i) - before[i] for i in tids if i is not None) / elapsed
        for kind, tids in threads.items()
    }
    print(f"\nidle wake-ups a second: loop {rate['loop']:.1f}, "
          f"{len(producers)} producers {rate['producers']:.1f}")  # fmt: skip
    assert rate["loop"] < 10, f"the idle loop woke {rate['loop']:.1f} times a second"
    assert rate["producers"] < 1, f"idle producers woke {rate['producers']:.1f} times a second"
