"""Replicated topics: what the gateway creates on one broker and on three."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
)

from smsgw.cluster.kafka import EmbeddedKafka, EmbeddedKafkaCluster
from smsgw.kafka import replication
from smsgw.kafka.admin import (
    check_replication,
    describe_replication,
    ensure_topic_names,
    ensure_topics,
)
from smsgw.kafka.replication import TopicReplication
from smsgw.kafka.security import client_config
from smsgw.topics import Topics


def _described(bootstrap: str, prefix: str, count: int) -> tuple[int, list[TopicReplication]]:
    """Once every broker's metadata has the ``count`` new topics and their configs (both
    follow the controller's metadata log: a topic listed by one broker may still have
    no config on the broker its DescribeConfigs reached; clean-clone run ci19, after
    the broker-loss tests restarted brokers, read min_isr None for a topic just made)."""
    deadline = time.monotonic() + 60
    while True:
        brokers, described = describe_replication(bootstrap, prefix=prefix)
        complete = len(described) >= count and all(t.min_isr is not None for t in described)
        if complete or time.monotonic() > deadline:
            return brokers, described
        time.sleep(0.2)


pytestmark = [pytest.mark.integration]


def test_three_brokers_every_topic_rf3_min_isr2(kafka3: EmbeddedKafkaCluster) -> None:
    topics = Topics(f"r{uuid.uuid4().hex[:8]}.")
    ensure_topics(kafka3.bootstrap, topics.specs(partitions=3))
    ensure_topic_names(kafka3.bootstrap, [topics.outbound("smsc1")], 3)  # made on demand
    brokers, described = _described(kafka3.bootstrap, topics.prefix, len(topics.specs(3)) + 1)
    assert brokers == 3
    by_name = {t.name: t for t in described}
    assert topics.dlq in by_name and topics.outbound("smsc1") in by_name
    assert len(by_name) == len(topics.specs(3)) + 1
    for t in described:
        assert (t.factor, t.min_isr, t.offline) == (3, 2, 0), t
    # The broker's own topics too: the router's transactions and group offsets.
    _, internal = describe_replication(
        kafka3.bootstrap, ["__consumer_offsets", "__transaction_state"]
    )
    assert all(t.factor == 3 for t in internal), internal


def test_single_broker_stays_rf1(kafka: EmbeddedKafka) -> None:
    topics = Topics(f"r{uuid.uuid4().hex[:8]}.")
    ensure_topics(kafka.bootstrap, topics.specs(partitions=3))
    _, described = _described(kafka.bootstrap, topics.prefix, len(topics.specs(3)))
    assert len(described) == len(topics.specs(3)) and all(
        (t.factor, t.min_isr) == (1, 1) for t in described
    )


def test_lower_topics_are_reported_and_min_isr_fixed(kafka3: EmbeddedKafkaCluster) -> None:
    topics = Topics(f"r{uuid.uuid4().hex[:8]}.")
    # Made the old way: one copy, min ISR 1 (what admin.py created before).
    admin = AdminClient(client_config(kafka3.bootstrap))
    old = [
        NewTopic(topics.submit, num_partitions=3, replication_factor=1),
        NewTopic(
            topics.sent,
            num_partitions=3,
            replication_factor=3,
            config={"min.insync.replicas": "1"},
        ),
    ]
    for fut in admin.create_topics(old).values():
        fut.result(30)
    specs = topics.specs(partitions=3)
    ensure_topics(kafka3.bootstrap, specs)
    lower = {t.name: t for t in check_replication(kafka3.bootstrap, specs)}
    assert set(lower) == {topics.submit, topics.sent}
    assert lower[topics.submit].factor == 1 and lower[topics.sent].factor == 3
    # Reported truly: the raise is visible on every broker when the fix returns (a
    # config change reaches each broker through the KRaft metadata log, and one
    # behind, like a broker restarted by an earlier test, described the old value
    # right after an unwaited fix: ci17), and only what is still below is returned.
    still = check_replication(kafka3.bootstrap, specs, fix=True)
    assert {t.name for t in still} == {topics.submit}, "sent is fixed: its min ISR is raised"
    assert still[0].problems(replication.current(3)) == ["replication factor 1 < 3"]
    assert _min_isr_per_broker(kafka3, topics.sent) == {1: 2, 2: 2, 3: 2}
    after = {t.name for t in check_replication(kafka3.bootstrap, specs)}
    assert after == {topics.submit}, "sent has 3 copies: its min ISR is raised to 2"


def _min_isr_per_broker(cluster: EmbeddedKafkaCluster, topic: str) -> dict[int, int]:
    """``topic``'s min ISR as each broker describes it: a request naming a BROKER resource
    goes to that broker (librdkafka), which answers the topic from its own metadata."""
    admin = AdminClient(client_config(cluster.bootstrap))
    out = {}
    for node in (1, 2, 3):
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        futures = admin.describe_configs(
            [ConfigResource(ConfigResource.Type.BROKER, str(node)), res], request_timeout=15
        )
        out[node] = int(futures[res].result(30)["min.insync.replicas"].value)
    return out


def test_status_report_shows_brokers_and_topics_against_the_policy(
    kafka3: EmbeddedKafkaCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    from smsgw.cluster.entry import _print_kafka
    from smsgw.kafka.admin import replication_report

    topics = Topics(f"r{uuid.uuid4().hex[:8]}.")
    admin = AdminClient(client_config(kafka3.bootstrap))
    admin.create_topics([NewTopic(topics.submit, num_partitions=3, replication_factor=1)])[
        topics.submit
    ].result(30)
    ensure_topics(kafka3.bootstrap, topics.specs(partitions=3))
    _described(kafka3.bootstrap, topics.prefix, len(topics.specs(3)))
    report = replication_report(kafka3.bootstrap, topics.prefix)
    assert [b["id"] for b in report["brokers"]] == [1, 2, 3]
    assert report["policy"] == {"replication": 3, "min_isr": 2}
    below = {t["name"] for t in report["topics"] if not t["meets_policy"]}
    assert below == {topics.submit}
    capsys.readouterr()
    _print_kafka(report)
    out = capsys.readouterr().out
    assert "kafka brokers (3" in out and "under-replicated partitions 0" in out
    assert f"{topics.submit}" in out and "BELOW: replication factor 1 < 3" in out
