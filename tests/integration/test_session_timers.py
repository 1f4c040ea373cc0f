"""Session timers over a real socket, on both sides (issue 12 item 2).

Provider side: a tiny asyncio SMSC records when each PDU arrives; it answers
binds and enquire_links and leaves submit_sm unanswered. Customer side: a
silent customer on a blocking socket records when the gateway's PDUs arrive.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from smsgw.pipeline.smpp_client import SmppClient
from smsgw.records import Delivery
from smsgw.smpp import events as ev
from smsgw.smpp.codec import decode, encode
from smsgw.smpp.events import BindMode
from smsgw.smpp.framing import Framer
from smsgw.smpp.pdu import FieldValue, Pdu, response_name
from smsgw.smpp.submission import Address
from smsgw.topics import Topics
from tests.helpers.gateway import GatewayNode
from tests.integration.conftest import gateway_settings

pytestmark = pytest.mark.integration


class RecordingSmsc:
    """Answers binds, enquire_link and unbind; never answers submit_sm."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        framer = Framer()
        while data := await reader.read(65536):
            framer.feed(data)
            while (frame := framer.next_frame()) is not None:
                pdu = decode(frame)
                self.arrivals.append((loop.time(), pdu.command))
                if pdu.command.startswith("bind_"):
                    fields = {"system_id": "rec"}
                    writer.write(encode(Pdu(response_name(pdu.command), pdu.sequence, 0, fields)))
                elif pdu.command in ("enquire_link", "unbind"):
                    writer.write(encode(Pdu(response_name(pdu.command), pdu.sequence)))
        writer.close()

    def first(self, command: str) -> float:
        return next(t for t, c in self.arrivals if c == command)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def _until(cond: Any, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_first_enquire_link_and_response_timeout_come_when_due() -> None:
    smsc = RecordingSmsc()
    port = await smsc.start()
    events: list[Any] = []
    client = await SmppClient.connect(
        "127.0.0.1", port, events.append, enquire_link_interval=3.0, response_timeout=2.0
    )
    try:
        await client.bind(BindMode.TRX, "rec", "pw")
        bound = smsc.first("bind_transceiver")
        await _until(lambda: any(c == "enquire_link" for _, c in smsc.arrivals), 30)
        first_enquire = smsc.first("enquire_link") - bound
        assert 3.0 - 0.1 <= first_enquire <= 3.0 + 1.0, first_enquire

        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        seq = client.submit({"source_addr": "A", "destination_addr": "1"}, [])
        await _until(lambda: ev.ResponseTimeout(seq, "submit_sm") in events, 30)
        assert loop.time() - sent_at <= 2.0 + 1.0
        assert not client.closed.done()  # one message timed out, not the link
    finally:
        await client.unbind()
        await smsc.stop()
    assert smsc.arrivals[-1][1] == "unbind"


@pytest.fixture
def quick_gateway(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    """A listener whose deliver_sm time out after 2 s and that probes after 6 s of silence."""
    settings = gateway_settings(
        bootstrap, db_url, smpp_response_timeout_s=2.0, smpp_enquire_link_s=6.0
    )
    node = GatewayNode(settings, topics)
    node.start()
    yield node
    node.stop()


def test_customer_side_deliver_timeout_and_enquire_link_come_when_due(
    quick_gateway: GatewayNode,
) -> None:
    """The customer-facing session: an unanswered deliver_sm fails after the response
    timeout (not at the next enquire_link), and the first enquire_link follows the bind
    by the interval. The customer here answers nothing after its bind."""
    gw = quick_gateway
    gw.add_customer("silent", "pw")
    sock = socket.create_connection((gw.host, gw.port), timeout=30)
    arrivals: list[tuple[float, str]] = []
    framer = Framer()

    def read_until(command: str) -> float:
        while not any(c == command for _, c in arrivals):
            data = sock.recv(65536)
            assert data, "gateway closed the connection"
            framer.feed(data)
            while (frame := framer.next_frame()) is not None:
                arrivals.append((time.monotonic(), decode(frame).command))
        return next(t for t, c in arrivals if c == command)

    try:
        fields: dict[str, FieldValue] = {
            "system_id": "silent",
            "password": "pw",
            "interface_version": 0x34,
        }
        sock.sendall(encode(Pdu("bind_receiver", 1, 0, fields)))
        bound = read_until("bind_receiver_resp")
        core = gw.gateway.core
        assert core is not None
        conn = gw.call(lambda: next(iter(core.connections)))
        mo = Delivery(
            id="mo:test",
            kind="mo",
            customer="silent",
            source=Address("4917000", 1, 1),
            destination=Address("12345", 1, 1),
            esm_class=0,
            data_coding=0,
            short_message=b"hi",
        )
        outcome: Future[BaseException | None] = Future()

        def send() -> None:
            fut = conn.send_deliver(mo)
            assert fut is not None
            fut.add_done_callback(lambda f: outcome.set_result(f.exception()))

        gw.call(send)
        sent = read_until("deliver_sm")
        error = outcome.result(timeout=30)
        failed_after = time.monotonic() - sent
        assert isinstance(error, TimeoutError)
        assert failed_after <= 2.0 + 1.0, f"deliver_sm timed out after {failed_after:.1f} s"
        first_enquire = read_until("enquire_link") - bound
        assert 6.0 - 0.5 <= first_enquire <= 6.0 + 1.0, first_enquire
    finally:
        sock.close()
