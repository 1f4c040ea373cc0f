"""Stand-ins for the librdkafka handle inside AsyncConsumer / AsyncProducer (unit tier).

The unit tier refuses real Kafka clients (tests/helpers/unit_guard.py). The
tests of our wrappers' own bookkeeping (commit points, re-assignment, the
producer's poll thread) need a handle that answers the calls they make and
notes them; ``install`` puts one where the wrapper constructs its client.
What librdkafka itself does with no broker (records kept or timed out) is
tested against the real client in tests/integration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import TopicPartition


class ConsumerHandle:
    """A consumer handle that is never assigned anything and notes what it is asked."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config or {}
        self.calls: list[tuple[str, list[tuple[str, int]]]] = []
        self.commits: list[list[tuple[str, int, int]]] = []
        self.closed = False

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.topics = topics

    def incremental_unassign(self, parts: list[TopicPartition]) -> None:
        self.calls.append(("unassign", [(p.topic, p.partition) for p in parts]))

    def incremental_assign(self, parts: list[TopicPartition]) -> None:
        self.calls.append(("assign", [(p.topic, p.partition) for p in parts]))

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])

    def position(self, parts: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in parts]

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        return []

    def close(self) -> None:
        self.closed = True


class ProducerHandle:
    """A producer handle with no broker behind it: produced records stay queued
    (as librdkafka keeps them while it cannot reach Kafka) until ``report``;
    ``poll`` waits up to its timeout for a report, and counts the calls."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config or {}
        self.queued: list[Callable[[Any, Any], None]] = []
        self.reports: list[tuple[Callable[[Any, Any], None], Any]] = []
        self.polls = 0
        self._cond = threading.Condition()

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        with self._cond:
            self.queued.append(on_delivery or (lambda err, msg: None))

    def report(self, err: Any) -> None:
        """librdkafka's report of the oldest queued record (``err`` None: delivered)."""
        with self._cond:
            self.reports.append((self.queued.pop(0), err))
            self._cond.notify_all()

    def poll(self, timeout: float) -> int:
        with self._cond:
            self.polls += 1
            self._cond.notify_all()
            if not self.reports:
                self._cond.wait(timeout)
            served, self.reports = self.reports, []
        for callback, err in served:
            callback(err, None)
        return len(served)

    def wait_polls(self, count: int, timeout: float) -> bool:
        """Block until ``poll`` was called ``count`` times (False: not within ``timeout``)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.polls >= count, timeout)

    def __len__(self) -> int:
        with self._cond:
            return len(self.queued) + len(self.reports)

    def flush(self, timeout: float = -1) -> int:
        self.poll(0)
        return len(self)

    def purge(self) -> None:
        with self._cond:
            self.queued.clear()


def install(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, handle: type) -> list[Any]:
    """Make ``module.<name>(config)`` build ``handle``; the list collects each one built."""
    built: list[Any] = []

    def build(config: dict[str, Any]) -> Any:
        built.append(handle(config))
        return built[-1]

    monkeypatch.setattr(module, name, build)
    return built
