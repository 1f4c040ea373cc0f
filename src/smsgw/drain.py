"""What `smsgw provider remove` does with the messages still queued for the provider.

A provider's queue is its topic ``out.<provider>`` read by the consumer group
of its binds; what that group has not committed is waiting. Removal refuses
while anything waits, unless told to drain it: ``fail`` ends each message
UNDELIVERABLE with a receipt (err:908), ``reroute`` writes each accepted
message back to ``submit`` so the routers route it again with the routes of
now. Either way the topic and the group are deleted afterwards, so a
provider added later under the same name starts empty (it never sends what
was queued for its predecessor).

Draining needs the binds gone first (the provider is disabled, the group
must be empty): two readers of one queue would both act on a message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from smsgw.kafka.consumer import consumer_config
from smsgw.kafka.lag import consumer_lag
from smsgw.kafka.security import client_config
from smsgw.message import AcceptedMessage, encode
from smsgw.receipts import ERR_PROVIDER_REMOVED, customer_wants, failure_receipt
from smsgw.records import Routed
from smsgw.state import MessageState, StateRecord
from smsgw.topics import Topics

DRAIN_MODES: Final = ("fail", "reroute")


def group_of(topics: Topics, provider: str) -> str:
    """The consumer group of a provider's binds (smsgw.pipeline.connector)."""
    return f"{topics.prefix}provider.{provider}"


def queued(bootstrap: str, topics: Topics, provider: str, timeout: float = 15.0) -> int:
    """Messages in ``out.<provider>`` its binds have not finished (0 if it has no topic)."""
    topic = topics.outbound(provider)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer_lag(bootstrap, {group_of(topics, provider): topic}).get(topic, 0)
        except KafkaException:  # a new topic's leader not elected yet, a moving coordinator
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_group_empty(bootstrap: str, group: str, timeout: float = 30.0) -> None:
    """Wait until no bind of the provider is left in its consumer group."""
    admin = AdminClient(client_config(bootstrap))
    deadline = time.monotonic() + timeout
    left: object = "?"
    while True:
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(10)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                return  # no bind ever joined (or the group is gone already)
            left = exc  # the coordinator moving or loading: ask again
        else:
            if not desc.members:
                return
            left = len(desc.members)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the provider's binds did not stop ({left})")
        time.sleep(0.2)


def _messages(routed: Routed) -> list[AcceptedMessage]:
    return [*routed.segments, *routed.duplicates] if routed.parts else [routed.message]


def _read(reader: Consumer, topic: str, timeout: float) -> Iterator[Routed]:
    """The records after the group's committed offsets, up to the end of each partition."""
    md = reader.list_topics(topic, timeout=10)
    if topic not in md.topics or md.topics[topic].error is not None:
        return
    parts = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
    ends: dict[int, int] = {}
    start: list[TopicPartition] = []
    for tp in reader.committed(parts, timeout=10):
        low, high = reader.get_watermark_offsets(tp, timeout=10, cached=False)
        begin = tp.offset if tp.offset >= 0 else low
        if high > begin:
            ends[tp.partition] = high
            start.append(TopicPartition(topic, tp.partition, begin))
    if not ends:
        return
    reader.assign(start)
    deadline = time.monotonic() + timeout
    while ends:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic} not read to its end: {ends}")
        for msg in reader.consume(500, 0.5):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(err)
                continue
            yield Routed.decode(msg.value() or b"")
        # Transaction markers take offsets too: the position, not the records, says "done".
        for tp in reader.position([TopicPartition(topic, p) for p in list(ends)]):
            if tp.offset >= ends[tp.partition]:
                del ends[tp.partition]


def count(bootstrap: str, topics: Topics, provider: str, *, timeout: float = 60.0) -> int:
    """Messages waiting for the provider, exactly (consumer lag counts transaction markers).

    Reads without joining the group or committing: the binds are not disturbed.
    """
    if queued(bootstrap, topics, provider) == 0:
        return 0
    reader = Consumer(consumer_config(bootstrap, group_of(topics, provider)))
    try:
        topic = topics.outbound(provider)
        return sum(len(_messages(r)) for r in _read(reader, topic, timeout))
    finally:
        reader.close()


def drain(
    bootstrap: str,
    topics: Topics,
    provider: str,
    mode: str,
    *,
    receipt_ttl_s: float = 72 * 3600,
    timeout: float = 60.0,
) -> int:
    """Act on every record the provider's group has not committed; returns how many messages.

    Outputs are flushed (acks=all) before the group's offsets move past them,
    so a crash half-way drains again (at worst a message gets its outcome twice,
    never none).
    """
    if mode not in DRAIN_MODES:
        raise ValueError(f"drain mode {mode!r}: use one of {', '.join(DRAIN_MODES)}")
    reader = Consumer(consumer_config(bootstrap, group_of(topics, provider)))
    producer = Producer(client_config(bootstrap, {"enable.idempotence": True, "acks": "all"}))
    done = 0
    try:
        for routed in _read(reader, topics.outbound(provider), timeout):
            done += _act(producer, topics, routed, mode, receipt_ttl_s)
        if done:
            if producer.flush(30) != 0:
                raise TimeoutError("Kafka did not take the drained messages' outcomes")
            reader.commit(offsets=reader.position(reader.assignment()), asynchronous=False)
        return done
    finally:
        reader.close()


def _act(producer: Producer, topics: Topics, routed: Routed, mode: str, ttl_s: float) -> int:
    messages = _messages(routed)
    for m in messages:
        if mode == "reroute":
            producer.produce(topics.submit, value=encode(m), key=m.kafka_key)
            continue
        state = MessageState.UNDELIVERABLE
        record = StateRecord(
            m.id,
            m.customer,
            m.source.addr,
            state,
            time.time(),
            ERR_PROVIDER_REMOVED,
            "drained",
            m.destination.addr,
        )
        producer.produce(topics.message_state, value=record.encode(), key=m.id.encode())
        if customer_wants(m.registered_delivery, state):
            receipt = failure_receipt(m, state, ERR_PROVIDER_REMOVED, ttl_s=ttl_s)
            producer.produce(topics.deliver, value=receipt.encode(), key=m.customer.encode())
        producer.poll(0)
    return len(messages)


def forget(bootstrap: str, topics: Topics, provider: str) -> None:
    """Delete the provider's topic and group: a provider re-added later starts empty."""
    admin = AdminClient(client_config(bootstrap))
    topic = topics.outbound(provider)
    if topic in admin.list_topics(timeout=10).topics:
        for fut in admin.delete_topics([topic], operation_timeout=30).values():
            fut.result(30)
    for fut in admin.delete_consumer_groups(
        [group_of(topics, provider)], request_timeout=10
    ).values():
        try:
            fut.result(10)
        except KafkaException as exc:  # never had members or commits: nothing to delete
            if exc.args[0].code() != KafkaError.GROUP_ID_NOT_FOUND:
                raise
