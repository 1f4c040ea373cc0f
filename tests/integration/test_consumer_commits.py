"""Committed offsets of a transactionally written topic reach its end (lag 0 at rest)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from smsgw.cluster.kafka import EmbeddedKafka
from smsgw.cluster.procs import free_port
from smsgw.kafka import lag
from smsgw.kafka.consumer import AsyncConsumer, consumer_config
from smsgw.kafka.lag import consumer_lag, count_records
from smsgw.kafka.security import client_config
from tests.helpers.kafka import new_topic

pytestmark = pytest.mark.integration


def test_lag_is_zero_after_the_commit_marker(bootstrap: str) -> None:
    topic = new_topic(bootstrap, partitions=2)
    producer = Producer(
        client_config(bootstrap, {"transactional.id": f"tx-{uuid.uuid4().hex[:8]}"})
    )
    producer.init_transactions(30)
    for batch in range(3):
        producer.begin_transaction()
        for i in range(5):
            producer.produce(topic, value=f"{batch}-{i}".encode(), key=str(i).encode())
        producer.commit_transaction(30)
    group = f"g-{uuid.uuid4().hex[:8]}"

    async def consume_all() -> int:
        consumer = AsyncConsumer(consumer_config(bootstrap, group), [topic])
        seen = 0
        try:
            for _ in range(1000):
                for msg in await consumer.batch(100):
                    consumer.done(msg)
                    seen += 1
                if seen == 15:
                    for _ in range(20):  # let the consumer pass the last markers
                        assert await consumer.batch(100) == []
                        await asyncio.sleep(0.02)
                    consumer.commit(asynchronous=False)
                    break
                await asyncio.sleep(0.01)
        finally:
            consumer.close()
        return seen

    assert asyncio.run(consume_all()) == 15
    # Each transaction ends in a commit marker that takes an offset: the end of
    # the log is past the last record. At rest the group must be at the end.
    assert consumer_lag(bootstrap, {group: topic}) == {topic: 0}


def test_a_caught_up_group_is_asked_again_only_once_its_log_moves(
    bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ask for a group's committed offsets is a consumer and a SASL login of its
    own; a supervisor with 100 idle providers made 100 of them every 5 s (issue 13)."""
    topic = new_topic(bootstrap, partitions=2)
    producer = Producer(client_config(bootstrap))
    for i in range(4):
        producer.produce(topic, value=b"m", key=str(i).encode())
    producer.flush(30)
    group = f"g-{uuid.uuid4().hex[:8]}"
    reader = Consumer(consumer_config(bootstrap, group))
    lows_highs = [reader.get_watermark_offsets(TopicPartition(topic, p), 10) for p in (0, 1)]
    reader.commit(
        offsets=[TopicPartition(topic, p, lows_highs[p][1]) for p in (0, 1)], asynchronous=False
    )
    reader.close()
    asked: list[str] = []
    real = lag.committed_offsets

    def counted(*args: Any, **kwargs: Any) -> list[TopicPartition]:
        asked.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(lag, "committed_offsets", counted)
    settled: dict[str, tuple[lag.Ends, float]] = {}
    assert consumer_lag(bootstrap, {group: topic}, settled=settled) == {topic: 0}
    assert consumer_lag(bootstrap, {group: topic}, settled=settled) == {topic: 0}
    assert asked == [group]  # the second probe: same log ends, lag still 0
    producer.produce(topic, value=b"new", key=b"0")
    producer.flush(30)
    assert consumer_lag(bootstrap, {group: topic}, settled=settled) == {topic: 1}
    assert asked == [group, group]
    assert consumer_lag(bootstrap, {group: topic}, settled=settled) == {topic: 1}
    assert asked == [group, group, group]  # behind: asked every time


