"""Real Apache Kafka brokers (KRaft, combined broker+controller) on this machine.

One broker (``EmbeddedKafka``) or a cluster of several (``EmbeddedKafkaCluster``,
``SMSGW_KAFKA_BROKERS=3``: each its own ports, data dir and JVM, a static
controller quorum of all of them), so broker failover is exercised without
other machines. Listeners are on 127.0.0.1 only. Internal topics (consumer
offsets, transaction state) get ``min(3, brokers)`` replicas and min ISR one
less (at least 1) — on one node anything higher leaves consumer groups and
transactions unable to work.

Loopback is not a boundary between local users: with credentials the client
listener requires SASL/SCRAM (the user is created when the storage is
formatted, ``--add-scram``), and the data, logs and config (which holds the
password) are readable by the broker's user only. The controller listener stays
PLAINTEXT on loopback: only the broker itself talks to it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from smsgw.cluster.kafka_dist import ensure_kafka_jars, resource_path
from smsgw.cluster.kafka_tuning import BROKER_LOAD_SETTINGS
from smsgw.cluster.procs import ManagedProcess, ServiceError, port_open, wait_for
from smsgw.kafka.security import KafkaCredentials, client_config


def _kafka_uuid() -> str:
    """What ``kafka-storage.sh random-uuid`` prints: 16 random bytes, base64url, unpadded."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServiceError(
            "Java 17+ is needed for the Kafka broker: apt-get install openjdk-17-jre-headless"
        )
    return java


class EmbeddedKafka:
    """Formats (once) and runs a broker in ``data_dir``; ports stay with the data dir."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        controller_port: int,
        version: str = "4.3.1",
        heap: str = "768m",
        extra_config: dict[str, str] | None = None,
        credentials: KafkaCredentials | None = None,
        node_id: int = 1,
        voters: Sequence[tuple[int, int]] | None = None,
        cluster_id: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.node_id = node_id
        # (node id, controller port) of every controller: a static quorum; None: standalone.
        self.voters = list(voters) if voters else None
        self.cluster_id = cluster_id
        self.credentials = credentials  # None: PLAINTEXT, anyone on the host may connect
        self.port = port
        self.controller_port = controller_port
        self.version = version
        self.heap = heap
        self.extra_config = extra_config or {}
        self.process: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "data"

    @property
    def client_security(self) -> dict[str, str]:
        """What a client of this broker adds to its config (``client_config(security=)``)."""
        return self.credentials.client_security() if self.credentials else {}

    def _listener_properties(self) -> dict[str, str]:
        client = f"127.0.0.1:{self.port}"
        controller = f"CONTROLLER://127.0.0.1:{self.controller_port}"
        if self.credentials is None:
            return {
                "listeners": f"PLAINTEXT://{client},{controller}",
                "advertised.listeners": f"PLAINTEXT://{client}",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            }
        c = self.credentials
        login = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{c.username}" password="{c.password}";'
        )
        return {
            "listeners": f"SASL_PLAINTEXT://{client},{controller}",
            "advertised.listeners": f"SASL_PLAINTEXT://{client}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": c.mechanism,
            "sasl.mechanism.inter.broker.protocol": c.mechanism,
            f"listener.name.sasl_plaintext.{c.mechanism.lower()}.sasl.jaas.config": login,
        }

    def server_properties(self) -> dict[str, str]:
        nodes = len(self.voters) if self.voters else 1
        rf = str(min(3, nodes))
        isr = str(max(1, min(3, nodes) - 1))
        quorum = (
            {"controller.quorum.voters": ",".join(f"{i}@127.0.0.1:{p}" for i, p in self.voters)}
            if self.voters
            else {"controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}"}
        )
        # Several brokers: a dead one is fenced (and dropped from every ISR, its
        # partitions given new leaders) 3 s after its last heartbeat instead of 9 s,
        # well within a producer's SMSGW_PRODUCE_TIMEOUT_S (5 s).
        failover = (
            {"broker.heartbeat.interval.ms": "500", "broker.session.timeout.ms": "3000"}
            if self.voters
            else {}
        )
        props = {
            **failover,
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            **quorum,
            **self._listener_properties(),
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.log_dir),
            "num.partitions": "6",
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "log.cleaner.threads": "1",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.flush.interval.messages": str(2**62),
            "log.retention.hours": "168",
        }
        props.update(BROKER_LOAD_SETTINGS)  # thread pools for this load (kafka_tuning.py)
        props.update(self.extra_config)
        return props

    def _private_dirs(self) -> None:
        """Data, logs and config (with the SCRAM password): the broker's user only."""
        for d in (self.data_dir, self.log_dir, self.data_dir / "logs"):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)

    def _write_config(self) -> Path:
        self._private_dirs()
        path = self.data_dir / "server.properties"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        os.chmod(path, 0o600)
        return path

    def _classpath(self) -> str:
        return str(ensure_kafka_jars(self.version)) + "/*"

    def _java_argv(self, main: str, *args: str) -> list[str]:
        return [
            _java(),
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={resource_path('log4j2.properties')}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            "-cp",
            self._classpath(),
            main,
            *args,
        ]

    def format_once(self, config: Path) -> None:
        """``kafka-storage.sh format --standalone`` on a new data dir only.

        The SCRAM user goes into the metadata log here (``--add-scram``): a
        broker whose clients must authenticate has a user before its first start.
        """
        if (self.log_dir / "meta.properties").exists():
            if self.credentials is not None and not (self.data_dir / "scram").exists():
                raise ServiceError(
                    f"Kafka data in {self.data_dir} was formatted without SASL users; "
                    "move it away to start a new broker that requires authentication"
                )
            return
        scram: list[str] = []
        if self.credentials is not None:
            c = self.credentials
            scram = ["--add-scram", f"{c.mechanism}=[name={c.username},password={c.password}]"]
        # A static quorum (controller.quorum.voters) is formatted without
        # --standalone; its members share one cluster id.
        quorum = [] if self.voters else ["--standalone"]
        proc = ManagedProcess(
            "kafka-format",
            self._java_argv(
                "kafka.tools.StorageTool",
                "format",
                *quorum,
                f"--cluster-id={self.cluster_id or _kafka_uuid()}",
                *scram,
                "-c",
                str(config),  # ids may start with "-"
            ),
            self.data_dir / "format.log",
        )
        proc.start()
        assert proc.proc is not None
        if proc.proc.wait(120) != 0:
            raise ServiceError(f"formatting Kafka storage failed:\n{proc.log_tail()}")
        if self.credentials is not None:
            (self.data_dir / "scram").write_text(self.credentials.username)

    def _check_ports(self) -> None:
        """A persistent broker keeps its ports: KRaft stores the controller endpoint."""
        ports_file = self.data_dir / "ports.json"
        wanted = {"port": self.port, "controller_port": self.controller_port}
        if (self.log_dir / "meta.properties").exists() and ports_file.exists():
            stored = json.loads(ports_file.read_text())
            if stored.get("controller_port") != self.controller_port:
                raise ServiceError(
                    f"Kafka data in {self.data_dir} was formatted with controller port "
                    f"{stored.get('controller_port')}; use that port or a new data dir"
                )
        for p in wanted.values():
            if port_open("127.0.0.1", p):
                raise ServiceError(f"port {p} on 127.0.0.1 is taken; Kafka cannot listen there")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports_file.write_text(json.dumps(wanted))

    def start(self, timeout: float = 90.0) -> None:
        self.launch()
        wait_for(self.ready, timeout=timeout, what="Kafka broker", proc=self.process)

    def launch(self) -> None:
        """Format (once) and start the process, without waiting for it (a quorum starts
        only once enough of its controllers run)."""
        self._check_ports()
        config = self._write_config()
        self.format_once(config)
        self.process = ManagedProcess(
            f"kafka-{self.node_id}",
            self._java_argv("kafka.Kafka", str(config)),
            self.data_dir / "kafka.log",
        )
        self.process.start()

    def ready(self) -> bool:
        """The broker answers metadata and has registered itself."""
        return _registered(self.port, self.client_security, {self.node_id})

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=30)
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process = None


