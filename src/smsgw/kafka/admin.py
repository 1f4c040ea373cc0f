"""Topic creation: create what is missing, leave what exists alone.

Every topic is created with this process's replication policy
(``smsgw.kafka.replication``); existing topics are checked against it and
reported (or, asked to, their ``min.insync.replicas`` raised) when lower.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from smsgw import log
from smsgw.kafka import replication
from smsgw.kafka.replication import Replication, TopicReplication
from smsgw.kafka.security import client_config
from smsgw.topics import TopicSpec

TOPIC_ALREADY_EXISTS = 36
# How long a raised topic config may take to reach every broker (``raise_min_isr``).
SETTLE_S = 60.0


def _admin(bootstrap: str) -> Any:
    return AdminClient(client_config(bootstrap))


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create missing topics with the replication policy; return the names created."""
    admin = _admin(bootstrap)
    md = admin.list_topics(timeout=timeout)
    policy = replication.current(len(md.brokers))
    existing = set(md.topics)
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=policy.factor,
            config={**s.config, **policy.topic_config()},
        )
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


def describe_replication(
    bootstrap: str, names: Iterable[str] | None = None, *, prefix: str = "", timeout: float = 15.0
) -> tuple[int, list[TopicReplication]]:
    """The live broker count and each topic's replication (``names``, or all under ``prefix``)."""
    admin = _admin(bootstrap)
    md = admin.list_topics(timeout=timeout)
    wanted = set(names) if names is not None else None
    chosen = sorted(
        t
        for t in md.topics
        if (t in wanted if wanted is not None else t.startswith(prefix))
        and not (wanted is None and t.startswith("__"))
    )
    isr_of: dict[str, int | None] = dict.fromkeys(chosen)
    if chosen:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in chosen]
        for res, fut in admin.describe_configs(resources, request_timeout=timeout).items():
            try:
                entry = fut.result().get("min.insync.replicas")
            except KafkaException:
                continue
            if entry is not None and entry.value is not None:
                isr_of[res.name] = int(entry.value)
    out = []
    for t in chosen:
        parts = md.topics[t].partitions.values()
        out.append(
            TopicReplication(
                name=t,
                partitions=len(parts),
                factor=min((len(p.replicas) for p in parts), default=0),
                min_isr=isr_of[t],
                under_replicated=sum(1 for p in parts if len(p.isrs) < len(p.replicas)),
                offline=sum(1 for p in parts if p.leader < 0),
            )
        )
    return len(md.brokers), out


def check_replication(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    *,
    fix: bool = False,
    timeout: float = 15.0,
    settle_s: float = SETTLE_S,
) -> list[TopicReplication]:
    """Warn about topics with fewer copies or a lower min ISR than the policy; return them.

    With ``fix``, a lower ``min.insync.replicas`` is raised in place (a config
    change, no data moves), and what is returned is what is still below the
    policy once the change is visible on every broker (``raise_min_isr``): a
    topic whose raise some broker does not show within ``settle_s`` is still
    reported. A lower replication factor needs a partition reassignment
    (``kafka-reassign-partitions.sh``), which is reported, not done.
    """
    brokers, topics = describe_replication(bootstrap, [s.name for s in specs], timeout=timeout)
    policy = replication.current(brokers)
    lower = replication.below(topics, policy)
    logger = log.get("smsgw.kafka")
    for t in lower:
        logger.warning(
            "topic below the replication policy",
            topic=t.name,
            problems="; ".join(t.problems(policy)),
            fix="raising min.insync.replicas" if fix else "SMSGW_KAFKA_FIX_REPLICATION=true",
        )
    if not fix:
        return lower
    raised = raise_min_isr(
        bootstrap,
        [t for t in lower if (t.min_isr or 0) < policy.min_isr],
        policy,
        timeout=timeout,
        settle_s=settle_s,
    )
    still = replication.below(
        [dataclasses.replace(t, min_isr=raised.get(t.name, t.min_isr)) for t in lower], policy
    )
    for t in still:
        logger.warning(
            "topic still below the replication policy",
            topic=t.name,
            problems="; ".join(t.problems(policy)),
        )
    return still


def raise_min_isr(
    bootstrap: str,
    topics: Iterable[TopicReplication],
    policy: Replication,
    timeout: float = 15.0,
    settle_s: float = SETTLE_S,
) -> dict[str, int]:
    """Set ``min.insync.replicas`` on ``topics`` (capped by each one's replication factor);
    return the topics whose new value every broker shows, with that value.

    The controller commits the change to the KRaft metadata log and each broker
    applies it when it reads that far: a broker behind (restarting, or loaded)
    keeps enforcing the old value meanwhile. So the change is done only once every
    broker describes it (``_shown_everywhere``), waited for up to ``settle_s``.
    """
    wanted = {t.name: min(policy.min_isr, max(1, t.factor)) for t in topics}
    if not wanted:
        return {}
    resources = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(
                    "min.insync.replicas",
                    str(value),
                    incremental_operation=AlterConfigOpType.SET,
                )
            ],
        )
        for name, value in wanted.items()
    ]
    admin = _admin(bootstrap)
    for fut in admin.incremental_alter_configs(resources, request_timeout=timeout).values():
        fut.result()
    deadline = time.monotonic() + settle_s
    while True:
        shown = _shown_everywhere(admin, wanted, timeout=min(timeout, 5.0))
        if len(shown) == len(wanted) or time.monotonic() >= deadline:
            return {name: wanted[name] for name in shown}
        time.sleep(0.2)


def _shown_everywhere(admin: Any, wanted: dict[str, int], timeout: float) -> set[str]:
    """The topics whose ``min.insync.replicas`` is at least ``wanted`` on every live broker.

    A DescribeConfigs request that names a BROKER resource goes to that broker
    (librdkafka sends it there rather than to any broker), and a KRaft broker
    answers a topic's config from its own copy of the metadata: one request per
    broker, each with every topic, tells what each broker enforces.
    """
    brokers = admin.list_topics(timeout=timeout).brokers
    shown = set(wanted)
    for broker_id in brokers:
        topics = {name: ConfigResource(ConfigResource.Type.TOPIC, name) for name in sorted(shown)}
        if not topics:
            break
        resources = [ConfigResource(ConfigResource.Type.BROKER, str(broker_id)), *topics.values()]
        futures = admin.describe_configs(resources, request_timeout=timeout)
        for name, res in topics.items():
            try:
                entry = futures[res].result().get("min.insync.replicas")
            except KafkaException:
                shown.discard(name)
                continue
            if entry is None or entry.value is None or int(entry.value) < wanted[name]:
                shown.discard(name)
    return shown


def replication_report(bootstrap: str, prefix: str, timeout: float = 10.0) -> dict[str, Any]:
    """For ``smsgw status``: the brokers, the policy, and each gateway topic against it."""
    admin = _admin(bootstrap)
    md = admin.list_topics(timeout=timeout)
    brokers = sorted(md.brokers.values(), key=lambda b: b.id)
    _, topics = describe_replication(bootstrap, prefix=prefix, timeout=timeout)
    policy = replication.current(len(brokers))
    return {
        "brokers": [{"id": b.id, "address": f"{b.host}:{b.port}"} for b in brokers],
        "controller": md.controller_id,
        "policy": {"replication": policy.factor, "min_isr": policy.min_isr},
        "under_replicated": sum(t.under_replicated for t in topics),
        "offline": sum(t.offline for t in topics),
        "topics": [
            {**t.__dict__, "meets_policy": t.meets(policy), "problems": t.problems(policy)}
            for t in topics
        ],
    }
