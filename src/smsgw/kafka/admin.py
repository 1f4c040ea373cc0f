"""Topic creation: create what is missing, leave what exists alone."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from smsgw.kafka.security import client_config
from smsgw.topics import TopicSpec

TOPIC_ALREADY_EXISTS = 36


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create missing topics; return the names created."""
    admin = AdminClient(client_config(bootstrap))
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=dict(s.config))
        for s in specs
        if s.name not in existing
    ]
    if not new:
        return []
    created = []
    for name, fut in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            fut.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != TOPIC_ALREADY_EXISTS:  # another node won the race
                raise
    return created


def ensure_topic_names(bootstrap: str, names: Iterable[str], partitions: int) -> list[str]:
    """Create the ``out.<provider>`` topics made on demand, with the gateway's retention."""
    return ensure_topics(bootstrap, [TopicSpec.plain(n, partitions) for n in names])
