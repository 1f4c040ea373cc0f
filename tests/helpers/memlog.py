"""An in-memory log for unit tests of the pipeline stages (issue 13): Kafka's model, not its client.

Topics hold partitions, partitions hold records at offsets; a key always lands
on the same partition; consumer groups commit a next offset per partition; a
transaction makes its records and its group's offsets visible together or not
at all; compaction keeps the newest record of each key. A stage's logic class
(``RoutingLogic``, ``Outbox``, ``DeliveryLogic``, ``StateStore``…) is driven
with what a group reads from here and the time, and a test asserts the records
it wrote and the offsets it committed. It models a log: it is not a stand-in
for confluent-kafka's API (no polling, no callbacks, no rebalances).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)


@dataclass
class Transaction:
    """Records and one group's offsets, visible together when the transaction commits."""

    records: list[tuple[str, bytes | None, bytes | None, int | None]] = field(default_factory=list)
    offsets: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)

    def produce(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        self.records.append((topic, key, value, partition))

    def send_offsets(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        self.offsets.setdefault(group, {}).update(offsets)


class Aborted(Exception):
    """Raised inside ``MemLog.transaction`` to abort it (a crash before the commit)."""


class MemLog:
    def __init__(self, partitions: int = 3) -> None:
        self.default_partitions = partitions
        self.topics: dict[str, list[list[Record]]] = {}
        self.committed: dict[str, dict[TopicPartition, int]] = {}  # group -> next offsets
        # Each partition's next offset: compaction leaves gaps, never reuses one.
        self._ends: dict[TopicPartition, int] = {}

    # ------------------------------------------------------------ topics
    def create(self, topic: str, partitions: int | None = None) -> None:
        if topic not in self.topics:
            self.topics[topic] = [[] for _ in range(partitions or self.default_partitions)]

    def partitions(self, topic: str) -> int:
        self.create(topic)
        return len(self.topics[topic])

    def partition_for(self, topic: str, key: bytes | None) -> int:
        """The partitioner's contract: a key always lands on the same partition (CRC32
        here, murmur2 in Kafka: only that contract is modelled)."""
        return zlib.crc32(key or b"") % self.partitions(topic)

    def append(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> Record:
        """One record, acknowledged (``acks=all``): at the end of its partition."""
        p = self.partition_for(topic, key) if partition is None else partition
        rec = Record(topic, p, self.end(topic, p), key, value)
        self.topics[topic][p].append(rec)
        self._ends[(topic, p)] = rec.offset + 1
        return rec

    def end(self, topic: str, partition: int) -> int:
        """The next offset of ``partition`` (its high watermark)."""
        self.create(topic)
        return self._ends.get((topic, partition), 0)

    def records(self, topic: str, partition: int | None = None, start: int = 0) -> list[Record]:
        """What a reader from ``start`` gets (every partition, in partition order, if None)."""
        self.create(topic)
        parts = range(self.partitions(topic)) if partition is None else [partition]
        return [r for p in parts for r in self.topics[topic][p] if r.offset >= start]

    def values(self, topic: str) -> list[bytes | None]:
        return [r.value for r in self.records(topic)]

    def latest(self, topic: str, partition: int | None = None) -> dict[bytes | None, Record]:
        """The newest record per key, tombstoned keys gone: what a compacted topic
        converges to and what a reader rebuilding a table keeps."""
        out: dict[bytes | None, Record] = {}
        for r in self.records(topic, partition):
            if r.value is None:
                out.pop(r.key, None)
            else:
                out[r.key] = r
        return out

    def compact(self, topic: str) -> None:
        """The log cleaner: every record but the newest of its key goes (offsets stay)."""
        for log in self.topics.get(topic, []):
            newest = {r.key: r.offset for r in log}
            log[:] = [r for r in log if newest[r.key] == r.offset and r.value is not None]

    # ------------------------------------------------------------ groups
    def position(self, group: str, topic: str, partition: int) -> int:
        """Where ``group`` resumes on ``partition``: its committed offset, else 0."""
        return self.committed.get(group, {}).get((topic, partition), 0)

    def commit(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        """Commit next offsets; a commit never moves a group back (Kafka would let it:
        the stages never ask for that, and a test asserting it would say so)."""
        mine = self.committed.setdefault(group, {})
        for tp, offset in offsets.items():
            assert offset >= mine.get(tp, 0), f"{group} commit moves {tp} back to {offset}"
            mine[tp] = offset

    def unread(
        self, group: str, topic: str, partitions: Sequence[int] | None = None
    ) -> list[Record]:
        """What ``group`` reads after a (re)start: every record past its commits."""
        parts = range(self.partitions(topic)) if partitions is None else partitions
        return [r for p in parts for r in self.records(topic, p, self.position(group, topic, p))]

    def lag(self, group: str, topic: str) -> int:
        return len(self.unread(group, topic))

    # ------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Records and offsets written on leaving the block; ``Aborted`` (or any
        exception) inside it leaves no trace."""
        txn = Transaction()
        try:
            yield txn
        except Aborted:
            return
        for topic, key, value, partition in txn.records:
            self.create(topic)
            self.append(topic, key, value, partition)
        for group, offsets in txn.offsets.items():
            self.commit(group, offsets)


def next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    """The commit that finishes ``records``: past the last one of each partition."""
    out: dict[TopicPartition, int] = {}
    for r in records:
        out[r.tp] = max(out.get(r.tp, 0), r.offset + 1)
    return out