def test_lag_counts_records_not_transaction_markers(bootstrap: str) -> None:
    """10 waiting messages written in 10 transactions are 10, not 20 (each commit
    marker takes an offset); an aborted transaction's records wait for nobody."""
    topic = new_topic(bootstrap, partitions=2)
    producer = Producer(
        client_config(bootstrap, {"transactional.id": f"tx-{uuid.uuid4().hex[:8]}"})
    )
    producer.init_transactions(30)
    for i in range(10):
        producer.begin_transaction()
        producer.produce(topic, value=b"m", key=str(i).encode())
        producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted", key=b"x")
    producer.abort_transaction(30)
    group = f"g-{uuid.uuid4().hex[:8]}"
    # The group stands at the start: everything waits. (It commits offset 0 rather
    # than nothing: librdkafka's group-offsets request crashes the process on a
    # broker whose __consumer_offsets topic does not exist yet.)
    at_start = Consumer(consumer_config(bootstrap, group))
    at_start.commit(offsets=[TopicPartition(topic, p, 0) for p in (0, 1)], asynchronous=False)
    at_start.close()
    assert consumer_lag(bootstrap, {group: topic}) == {topic: 10}


def test_a_pending_transactional_commit_does_not_hold_the_probe(bootstrap: str) -> None:
    """A bind killed inside a transaction leaves its offset commit pending until the
    transaction times out. The probe reads the last stable commit at once, as the
    admin request did; asking for stable offsets (``read_committed``) retried
    UNSTABLE_OFFSET_COMMIT for the probe's whole timeout, then failed."""
    topic = new_topic(bootstrap, partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    writer = Producer(client_config(bootstrap))
    for i in range(10):
        writer.produce(topic, value=b"m", key=str(i).encode())
    assert writer.flush(30) == 0
    member = Consumer(consumer_config(bootstrap, group))
    member.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    txn = Producer(client_config(bootstrap, {"transactional.id": f"tx-{uuid.uuid4().hex[:8]}"}))
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.send_offsets_to_transaction(
        [TopicPartition(topic, 0, 8)], member.consumer_group_metadata(), 30
    )
    # Neither committed nor aborted: the bind "died" here.
    assert consumer_lag(bootstrap, {group: topic}, timeout=10) == {topic: 6}
    txn.abort_transaction(30)
    member.close()


def test_a_long_backlog_is_estimated_from_the_part_counted(bootstrap: str) -> None:
    topic = new_topic(bootstrap, partitions=1)
    producer = Producer(
        client_config(bootstrap, {"transactional.id": f"tx-{uuid.uuid4().hex[:8]}"})
    )
    producer.init_transactions(30)
    for _ in range(20):
        producer.begin_transaction()
        for i in range(9):
            producer.produce(topic, value=b"m", key=str(i).encode())
        producer.commit_transaction(30)
    # 180 records and 20 markers over 200 offsets; counted on the first 50 records.
    got = count_records(bootstrap, [(topic, 0, 0, 200)], budget=50)
    assert 170 <= got <= 190, got


# Lag probes of fresh groups for `seconds`, in a process of its own: the old probe crashed
# its process (SIGSEGV), which here would have been pytest itself.
LAG_PROBES = """
import sys, time, uuid
from smsgw.kafka.lag import consumer_lag
from smsgw.kafka.security import use_settings
from smsgw.settings import Settings

use_settings(Settings())
bootstrap, topic, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
end, answers = time.monotonic() + seconds, 0
while time.monotonic() < end:
    try:  # an answer or a timeout while the coordinators load; never a crash
        consumer_lag(bootstrap, {f"g-{uuid.uuid4().hex[:8]}": topic}, timeout=5)
        answers += 1
    except Exception:
        pass
print(answers)
"""


def test_lag_probes_survive_a_broker_whose_group_coordinators_are_loading(
    kafka: EmbeddedKafka,
) -> None:
    """A fresh broker answers NOT_COORDINATOR while it loads ``__consumer_offsets``; the
    admin client's offset request then crashed the process (librdkafka issue 5040). It
    was the supervisor's first lag probe at ``smsgw run``: "A worker died ... unexpected
    system error" and a restart of the supervisor, at almost every start."""
    broker = EmbeddedKafka(
        Path(tempfile.mkdtemp(prefix="smsgw-test-lag-")),
        port=free_port(),
        controller_port=free_port(),
        credentials=kafka.credentials,
    )
    broker.start()
    try:
        topic = new_topic(broker.bootstrap)
        probes = subprocess.run(
            [sys.executable, "-c", LAG_PROBES, broker.bootstrap, topic, "30"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert probes.returncode == 0, f"died ({probes.returncode}): {probes.stderr[-3000:]}"
        assert int(probes.stdout) > 0, "no probe answered in 30 s"
    finally:
        broker.stop()
