"""The supervisor at rest (issue 13): once every actor answered and every bind is bound,
its health rounds come every few seconds instead of every second, the report for
`smsgw status` is written when it changed (else as a heartbeat) on one kept
PostgreSQL connection instead of a new one every 2 s, and it still acts at once on
events: a connector host killed gets its binds back, a provider added is bound."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.db.providers import add_provider
from tests.helpers.cluster import Runtime
from tests.helpers.customer import Customer
from tests.helpers.loop_thread import LoopThread
from tests.helpers.parts import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW_S = 20.0  # the supervisor at rest is watched this long


@pytest.fixture
def sim() -> Iterator[tuple[LoopThread, SmscSimulator]]:
    loop = LoopThread("sim")
    s = SmscSimulator(SimConfig(system_id="smsc", password="pw", accounts={"a": "pw", "c": "pw"}))
    loop.run(s.start())
    yield loop, s
    loop.run(s.stop())
    loop.close()


def bound(loop: LoopThread, smsc: SmscSimulator, system_id: str) -> int:
    n: int = loop.call(lambda: smsc.bound.get(system_id, 0))
    return n


def writer_pid(conn: psycopg.Connection[tuple[int]]) -> int | None:
    """The backend whose last statement wrote the status row, if it is still connected."""
    row = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE 'INSERT INTO gateway_status%%' AND pid <> pg_backend_pid()"
    ).fetchone()
    return None if row is None else int(row[0])


def test_at_rest_the_supervisor_probes_and_writes_seldom_and_still_acts_at_once(
    runtime: Runtime, sim: tuple[LoopThread, SmscSimulator]
) -> None:
    loop, smsc = sim
    runtime.configure(
        customers=["cust"],
        providers={"a": {"port": smsc.port, "binds": 2}},
        routes=[{"prefix": "", "provider": "a"}],
    )
    runtime.start(providers=2)
    wait_for(lambda: bound(loop, smsc, "a") == 2, 60, "a bound")
    # A customer bound: its listener checks the supervisor's copy of its customers
    # every second and nudges it when they differ; once it has them, no more nudges.
    customer = Customer("127.0.0.1", runtime.port, "cust", "pw").bind()
    try:
        run(runtime, loop, smsc)
    finally:
        customer.close()


def listener_binds(runtime: Runtime) -> object:
    return runtime.actor("listener@").get("binds")


def run(runtime: Runtime, loop: LoopThread, smsc: SmscSimulator) -> None:
    wait_for(lambda: listener_binds(runtime) == {"cust": 1}, 30, "the customer in the status")

    # At rest: two health rounds seen at least 3 s apart (busy rounds come every 1 s).
    rounds: list[float] = []

    def resting() -> bool:
        at = float(runtime.status().get("updated_at") or 0)
        if not rounds or rounds[-1] != at:
            rounds.append(at)
        return len(rounds) >= 2 and rounds[-1] - rounds[-2] >= 3.0

    wait_for(resting, 90, "the supervisor's rounds slowed down at rest")

    health: set[float] = set()
    writes: set[float] = set()
    writers: list[int | None] = []
    with psycopg.connect(runtime.db_url, autocommit=True) as conn:
        deadline = time.monotonic() + WINDOW_S
        while time.monotonic() < deadline:
            health.add(float(runtime.status().get("updated_at") or 0))
            row = conn.execute(
                "SELECT extract(epoch FROM updated_at) FROM gateway_status"
            ).fetchone()
            if row is not None:
                writes.add(float(row[0]))
            writers.append(writer_pid(conn))
            time.sleep(0.25)
    print(
        f"\nin {WINDOW_S:.0f} s at rest: {len(health)} health rounds, {len(writes)} status"
        f" writes, writer backends {sorted({w for w in writers if w is not None})}"
    )
    # Before: a round every second (20) and a write every 2 s (10), each write on a
    # connection of its own, closed at once (its backend seldom seen, never twice).
    assert len(health) <= 8, sorted(health)
    assert len(writes) <= 4, sorted(writes)
    assert writers[0] is not None and writers[0] == writers[-1], writers
    assert len({w for w in writers if w is not None}) == 1, writers

    # Events are still acted on at once: a connector host killed and restarted by Ray
    # gets its binds back (it says it started), a provider added is bound.
    killed_at = time.monotonic()
    old = runtime.kill("connectors@")
    wait_for(lambda: bound(loop, smsc, "a") < 2, 30, "the killed host's binds dropped")
    wait_for(lambda: bound(loop, smsc, "a") == 2, 60, "binds back after the host's restart")
    back = time.monotonic() - killed_at
    restarted = runtime.wait_restarted("connectors@", old)
    assert restarted["pid"] != old
    with psycopg.connect(runtime.db_url) as conn:
        added_at = time.monotonic()
        add_provider(conn, "c", host="127.0.0.1", port=smsc.port, system_id="c", password="pw")
    wait_for(lambda: bound(loop, smsc, "c") == 1, 30, "c bound")
    took_add = time.monotonic() - added_at
    print(
        f"binds back {back:.1f} s after the host was killed; provider added: bound {took_add:.2f} s"
    )
    # The target is 1 s on an idle machine; this one is shared with other stacks.
    assert took_add < 5, took_add
