"""A pipeline stage's producer never gives a record up; the listener's does (issue 14).

No broker: a closed loopback port, so librdkafka can only keep the record
queued. The listener's producer reports the failure after its produce timeout
(the customer is answered an error); a stage's keeps the record for when Kafka
is back, since giving up would leave the consumed record's offset uncommitted
behind it until a restart.
"""

from __future__ import annotations

import asyncio
import socket

from smsgw.kafka.producer import STAGE_TIMEOUT_S, AsyncProducer, ProduceError, producer_config


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_stage_records_never_time_out_in_librdkafka() -> None:
    assert producer_config("b:9092", timeout_s=STAGE_TIMEOUT_S)["message.timeout.ms"] == 0
    assert producer_config("b:9092", timeout_s=5)["message.timeout.ms"] == 5000
    # The broker answers a request waiting for acks=all within the listener's timeout.
    assert producer_config("b:9092", timeout_s=5)["request.timeout.ms"] == 5000
    assert "request.timeout.ms" not in producer_config("b:9092", timeout_s=STAGE_TIMEOUT_S)


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
