"""Fixtures for integration tests that need a running gateway node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smsgw.settings import Settings
from smsgw.topics import Topics
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims


def gateway_settings(bootstrap: str, db_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "kafka_bootstrap": bootstrap,
        "database_url": db_url,
        "smpp_listen": "127.0.0.1:0",
        "bind_failure_delay_s": 0.2,
        "produce_timeout_s": 5.0,
        "node_name": "test-node",
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture
def gateway(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    """A gateway node on a free port with fresh topics and a fresh database."""
    node = GatewayNode(gateway_settings(bootstrap, db_url), topics)
    node.start()
    yield node
    node.stop()


@pytest.fixture
def node(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    """A whole gateway in one node (listener, router, provider binds, correlator, deliverer)."""
    gw = GatewayNode(gateway_settings(bootstrap, db_url), topics, with_pipeline=True)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def sims() -> Iterator[Sims]:
    """Simulated providers, stopped after the test."""
    s = Sims()
    yield s
    s.stop()
