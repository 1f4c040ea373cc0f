"""An idle producer's thread sleeps until the next produce (issue 13).

It polled librdkafka every 50 ms whatever there was to report: each producer
of the gateway (the listener's, every stage's) woke 20 times a second with
nothing queued. No broker needed: a producer that holds nothing is idle
whether Kafka is there or not; the record produced to a closed port stays
queued, so its thread must poll while it waits.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from smsgw.kafka.producer import AsyncProducer


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


class _Counting:
    """The producer's librdkafka handle, counting the poll thread's calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.polls = 0

    def poll(self, timeout: float) -> int:
        self.polls += 1
        served: int = self.inner.poll(timeout)
        return served

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)


async def test_an_idle_producer_does_not_poll_and_a_produce_wakes_it() -> None:
    producer = AsyncProducer.stage_producer(_closed_port())
    counting = _Counting(producer._producer)
    try:
        await asyncio.sleep(0.2)  # the thread is in its idle wait
        producer._producer = counting  # type: ignore[assignment]
        await asyncio.sleep(1.0)
        assert counting.polls <= 1, f"idle: {counting.polls} polls in 1 s (20 before)"
        producer.produce("t", b"v")  # queued (no broker): polled until reported
        await asyncio.sleep(1.0)
        assert counting.polls >= 5, f"with a record queued: {counting.polls} polls in 1 s"
    finally:
        producer._producer = counting.inner
        counting.inner.purge()  # no broker to flush to
        await producer.close()
