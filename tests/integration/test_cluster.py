"""Two Ray nodes on one machine: cross-node receipts, node loss, node return."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from benchmarks.smsc_sim.stats import ReceivedSubmit
from smsgw.cluster.procs import free_port
from smsgw.cluster.ray_local import EmbeddedRay
from smsgw.db.customers import add_customer
from smsgw.segment import split_text
from smsgw.smpp.status import CommandStatus as S
from smsgw.topics import Topics
from tests.helpers.cluster import Runtime
from tests.helpers.customer import Customer
from tests.helpers.esme import bind_status
from tests.helpers.loop_thread import LoopThread
from tests.helpers.parts import assert_one_udh_message, submit_acked, wait_for
from tests.helpers.scratch import TestDirs

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _worker_node(head: EmbeddedRay, listen_port: int, data_dir: TestDirs) -> EmbeddedRay:
    node = EmbeddedRay(
        data_dir("ray-b"),
        port=0,
        token_path=head.token_path,
        object_store_mb=128,
        address=head.address,
        env={
            "SMSGW_NODE_SMPP_LISTEN": f"127.0.0.1:{listen_port}",
            "RAY_metrics_report_interval_ms": "1000",
        },
    )
    data_dir.stop_with(node.stop)  # stopped (and its dir removed) even if the test fails
    node.start()
    return node


def _binds_by_node(rt: Runtime) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, a in rt.status()["actors"].items():
        if (
            name.startswith("provider:")
            and a.get("state") == "ALIVE"
            and (a.get("bind") or {}).get("bound")
        ):
            out.setdefault(str(a.get("node")), []).append(name)
    return out


def _listener_on(rt: Runtime, port: int) -> dict[str, Any]:
    """The supervisor's last report of the listener listening on `port`."""
    for name, a in rt.status()["actors"].items():
        if name.startswith("listener@") and str(a.get("listen", "")).endswith(f":{port}"):
            return dict(a)
    return {}


