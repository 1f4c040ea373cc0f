"""A commit that waited behind a consumer's wait never takes a partition back.

During a wait the loop's commits queue on the consumer's thread (confluent-kafka
lets one thread in at a time); a revoke served inside that wait commits first.
The queued commit must then not move the partition's group offset back, nor
commit a partition that went to another member.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import TopicPartition

from smsgw.kafka import consumer as consumer_module
from smsgw.kafka.consumer import AsyncConsumer, consumer_config
from tests.helpers.rdkafka_handles import ConsumerHandle, install


@pytest.fixture(autouse=True)
def _handles(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The consumers below get a handle that notes their commits (no librdkafka)."""
    install(monkeypatch, consumer_module, "Consumer", ConsumerHandle)
    yield


def test_a_queued_commit_skips_what_a_later_one_sent_and_lost_partitions() -> None:
    c = AsyncConsumer(consumer_config("127.0.0.1:1", "g"), ["t"])
    rec = c.consumer
    assert isinstance(rec, ConsumerHandle)
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
        rec.close()


class _Record:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def test_records_of_a_partition_revoked_while_they_were_fetched_are_the_next_owners() -> None:
    """A wait can take a record, then serve the revoke of its partition before handing
    it over: taken, it was sent again beside the next owner, and committed by a member
    that no longer owned the partition (past what the owner had done)."""
    c = AsyncConsumer(consumer_config("127.0.0.1:1", "g"), ["t"])
    try:
        c.assigned = {("t", 0)}  # partition 1 was revoked during the wait
        got = c.accept([_Record(0, 3), _Record(1, 8), _Record(0, 4)])  # type: ignore[list-item]
        assert [(m.partition(), m.offset()) for m in got] == [(0, 3), (0, 4)]
        assert c.tracker.commit_points() == {}  # nothing of partition 1 tracked
        assert not c.tracker.started("t", 1)
    finally:
        c.consumer.close()


def test_a_partition_revoked_and_assigned_again_during_a_wait_is_not_caught_up() -> None:
    """Positions from before a wait are what a commit during it may use; a partition
    revoked (its unfinished records dropped, committed at 7) and assigned again in
    the same wait must not be committed at its old position (10): records 7-9 would
    be skipped by its next reader."""
    c = AsyncConsumer(consumer_config("127.0.0.1:1", "g"), ["t"])
    try:
        c.assigned = {("t", 0)}
        c._safe_positions = [TopicPartition("t", 0, 10)]
        c._revoked_here([TopicPartition("t", 0)])
        c._assigned_here([TopicPartition("t", 0)])
        assert c._commit_offsets(c._safe_positions) == []
    finally:
        c.consumer.close()


def test_a_position_left_from_a_past_assignment_is_not_caught_up() -> None:
    """librdkafka only moves a partition's position forward: revoked at 10 (records 7-9
    dropped unfinished, committed at 7) and assigned here again, it reads 10 until
    consumption passes it. Taken as caught up, 10 was committed and 7-9 never sent
    (test_bind_rebalance: 77 accepted messages, the group at the end of every
    partition)."""
    c = AsyncConsumer(consumer_config("127.0.0.1:1", "g"), ["t"])
    try:
        c.assigned = {("t", 0)}
        c._stale[("t", 0)] = 10  # as the revoke noted it
        assert c._commit_offsets([TopicPartition("t", 0, 10)]) == []
        c.tracker.read("t", 0, 7)
        c.tracker.done("t", 0, 7)
        assert c._commit_offsets([TopicPartition("t", 0, 10)]) == [TopicPartition("t", 0, 8)]
        # Consumption passed it (a record at 10, a marker at 11): the position is real.
        c.tracker.read("t", 0, 10)
        c.tracker.done("t", 0, 10)
        assert c._commit_offsets([TopicPartition("t", 0, 12)]) == [TopicPartition("t", 0, 12)]
        assert ("t", 0) not in c._stale
    finally:
        c.consumer.close()


def test_a_revoke_commits_a_point_a_queued_commit_took_already() -> None:
    """A commit computed during a wait queues behind it; the revoke served in that
    wait comes first, and the queued commit is then skipped (the partition is gone).
    The revoke must commit the point anyway, or the next owner sends again what was
    finished since the last commit made."""
    c = AsyncConsumer(consumer_config("127.0.0.1:1", "g"), ["t"])
    try:
        c.assigned = {("t", 0)}
        c.tracker.read("t", 0, 4)
        c.tracker.read("t", 0, 5)
        c.tracker.done("t", 0, 4)
        c.tracker.done("t", 0, 5)
        assert c.tracker.commit_points() == {("t", 0): 6}  # the queued commit's
        assert c._revoked_here([TopicPartition("t", 0)]) == [TopicPartition("t", 0, 6)]
    finally:
        c.consumer.close()


class _Closing(ConsumerHandle):
    """A consumer inside ``close``: librdkafka moved a partition's position past
    records it fetched and never handed over."""

    def position(self, parts: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, 327) for tp in parts]


def test_the_revoke_inside_close_takes_no_position_as_caught_up() -> None:
    """test_bind_rebalance under load: a bind stopped with a backlog had read nothing
    of partition 5 (group offset 5); the revoke inside its close read the position
    327 and committed it, and 322 accepted messages were never sent."""
    c = AsyncConsumer(consumer_config("127.0.0.1:1", "g"), ["t"])
    rec = c.consumer = _Closing()  # type: ignore[assignment]
    try:
        c.assigned = {("t", 0), ("t", 5)}
        c.tracker.read("t", 0, 30)
        c.tracker.done("t", 0, 30)
        c._closing = True  # close(): settled and committed; librdkafka is closing
        c._lost(rec, [TopicPartition("t", 0), TopicPartition("t", 5)])  # type: ignore[arg-type]
        assert rec.commits == [[("t", 0, 31)]]  # what was done; partition 5 left as it was
    finally:
        rec.close()
