"""Fixtures of the interop tier: one gateway stack and one process per peer language, per run.

The gateway (listener and the whole pipeline, real Kafka and PostgreSQL from the
session harness) is shared by every interop test; each test adds customers,
providers and routes of its own (distinct names and destination prefixes), so
the tests do not see each other's traffic. The third-party peers are installed
(or found installed) by :mod:`tests.interop.peers`; if one cannot be installed or
started, every test of the tier fails with the reason.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from smsgw.cluster.kafka import EmbeddedKafka
from smsgw.cluster.postgres import EmbeddedPostgres
from smsgw.cluster.topics import ensure_topics
from smsgw.db.migrate import migrate
from smsgw.topics import Topics
from tests.helpers.gateway import GatewayNode
from tests.helpers.scratch import DataDir
from tests.helpers.sims import Sims
from tests.integration.conftest import gateway_settings
from tests.interop import peers as p


@pytest.fixture(scope="session")
def interop_gateway(kafka: EmbeddedKafka, postgres: EmbeddedPostgres) -> Iterator[GatewayNode]:
    topics = Topics(prefix=f"i{uuid.uuid4().hex[:10]}.")
    ensure_topics(kafka.bootstrap, topics.specs(partitions=3))
    url = postgres.create_database(f"interop_{uuid.uuid4().hex[:12]}")
    migrate(url)
    node = GatewayNode(
        gateway_settings(kafka.bootstrap, url),
        topics,
        with_pipeline=True,
    )
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def node_peers() -> Iterator[p.PeerProcess]:
    peers = p.start_node(p.ensure_node())
    yield peers
    peers.close()


@pytest.fixture(scope="session")
def java_peers() -> Iterator[p.PeerProcess]:
    lib = p.ensure_java()
    with DataDir("interop-java") as out:  # the classes compiled for this run only
        peers = p.start_java(lib, p.compile_java(lib, out))
        try:
            yield peers
        finally:
            peers.close()


@pytest.fixture(scope="session")
def python_peers() -> Iterator[p.PeerProcess]:
    peers = p.start_python()
    yield peers
    peers.close()


@pytest.fixture(scope="session")
def interop_sims() -> Iterator[Sims]:
    """The project's own SMSC simulator: the provider behind the customer-side tests."""
    s = Sims()
    yield s
    s.stop()


def wait_configured(
    gw: GatewayNode, customer: str, dest: str, mo_dest: str, timeout: float = 30.0
) -> None:
    """Wait until the gateway's configuration has the customer, its route and its MO route.

    A version bump is not enough: it may be an earlier change's notification.
    """

    def ready() -> bool:
        core = gw.gateway.core
        if core is None:
            return False
        c = core.config
        mo = c.mo_routing.route(mo_dest)
        return (
            customer in c.customers
            and c.routing.route(customer, "", dest) is not None
            and mo is not None
            and mo.customer == customer
        )

    deadline = time.monotonic() + timeout
    while not gw.call(ready):
        if time.monotonic() > deadline:
            raise AssertionError(f"{customer}'s configuration not loaded within {timeout} s")
        time.sleep(0.05)
