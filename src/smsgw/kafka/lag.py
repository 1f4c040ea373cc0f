"""Consumer lag per group and topic: how far each stage is behind its input.

Only AdminClient futures with explicit timeouts: a lag probe must never hang
(a plain Consumer's ``committed()`` was seen to block past its timeout while
the group rebalanced).
"""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from smsgw.kafka.security import client_config


def consumer_lag(bootstrap: str, groups: dict[str, str], timeout: float = 5.0) -> dict[str, int]:
    """``{group: topic}`` -> ``{topic: records not yet committed by that group}``."""
    admin = AdminClient(client_config(bootstrap))
    md = admin.list_topics(timeout=timeout)
    out: dict[str, int] = {}
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
        lag = 0
        for tp in result.topic_partitions or []:
            end = high.get(tp.partition, 0)
            position = tp.offset if tp.offset >= 0 else 0
            lag += max(0, end - position)
        out[topic] = lag
    return out
