"""A failed offset fetch of an assignment is not left standing (librdkafka issue 5586).

When the whole OffsetFetch fails (the group coordinator just died:
NOT_COORDINATOR with no partitions), librdkafka never fetches the assigned
partitions' offsets again and never starts fetching them: in the broker-loss
test one of a provider's three partitions went unsent for good (6 736 of
10 096 routed messages sent). The consumer assigns the partitions it has read
nothing from again, which fetches their offsets anew.
"""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from smsgw.kafka.consumer import REFETCH_AFTER_S, AsyncConsumer, consumer_config

FAILED = (
    'Failed to fetch committed offsets for 0 partition(s) in group "g": Broker: Not coordinator'
)


class _Event:
    """An error event as consume() hands it over."""

    def __init__(self, err: KafkaError) -> None:
        self._err = err

    def error(self) -> KafkaError:
        return self._err


class _Recorder:
    """Stands in for the librdkafka handle: notes the assignment changes asked of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, int]]]] = []

    def incremental_unassign(self, parts: list[TopicPartition]) -> None:
        self.calls.append(("unassign", [(p.topic, p.partition) for p in parts]))

    def incremental_assign(self, parts: list[TopicPartition]) -> None:
        self.calls.append(("assign", [(p.topic, p.partition) for p in parts]))


def _consumer() -> tuple[AsyncConsumer, _Recorder, Any]:
    c = AsyncConsumer(consumer_config("127.0.0.1:1", "g"), ["t"])
    real, rec = c.consumer, _Recorder()
    c.consumer = rec  # type: ignore[assignment]
    c.assigned = {("t", 0), ("t", 1)}
    c.tracker.read("t", 1, 5)  # partition 1 is fetching
    return c, rec, real


def test_a_failed_offset_fetch_assigns_the_unstarted_partitions_again() -> None:
    async def run() -> list[tuple[str, list[tuple[str, int]]]]:
        c, rec, real = _consumer()
        try:
            err = _Event(KafkaError(KafkaError.NOT_COORDINATOR, FAILED))
            assert c.accept([err, err]) == []  # type: ignore[list-item]
            await asyncio.sleep(REFETCH_AFTER_S + 0.5)
            return rec.calls
        finally:
            real.close()

    calls = asyncio.run(run())
    assert calls == [("unassign", [("t", 0)]), ("assign", [("t", 0)])]


def test_other_errors_leave_the_assignment_alone() -> None:
    async def run() -> list[tuple[str, list[tuple[str, int]]]]:
        c, rec, real = _consumer()
        try:
            err = _Event(KafkaError(KafkaError._TRANSPORT, "Broker transport failure"))
            c.accept([err])  # type: ignore[list-item]
            await asyncio.sleep(REFETCH_AFTER_S + 0.5)
            return rec.calls
        finally:
            real.close()

    assert asyncio.run(run()) == []
