"""Consumer lag per group and topic: how many records each stage has not finished.

Records, not offsets: in a transactionally written topic every transaction
ends in a commit marker that takes an offset but is no record, so the
offset difference counted 10 waiting messages as 20. The waiting range is
read (``read_committed``, as the stages read it) and its records counted, up
to ``COUNT_BUDGET`` records; a longer backlog is counted on its first part and
the rest scaled by the records-per-offset seen there.

Only AdminClient futures with explicit timeouts for the offsets: a lag probe
must never hang (a plain Consumer's ``committed()`` was seen to block past its
timeout while the group rebalanced).
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from smsgw.kafka.consumer import consumer_config
from smsgw.kafka.security import client_config

COUNT_BUDGET = 20_000  # records read per probe at most

Span = tuple[str, int, int, int]  # topic, partition, first waiting offset, end offset


def consumer_lag(bootstrap: str, groups: dict[str, str], timeout: float = 5.0) -> dict[str, int]:
    """``{group: topic}`` -> ``{topic: records not yet committed by that group}``."""
    admin = AdminClient(client_config(bootstrap))
    md = admin.list_topics(timeout=timeout)
    spans: dict[str, list[Span]] = {}
    for group, topic in groups.items():
        if topic not in md.topics:
            continue
        parts = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
        ends = admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in parts},  # type: ignore[no-untyped-call]
            request_timeout=timeout,
        )
        high = {tp.partition: f.result(timeout).offset for tp, f in ends.items()}
        request = [ConsumerGroupTopicPartitions(group, parts)]
        committed = admin.list_consumer_group_offsets(request, request_timeout=timeout)
        result = committed[group].result(timeout)
        waiting = spans.setdefault(topic, [])
        for tp in result.topic_partitions or []:
            end = high.get(tp.partition, 0)
            position = tp.offset if tp.offset >= 0 else 0
            if end > position:
                waiting.append((topic, tp.partition, position, end))
    return {topic: count_records(bootstrap, s, timeout) for topic, s in spans.items()}


def count_records(
    bootstrap: str, spans: list[Span], timeout: float = 5.0, budget: int = COUNT_BUDGET
) -> int:
    """Committed records in the offset ranges ``spans`` (transaction markers and aborted
    records are not counted); beyond ``budget`` records or ``timeout``, an estimate."""
    if not spans:
        return 0
    config = consumer_config(
        bootstrap,
        f"lag-probe-{uuid.uuid4().hex[:8]}",  # assign() only: never joins or commits
        **{"enable.partition.eof": True, "fetch.wait.max.ms": 10},
    )
    consumer = Consumer(config)
    ends = {(t, p): end for t, p, _start, end in spans}
    starts = {(t, p): start for t, p, start, _end in spans}
    reached: dict[tuple[str, int], int] = {}  # next offset known not to hold a waiting record
    records = 0
    deadline = time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(t, p, start) for t, p, start, _end in spans])
        open_parts = set(ends)
        while open_parts and records < budget and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.1):
                key = (m.topic() or "", m.partition() or 0)
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        reached[key] = ends.get(key, 0)
                        open_parts.discard(key)
                    continue
                offset = m.offset() or 0
                if key not in ends or offset >= ends[key]:
                    open_parts.discard(key)
                    continue
                records += 1
                reached[key] = offset + 1
                if offset + 1 >= ends[key]:
                    open_parts.discard(key)
    finally:
        consumer.close()
    if not open_parts:
        return records
    covered = sum(reached.get(k, starts[k]) - starts[k] for k in ends)
    remaining = sum(ends[k] - reached.get(k, starts[k]) for k in ends)
    ratio = records / covered if covered else 1.0
    return records + round(ratio * remaining)
