"""Provider binds as SMSCs need them (issue 12): a TX+RX pair where transceiver binds are
refused (item 1), receipts asked for per provider setting (item 7); real Kafka and
PostgreSQL, the simulated provider and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner

import smsgw.cli_routing  # noqa: F401  (registers the provider commands on main)
from benchmarks.smsc_sim.server import SmscSimulator
from benchmarks.smsc_sim.stats import ReceivedSubmit
from smsgw.cli import main
from smsgw.db.providers import add_provider
from smsgw.db.routes import add_mo_route, add_mt_route
from smsgw.smpp.states import State
from smsgw.topics import Topics
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims
from tests.integration.conftest import gateway_settings

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
    gw.wait_synced()  # the routes too, not only the provider its binds came from
    _until(lambda: sims.loop.call(lambda: sim.bound.get("txrx", 0)) == 2, 60, "TX+RX bound")
    assert sims.loop.call(lambda: sim.stats.bind_failures) == 0
    c1 = Customer(gw.host, gw.port, "c1", "pw").bind()
    try:
        for i in range(3):
            c1.submit(f"491700{i:05d}")
        c1.wait(lambda: len(c1.receipts) == 3, 60, f"receipts ({len(c1.receipts)}/3)")
        assert sorted(r.receipted_id for r in c1.receipts) == sorted(c1.accepted_ids().values())
        received: list[ReceivedSubmit] = sims.loop.call(lambda: list(sim.received))
        assert {r.bind_mode.name for r in received if r.bind_mode} == {"TX"}
        sims.loop.call(sim.send_mo, "4917712345678", "12345", "hello over RX")
        c1.wait(lambda: len(c1.mos) == 1, 60, "MO to c1")
        assert c1.mos[0].text == b"hello over RX"

        # The pair is one unit: the receiver's link drops, the transmitter is unbound
        # (on purpose, so politely) and both are opened again.
        def drop_receiver() -> None:
            [rx] = [c for c in sim._conns if c.session.state is State.BOUND_RX]
            rx.abort()

        sims.loop.call(drop_receiver)
        _until(lambda: sims.loop.call(lambda: sim.stats.unbinds) == 1, 30, "TX unbound")
        _until(
            lambda: (
                sims.loop.call(lambda: (sim.bound.get("txrx", 0), sim.stats.connections)) == (2, 4)
            ),
            30,
            "pair reopened",
        )
        sims.loop.call(sim.send_mo, "4917712345678", "12345", "again")
        c1.wait(lambda: len(c1.mos) == 2, 60, "MO after the pair reopened")
    finally:
        c1.close()


def test_request_receipts_as_customer_passes_the_customers_flags_on(
    path_gateway: GatewayNode, sims: Sims
) -> None:
    """Item 7: with --request-receipts as-customer the provider is asked for a receipt
    only where the customer asked for one; the default (always) asks every time."""
    gw = path_gateway
    thrifty = sims.start("thrifty", receipt_delay=0.2)
    default = sims.start("default", receipt_delay=0.2)
    gw.add_customer("c1", "pw", tps=100)
    with psycopg.connect(gw.db_url) as conn:
        for name, sim, asks in (
            ("thrifty", thrifty, "as-customer"),
            ("default", default, "always"),
        ):
            add_provider(
                conn,
                name,
                host="127.0.0.1",
                port=sim.port,
                system_id=name,
                password="pw",
                request_receipts=asks,
            )
        add_mt_route(conn, prefix="4917", provider="thrifty")
        add_mt_route(conn, prefix="4915", provider="default")
    gw.wait_synced()  # the routes too, not only the providers their binds came from
    for sim, name in ((thrifty, "thrifty"), (default, "default")):
        _until(lambda s=sim, n=name: sims.loop.call(lambda: s.bound.get(n, 0)) == 1, 60, name)
    c1 = Customer(gw.host, gw.port, "c1", "pw").bind()
    try:
        c1.submit("491700000001", registered_delivery=0)
        wanted = c1.submit("491700000002", registered_delivery=1)
        c1.submit("491500000003", registered_delivery=0)

        def flags(sim: SmscSimulator) -> dict[str, int]:
            got: list[ReceivedSubmit] = sims.loop.call(lambda: list(sim.received))
            return {r.dest: r.registered_delivery for r in got}

        _until(lambda: len(flags(thrifty)) == 2 and len(flags(default)) == 1, 60, "submits")
        assert flags(thrifty) == {"491700000001": 0, "491700000002": 1}
        assert flags(default) == {"491500000003": 1}
        c1.wait(lambda: len(c1.receipts) == 1, 60, "the one receipt asked for")
        assert c1.receipts[0].receipted_id == c1.accepted_ids()[wanted]
    finally:
        c1.close()


def test_request_receipts_setting_through_the_cli(db_url: str) -> None:
    def cli(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["--database-url", db_url, *args])
        return result.exit_code, result.output

    code, out = cli("provider", "add", "rr", "--host", "h", "--port", "2775",
                    "--system-id", "s", "--password", "p")  # fmt: skip
    assert code == 0, out
    assert json.loads(cli("provider", "show", "rr", "--json")[1])["request_receipts"] == "always"
    assert cli("provider", "update", "rr", "--request-receipts", "as-customer")[0] == 0
    shown = json.loads(cli("provider", "show", "rr", "--json")[1])
    assert shown["request_receipts"] == "as-customer"
    code, out = cli("provider", "update", "rr", "--request-receipts", "never")
    assert code == 2 and "'never' is not one of 'always', 'as-customer'" in out
