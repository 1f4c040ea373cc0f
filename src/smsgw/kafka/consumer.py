"""A confluent-kafka consumer driven from an asyncio loop, with safe commits.

``consume(timeout=0)`` only hands over what librdkafka's own threads already
fetched, so calling it on the loop never blocks; when nothing is there the
loop sleeps briefly. Rebalance callbacks therefore run on the loop thread,
where the worker's state lives. Commits are of ``OffsetTracker`` commit
points: never past a record whose work is unfinished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from smsgw import log
from smsgw.kafka.security import client_config
from smsgw.offsets import OffsetTracker

IDLE_SLEEP = 0.005
_static_member: dict[str, str] = {}  # "name" -> this process's member name, if any


def use_static_membership(name: str) -> None:
    """Join every consumer group of this process as the static member ``name``.

    For processes that host one named worker (a Ray actor): when it restarts
    under the same name it gets its partitions back at once, instead of after
    the dead member's session timeout (KIP-345). The name must be unique per
    group, and a live process with the same name is fenced.
    """
    _static_member["name"] = name


def consumer_config(bootstrap: str, group: str, **extra: Any) -> dict[str, Any]:
    return client_config(bootstrap) | {
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 300000,
        # A fetch returns as soon as one record is there (fetch.min.bytes 1); this
        # only bounds an idle long-poll. At 10 ms each of the gateway's consumers
        # sent the broker up to 100 mostly empty fetches a second.
        "fetch.wait.max.ms": 100,
        "partition.assignment.strategy": "cooperative-sticky",
        **extra,
    }


class AsyncConsumer:
    def __init__(
        self,
        config: dict[str, Any],
        topics: list[str],
        *,
        on_revoke: Callable[[list[TopicPartition]], None] | None = None,
        on_assign: Callable[[list[TopicPartition]], None] | None = None,
    ) -> None:
        if "name" in _static_member and "group.instance.id" not in config:
            config = {**config, "group.instance.id": _static_member["name"]}
        self.consumer = Consumer(config)
        self.tracker = OffsetTracker()
        self._on_revoke = on_revoke
        self._on_assign = on_assign
        self.assigned: set[tuple[str, int]] = set()
        self.log = log.get("smsgw.consumer").bind(group=config.get("group.id"))
        self.consumer.subscribe(
            topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )

    def _assigned(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        self.assigned |= {(p.topic, p.partition) for p in parts}
        if self._on_assign:
            self._on_assign(parts)

    def _revoked(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        self.commit(asynchronous=False)  # hand over what is finished
        for p in parts:
            self.assigned.discard((p.topic, p.partition))
            self.tracker.forget(p.topic, p.partition)
        if self._on_revoke:
            self._on_revoke(parts)

    async def batch(self, max_records: int = 500) -> list[Message]:
        """Records already fetched (tracked as read); waits briefly when there are none."""
        out = self.accept(self.consumer.consume(max_records, 0))
        if not out:
            await asyncio.sleep(IDLE_SLEEP)
        return out

    def accept(self, msgs: list[Message]) -> list[Message]:
        """The records among `msgs` (errors logged, EOF events dropped), tracked as read."""
        out = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.log.warning("consumer error", error=str(err))
                continue
            self.tracker.read(m.topic() or "", m.partition() or 0, m.offset() or 0)
            out.append(m)
        return out

    def done(self, msg: Message) -> None:
        self.tracker.done(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)

    def commit(self, asynchronous: bool = True) -> None:
        # A transactionally written partition ends in a commit marker, which
        # takes an offset but is never a record: without this the group would
        # rest one short of the end, and show a lag that never drains.
        if self.assigned:
            try:
                here = self.consumer.position([TopicPartition(t, p) for t, p in self.assigned])
            except Exception:  # no position yet (rebalance); the next commit catches up
                here = []
            for tp in here:
                if tp.offset >= 0:
                    self.tracker.caught_up(tp.topic, tp.partition, tp.offset)
        points = self.tracker.commit_points()
        if not points:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in points.items()]
        try:
            if asynchronous:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # a commit during a rebalance may fail; the next one retries
            self.log.info("commit failed", error=str(exc))

    def pause(self, parts: list[TopicPartition]) -> None:
        self.consumer.pause(parts)

    def resume(self, parts: list[TopicPartition]) -> None:
        self.consumer.resume(parts)

    def close(self) -> None:
        self.commit(asynchronous=False)
        self.consumer.close()
