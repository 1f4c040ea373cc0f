"""A real single-node Apache Kafka broker (KRaft, combined broker+controller).

Listeners are on 127.0.0.1 only. Internal topics get replication factor 1 and
min ISR 1 — on one node anything higher leaves consumer groups and
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
    ) -> None:
        self.data_dir = data_dir
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
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            **self._listener_properties(),
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.log_dir),
            "num.partitions": "6",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
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
        proc = ManagedProcess(
            "kafka-format",
            self._java_argv(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                f"--cluster-id={_kafka_uuid()}",
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
        self._check_ports()
        config = self._write_config()
        self.format_once(config)
        self.process = ManagedProcess(
            "kafka", self._java_argv("kafka.Kafka", str(config)), self.data_dir / "kafka.log"
        )
        self.process.start()
        wait_for(self.ready, timeout=timeout, what="Kafka broker", proc=self.process)

    def ready(self) -> bool:
        """The broker answers metadata and has registered itself."""
        if not port_open("127.0.0.1", self.port):
            return False
        from confluent_kafka.admin import AdminClient

        try:
            admin = AdminClient(client_config(self.bootstrap, security=self.client_security))
            md = admin.list_topics(timeout=2)
        except Exception:
            return False
        return len(md.brokers) > 0

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=30)
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process = None
