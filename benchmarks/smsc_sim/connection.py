"""One TCP connection of the simulator: a thin asyncio.Protocol around a Session.

All decisions live in the simulator; the connection only owns the transport,
its sans-IO Session and the deliver_sm it has in flight (its window), and
writes whatever the session queued in one write per flush.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from smsgw.smpp import Role, Session, State

if TYPE_CHECKING:
    from benchmarks.smsc_sim.delivery import Delivery
    from benchmarks.smsc_sim.server import SmscSimulator

RECEIVING = frozenset({State.BOUND_RX, State.BOUND_TRX})


class SmscConnection(asyncio.Protocol):
    def __init__(self, sim: SmscSimulator, bind_id: int) -> None:
        self.sim = sim
        self.bind_id = bind_id
        self.system_id = ""
        self.inflight: dict[int, Delivery] = {}  # deliver_sm sequence -> what it carries
        self.transport: asyncio.Transport | None = None
        cfg = sim.config
        self.session = Session(
            Role.SERVER,
            now=asyncio.get_running_loop().time(),
            window=cfg.window,
            enquire_link_interval=cfg.enquire_link_interval,
            inactivity_timeout=cfg.inactivity_timeout,
            response_timeout=cfg.response_timeout,
        )

    # asyncio callbacks: everything is delegated to the simulator
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sim._on_connect(self)

    def data_received(self, data: bytes) -> None:
        self.sim._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sim._on_lost(self)
        self.transport = None  # a dead bind must never be picked for a receipt again

    # helpers
    @property
    def receiving(self) -> bool:
        """Bound as receiver or transceiver, and still connected: receipts and MO may go here.

        A receipt remembers the bind that submitted its message (``prefer``);
        once that connection is lost it must not count as receiving, or the
        receipt is written into a dead socket and never retried.
        """
        return (
            self.transport is not None
            and not self.transport.is_closing()
            and self.session.state in RECEIVING
        )

    @property
    def capacity(self) -> int:
        return self.session.window - len(self.inflight)

    def flush(self) -> None:
        """Write what the session queued (one write), close if the session ended."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        data = self.session.data_to_send()
        if data:
            transport.write(data)
        if self.session.closed:
            transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
