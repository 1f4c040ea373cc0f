"""Small Kafka helpers for tests: topics, produce-and-wait, drain."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from smsgw.kafka.security import client_config


def new_topic(bootstrap: str, partitions: int = 3, config: dict[str, str] | None = None) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient(client_config(bootstrap))  # must outlive the future
    fut = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
    )[name]
    fut.result(30)
    return name


def produce_all(bootstrap: str, topic: str, values: list[bytes], **conf: object) -> list[Message]:
    """Produce with an idempotent acks=all producer; return the delivery reports."""
    producer = Producer(
        client_config(bootstrap, {"enable.idempotence": True, "acks": "all", **conf})
    )
    reports: list[Message] = []
    for i, v in enumerate(values):
        producer.produce(
            topic, value=v, key=str(i).encode(), on_delivery=lambda err, msg: reports.append(msg)
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    return reports


def drain(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    timeout: float = 20.0,
    isolation: str = "read_committed",
    group: str | None = None,
) -> list[Message]:
    """Read a topic from the start until ``expect`` records (or quiet for a while)."""
    consumer = Consumer(
        client_config(
            bootstrap,
            {
                "group.id": group or f"drain-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": isolation,
            },
        )
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                if expect is None and out and time.monotonic() - quiet_since > 2:
                    break
                continue
            if msg.error():
                continue
            out.append(msg)
            quiet_since = time.monotonic()
            if expect is not None and len(out) >= expect:
                break
    finally:
        consumer.close()
    return out
