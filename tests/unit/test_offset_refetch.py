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

import pytest
from confluent_kafka import KafkaError

from smsgw.kafka import consumer as consumer_module
from smsgw.kafka.consumer import AsyncConsumer, consumer_config
from tests.helpers.rdkafka_handles import ConsumerHandle, install

FAILED = (
    'Failed to fetch committed offsets for 0 partition(s) in group "g": Broker: Not coordinator'
)
# The re-assignment's delay, shortened from REFETCH_AFTER_S (1 s): the timer is the
# same loop.call_later, the tests only wait less for it.
REFETCH_S = 0.05


class _Event:
    """An error event as consume() hands it over."""

    def __init__(self, err: KafkaError) -> None:
        self._err = err

    def error(self) -> KafkaError:
        return self._err


@pytest.fixture(autouse=True)
def _handles(monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumer gets a handle that notes the assignment changes asked of it."""
    install(monkeypatch, consumer_module, "Consumer", ConsumerHandle)
    monkeypatch.setattr(consumer_module, "REFETCH_AFTER_S", REFETCH_S)


def _consumer() -> tuple[AsyncConsumer, Any]:
    c = AsyncConsumer(consumer_config("127.0.0.1:1", "g"), ["t"])
    c.assigned = {("t", 0), ("t", 1)}
    c.tracker.read("t", 1, 5)  # partition 1 is fetching
    return c, c.consumer


def test_a_failed_offset_fetch_assigns_the_unstarted_partitions_again() -> None:
    async def run() -> list[tuple[str, list[tuple[str, int]]]]:
        c, rec = _consumer()
        err = _Event(KafkaError(KafkaError.NOT_COORDINATOR, FAILED))
        assert c.accept([err, err]) == []  # type: ignore[list-item]
        # The loop runs its timers in deadline order: the re-assignment's first.
        await asyncio.sleep(5 * REFETCH_S)
        calls: list[tuple[str, list[tuple[str, int]]]] = rec.calls
        return calls

    calls = asyncio.run(run())
    assert calls == [("unassign", [("t", 0)]), ("assign", [("t", 0)])]


def test_other_errors_leave_the_assignment_alone() -> None:
    async def run() -> list[tuple[str, list[tuple[str, int]]]]:
        c, rec = _consumer()
        err = _Event(KafkaError(KafkaError._TRANSPORT, "Broker transport failure"))
        c.accept([err])  # type: ignore[list-item]
        await asyncio.sleep(5 * REFETCH_S)
        calls: list[tuple[str, list[tuple[str, int]]]] = rec.calls
        return calls

    assert asyncio.run(run()) == []
