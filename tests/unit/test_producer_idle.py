"""An idle producer's thread sleeps until the next produce (issue 13).

It polled librdkafka every 50 ms whatever there was to report: each producer
of the gateway (the listener's, every stage's) woke 20 times a second with
nothing queued. No broker needed: a producer that holds nothing is idle
whether Kafka is there or not; a record not yet reported keeps its thread
polling. The librdkafka handle is a stand-in (tests/helpers/rdkafka_handles.py)
that keeps a record queued until the test reports it.
"""

from __future__ import annotations

import asyncio

import pytest

from smsgw.kafka import producer as producer_module
from smsgw.kafka.producer import AsyncProducer
from tests.helpers.rdkafka_handles import ProducerHandle, install


async def test_an_idle_producer_does_not_poll_and_a_produce_wakes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, producer_module, "Producer", ProducerHandle)
    producer = AsyncProducer.stage_producer("127.0.0.1:1")
    handle = producer._producer
    assert isinstance(handle, ProducerHandle)
    try:
        await asyncio.sleep(0.3)
        assert handle.polls <= 1, f"idle: {handle.polls} polls in 0.3 s (6 before)"
        fut = producer.produce("t", b"v")  # queued (no broker): polled until reported
        assert await asyncio.to_thread(handle.wait_polls, 5, 10.0), "not polled with a record"
        handle.report(None)
        await asyncio.wait_for(fut, 10)
        polls = handle.polls
        await asyncio.sleep(0.3)
        assert handle.polls <= polls + 1, "idle again once the record was reported"
    finally:
        await producer.close()
