"""The unit tier's guard refuses Kafka, PostgreSQL and Ray clients (issue 13).

Before it, five unit-test files built real librdkafka clients (against closed
ports), two of them waiting out librdkafka's timeouts (17 s of the tier).
"""

from __future__ import annotations

from typing import Any

import confluent_kafka
import confluent_kafka.admin
import psycopg
import pytest
import ray

import smsgw.kafka.admin
import smsgw.kafka.consumer
import smsgw.kafka.producer
import smsgw.server.withdraw
from smsgw.kafka.consumer import AsyncConsumer, consumer_config
from smsgw.kafka.producer import AsyncProducer
from smsgw.kafka.transactions import TransactionalProducer
from tests.helpers.unit_guard import InfrastructureRefused

NO_BROKER: dict[str, Any] = {"bootstrap.servers": "127.0.0.1:1"}


def test_kafka_clients_refuse_under_any_name_they_were_imported_by() -> None:
    with pytest.raises(InfrastructureRefused, match=r"confluent_kafka\.Producer in the unit tier"):
        confluent_kafka.Producer(NO_BROKER)
    with pytest.raises(InfrastructureRefused, match=r"Consumer"):
        confluent_kafka.Consumer({**NO_BROKER, "group.id": "g"})
    with pytest.raises(InfrastructureRefused, match=r"AdminClient"):
        confluent_kafka.admin.AdminClient(NO_BROKER)
    # Bound by `from confluent_kafka import ...` before any test ran.
    with pytest.raises(InfrastructureRefused):
        vars(smsgw.kafka.producer)["Producer"](NO_BROKER)
    with pytest.raises(InfrastructureRefused):
        vars(smsgw.kafka.consumer)["Consumer"]({**NO_BROKER, "group.id": "g"})
    with pytest.raises(InfrastructureRefused):
        vars(smsgw.kafka.admin)["AdminClient"](NO_BROKER)
    # As a default argument (TransactionalProducer(factory=Producer)).
    with pytest.raises(InfrastructureRefused):
        TransactionalProducer({**NO_BROKER, "transactional.id": "t"})
    # And by a module imported now.
    later: dict[str, object] = {}
    exec("from confluent_kafka import Producer", later)
    with pytest.raises(InfrastructureRefused):
        later["Producer"](NO_BROKER)  # type: ignore[operator]


async def test_the_gateways_own_clients_refuse() -> None:
    with pytest.raises(InfrastructureRefused):
        AsyncProducer.stage_producer("127.0.0.1:1")
    with pytest.raises(InfrastructureRefused):
        smsgw.server.withdraw.WithdrawingProducer("127.0.0.1:1", submit_topic="submit")
    with pytest.raises(InfrastructureRefused):
        AsyncConsumer(consumer_config("127.0.0.1:1", "g"), ["t"])


def test_the_stand_ins_are_still_the_classes_for_isinstance() -> None:
    assert not isinstance(object(), confluent_kafka.Producer)
    assert issubclass(vars(smsgw.kafka.producer)["Producer"], confluent_kafka.cimpl.Producer)


async def test_postgresql_connections_refuse() -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"
    with pytest.raises(InfrastructureRefused, match=r"psycopg\.connect"):
        psycopg.connect(url)
    with pytest.raises(InfrastructureRefused, match=r"Connection\.connect"):
        psycopg.Connection.connect(url)
    with pytest.raises(InfrastructureRefused, match=r"AsyncConnection\.connect"):
        await psycopg.AsyncConnection.connect(url)


def test_ray_refuses_to_start_or_connect() -> None:
    # In `make test` the unit tier runs after the integration tier, whose session
    # driver is still connected to the harness's Ray: the guard must leave that as
    # it found it, and refuse any new init (clean-clone run ci18 found the test
    # assuming a fresh process).
    connected_before = ray.is_initialized()
    with pytest.raises(InfrastructureRefused, match=r"ray\.init"):
        ray.init(address="127.0.0.1:1")
    assert ray.is_initialized() == connected_before
    if not connected_before:
        # A call that would start Ray by itself (auto-init) goes through ray.init too.
        with pytest.raises(InfrastructureRefused, match=r"ray\.init"):
            ray.put(1)
