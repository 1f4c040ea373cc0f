"""Test harness: real Kafka, PostgreSQL and Ray, started once per session.

Each service starts only when a test asks for it, and any failure to start
fails the run loudly — integration tests are never skipped. Each test gets
fresh topics (its own prefix) and a fresh database. Every service is stopped
(its whole process group) and its data dir removed at the end, the dirs kept
if a test failed (tests/helpers/scratch.py); Ray's session dirs go to one dir
of the run's own (``RAY_TMPDIR``), not to /tmp/ray where they piled up.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest
from hypothesis import settings
from psycopg import sql

from smsgw.cluster.kafka import EmbeddedKafka, EmbeddedKafkaCluster
from smsgw.cluster.postgres import EmbeddedPostgres
from smsgw.cluster.procs import free_port
from smsgw.cluster.ray_local import EmbeddedRay, auth_env
from smsgw.cluster.topics import ensure_topics
from smsgw.db.migrate import migrate
from smsgw.kafka.security import KafkaCredentials, use_security
from smsgw.topics import Topics
from tests.helpers import scratch

if TYPE_CHECKING:  # imports Ray: only the tests that start a gateway on it pay for that
    from tests.helpers.cluster import Runtime

# How many examples the property tests try (tests/helpers/depth.py): `make unit`
# loads "unit" (a quarter of each count), `make test` "full" (as written), `make
# test-deep` "deep" (ten times), each by --hypothesis-profile.
# CI gates a merge: there the property tests run a fixed set of examples (a
# failure is reproducible and not luck of the draw); everywhere else they
# explore at random, which is where new counterexamples come from.
_CI = bool(os.environ.get("SMSGW_CI"))
for _name, _max_examples in {"unit": 25, "full": 100, "deep": 1000}.items():
    settings.register_profile(_name, max_examples=_max_examples, derandomize=_CI, print_blob=_CI)
settings.register_profile("ci", derandomize=True, print_blob=True)  # "full", fixed
settings.load_profile("ci" if _CI else "full")


RAY_TMP = pytest.StashKey[scratch.DataDir]()


def pytest_sessionstart(session: pytest.Session) -> None:
    scratch.attach(session)
    # Every Ray node the run starts (the session head, second nodes, the heads of
    # `smsgw run` processes) and every driver keeps its session dir here (Ray's
    # default is /tmp/ray, never cleaned): removed with the run's other dirs.
    ray_tmp = session.stash[RAY_TMP] = scratch.DataDir("raytmp")
    os.environ["RAY_TMPDIR"] = str(ray_tmp.path)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # The session's services have stopped by now (fixture teardown).
    if RAY_TMP in session.stash:
        session.stash[RAY_TMP].done(ok=exitstatus == 0)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if scratch.kept:
        terminalreporter.write_sep("-", "data dirs kept for failed tests")
        for path in scratch.kept:
            terminalreporter.write_line(str(path))


@pytest.fixture
def data_dir() -> Iterator[scratch.TestDirs]:
    """``data_dir(name)``: a fresh dir for this test, removed after it (kept if it failed)."""
    dirs = scratch.TestDirs()
    yield dirs
    dirs.close()


@pytest.fixture(scope="session")
def kafka() -> Iterator[EmbeddedKafka]:
    with scratch.DataDir("kafka") as kafka_dir:
        creds = KafkaCredentials.load_or_create(kafka_dir / "credentials.json")
        broker = EmbeddedKafka(
            kafka_dir,
            port=free_port(),
            controller_port=free_port(),
            heap="768m",
            credentials=creds,
        )
        try:
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
        finally:
            # Its data goes with the run: no graceful shutdown to wait for (~20 s of
            # controlled shutdown with a session's worth of partitions).
            broker.kill()


@pytest.fixture(scope="session")
def kafka3(kafka: EmbeddedKafka) -> Iterator[EmbeddedKafkaCluster]:
    """Three controller+broker processes (512 MB heap each), the session broker's SCRAM
    user: what ``SMSGW_KAFKA_BROKERS=3`` starts. Tests that stop a broker start it again."""
    with scratch.DataDir("kafka3") as data:
        cluster = EmbeddedKafkaCluster(
            data,
            ports=[free_port() for _ in range(3)],
            controller_ports=[free_port() for _ in range(3)],
            heap="512m",
            credentials=kafka.credentials,
        )
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.kill()  # as the session broker: its data goes with the run


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    with scratch.DataDir("pg") as data:
        server = EmbeddedPostgres(data, port=free_port())
        try:
            server.start()
            yield server
        finally:
            # Its data goes with the run: no shutdown checkpoint to wait for (12 s after
            # a session's worth of databases on a busy disk); SIGKILL to its group.
            if server.process is not None:
                server.process.kill()
                server.process = None


@pytest.fixture(scope="session")
def ray_head() -> Iterator[EmbeddedRay]:
    with scratch.DataDir("ray") as ray_dir:
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
        try:
            head.start()
            _HARNESS_RAY.append(head)
            os.environ["RAY_ADDRESS"] = head.address
            # Every driver in this session (rt.connect) and every node joining presents
            # the token.
            os.environ.update(auth_env(head.token_path))
            yield head
        finally:
            import ray

            if ray.is_initialized():
                ray.shutdown()  # the driver first, or it reports every actor dying with the head
            _HARNESS_RAY.clear()
            head.stop()


# The session's Ray head once started (empty before and after): for the module check below.
_HARNESS_RAY: list[EmbeddedRay] = []


@pytest.fixture(autouse=True, scope="module")
def _ray_driver_leaves_with_its_module() -> Iterator[None]:
    """No Ray driver outlives the test module that connected it, and the session's Ray head
    is still up after every module.

    A driver left connected is a hazard to every later test: when the head it is
    connected to goes away, Ray's core worker in this process aborts the whole run
    after ``gcs_rpc_server_reconnect_timeout_s`` (stop 20's CI: ``make: *** Aborted``
    in test_tls, no traceback), and a gateway a later test starts joins that
    driver's cluster instead of the test's own (ci18's head-loss failure). A head
    found dead fails the module that was running, instead of a later one.
    """
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    for head in _HARNESS_RAY:
        proc = head.process.proc if head.process is not None else None
        if proc is None or proc.poll() is not None:
            code = None if proc is None else proc.returncode
            _HARNESS_RAY.clear()
            pytest.fail(
                f"the session's Ray head ({head.address}) stopped during this module "
                f"(exit code {code}); its log: {head.log_dir / 'ray.log'}"
            )


@pytest.fixture
def bootstrap(kafka: EmbeddedKafka) -> str:
    return kafka.bootstrap


@pytest.fixture
def topics(kafka: EmbeddedKafka) -> Topics:
    """The gateway's topics under a prefix of this test's own."""
    t = Topics(prefix=f"t{uuid.uuid4().hex[:10]}.")
    ensure_topics(kafka.bootstrap, t.specs(partitions=3))
    return t


@pytest.fixture(scope="session")
def migrated_template(postgres: EmbeddedPostgres) -> str:
    """A database migrated once, the template of each test's own (a copy takes ~0.3 s
    where running the migrations took ~0.6-0.8 s more, for every test on PostgreSQL)."""
    name = f"template_{uuid.uuid4().hex[:8]}"
    migrate(postgres.create_database(name))
    return name


@pytest.fixture
def db_url(postgres: EmbeddedPostgres, migrated_template: str) -> str:
    """A fresh, migrated database: a copy of the migrated template (nothing connects to
    the template after its migration, as CREATE DATABASE ... TEMPLATE requires)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(migrated_template)
            )
        )
    return postgres.url(name)


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
