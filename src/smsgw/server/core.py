"""What every SMPP session on a node shares: config, Kafka, throttles, ids, binds."""

from __future__ import annotations

import functools
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from smsgw.auth import BindGuard, Network, parse_networks
from smsgw.db.watch import ConfigWatcher
from smsgw.kafka.producer import AsyncProducer
from smsgw.msgid import IdGenerator
from smsgw.server.binds import BindRegistry
from smsgw.settings import Settings
from smsgw.state import StateStore
from smsgw.throttle import CustomerThrottle
from smsgw.topics import Topics


class PeerBinds(Protocol):
    def binds_elsewhere(self, system_id: str) -> int:
        """How many binds this customer has on other nodes."""
        ...


@dataclass
class NodeCore:
    settings: Settings
    topics: Topics
    config: ConfigWatcher
    producer: AsyncProducer
    ids: IdGenerator
    binds: BindRegistry = field(default_factory=BindRegistry)
    throttle: CustomerThrottle = field(default_factory=CustomerThrottle)
    states: StateStore = field(default_factory=StateStore)
    # (event, customer, status) -> count; the Ray metrics layer reads these.
    counters: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    connections: set[Any] = field(default_factory=set)  # every open SmppConnection
    connections_per_ip: Counter[str] = field(default_factory=Counter)
    bind_guard: BindGuard = field(default_factory=BindGuard)
    # Called with a customer's system_id when it can take deliver_sm again
    # (a receiver bind appeared, or a window slot freed).
    delivery_wakers: list[Callable[[str], None]] = field(default_factory=list)
    # Other nodes' binds per customer (the Ray runtime fills this in; alone, there are none).
    peers: PeerBinds | None = None
    latencies_ms: list[float] = field(default_factory=list)  # submit -> resp, drained by metrics
    e2e_ms: list[float] = field(default_factory=list)  # submit -> receipt acknowledged
    _next_session: int = 0
    # This listener's incarnation: a restarted listener (or a second node under the same
    # name) never hands out a session id that an earlier one gave a message.
    _incarnation: str = field(default_factory=lambda: secrets.token_hex(3))

    @functools.cached_property
    def proxies(self) -> tuple[Network, ...]:
        """Load balancers whose PROXY header is believed (settings.smpp_proxy_protocol_from)."""
        return parse_networks(self.settings.smpp_proxy_networks)

    def new_bind_id(self) -> str:
        """A session id unique across nodes and restarts: receipts find their session by it."""
        self._next_session += 1
        return f"{self.settings.node_name}/{self._incarnation}/{self._next_session}"

    def binds_cluster_wide(self, system_id: str) -> int:
        """This customer's binds on every node (others' counts are at most ~1 s old)."""
        elsewhere = self.peers.binds_elsewhere(system_id) if self.peers else 0
        return self.binds.count(system_id) + elsewhere

    def tps_here(self, system_id: str, tps: float) -> float:
        """This node's share of a customer's TPS: in proportion to where its binds are.

        The shares of all nodes add up to the customer's limit, so a customer
        spread over N nodes behind a load balancer still gets tps, not N x tps.
        """
        here = self.binds.count(system_id)
        elsewhere = self.peers.binds_elsewhere(system_id) if self.peers else 0
        if here == 0 or elsewhere == 0:
            return tps
        return tps * here / (here + elsewhere)

    def wake_delivery(self, system_id: str) -> None:
        for wake in self.delivery_wakers:
            wake(system_id)

    def record_latency(self, ms: float) -> None:
        if len(self.latencies_ms) < 50_000:
            self.latencies_ms.append(ms)

    def drain_latencies(self) -> list[float]:
        out, self.latencies_ms = self.latencies_ms, []
        return out

    def record_e2e(self, ms: float) -> None:
        if len(self.e2e_ms) < 50_000:
            self.e2e_ms.append(ms)

    def drain_e2e(self) -> list[float]:
        out, self.e2e_ms = self.e2e_ms, []
        return out

    def customer_label(self, system_id: str) -> str:
        """A metric label: configured customers by name, anything else one ``unknown``.

        Peer-chosen strings as labels grew the metrics endpoint without bound
        (300 binds with 20,000-character system_ids: +6 MB, for good).
        """
        return system_id if system_id in self.config.customers else "unknown"

    def count(self, event: str, customer: str = "", status: str = "") -> None:
        self.counters[(event, customer, status)] += 1
