"""All pipeline workers of one process, kept in line with the configuration.

Used by ``smsgw run`` and the tests before the Ray runtime takes over
placement: one router, one correlator, one deliverer (with the node's SMPP
listener) and every configured provider bind.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from smsgw import log
from smsgw.db.watch import ConfigWatcher
from smsgw.kafka.producer import AsyncProducer
from smsgw.node.binds import BindHost
from smsgw.pipeline.connector import ProviderBind
from smsgw.pipeline.correlator import Correlator
from smsgw.pipeline.history import HistoryWriter
from smsgw.pipeline.router import Router
from smsgw.pipeline.supervise import Worker, supervise
from smsgw.server.core import NodeCore
from smsgw.server.deliverer import Deliverer, RemoteBinds
from smsgw.settings import Settings
from smsgw.topics import Topics


class PipelineNode:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        config: ConfigWatcher,
        producer: AsyncProducer,
        core: NodeCore,
        roles: frozenset[str] = frozenset({"router", "correlator", "deliverer", "providers"}),
        remote: RemoteBinds | None = None,
    ) -> None:
        assert settings.kafka_bootstrap
        self.settings = settings
        self.bootstrap = settings.kafka_bootstrap
        self.topics = topics
        self.config = config
        self.producer = producer
        self.core = core
        self.roles = roles
        self.remote = remote
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.bind_host: BindHost | None = None  # every configured bind, from start()
        self.router: Router | None = None
        self.correlator: Correlator | None = None
        self.deliverer: Deliverer | None = None
        self.history: HistoryWriter | None = None
        # Not the listener's producer: a stage never gives its writes up (STAGE_TIMEOUT_S).
        self.stage_producer: AsyncProducer | None = None
        self.log = log.get("smsgw.pipeline")

    async def start(self) -> None:
        self.stage_producer = AsyncProducer.stage_producer(self.bootstrap)
        self.bind_host = BindHost(self.settings, self.topics, self.config, self.stage_producer)
        makers: dict[str, Callable[[], Awaitable[Worker] | Worker]] = {
            "router": self._router,
            "correlator": self._correlator,
            "deliverer": self._deliverer,
            "history": self._history,
        }
        self.tasks = [
            asyncio.create_task(supervise(role, maker, self.stop_event))
            for role, maker in makers.items()
            if role in self.roles
        ]
        if "providers" in self.roles:
            self.config.on_change(self.reconcile)
            await self.reconcile()

    async def _router(self) -> Router:
        tid = f"{self.topics.prefix}router-{self.settings.node_name}-{os.getpid()}"
        self.router = await asyncio.to_thread(
            Router,
            self.bootstrap,
            self.topics,
            self.config,
            transactional_id=tid,
            outbound_partitions=self.settings.topic_partitions,
            multipart_expiry_s=self.settings.multipart_expiry_s,
            message_ttl_s=self.settings.message_ttl_s,
            produce_timeout_s=self.settings.produce_timeout_s,
        )
        return self.router

    def _correlator(self) -> Correlator:
        self.correlator = Correlator(
            self.bootstrap,
            self.topics,
            self._stage_producer(),
            park_timeout_s=self.settings.receipt_park_s,
            receipt_ttl_s=self.settings.delivery_ttl_s,
        )
        return self.correlator

    def _history(self) -> HistoryWriter:
        assert self.settings.database_url
        self.history = HistoryWriter(
            self.bootstrap,
            self.topics,
            self.settings.database_url,
            retention_days=self.settings.history_retention_days,
        )
        return self.history

    def _deliverer(self) -> Deliverer:
        self.deliverer = Deliverer(
            self.core, self.bootstrap, self.topics, self._stage_producer(), remote=self.remote
        )
        return self.deliverer

    def _stage_producer(self) -> AsyncProducer:
        assert self.stage_producer is not None, "start() first"
        return self.stage_producer

    async def reconcile(self) -> None:
        """Open binds for configured providers; close those removed or changed."""
        if self.bind_host is not None:
            await self.bind_host.reconcile()

    def provider_binds(self) -> list[ProviderBind]:
        return self.bind_host.binds() if self.bind_host is not None else []

    async def stop(self) -> None:
        self.stop_event.set()
        stopping = [self.bind_host.stop()] if self.bind_host is not None else []
        await asyncio.gather(*self.tasks, *stopping, return_exceptions=True)
        if self.stage_producer is not None:
            await self.stage_producer.close()
