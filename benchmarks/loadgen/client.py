"""One ESME bind: a thin asyncio.Protocol around smsgw's Session (role CLIENT).

The protocol work is the Session's; this shell keeps the submits in flight
(sequence -> send time), answers every deliver_sm with status 0, hands
results to a handler and writes once per batch of input. Usable alone
(`connect()` + `Collector`) for tests that need a bound receiver.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from smsgw.smpp import BindMode, CommandStatus, Event, Pdu, Role, Session
from smsgw.smpp import events as ev
from smsgw.smpp.pdu import FieldValue


class BindFailed(Exception):
    """The SMSC refused the bind; `status` says why (e.g. ESME_RINVPASWD)."""

    def __init__(self, status: CommandStatus) -> None:
        super().__init__(f"bind refused: {status.name} (0x{int(status):02X})")
        self.status = status


class Handler(Protocol):
    def on_submit_resp(
        self, status: int, message_id: str, sent_at: float, wants_receipt: bool, now: float
    ) -> None: ...

    def on_submit_lost(self, sent_at: float, now: float) -> None: ...

    def on_deliver(self, pdu: Pdu, now: float) -> None: ...

    def on_input_done(self, conn: EsmeConnection, now: float) -> None: ...


@dataclass
class Collector:
    """A Handler that keeps what it gets: for tests and one-off binds."""

    responses: list[tuple[int, str]] = field(default_factory=list)
    delivered: list[Pdu] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_submit_resp(
        self, status: int, message_id: str, sent_at: float, wants_receipt: bool, now: float
    ) -> None:
        self.responses.append((status, message_id))
        self.changed.set()

    def on_submit_lost(self, sent_at: float, now: float) -> None:
        self.changed.set()

    def on_deliver(self, pdu: Pdu, now: float) -> None:
        self.delivered.append(pdu)
        self.changed.set()

    def on_input_done(self, conn: EsmeConnection, now: float) -> None:
        pass

    async def wait_delivered(self, n: int, within: float = 5.0) -> list[Pdu]:
        """Wait until `n` deliver_sm arrived (TimeoutError after `within` s)."""
        async with asyncio.timeout(within):
            while len(self.delivered) < n:
                self.changed.clear()
                await self.changed.wait()
        return self.delivered


class EsmeConnection(asyncio.Protocol):
    def __init__(
        self,
        handler: Handler,
        *,
        window: int = 10,
        enquire_link_interval: float = 30.0,
        response_timeout: float = 10.0,
    ) -> None:
        self.handler = handler
        self._loop = asyncio.get_running_loop()
        self.session = Session(
            Role.CLIENT,
            now=self._loop.time(),
            window=window,
            enquire_link_interval=enquire_link_interval,
            response_timeout=response_timeout,
        )
        self.window = window
        self.inflight: dict[int, tuple[float, bool]] = {}  # seq -> (sent at, wants receipt)
        self.transport: asyncio.Transport | None = None
        self.can_submit = False  # bound as transmitter or transceiver
        self._bound: asyncio.Future[CommandStatus] = self._loop.create_future()
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # ------------------------------------------------------------ asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = self._loop.time()
        self._handle(self.session.feed(data, now), now)
        self.handler.on_input_done(self, now)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        now = self._loop.time()
        for sent_at, _ in self.inflight.values():
            self.handler.on_submit_lost(sent_at, now)
        self.inflight.clear()
        if not self._bound.done():
            self._bound.set_exception(ConnectionError("connection lost before bind_resp"))
        if not self.closed.done():
            self.closed.set_result(None)

    # ------------------------------------------------------------ events
    def _handle(self, events: list[Event], now: float) -> None:
        handler = self.handler
        for event in events:
            if type(event) is ev.SubmitResponse:
                info = self.inflight.pop(event.sequence, None)
                if info is not None:
                    handler.on_submit_resp(event.status, event.message_id, info[0], info[1], now)
            elif type(event) is ev.DeliverReceived:
                handler.on_deliver(event.pdu, now)
                self.session.respond_deliver(event.sequence, command=event.command)
            elif isinstance(event, ev.BindResponse):
                if not self._bound.done():
                    self._bound.set_result(event.status)
            elif isinstance(event, ev.ResponseTimeout):
                info = self.inflight.pop(event.sequence, None)
                if info is not None:
                    handler.on_submit_lost(info[0], now)
            elif isinstance(event, ev.ConnectionShouldClose):
                self.flush()
                if self.transport is not None:
                    self.transport.close()

    def tick(self, now: float) -> None:
        """Session timers: enquire_link, response timeouts."""
        self._handle(self.session.tick(now), now)
        self.flush()

    # ------------------------------------------------------------ actions
    @property
    def room(self) -> int:
        """How many more submits the window allows now."""
        return self.window - len(self.inflight)

    def submit(self, fields: dict[str, FieldValue], now: float, wants_receipt: bool) -> int:
        """Queue one submit_sm (written at the next flush)."""
        seq = self.session.send_submit(fields, now)
        self.inflight[seq] = (now, wants_receipt)
        return seq

    def flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        data = self.session.data_to_send()
        if data:
            transport.write(data)

    async def bind(self, mode: BindMode, system_id: str, password: str, within: float) -> None:
        self.session.send_bind(mode, system_id, password, self._loop.time())
        self.flush()
        async with asyncio.timeout(within):
            status = await self._bound
        if status != 0:
            self.close()
            raise BindFailed(status)
        self.can_submit = mode is not BindMode.RX

    async def unbind(self, grace: float = 2.0) -> None:
        """Polite unbind; closes the transport whatever the peer does."""
        if self.session.state.name.startswith("BOUND"):
            self.session.send_unbind(self._loop.time())
            self.flush()
            try:
                async with asyncio.timeout(grace):
                    await asyncio.shield(self.closed)
            except TimeoutError:
                pass
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(
    host: str,
    port: int,
    mode: BindMode,
    system_id: str,
    password: str,
    *,
    handler: Handler | None = None,
    window: int = 10,
    enquire_link_interval: float = 30.0,
    response_timeout: float = 10.0,
) -> EsmeConnection:
    """Open a TCP connection and bind; raises BindFailed if the SMSC refuses."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: EsmeConnection(
            handler or Collector(),
            window=window,
            enquire_link_interval=enquire_link_interval,
            response_timeout=response_timeout,
        ),
        host,
        port,
    )
    await conn.bind(mode, system_id, password, response_timeout)
    return conn
