"""The client side of one SMPP bind to a provider: an asyncio shell around ``Session``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from ssl import SSLContext
from typing import Any

from smsgw.smpp import events as ev
from smsgw.smpp.deadline import DeadlineTimer
from smsgw.smpp.events import BindMode
from smsgw.smpp.pdu import FieldValue, Tlv
from smsgw.smpp.session import Session
from smsgw.smpp.states import Role
from smsgw.smpp.status import CommandStatus

# How long an unbind on purpose waits for unbind_resp before it closes anyway.
UNBIND_GRACE_S = 2.0


class BindRefused(Exception):
    def __init__(self, status: CommandStatus) -> None:
        super().__init__(f"bind refused: {status.name} (0x{int(status):08X})")
        self.status = status


class SmppClient(asyncio.Protocol):
    """Events other than bind responses go to ``on_event``; output is coalesced per loop turn."""

    def __init__(self, on_event: Callable[[Any], None], **session_kwargs: Any) -> None:
        self.loop = asyncio.get_running_loop()
        self.session = Session(Role.CLIENT, now=self.loop.time(), **session_kwargs)
        self.on_event = on_event
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._bind_waiter: asyncio.Future[ev.BindResponse] | None = None
        self._flush_scheduled = False
        self._timer = DeadlineTimer(self.loop, self._on_timer)

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        on_event: Callable[[Any], None],
        timeout: float = 10.0,
        *,
        ssl: SSLContext | None = None,
        **session_kwargs: Any,
    ) -> SmppClient:
        """Connect (over TLS with `ssl`: handshake and certificate checks within `timeout`)."""
        loop = asyncio.get_running_loop()
        _t, proto = await asyncio.wait_for(
            loop.create_connection(
                lambda: cls(on_event, **session_kwargs),
                host,
                port,
                ssl=ssl,
                server_hostname=host.strip("[]") if ssl is not None else None,
                ssl_handshake_timeout=timeout if ssl is not None else None,
            ),
            timeout,
        )
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()
        if self._bind_waiter and not self._bind_waiter.done():
            self._bind_waiter.set_exception(ConnectionError("connection lost during bind"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._dispatch(self.session.feed(data, self.loop.time()))
        self.flush()

    def _dispatch(self, events: list[Any]) -> None:
        for e in events:
            if (
                isinstance(e, ev.BindResponse)
                and self._bind_waiter
                and not self._bind_waiter.done()
            ):
                self._bind_waiter.set_result(e)
            else:
                self.on_event(e)

    def flush(self) -> None:
        """Write what the session queued and follow its (possibly new) next deadline."""
        out = self.session.data_to_send()
        if out and self.transport and not self.transport.is_closing():
            self.transport.write(out)
        if self.session.closed and self.transport:
            self.transport.close()
        self._arm()

    def schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._do_flush)

    def _do_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def _arm(self) -> None:
        if self.closed.done() or self.transport is None:
            self._timer.cancel()
        else:
            self._timer.follow(self.session.next_deadline())

    def _on_timer(self) -> None:
        self._dispatch(self.session.tick(self.loop.time()))
        self.flush()

    async def bind(
        self,
        mode: BindMode,
        system_id: str,
        password: str,
        *,
        system_type: str = "",
        timeout: float = 10.0,
    ) -> None:
        self._bind_waiter = self.loop.create_future()
        self.session.send_bind(mode, system_id, password, self.loop.time(), system_type=system_type)
        self.flush()
        resp = await asyncio.wait_for(self._bind_waiter, timeout)
        if resp.status != CommandStatus.ESME_ROK:
            raise BindRefused(resp.status)

    def submit(
        self, fields: dict[str, FieldValue], tlvs: list[Tlv], command: str = "submit_sm"
    ) -> int:
        seq = self.session.send_submit(fields, self.loop.time(), tlvs=tlvs, command=command)
        self.schedule_flush()
        return seq

    def respond_deliver(self, sequence: int, status: CommandStatus, command: str) -> None:
        self.session.respond_deliver(sequence, status, command=command)
        self.schedule_flush()

    async def unbind(self, timeout: float = UNBIND_GRACE_S) -> None:
        """Unbind and wait (bounded) for unbind_resp, then close (SMPP 3.4 §4.2).

        Not bound (still binding, refused): just close.
        """
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.session.send_unbind(self.loop.time())
            self.flush()
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except Exception:
            pass
        finally:
            if self.transport:
                self.transport.close()
