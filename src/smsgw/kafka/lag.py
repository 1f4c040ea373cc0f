"""Consumer lag per group and topic: how far each stage is behind its input."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition


def consumer_lag(bootstrap: str, groups: dict[str, str], timeout: float = 5.0) -> dict[str, int]:
    """``{group: topic}`` -> ``{topic: records not yet committed by that group}``."""
    probe = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"lag-probe-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        }
    )
    out: dict[str, int] = {}
    try:
        md = probe.list_topics(timeout=timeout)
        for group, topic in groups.items():
            if topic not in md.topics:
                continue
            parts = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
            member = Consumer(
                {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
            )
            try:
                committed = member.committed(parts, timeout=timeout)
            finally:
                member.close()
            lag = 0
            for tp in committed:
                low, high = probe.get_watermark_offsets(
                    TopicPartition(topic, tp.partition), timeout=timeout
                )
                position = tp.offset if tp.offset >= 0 else low
                lag += max(0, high - position)
            out[topic] = lag
    finally:
        probe.close()
    return out
