"""The embedded broker serves only clients with the gateway's SCRAM credentials.

Before: PLAINTEXT on loopback, so any local user read message text from
``submit`` and injected records a provider then delivered; data files were
world-readable.
"""

from __future__ import annotations

import stat
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from smsgw.cluster.kafka import EmbeddedKafka
from smsgw.kafka.security import client_config
from smsgw.topics import Topics
from tests.helpers.kafka import drain, produce_all

pytestmark = pytest.mark.integration

WRONG = {"sasl.password": "not-the-password"}


def _intruders(kafka: EmbeddedKafka) -> dict[str, dict[str, str]]:
    return {
        "no credentials": {},
        "wrong password": {**kafka.client_security, **WRONG},
    }


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_client_without_the_credentials_cannot_read_submit(
    kafka: EmbeddedKafka, topics: Topics
) -> None:
    secret = f"secret-{uuid.uuid4().hex}".encode()
    produce_all(kafka.bootstrap, topics.submit, [secret])
    for name, security in _intruders(kafka).items():
        errors: list[KafkaError] = []
        consumer = Consumer(
            client_config(
                kafka.bootstrap,
                {
                    "group.id": f"intruder-{uuid.uuid4().hex[:8]}",
                    "auto.offset.reset": "earliest",
                    "error_cb": errors.append,
                },
                security=security,
            )
        )
        got: list[bytes] = []
        try:
            consumer.subscribe([topics.submit])
            deadline = time.monotonic() + 60
            # Until librdkafka reports the refusal (or, on an open broker, the record).
            while not errors and not got and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and not msg.error():
                    got.append(msg.value() or b"")
        finally:
            consumer.close()
        assert got == [], f"{name}: read {got}"
        assert errors, f"{name}: no error reported within 60 s"
    # The gateway's own credentials read it: the refusals were not an empty topic.
    assert [m.value() for m in drain(kafka.bootstrap, topics.submit, expect=1)] == [secret]


def _produce_as(bootstrap: str, topic: str, security: dict[str, str]) -> list[KafkaError | None]:
    """The delivery report's error of one record produced with ``security``."""
    reports: list[KafkaError | None] = []
    producer = Producer(client_config(bootstrap, {"message.timeout.ms": 10_000}, security=security))
    producer.produce(topic, b"forged", on_delivery=lambda err, _msg: reports.append(err))
    producer.flush(30)
    return reports


def test_a_client_without_the_credentials_cannot_produce_to_submit(
    kafka: EmbeddedKafka, topics: Topics
) -> None:
    for name, security in _intruders(kafka).items():
        reports = _produce_as(kafka.bootstrap, topics.submit, security)
        assert len(reports) == 1 and reports[0] is not None, f"{name}: {reports}"
    produce_all(kafka.bootstrap, topics.submit, [b"genuine"])
    # Everything on the topic (an intruder's record would be there before the genuine one).
    values = [m.value() for m in drain(kafka.bootstrap, topics.submit, timeout=30)]
    assert values == [b"genuine"]


def test_the_brokers_data_logs_and_config_are_the_owners_only(kafka: EmbeddedKafka) -> None:
    for d in (kafka.data_dir, kafka.log_dir, kafka.data_dir / "logs"):
        assert _mode(d) == 0o700, f"{d}: {oct(_mode(d))}"
    config = kafka.data_dir / "server.properties"  # holds the SCRAM password
    assert _mode(config) == 0o600, oct(_mode(config))
    assert kafka.credentials is not None
    assert kafka.credentials.password in config.read_text()
