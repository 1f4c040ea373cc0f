"""The harness' waits wait for what the test needs next, not for a sign that usually
comes with it: a provider's bind up is not its route loaded, and a bind_resp later than
a second is still a bind."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import smpplib.consts

from smsgw.db.routes import add_mt_route
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims, add_sim_provider, wait_bound

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_wait_bound_waits_for_the_route_written_after_the_provider(
    node: GatewayNode, sims: Sims
) -> None:
    """The race behind a CI failure: routes committed after their provider reach the node
    by a later reload than the one that opened the bind, and a submit in between found
    no route. Here that later reload is held: the wait must not return meanwhile."""
    config = node.gateway.core.config  # type: ignore[union-attr]
    held, requested, released = threading.Event(), threading.Event(), threading.Event()
    reload = config._reload

    async def gated(conn: Any) -> None:
        if held.is_set() and not released.is_set():
            requested.set()
            await asyncio.to_thread(released.wait, 120)
        await reload(conn)

    node.call(lambda: setattr(config, "_reload", gated))
    sim = sims.start("p")
    add_sim_provider(node, "p", sim.port)
    wait_bound(node, sims, ["p"])

    held.set()
    try:
        with psycopg.connect(node.db_url) as conn:
            add_mt_route(conn, prefix="", provider="p")
        assert requested.wait(30), "the route's notification never came"
        # The bind is up and the route is not loaded: the old wait returned here.
        with pytest.raises(AssertionError, match="did not load the configuration"):
            wait_bound(node, sims, ["p"], timeout=2)
    finally:
        released.set()
    wait_bound(node, sims, ["p"])
    route = node.call(lambda: config.routing.route("", "", "491700000001"))
    assert route is not None and route.provider == "p"


@pytest.fixture
def slow_smsc() -> Iterator[int]:
    """An SMPP server that answers a bind after 1.5 s (a gateway busy hashing passwords)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            length, command, _status, seq = struct.unpack(">IIII", conn.recv(16))
            conn.recv(length - 16)
            stop.wait(1.5)  # the server's slowness, not a wait of the test
            body = b"slow\0"
            conn.sendall(struct.pack(">IIII", 16 + len(body), command | 0x80000000, 0, seq) + body)
            stop.wait(30)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(10)


def test_a_bind_answered_after_a_second_still_binds(slow_smsc: int) -> None:
    """Customer.bind waited 1 s for bind_resp (its reader's poll interval), so a loaded
    machine's slow bind failed the test before it began."""
    c = Customer("127.0.0.1", slow_smsc, "c", "pw").bind()
    try:
        assert c.client.state == smpplib.consts.SMPP_CLIENT_STATE_BOUND_TRX
    finally:
        c.close()