def _wait(cond: Any, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if cond():
                return time.monotonic() - t0
        except Exception:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s: {what}")


@pytest.fixture
def smsc() -> Iterator[tuple[LoopThread, SmscSimulator]]:
    loop = LoopThread("sim")
    s = SmscSimulator(SimConfig(system_id="p1", password="pw", receipt_delay=0.2, window=50))
    loop.run(s.start())
    yield loop, s
    loop.run(s.stop())
    loop.close()


# Its bounded waits (node start, receipts, node loss, node return) add up past the suite's
# 300 s on a loaded 2-core machine: cut by the pytest timeout once, in the node-loss wait.
@pytest.mark.timeout(900)
def test_two_nodes_receipts_cross_nodes_and_binds_follow_the_nodes(
    ray_head: EmbeddedRay,
    bootstrap: str,
    db_url: str,
    topics: Topics,
    smsc: tuple[LoopThread, SmscSimulator],
    data_dir: TestDirs,
) -> None:
    loop, sim = smsc
    port_a, port_b = free_port(), free_port()
    node_b = _worker_node(ray_head, port_b, data_dir)
    rt = Runtime(ray_head.address, bootstrap, db_url, topics, port_a)
    clients: list[Customer] = []
    try:
        rt.configure(
            customers=["c"],
            providers={"p1": {"port": sim.port, "tps": 200, "binds": 2}},
            routes=[{"prefix": "", "provider": "p1"}],
        )
        # Added before the start, not later: a listener's reload was raced by the binds.
        with psycopg.connect(db_url) as conn:
            add_customer(conn, "lim", "pw", max_binds=2)
        rt.start(providers=2)
        _wait(
            lambda: len(rt.status()["nodes"]) == 2 and len(_binds_by_node(rt)) == 2,
            60,
            "one provider bind on each node",
        )

        # Submit on node A, receive on node B.
        rx = Customer("127.0.0.1", port_b, "c", "pw", mode="receiver").bind()
        tx = Customer("127.0.0.1", port_a, "c", "pw", mode="transmitter").bind()
        clients += [rx, tx]
        # Node A learns of B's receiver from the supervisor's status (once a second).
        _wait(lambda: "c" in _listener_on(rt, port_b)["receivers"], 60, "rx in the status")
        time.sleep(2)  # A's copy of that status: not observable from outside the actor
        for i in range(100):
            tx.submit(f"4917{i:07d}", f"a{i}".encode())
        tx.wait(lambda: len(tx.responses) == 100, 60, "responses")
        first = set(tx.accepted_ids().values())
        try:
            rx.wait(lambda: set(r.receipted_id for r in rx.receipts) >= first, 60, "receipts")
        except AssertionError:
            raise AssertionError(
                f"receipts on node B ({len(rx.receipts)}/100): {rt.status()}"
            ) from None

        # A multipart message whose parts arrive on binds at both nodes, shuffled,
        # one part twice: one message at the provider, one receipt per part id.
        tx_b = Customer("127.0.0.1", port_b, "c", "pw", mode="transmitter").bind()
        clients.append(tx_b)
        text = "Parts on two nodes: {€} " * 14
        parts = split_text(text, 0, ref=0x21)
        dest = "491799999999"
        mp_ids = [
            submit_acked(c, dest, parts[n]) for c, n in ((tx_b, 2), (tx, 0), (tx_b, 0), (tx, 1))
        ]
        assert len(parts) == 3 and len(set(mp_ids)) == 4

        def at_provider() -> list[ReceivedSubmit]:
            got: list[ReceivedSubmit] = loop.call(lambda: list(sim.received))
            return [r for r in got if r.dest == dest]

        wait_for(lambda: len(at_provider()) >= 3, 60, "the multipart message at the provider")
        rx.wait(
            lambda: {r.receipted_id for r in rx.receipts} >= set(mp_ids),
            60,
            "a receipt for every part id",
        )
        time.sleep(1)
        assert_one_udh_message(at_provider(), text)
        with rx.lock:
            mp_receipts = [r.receipted_id for r in rx.receipts if r.receipted_id in mp_ids]
        assert sorted(mp_receipts) == sorted(mp_ids), "exactly one receipt per part id"

        # max_binds counts binds on every node: one here, one there, a third is refused.
        clients.append(Customer("127.0.0.1", port_a, "lim", "pw").bind())
        clients.append(Customer("127.0.0.1", port_b, "lim", "pw").bind())
        # Each listener learns of the other's bind within a refresh of the status.
        _wait(
            lambda: all(
                bind_status("127.0.0.1", port, "lim", "pw") == S.ESME_RBINDFAIL
                for port in (port_a, port_b)
            ),
            30,
            "a third bind refused on both nodes",
        )

        # Lose node B: its provider bind reopens on node A.
        node_b.kill()
        took = _wait(
            lambda: (
                len(_binds_by_node(rt)) == 1
                and sum(len(v) for v in _binds_by_node(rt).values()) == 2
            ),
            180,
            "both binds on the surviving node",
        )
        print(f"\nnode B killed: both provider binds up on node A after {took:.1f} s")
        rx2 = Customer("127.0.0.1", port_a, "c", "pw", mode="receiver").bind()
        clients.append(rx2)
        for i in range(100, 150):
            tx.submit(f"4917{i:07d}", f"b{i}".encode())
        # 100 + the two multipart parts this bind sent + 50
        tx.wait(lambda: len(tx.responses) == 152, 60, "responses after the node loss")
        ids = set(tx.accepted_ids().values())
        got = {r.receipted_id for c in (rx, rx2) for r in c.receipts}
        rx2.wait(
            lambda: {r.receipted_id for c in (rx, rx2) for r in c.receipts} >= ids,
            90,
            f"all receipts after node loss ({len(got)}/{len(ids)})",
        )

        # Node B returns: binds are dealt out over both nodes again.
        node_b = _worker_node(ray_head, port_b, data_dir)
        took = _wait(lambda: len(_binds_by_node(rt)) == 2, 180, "binds rebalanced onto node B")
        print(f"node B back: binds rebalanced after {took:.1f} s")
    finally:
        for c in clients:
            c.close()
        rt.stop()
        node_b.stop()
