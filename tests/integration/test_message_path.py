"""The whole message path with real Kafka and PostgreSQL and simulated providers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.cluster.procs import free_port
from smsgw.db.providers import add_provider
from smsgw.db.routes import add_mo_route, add_mt_route
from smsgw.receipts import parse_receipt
from smsgw.state import MessageState
from smsgw.topics import Topics
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims, wait_bound
from tests.integration.conftest import gateway_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def path_gateway(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    node = GatewayNode(
        gateway_settings(bootstrap, db_url, provider_failover_after_s=2.0),
        topics,
        with_pipeline=True,
    )
    node.start()
    yield node
    node.stop()


def _provider(gw: GatewayNode, name: str, port: int, **kw: Any) -> None:
    with psycopg.connect(gw.db_url) as conn:
        add_provider(conn, name, host="127.0.0.1", port=port, system_id=name, password="pw", **kw)


def _max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_routes_receipts_mo_failover_and_tps(path_gateway: GatewayNode, sims: Sims) -> None:
    gw = path_gateway
    # alpha: hex ids in submit_sm_resp, decimal in receipts (a classic mismatch).
    alpha = sims.start("alpha", id_format="hex", receipt_id_format="dec", receipt_delay=0.3)
    beta = sims.start("beta", id_format="dec", receipt_delay=0.3, receipt_tlvs=False)
    dead_port = free_port()  # nothing listens there
    gw.add_customer("c1", "pw", tps=500)
    gw.add_customer("c2", "pw", tps=500)
    _provider(
        gw, "alpha", alpha.port, tps=20, binds=2, submit_id_format="hex", receipt_id_format="dec"
    )
    _provider(
        gw, "beta", beta.port, tps=100, binds=1, submit_id_format="dec", receipt_id_format="dec"
    )
    _provider(gw, "dead", dead_port, tps=10, binds=1)
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix="4917", provider="alpha")
        add_mt_route(conn, prefix="4915", provider="beta", customer="c2")
        add_mt_route(conn, prefix="4930", provider="dead", failover=["beta"])
        add_mo_route(conn, "12345", "c1")
        add_mo_route(conn, "6789", "c2")
    wait_bound(gw, sims, ["alpha", "beta"])
    c1 = Customer(gw.host, gw.port, "c1", "pw").bind()
    c2 = Customer(gw.host, gw.port, "c2", "pw").bind()
    try:
        sent: dict[str, list[int]] = {
            "c1->alpha": [],
            "c2->beta": [],
            "c2->alpha": [],
            "c1->failover": [],
            "c1->noroute": [],
        }
        for i in range(40):
            sent["c1->alpha"].append(c1.submit(f"491700{i:05d}"))
        for i in range(20):
            sent["c2->beta"].append(c2.submit(f"491500{i:05d}"))
        for i in range(10):
            sent["c2->alpha"].append(c2.submit(f"491711{i:05d}"))
        for i in range(5):
            sent["c1->failover"].append(c1.submit(f"493000{i:05d}"))
        for i in range(3):
            sent["c1->noroute"].append(c1.submit(f"499900{i:05d}"))
        c1.wait(lambda: len(c1.responses) == 48, 60, "c1 responses")
        c2.wait(lambda: len(c2.responses) == 30, 60, "c2 responses")
        ids1, ids2 = c1.accepted_ids(), c2.accepted_ids()
        assert len(ids1) == 48 and len(ids2) == 30

        # Every message reaches the right provider.
        def dests(sim: SmscSimulator) -> set[str]:
            return {r.dest for r in sims.loop.call(lambda: list(sim.received))}

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(dests(alpha)) < 50 or len(dests(beta)) < 25):
            time.sleep(0.2)
        assert dests(alpha) == {f"491700{i:05d}" for i in range(40)} | {
            f"491711{i:05d}" for i in range(10)
        }
        assert dests(beta) == {f"491500{i:05d}" for i in range(20)} | {
            f"493000{i:05d}" for i in range(5)
        }, "4930 goes to beta by failover once 'dead' stays unreachable"

        # Every receipt reaches the right customer with the gateway id.
        c1.wait(lambda: len(c1.receipts) >= 48, 60, f"c1 receipts ({len(c1.receipts)}/48)")
        c2.wait(lambda: len(c2.receipts) >= 30, 60, f"c2 receipts ({len(c2.receipts)}/30)")
        time.sleep(1)
        for cust, ids in ((c1, ids1), (c2, ids2)):
            got = [r.receipted_id for r in cust.receipts]
            assert sorted(got) == sorted(ids.values()), "one receipt per message, our ids"
            for r in cust.receipts:
                parsed = parse_receipt(r.text, {})
                assert parsed is not None and parsed.message_id == r.receipted_id
        noroute = {ids1[s] for s in sent["c1->noroute"]}
        for r in c1.receipts:
            if r.receipted_id in noroute:
                assert r.message_state == MessageState.UNDELIVERABLE
                assert b"stat:UNDELIV" in r.text and b"err:901" in r.text
            else:
                assert r.message_state == MessageState.DELIVERED and b"stat:DELIVRD" in r.text

        # The provider's TPS was never exceeded in any one-second window.
        times = [r.received_at for r in sims.loop.call(lambda: list(alpha.received))]
        assert _max_in_window(times) <= 20, _max_in_window(times)
        assert sims.loop.call(lambda: alpha.stats.tps_max) <= 20

        # MO reaches the right customer.
        sims.loop.call(alpha.send_mo, "4917712345678", "12345", "hello c1")
        sims.loop.call(beta.send_mo, "4915712345678", "6789", "hello c2")
        c1.wait(lambda: len(c1.mos) == 1, 60, "MO to c1")
        c2.wait(lambda: len(c2.mos) == 1, 60, "MO to c2")
        assert c1.mos[0].text == b"hello c1" and c1.mos[0].dest == "12345"
        assert c2.mos[0].text == b"hello c2"
    finally:
        c1.close()
        c2.close()


def test_receipts_wait_for_the_customer_to_bind_again(
    path_gateway: GatewayNode, sims: Sims
) -> None:
    gw = path_gateway
    slow = sims.start("slow", receipt_delay=1.5)
    gw.add_customer("away", "pw")
    _provider(gw, "slow", slow.port, tps=200)
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix="", provider="slow")
    wait_bound(gw, sims, ["slow"])
    tx = Customer(gw.host, gw.port, "away", "pw", mode="transmitter").bind()
    for i in range(10):
        tx.submit(f"4917{i:07d}")
    tx.wait(lambda: len(tx.responses) == 10, 60, "responses")
    ids = set(tx.accepted_ids().values())
    tx.close()  # gone before any receipt exists
    # The receipts come back meanwhile and must wait durably.
    deadline = time.monotonic() + 60
    while gw.pipeline_stats()["correlator"]["to_customer"] < 10:  # type: ignore[index]
        assert time.monotonic() < deadline, f"receipts never came back: {gw.pipeline_stats()}"
        time.sleep(0.1)
    rx = Customer(gw.host, gw.port, "away", "pw", mode="receiver").bind()
    try:
        rx.wait(
            lambda: len(rx.receipts) >= 10,
            60,
            f"receipts after rebind ({len(rx.receipts)}): {gw.pipeline_stats()}",
        )
        time.sleep(1)
        assert sorted(r.receipted_id for r in rx.receipts) == sorted(ids)
    finally:
        rx.close()


def test_provider_throttling_refusals_race_and_query_sm(
    path_gateway: GatewayNode, sims: Sims
) -> None:
    """0x58 is retried, a permanent refusal becomes a failure receipt with the provider's
    status, receipts that overtake their submit_sm_resp still match, query_sm is final."""
    from smsgw.smpp.status import CommandStatus as S

    gw = path_gateway
    # The provider enforces 20/s while we were told 60/s: it answers 0x58 above that.
    strict = sims.start("strict", tps_limit=20, receipt_before_resp=True, receipt_delay=0)
    gw.add_customer("q", "pw")
    _provider(gw, "strict", strict.port, tps=60, window=5)
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix="", provider="strict")
    wait_bound(gw, sims, ["strict"])
    sims.loop.call(strict.fail_next, 3, S.ESME_RINVDSTADR)
    c = Customer(gw.host, gw.port, "q", "pw").bind()
    try:
        for i in range(60):
            c.submit(f"4917{i:07d}", f"t{i}".encode(), registered_delivery=1)
        c.wait(lambda: len(c.responses) == 60, 60, "responses")
        ids = set(c.accepted_ids().values())
        assert len(ids) == 60
        c.wait(
            lambda: len(c.receipts) >= 60,
            90,
            f"receipts ({len(c.receipts)}): {gw.pipeline_stats()}",
        )
        refused = [r for r in c.receipts if r.message_state == MessageState.UNDELIVERABLE]
        assert len(refused) == 3, "the three permanent refusals come back as failures"
        for r in refused:
            assert b"err:902" in r.text
        assert {r.receipted_id for r in c.receipts} == ids, "all matched despite the race"
        stats = gw.pipeline_stats()
        bind = next(iter(stats["binds"].values()))  # type: ignore[attr-defined]
        assert bind["throttled"] > 0, "the provider did push back"
        assert sims.loop.call(lambda: strict.stats.tps_max) <= 20
        # query_sm follows the message to its final state.
        some_ok = next(r.receipted_id for r in c.receipts if r.message_state == 2)
        c.query(some_ok)
        c.query(refused[0].receipted_id)
        c.wait(lambda: len(c.queries) == 2, 30, "query_sm answers")
        assert c.queries[some_ok] == (0, MessageState.DELIVERED)
        assert c.queries[refused[0].receipted_id] == (0, MessageState.UNDELIVERABLE)
    finally:
        c.close()


def test_removing_a_provider_closes_its_binds(path_gateway: GatewayNode, sims: Sims) -> None:
    from smsgw.db.providers import remove_provider

    gw = path_gateway
    gone = sims.start("gone")
    _provider(gw, "gone", gone.port, binds=2)
    wait_bound(gw, sims, ["gone"])
    assert sims.loop.call(lambda: gone.bound.get("gone", 0)) == 2
    with psycopg.connect(gw.db_url) as conn:
        remove_provider(conn, "gone")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sims.loop.call(lambda: gone.bound.get("gone", 0)):
        time.sleep(0.1)
    assert sims.loop.call(lambda: gone.bound.get("gone", 0)) == 0
