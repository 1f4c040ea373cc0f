"""A commit that waited behind a consumer's wait never takes a partition back.

During a wait the loop's commits queue on the consumer's thread (confluent-kafka
lets one thread in at a time); a revoke served inside that wait commits first.
The queued commit must then not move the partition's group offset back, nor
commit a partition that went to another member.
"""

from __future__ import annotations

from confluent_kafka import TopicPartition

from smsgw.kafka.consumer import AsyncConsumer, consumer_config


class _Recorder:
    def __init__(self) -> None:
        self.commits: list[list[tuple[str, int, int]]] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])


def test_a_queued_commit_skips_what_a_later_one_sent_and_lost_partitions() -> None:
    c = AsyncConsumer(consumer_config("127.0.0.1:1", "g"), ["t"])
    real, rec = c.consumer, _Recorder()
    c.consumer = rec  # type: ignore[assignment]
    try:
        c.assigned = {("t", 0), ("t", 1)}
        queued = [TopicPartition("t", 0, 5), TopicPartition("t", 1, 7)]
        # The revoke (partition 1 gone) committed 9 and 8 first.
        c.assigned.discard(("t", 1))
        c._commit_now([TopicPartition("t", 0, 9), TopicPartition("t", 1, 8)], False)
        c._commit_now(queued, True, True)  # the commit that waited
        c._commit_now([TopicPartition("t", 0, 11)], True, True)  # a later one goes
        assert rec.commits == [[("t", 0, 9), ("t", 1, 8)], [("t", 0, 11)]]
    finally:
        real.close()
