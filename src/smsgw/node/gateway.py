"""One node's gateway: the SMPP listener and the node-wide parts it needs."""

from __future__ import annotations

import asyncio
import os
import resource

import psycopg

from smsgw import log
from smsgw.auth import BindGuard
from smsgw.db.customers import lease_instance
from smsgw.db.watch import ConfigWatcher
from smsgw.kafka.dlq import DeadLetters
from smsgw.kafka.tuning import ACCEPT_LINGER_MS
from smsgw.msgid import IdGenerator
from smsgw.node.pipeline import PipelineNode
from smsgw.pipeline.supervise import supervise
from smsgw.sealing import Sealer, seal_plaintext
from smsgw.server.connection import SmppConnection
from smsgw.server.core import NodeCore
from smsgw.server.deliverer import RemoteBinds
from smsgw.server.state_follower import StateFollower
from smsgw.server.withdraw import WithdrawingProducer
from smsgw.settings import Settings
from smsgw.tls import ensure_self_signed, file_fingerprint, server_context, trust_client_cas
from smsgw.topics import Topics


def raise_nofile_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one; returns the new soft limit.

    Every SMPP connection is a descriptor: the common soft default of 1024
    would let a few hundred idle connections lock out new customers long
    before ``smpp_max_connections`` refuses them cleanly.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class Gateway:
    def __init__(
        self,
        settings: Settings,
        topics: Topics | None = None,
        *,
        with_pipeline: bool = True,
        roles: frozenset[str] | None = None,
        remote: RemoteBinds | None = None,
    ) -> None:
        if not settings.kafka_bootstrap or not settings.database_url:
            raise ValueError("the gateway needs a Kafka bootstrap and a database URL")
        self.settings = settings
        self.topics = topics or Topics(settings.topic_prefix)
        self.core: NodeCore | None = None
        self.with_pipeline = with_pipeline
        self.roles = roles
        self.remote = remote
        self.pipeline: PipelineNode | None = None
        self._follower: asyncio.Task[None] | None = None
        self._follower_stop: asyncio.Event | None = None
        self.server: asyncio.Server | None = None
        self.tls_server: asyncio.Server | None = None
        self.tls_fingerprint: str | None = None
        self.log = log.get("smsgw.gateway")

    @property
    def port(self) -> int:
        assert self.server is not None
        sock = self.server.sockets[0]
        return int(sock.getsockname()[1])

    @property
    def tls_port(self) -> int:
        assert self.tls_server is not None
        return int(self.tls_server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        s = self.settings
        assert s.database_url and s.kafka_bootstrap
        instance = await asyncio.to_thread(self._lease_instance, s.database_url)
        config = ConfigWatcher(s.database_url, Sealer.for_home(s.home))
        await config.start()
        producer = WithdrawingProducer(
            s.kafka_bootstrap,
            timeout_s=s.produce_timeout_s,
            max_backlog=s.max_backlog,
            submit_topic=self.topics.submit,
            extra={"linger.ms": ACCEPT_LINGER_MS},  # a customer waits on each acks=all
        )
        self.core = core = NodeCore(
            settings=s,
            topics=self.topics,
            config=config,
            producer=producer,
            ids=IdGenerator(instance),
            bind_guard=BindGuard(
                free=s.bind_failures_before_lockout,
                max_lock_s=s.bind_lockout_max_s,
                window_s=s.bind_failure_window_s,
            ),
        )
        if self.remote is not None and hasattr(self.remote, "binds_elsewhere"):
            core.peers = self.remote  # type: ignore[assignment]
        config.on_change(self._enforce_config)
        nofile = raise_nofile_limit()
        if nofile < s.smpp_max_connections + 256:
            self.log.warning(
                "file descriptor limit below smpp_max_connections",
                nofile=nofile,
                smpp_max_connections=s.smpp_max_connections,
            )
        host, port = s.smpp_host_port
        self.server = await asyncio.get_running_loop().create_server(
            lambda: SmppConnection(core), host, port, reuse_address=True, backlog=512
        )
        self.log.info("listening", smpp=f"{host}:{self.port}", instance=instance)
        await self._start_tls(core)
        follower_stop = self._follower_stop = asyncio.Event()
        self._follower = asyncio.create_task(
            supervise(
                "state-follower",
                lambda: StateFollower(
                    s.kafka_bootstrap or "",
                    self.topics.message_state,
                    core.states,
                    DeadLetters(s.kafka_bootstrap or "", self.topics, "state-follower"),
                    producer,  # writes a contradicted first final state again (issue 10)
                ),
                follower_stop,
            )
        )
        if self.with_pipeline:
            if self.roles is None:
                self.pipeline = PipelineNode(s, self.topics, config, producer, core)
            else:
                self.pipeline = PipelineNode(
                    s, self.topics, config, producer, core, self.roles, self.remote
                )
            await self.pipeline.start()

    async def _start_tls(self, core: NodeCore) -> None:
        """SMPP over TLS beside the plain listener, same sessions inside (issue 11)."""
        s = self.settings
        where = s.smpp_tls_host_port
        if where is None:
            return
        if s.tls_self_signed:
            fp, made = await asyncio.to_thread(
                ensure_self_signed, s.tls_cert_file, s.tls_key_file, s.node_name
            )
            if made:
                self.log.warning("made a self-signed TLS certificate", cert=str(s.tls_cert_file))
        else:
            fp = await asyncio.to_thread(file_fingerprint, s.tls_cert_file)
        self.tls_fingerprint = fp
        ctx = server_context(s.tls_cert_file, s.tls_key_file, s.smpp_tls_client_ca)
        loaded: set[str] = set()

        def trust_customers() -> None:
            cas = [c.client_ca_pem for c in core.config.customers.values() if c.client_ca_pem]
            if trust_client_cas(ctx, cas, loaded):
                self.log.info("trusting customers' client CAs", count=len(loaded))

        trust_customers()
        core.config.on_change(trust_customers)
        # Plain TCP accept: SmppConnection counts and limits the connection, then
        # upgrades it (asyncio's ssl= would call it only after the handshake).
        self.tls_server = await asyncio.get_running_loop().create_server(
            lambda: SmppConnection(core, tls=ctx),
            where[0],
            where[1],
            reuse_address=True,
            backlog=512,
        )
        self.log.info("listening", smpp_tls=f"{where[0]}:{self.tls_port}", sha256=fp)

    def _lease_instance(self, url: str) -> int:
        with psycopg.connect(url) as conn:
            sealed = seal_plaintext(conn, Sealer.for_home(self.settings.home))
            if sealed:
                self.log.warning("sealed provider passwords stored in plaintext", count=sealed)
            return lease_instance(conn, self.settings.node_name, os.getpid())

    def _enforce_config(self) -> None:
        """Customers removed or disabled lose their binds at once."""
        core = self.core
        if core is None:
            return
        for system_id in list(core.binds.customers()):
            customer = core.config.customers.get(system_id)
            if customer is None or not customer.enabled:
                for session in core.binds.sessions(system_id):
                    session.close_for("customer removed or disabled")

    async def stop(self) -> None:
        if self._follower_stop is not None:
            self._follower_stop.set()
        if self._follower is not None:
            await asyncio.gather(self._follower, return_exceptions=True)
        if self.pipeline is not None:
            await self.pipeline.stop()
        if self.tls_server is not None:
            self.tls_server.close()
        if self.server is not None:
            self.server.close()
            if self.core:
                for system_id in list(self.core.binds.customers()):
                    for session in self.core.binds.sessions(system_id):
                        session.close_for("gateway shutting down")
            await asyncio.sleep(0.1)
            for conn in list(self.core.connections if self.core else ()):
                conn.abort()
            await self.server.wait_closed()
            if self.tls_server is not None:
                await self.tls_server.wait_closed()
        if self.core is not None:
            await self.core.producer.close()
            await self.core.config.stop()