def _registered(port: int, security: dict[str, str], wanted: set[int]) -> bool:
    """The broker on ``port`` answers metadata that lists every broker in ``wanted``."""
    if not port_open("127.0.0.1", port):
        return False
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient(client_config(f"127.0.0.1:{port}", security=security))
        md = admin.list_topics(timeout=2)
    except Exception:
        return False
    return wanted <= set(md.brokers)


class EmbeddedKafkaCluster:
    """``brokers`` combined controller+broker processes: a static KRaft quorum of all.

    Node ``i`` (ids 1..n) keeps its data in ``data_dir/node-<i>`` on its own
    client and controller port; the cluster id is made once and kept. Tests stop,
    kill and restart single nodes (``node(i)``) to exercise failover.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        ports: Sequence[int],
        controller_ports: Sequence[int],
        version: str = "4.3.1",
        heap: str = "512m",
        credentials: KafkaCredentials | None = None,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        if len(ports) != len(controller_ports) or not ports:
            raise ValueError("one client and one controller port per broker")
        self.data_dir = data_dir
        self.credentials = credentials
        voters = [(i + 1, p) for i, p in enumerate(controller_ports)]
        self.nodes = [
            EmbeddedKafka(
                data_dir / f"node-{i + 1}",
                port=port,
                controller_port=cport,
                version=version,
                heap=heap,
                extra_config=extra_config,
                credentials=credentials,
                node_id=i + 1,
                voters=voters,
                cluster_id=self._cluster_id(),
            )
            for i, (port, cport) in enumerate(zip(ports, controller_ports, strict=True))
        ]

    def _cluster_id(self) -> str:
        path = self.data_dir / "cluster.id"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.data_dir, 0o700)
            path.write_text(_kafka_uuid())
        return path.read_text().strip()

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def client_security(self) -> dict[str, str]:
        return self.credentials.client_security() if self.credentials else {}

    def node(self, node_id: int) -> EmbeddedKafka:
        return self.nodes[node_id - 1]

    def start(self, timeout: float = 120.0) -> None:
        for n in self.nodes:
            if n.process is None or not n.process.alive():
                n.launch()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 120.0, nodes: Sequence[int] | None = None) -> None:
        """Until every broker (or those in ``nodes``) is registered with the cluster."""
        ids = set(nodes) if nodes is not None else {n.node_id for n in self.nodes}
        for i in sorted(ids):
            n = self.node(i)
            wait_for(
                lambda n=n: _registered(n.port, self.client_security, ids),  # type: ignore[misc]
                timeout=timeout,
                what=f"Kafka broker {i} of {len(self.nodes)}",
                proc=n.process,
            )

    def restart(self, node_id: int, timeout: float = 120.0) -> None:
        """Start one stopped or killed node again and wait until it is registered."""
        n = self.node(node_id)
        n.launch()
        wait_for(n.ready, timeout=timeout, what=f"Kafka broker {node_id}", proc=n.process)

    def stop(self) -> None:
        for n in reversed(self.nodes):
            n.stop()

    def kill(self) -> None:
        for n in self.nodes:
            n.kill()
