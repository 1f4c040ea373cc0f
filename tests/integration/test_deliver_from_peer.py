"""A batch handed over by another node's deliverer is larger than a bind's window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from smsgw.records import Delivery
from smsgw.smpp.submission import Address
from smsgw.topics import Topics
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.integration.conftest import gateway_settings

pytestmark = [pytest.mark.integration]


@pytest.fixture
def node(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    n = GatewayNode(gateway_settings(bootstrap, db_url, smpp_window=5), topics, with_pipeline=True)
    n.start()
    yield n
    n.stop()


def test_a_batch_larger_than_the_window_is_delivered_whole(node: GatewayNode) -> None:
    node.add_customer("far", "pw")
    rx = Customer(node.host, node.port, "far", "pw", mode="receiver").bind()
    try:
        now = time.time()
        batch = [
            Delivery(
                id=f"mo:{i}",
                kind="mo",
                customer="far",
                source=Address(f"4917000{i:04d}", 1, 1),
                destination=Address("12345", 0, 1),
                esm_class=0,
                data_coding=0,
                short_message=f"mo {i}".encode(),
                created_at=now,
                expires_at=now + 60,
            ).encode()
            for i in range(40)
        ]
        deliverer = node.gateway.pipeline.deliverer  # type: ignore[union-attr]
        assert deliverer is not None
        statuses = asyncio.run_coroutine_threadsafe(
            deliverer.deliver_here(batch), node.loop
        ).result(30)
        assert statuses == [0] * 40, "a full window waits for answers; nothing is refused"
        rx.wait(lambda: len(rx.mos) == 40, 30, "all 40 at the customer")
        with rx.lock:
            assert sorted(m.text for m in rx.mos) == sorted(f"mo {i}".encode() for i in range(40))
    finally:
        rx.close()
