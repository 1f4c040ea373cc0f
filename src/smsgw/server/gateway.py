"""One node's gateway process: the SMPP listener and what it needs."""

from __future__ import annotations

import asyncio

from smsgw import log
from smsgw.settings import Settings


class Gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server: asyncio.Server | None = None
        self.log = log.get("smsgw.gateway")

    async def start(self) -> None:
        host, port = self.settings.smpp_host_port
        self.server = await asyncio.start_server(self._on_connect, host, port)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
