"""Dead letters: a record a stage cannot decode is set aside, never crashed on (invariant 9).

A corrupt or future-version record used to stop its partition: the stage
crashed, restarted at the committed offset and crashed again, forever (or
skipped it without a trace). Every stage now hands such a record to
`DeadLetters.put` at its decode spot and moves on. ``put`` returns only once
Kafka has the dead letter (``acks=all``), so the stage may commit past the
record without losing it; if Kafka cannot take it, ``put`` raises and the
stage restarts on the record as before.

The dead letter keeps the raw key, value and headers, plus ``dlq.*`` headers
saying where it came from and why. The ``dlq`` topic has one partition, so a
dead letter's offset is its number (``smsgw dlq show N``), and it is
compacted on ``<topic>:<partition>:<offset>`` of the source: a follower that
reads a compacted topic from its start again after a restart sets the same
record aside again under the same key, and ``smsgw dlq list`` shows it once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from smsgw import log
from smsgw.kafka.producer import ProduceError, producer_config
from smsgw.topics import Topics

# What decoding a record that is not what the stage expects raises: bad JSON
# (ValueError), a missing field (KeyError), a field of the wrong type (TypeError,
# AttributeError, IndexError), an unknown enum value or version (ValueError).
UNDECODABLE: tuple[type[Exception], ...] = (
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
)

H = "dlq."  # prefix of the headers this module adds
PUT_TIMEOUT_S = 15.0

# (stage, source topic) -> records set aside by this process; the metrics layer reads it.
dead_lettered: Counter[tuple[str, str]] = Counter()

_producers: dict[str, Producer] = {}
_lock = threading.Lock()


def _producer(bootstrap: str) -> Producer:
    """One producer per process and broker: dead letters are rare."""
    with _lock:
        if bootstrap not in _producers:
            conf = producer_config(bootstrap, timeout_s=PUT_TIMEOUT_S - 1, extra={"linger.ms": 0})
            _producers[bootstrap] = Producer(conf)
        return _producers[bootstrap]


def raw_headers(msg: Message) -> list[tuple[str, bytes | None]]:
    """A record's headers as (name, bytes) pairs (confluent-kafka's stubs are loose)."""
    out: list[tuple[str, bytes | None]] = []
    pairs: list[tuple[str, Any]] = list(msg.headers() or [])  # type: ignore[arg-type]
    for k, v in pairs:
        out.append((str(k), v.encode() if isinstance(v, str) else v))
    return out


def dlq_key(topic: str, partition: int, offset: int) -> bytes:
    return f"{topic}:{partition}:{offset}".encode()


def produce_sync(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, str | bytes | None]],
    timeout: float = PUT_TIMEOUT_S,
    partition: int | None = None,
) -> None:
    """Produce one record and wait for Kafka's acknowledgement (raises ProduceError)."""
    result: list[KafkaError | None] = []

    def done(err: KafkaError | None, _msg: Message) -> None:
        result.append(err)

    if partition is None:
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=done)
    else:
        producer.produce(
            topic, value=value, key=key, headers=headers, on_delivery=done, partition=partition
        )
    deadline = time.monotonic() + timeout
    while not result and time.monotonic() < deadline:
        producer.poll(0.05)
    if not result:
        raise ProduceError(f"no acknowledgement for a record to {topic} in {timeout:.0f} s")
    if result[0] is not None:
        raise ProduceError(result[0])


@dataclass
class DeadLetters:
    """The dead-letter writer of one stage (router, connector, correlator, deliverer…)."""

    bootstrap: str
    topics: Topics
    stage: str
    count: int = 0
    log: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.log = log.get("smsgw.dlq")

    def put(self, msg: Message, reason: str | BaseException) -> None:
        """Set `msg` aside with `reason`; returns once Kafka has it (the caller may commit)."""
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        why = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
        headers: list[tuple[str, str | bytes | None]] = [
            (k, v) for k, v in raw_headers(msg) if not k.startswith(H)
        ]
        headers += [
            (H + "reason", why.encode()),
            (H + "stage", self.stage.encode()),
            (H + "topic", topic.encode()),
            (H + "partition", str(partition).encode()),
            (H + "offset", str(offset).encode()),
            (H + "at", f"{time.time():.3f}".encode()),
        ]
        if msg.key() is not None:
            headers.append((H + "key", msg.key() or b""))
        produce_sync(
            _producer(self.bootstrap),
            self.topics.dlq,
            dlq_key(topic, partition, offset),
            msg.value() or b"",
            headers,
        )
        self.count += 1
        dead_lettered[(self.stage, topic)] += 1
        self.log.error(
            "undecodable record set aside in the dead-letter topic",
            stage=self.stage,
            topic=topic,
            partition=partition,
            offset=offset,
            reason=why,
        )
