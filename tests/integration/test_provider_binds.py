"""Provider binds as SMSCs need them (issue 12): a TX+RX pair where transceiver binds are
refused (item 1), with real Kafka and PostgreSQL and the simulated provider."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from benchmarks.smsc_sim.stats import ReceivedSubmit
from smsgw.db.providers import add_provider
from smsgw.db.routes import add_mo_route, add_mt_route
from smsgw.topics import Topics
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.integration.conftest import gateway_settings
from tests.integration.test_message_path import Sims

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def sims() -> Iterator[Sims]:
    s = Sims()
    yield s
    s.stop()


@pytest.fixture
def path_gateway(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    node = GatewayNode(gateway_settings(bootstrap, db_url), topics, with_pipeline=True)
    node.start()
    yield node
    node.stop()


def _until(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_tx_rx_pair_carries_receipts_and_mo_from_a_provider_without_transceiver(
    path_gateway: GatewayNode, sims: Sims
) -> None:
    gw = path_gateway
    sim = sims.start("txrx", transceiver=False, receipt_delay=0.2)
    gw.add_customer("c1", "pw", tps=100)
    with psycopg.connect(gw.db_url) as conn:
        add_provider(
            conn,
            "txrx",
            host="127.0.0.1",
            port=sim.port,
            system_id="txrx",
            password="pw",
            bind_mode="tx+rx",
        )
        add_mt_route(conn, prefix="4917", provider="txrx")
        add_mo_route(conn, "12345", "c1")
    # One configured bind = one transmitter and one receiver.
    _until(lambda: sims.loop.call(lambda: sim.bound.get("txrx", 0)) == 2, 30, "TX+RX bound")
    assert sims.loop.call(lambda: sim.stats.bind_failures) == 0
    c1 = Customer(gw.host, gw.port, "c1", "pw").bind()
    try:
        for i in range(3):
            c1.submit(f"491700{i:05d}")
        c1.wait(lambda: len(c1.receipts) == 3, 40, f"receipts ({len(c1.receipts)}/3)")
        assert sorted(r.receipted_id for r in c1.receipts) == sorted(c1.accepted_ids().values())
        received: list[ReceivedSubmit] = sims.loop.call(lambda: list(sim.received))
        assert {r.bind_mode.name for r in received if r.bind_mode} == {"TX"}
        sims.loop.call(sim.send_mo, "4917712345678", "12345", "hello over RX")
        c1.wait(lambda: len(c1.mos) == 1, 30, "MO to c1")
        assert c1.mos[0].text == b"hello over RX"
    finally:
        c1.close()
