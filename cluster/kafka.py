"""A real single-node Apache Kafka broker (KRaft, combined broker+controller).

Listeners are on 127.0.0.1 only. Internal topics get replication factor 1 and
min ISR 1 — on one node anything higher leaves consumer groups and
transactions unable to work.
"""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from pathlib import Path

from smsgw.cluster.kafka_dist import ensure_kafka_jars, resource_path
from smsgw.cluster.procs import ManagedProcess, ServiceError, port_open, wait_for


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
    ) -> None:
        self.data_dir = data_dir
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

    def server_properties(self) -> dict[str, str]:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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
        props.update(self.extra_config)
        return props

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
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
        """``kafka-storage.sh format --standalone`` on a new data dir only."""
        if (self.log_dir / "meta.properties").exists():
            return
        proc = ManagedProcess(
            "kafka-format",
            self._java_argv(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                f"--cluster-id={_kafka_uuid()}",
                "-c",
                str(config),  # ids may start with "-"
            ),
            self.data_dir / "format.log",
        )
        proc.start()
        assert proc.proc is not None
        if proc.proc.wait(120) != 0:
            raise ServiceError(f"formatting Kafka storage failed:\n{proc.log_tail()}")

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
            md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
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
