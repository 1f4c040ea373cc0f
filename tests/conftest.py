"""Test harness: real Kafka, PostgreSQL and Ray, started once per session.

Each service starts only when a test asks for it, and any failure to start
fails the run loudly — integration tests are never skipped. Each test gets
fresh topics (its own prefix) and a fresh database.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

from smsgw.cluster.kafka import EmbeddedKafka, EmbeddedKafkaCluster
from smsgw.cluster.postgres import EmbeddedPostgres
from smsgw.cluster.procs import free_port
from smsgw.cluster.ray_local import EmbeddedRay, auth_env
from smsgw.cluster.topics import ensure_topics
from smsgw.db.migrate import migrate
from smsgw.kafka.security import KafkaCredentials, use_security
from smsgw.topics import Topics

if TYPE_CHECKING:  # imports Ray: only the tests that start a gateway on it pay for that
    from tests.helpers.cluster import Runtime

# CI gates a merge: there the property tests run a fixed set of examples (a
# failure is reproducible and not luck of the draw); everywhere else they
# explore at random, which is where new counterexamples come from.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("SMSGW_CI"):
    settings.load_profile("ci")


def _service_dir(name: str) -> Path:
    # Not pytest's tmp_path: as root that lives under a 0700 dir PostgreSQL's
    # unprivileged user could not enter.
    return Path(tempfile.mkdtemp(prefix=f"smsgw-test-{name}-"))


@pytest.fixture(scope="session")
def kafka() -> Iterator[EmbeddedKafka]:
    kafka_dir = _service_dir("kafka")
    creds = KafkaCredentials.load_or_create(kafka_dir / "credentials.json")
    broker = EmbeddedKafka(
        kafka_dir,
        port=free_port(),
        controller_port=free_port(),
        heap="768m",
        credentials=creds,
    )
    broker.start()
    # Clients of this process, the Settings() tests build (and pass to actors) and
    # processes they start: all authenticate as the gateway would.
    use_security(broker.client_security)
    os.environ.update(
        SMSGW_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        SMSGW_KAFKA_SASL_MECHANISM=creds.mechanism,
        SMSGW_KAFKA_SASL_USERNAME=creds.username,
        SMSGW_KAFKA_SASL_PASSWORD=creds.password,
    )
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka3(kafka: EmbeddedKafka) -> Iterator[EmbeddedKafkaCluster]:
    """Three controller+broker processes (512 MB heap each), the session broker's SCRAM
    user: what ``SMSGW_KAFKA_BROKERS=3`` starts. Tests that stop a broker start it again."""
    cluster = EmbeddedKafkaCluster(
        _service_dir("kafka3"),
        ports=[free_port() for _ in range(3)],
        controller_ports=[free_port() for _ in range(3)],
        heap="512m",
        credentials=kafka.credentials,
    )
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(_service_dir("pg"), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ray_head() -> Iterator[EmbeddedRay]:
    ray_dir = _service_dir("ray")
    head = EmbeddedRay(
        ray_dir,
        port=free_port(),
        token_path=ray_dir / "auth_token",
        dashboard_port=free_port(),
        object_store_mb=128,
        # Metrics reach the export endpoint within a second or two (default 10 s).
        env={
            "RAY_metrics_report_interval_ms": "1000",
            # Declare a killed node dead in seconds, not the default half-minute.
            "RAY_health_check_period_ms": "1000",
            "RAY_health_check_timeout_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
        },
    )
    head.start()
    os.environ["RAY_ADDRESS"] = head.address
    # Every driver in this session (rt.connect) and every node joining presents the token.
    os.environ.update(auth_env(head.token_path))
    yield head
    import ray

    if ray.is_initialized():
        ray.shutdown()  # the driver first, or it reports every actor dying with the head
    head.stop()


@pytest.fixture
def bootstrap(kafka: EmbeddedKafka) -> str:
    return kafka.bootstrap


@pytest.fixture
def topics(kafka: EmbeddedKafka) -> Topics:
    """The gateway's topics under a prefix of this test's own."""
    t = Topics(prefix=f"t{uuid.uuid4().hex[:10]}.")
    ensure_topics(kafka.bootstrap, t.specs(partitions=3))
    return t


@pytest.fixture
def db_url(postgres: EmbeddedPostgres) -> str:
    """A fresh, migrated database."""
    url = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    migrate(url)
    return url


@pytest.fixture
def runtime(
    ray_head: EmbeddedRay, bootstrap: str, db_url: str, topics: Topics
) -> Iterator[Runtime]:
    """A gateway on the Ray runtime (supervisor and actors) on this test's topics and
    database, stopped after the test; ``configure`` then ``start`` it."""
    from tests.helpers.cluster import Runtime

    rt = Runtime(ray_head.address, bootstrap, db_url, topics, free_port())
    yield rt
    rt.stop()
