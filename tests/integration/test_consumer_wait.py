"""A consumer waiting for records on its own thread never holds up the event loop.

confluent-kafka lets one thread at a time into a consumer: a ``commit`` or a
``position`` from the loop while the waiting thread is in a blocking
``consume`` waited for that consume to end (a provider bind's 5 s: the
broker-loss control test's customer went 4.9 s without an answer), and a
rebalance callback handed to the loop deadlocked with it for the 30-s
hand-off. And librdkafka's batch consume waits for a full batch: one record
waited out the whole wait. Real Kafka; the loop's stalls are measured by a
task that wakes every 50 ms.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from confluent_kafka import Consumer, TopicPartition

from smsgw.kafka.consumer import AsyncConsumer, consumer_config
from tests.helpers.kafka import new_topic, produce_all

pytestmark = pytest.mark.integration

T = TypeVar("T")


async def _stalls(body: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    """``body``'s result and the longest the loop went without running a 50-ms ticker."""
    longest = 0.0

    async def tick() -> None:
        nonlocal longest
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            longest = max(longest, now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        return await body(), longest
    finally:
        ticker.cancel()


async def _read(consumer: AsyncConsumer, n: int, timeout: float = 60) -> list[int]:
    """``n`` records, each marked done; their partitions."""
    got: list[int] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"read {len(got)} of {n}"
        for msg in await consumer.batch(100, 1.0):
            consumer.done(msg)
            got.append(msg.partition() or 0)
    return got


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    probe = Consumer(consumer_config(bootstrap, group))
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: tp.offset for tp in probe.committed(parts, timeout=15)}
    finally:
        probe.close()


def test_a_commit_during_a_wait_leaves_the_loop_running(bootstrap: str) -> None:
    topic = new_topic(bootstrap, partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    produce_all(bootstrap, topic, [b"one"])

    async def run() -> float:
        consumer = AsyncConsumer(consumer_config(bootstrap, group), [topic])
        try:
            await _read(consumer, 1)
            waiting = asyncio.create_task(consumer.batch(100, 8.0))  # nothing comes

            async def commit_while_waiting() -> None:
                await asyncio.sleep(0.5)  # the wait is under way
                consumer.commit()
                await asyncio.sleep(0.5)

            _, stall = await _stalls(commit_while_waiting)
            assert await waiting == []
            return stall
        finally:
            await asyncio.to_thread(consumer.close)

    stall = asyncio.run(run())
    assert stall < 1.0, f"the loop stood still {stall:.2f} s in a commit during a wait"
    assert _committed(bootstrap, group, topic, 1) == {0: 1}


def test_a_record_ends_a_wait_at_once(bootstrap: str) -> None:
    topic = new_topic(bootstrap, partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    produce_all(bootstrap, topic, [b"warm-up"])

    async def run() -> float:
        consumer = AsyncConsumer(consumer_config(bootstrap, group), [topic])
        try:
            await _read(consumer, 1)  # assigned and fetching
            waiting = asyncio.create_task(consumer.batch(500, 20.0))
            await asyncio.sleep(0.5)
            t0 = time.monotonic()
            await asyncio.to_thread(produce_all, bootstrap, topic, [b"now"])
            got = await asyncio.wait_for(waiting, 30)
            assert [m.value() for m in got] == [b"now"]
            return time.monotonic() - t0
        finally:
            await asyncio.to_thread(consumer.close)

    took = asyncio.run(run())
    # Waiting for a full batch of 500, it came back only at the 20-s timeout.
    assert took < 5.0, f"one record ended a 20-s wait after {took:.1f} s"


def test_a_wake_ends_a_long_wait_and_the_next_batch_takes_its_record(bootstrap: str) -> None:
    """A stage long-polls when nothing is due (LONG_WAIT_S); work that does not come
    through its consumer (a receiver bound, the stop) ends the wait at once through
    ``wake``. The wait goes on underneath: the record that ends it goes to the next
    batch, not lost."""
    topic = new_topic(bootstrap, partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    produce_all(bootstrap, topic, [b"warm-up"])

    async def run() -> tuple[float, float]:
        consumer = AsyncConsumer(consumer_config(bootstrap, group), [topic])
        try:
            await _read(consumer, 1)  # assigned and fetching
            wake = asyncio.Event()
            waiting = asyncio.create_task(consumer.batch(500, 20.0, wake))
            await asyncio.sleep(0.5)
            t0 = time.monotonic()
            wake.set()
            assert await asyncio.wait_for(waiting, 30) == []
            woken = time.monotonic() - t0
            await asyncio.to_thread(produce_all, bootstrap, topic, [b"after"])
            t1 = time.monotonic()
            got = await asyncio.wait_for(consumer.batch(500, 20.0), 30)
            assert [m.value() for m in got] == [b"after"]
            return woken, time.monotonic() - t1
        finally:
            await asyncio.to_thread(consumer.close)

    woken, took = asyncio.run(run())
    assert woken < 0.5, f"the wake ended a 20-s wait after {woken:.2f} s"
    assert took < 5.0, f"the record came {took:.1f} s after the wake, in the wait's next call"


def test_a_rebalance_during_a_wait_commits_what_is_finished(bootstrap: str) -> None:
    """A second member joins while the first waits: the partition it gives up is
    committed where its work finished, and the first member's loop runs on."""
    topic = new_topic(bootstrap, partitions=2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    produce_all(bootstrap, topic, [f"m{i}".encode() for i in range(10)])

    async def run() -> tuple[set[int], float]:
        revoked: set[int] = set()
        first = AsyncConsumer(
            consumer_config(bootstrap, group),
            [topic],
            on_revoke=lambda parts: revoked.update(p.partition for p in parts),
        )
        second = Consumer(consumer_config(bootstrap, group))
        try:
            await _read(first, 10)
            waiting = asyncio.create_task(first.batch(100, 45.0))  # a long wait

            async def join_second() -> None:
                await asyncio.sleep(0.5)
                second.subscribe([topic])
                deadline = time.monotonic() + 60
                while not second.assignment():
                    assert time.monotonic() < deadline, "the second member got nothing"
                    await asyncio.to_thread(second.poll, 0.5)

            _, stall = await _stalls(join_second)
            # Records for both partitions end the wait on the one it kept.
            await asyncio.to_thread(produce_all, bootstrap, topic, [b"x", b"y", b"z", b"w"])
            await asyncio.wait_for(waiting, 60)
            return revoked, stall
        finally:
            second.close()
            await asyncio.to_thread(first.close)

    revoked, stall = asyncio.run(run())
    assert revoked, "the first member gave nothing up"
    # Before, the loop's commit waited for the consume that waited for the loop.
    assert stall < 5.0, f"the loop stood still {stall:.2f} s during the rebalance"
    committed = _committed(bootstrap, group, topic, 2)
    assert all(committed[p] > 0 for p in revoked), committed
