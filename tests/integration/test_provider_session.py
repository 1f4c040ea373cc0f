"""Provider-session timers over a real socket (issue 12 item 2).

A tiny asyncio SMSC records when each PDU arrives; it answers binds and
enquire_links and leaves submit_sm unanswered.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from smsgw.pipeline.smpp_client import SmppClient
from smsgw.smpp import events as ev
from smsgw.smpp.codec import decode, encode
from smsgw.smpp.events import BindMode
from smsgw.smpp.framing import Framer
from smsgw.smpp.pdu import Pdu, response_name

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
