"""A pipeline stage's producer never gives a record up; the listener's does (issue 14).

No broker: a closed loopback port, so librdkafka can only keep the record
queued. The listener's producer reports the failure after its produce timeout
(the customer is answered an error); a stage's keeps the record for when Kafka
is back. A real librdkafka producer (what it does with the configuration
tests/unit/test_stage_producer.py checks), so not in the unit tier.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from smsgw.kafka.producer import AsyncProducer, ProduceError

pytestmark = pytest.mark.integration


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def test_listener_gives_up_after_its_timeout_a_stage_keeps_the_record() -> None:
    bootstrap = _closed_port()
    listener = AsyncProducer(bootstrap, timeout_s=1.0)
    stage = AsyncProducer.stage_producer(bootstrap)
    try:
        refused = listener.produce("t", b"v")
        kept = stage.produce("t", b"v")
        done, _ = await asyncio.wait([refused], timeout=10)
        assert refused in done and isinstance(refused.exception(), ProduceError)
        # Three times the listener's timeout later, the stage's record still waits.
        await asyncio.sleep(2.0)
        assert not kept.done()
        assert stage.in_flight == 1
    finally:
        await asyncio.gather(listener.close(), stage.close())
    # Closing does not wait for Kafka forever: the record is given back, failed (the
    # stage never committed its offset, so the next owner reads it again).
    done, _ = await asyncio.wait([kept], timeout=5)
    assert kept in done and isinstance(kept.exception(), ProduceError)
