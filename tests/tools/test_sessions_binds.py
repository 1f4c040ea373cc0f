"""`benchmarks.sessions` opens its binds the way the listener admits them.

The listener checks at most 8 passwords at once per source address and refuses
any bind beyond that with ESME_RBINDFAIL (``BindGuard.max_in_progress``, issue 11).
The draft benchmark opened 16 binds at once from one address once past its
baseline step, and its binds failed with 0x0D; here a small SMPP server (the
gateway's own Session and BindGuard, a sleep for the Argon2id check) stands in
for the listener.
"""

from __future__ import annotations

import asyncio

from benchmarks.sessions import CHECKS_PER_IP, _open
from smsgw.auth import BindGuard
from smsgw.smpp import CommandStatus, Role, Session
from smsgw.smpp.events import BindRequested


class GuardedListener:
    """Refuses binds as the listener's `_authenticate` does when too many checks run."""

    def __init__(self) -> None:
        self.guard = BindGuard()
        self.refused = 0
        self.most_in_progress = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        loop = asyncio.get_running_loop()
        ip = writer.get_extra_info("peername")[0]
        session = Session(Role.SERVER, now=loop.time())
        while data := await reader.read(4096):
            for e in session.feed(data, loop.time()):
                if not isinstance(e, BindRequested):
                    continue
                if self.guard.admit(ip, None, loop.time()) is not None:
                    self.refused += 1
                    session.reject_bind(CommandStatus.ESME_RBINDFAIL)
                    continue
                self.guard.started(ip)
                self.most_in_progress = max(self.most_in_progress, self.guard._in_progress[ip])
                try:
                    await asyncio.sleep(0.05)  # the password check
                finally:
                    self.guard.finished(ip)
                session.accept_bind("t")
            writer.write(session.data_to_send())


async def test_binds_from_one_address_stay_under_the_listeners_checks() -> None:
    listener = GuardedListener()
    server = await asyncio.start_server(listener.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        # 40 binds, 16 at once, all from 127.0.0.2: the draft's second step.
        conns = await asyncio.wait_for(
            _open(port, 0, 40, per_customer=100, concurrency=16, addresses=1), 60
        )
        assert len(conns) == 40 and listener.refused == 0
        assert 1 < listener.most_in_progress <= CHECKS_PER_IP < listener.guard.max_in_progress
        for c in conns:
            if c.transport is not None:
                c.transport.close()
    finally:
        for w in listener.writers:
            w.close()
        server.close()
        await server.wait_closed()
