"""The embedded stack: Kafka, PostgreSQL and Ray, each unless named externally.

``Stack.start()`` brings up what is missing, applies migrations and creates
topics, then writes ``runtime.json`` so that other ``smsgw`` commands find the
running services. ``Stack.stop()`` stops only what it started, in reverse.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smsgw.cluster.kafka import EmbeddedKafka, EmbeddedKafkaCluster
from smsgw.cluster.postgres import EmbeddedPostgres
from smsgw.cluster.ray_local import EmbeddedRay
from smsgw.cluster.redis_local import EMBEDDED, EmbeddedRedis
from smsgw.cluster.topics import check_replication, ensure_topics
from smsgw.db.migrate import migrate
from smsgw.kafka.security import KafkaCredentials
from smsgw.kafka.security import use_settings as use_kafka_settings
from smsgw.settings import Settings, parse_hostport, write_runtime
from smsgw.topics import Topics


def console_url(s: Settings) -> str:
    """Where the supervisor serves the operator console (login: the Ray token)."""
    host, port = parse_hostport(s.console_listen, 8280)
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}/"


@dataclass
class Stack:
    settings: Settings
    on_step: Callable[[str], None] = lambda _msg: None
    kafka: EmbeddedKafka | EmbeddedKafkaCluster | None = None
    postgres: EmbeddedPostgres | None = None
    ray: EmbeddedRay | None = None
    redis: EmbeddedRedis | None = None
    resolved: dict[str, Any] = field(default_factory=dict)

    def start(self) -> Settings:
        s = self.settings
        # Tokens, credentials and data of every service: the owner's only
        # (PostgreSQL run as another user as root adds search permission, o+x).
        s.home.mkdir(parents=True, exist_ok=True)
        os.chmod(s.home, 0o700)
        try:
            kafka_bootstrap = s.kafka_bootstrap
            if kafka_bootstrap is None:
                self.kafka = self._embedded_kafka(s)
                self.kafka.start()
                kafka_bootstrap = self.kafka.bootstrap
                s = s.with_kafka_credentials()
            use_kafka_settings(s)
            database_url = s.database_url
            if database_url is None:
                self.on_step(f"starting PostgreSQL on 127.0.0.1:{s.postgres_port}")
                self.postgres = EmbeddedPostgres(s.home / "postgres", port=s.postgres_port)
                self.postgres.start()
                database_url = self.postgres.url()
            ray_address = s.ray_address
            dashboard = None
            metrics = None
            if ray_address is None:
                self.on_step(
                    f"starting Ray (dashboard http://{s.ray_dashboard_host}:{s.ray_dashboard_port})"
                )
                redis_address, redis_password = self._gcs_store(s)
                self.ray = EmbeddedRay(
                    s.home / "ray",
                    port=s.ray_port,
                    token_path=s.ray_auth_token_file,
                    node_ip=s.ray_node_ip,
                    dashboard_host=s.ray_dashboard_host,
                    dashboard_port=s.ray_dashboard_port,
                    object_store_mb=s.ray_object_store_mb,
                    metrics_export_port=s.metrics_port,
                    redis_address=redis_address,
                    redis_password=redis_password,
                )
                self.ray.start()
                ray_address = self.ray.address
                dashboard = self.ray.dashboard_url
                metrics = self.ray.metrics_url
                self.on_step(f"Prometheus metrics on {metrics}")
            self.on_step("applying schema migrations")
            migrate(database_url)
            if s.smpp_tls_listen and s.tls_self_signed:
                from smsgw.tls import ensure_self_signed

                fp, made = ensure_self_signed(s.tls_cert_file, s.tls_key_file, s.node_name)
                self.on_step(
                    f"{'made a self-signed' if made else 'using the'} SMPP TLS certificate"
                    f" {s.tls_cert_file} (SHA-256 {fp})"
                )
            self.on_step("creating Kafka topics")
            specs = Topics(s.topic_prefix).specs(s.topic_partitions)
            ensure_topics(kafka_bootstrap, specs)
            check_replication(kafka_bootstrap, specs, fix=s.kafka_fix_replication)
        except BaseException:
            self.stop()
            raise
        self.resolved = {
            "pid": os.getpid(),
            "started_at": time.time(),
            "kafka_bootstrap": kafka_bootstrap,
            "database_url": database_url,
            "ray_address": ray_address,
            "ray_dashboard": dashboard,
            "metrics": metrics,
            "console": console_url(s),
            "smpp_listen": s.smpp_listen,
            "smpp_tls_listen": s.smpp_tls_listen,
            "embedded": {
                "kafka": self.kafka is not None,
                "postgres": self.postgres is not None,
                "ray": self.ray is not None,
                "redis": self.redis is not None,
            },
        }
        write_runtime(s.runtime_file, self.resolved)
        # The actors get these settings: the embedded broker's credentials too.
        return s.model_copy(
            update={
                "kafka_bootstrap": kafka_bootstrap,
                "database_url": database_url,
                "ray_address": ray_address,
            }
        )

    def _gcs_store(self, s: Settings) -> tuple[str | None, str | None]:
        """The Redis behind the head's GCS (address, password): none, external or ours."""
        if s.ray_redis_address is None:
            return None, s.ray_redis_password
        if s.ray_redis_address != EMBEDDED:
            return s.ray_redis_address, s.ray_redis_password
        self.on_step(f"starting Redis for the Ray GCS on 127.0.0.1:{s.ray_redis_port}")
        self.redis = EmbeddedRedis(
            s.home / "redis", port=s.ray_redis_port, password_path=s.ray_redis_password_file
        )
        self.redis.start()
        return self.redis.address, self.redis.password

    def _embedded_kafka(self, s: Settings) -> EmbeddedKafka | EmbeddedKafkaCluster:
        """One broker, or ``kafka_brokers`` of them (heap at most 512 MB each) on this machine."""
        creds = KafkaCredentials.load_or_create(s.kafka_credentials_file)
        if s.kafka_brokers == 1:
            self.on_step(f"starting Kafka on 127.0.0.1:{s.kafka_port} (SASL/SCRAM)")
            return EmbeddedKafka(
                s.home / "kafka",
                port=s.kafka_port,
                controller_port=s.kafka_controller_port,
                version=s.kafka_version,
                heap=s.kafka_heap,
                credentials=creds,
            )
        ports = [s.kafka_port + 2 * i for i in range(s.kafka_brokers)]
        self.on_step(
            f"starting a Kafka cluster of {s.kafka_brokers} brokers on 127.0.0.1:"
            + ",".join(map(str, ports))
            + " (SASL/SCRAM)"
        )
        return EmbeddedKafkaCluster(
            s.home / f"kafka-{s.kafka_brokers}",
            ports=ports,
            controller_ports=[s.kafka_controller_port + 2 * i for i in range(s.kafka_brokers)],
            version=s.kafka_version,
            heap="512m",
            credentials=creds,
        )

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.resolved:
                self.settings.runtime_file.unlink()
        for name in ("ray", "redis", "postgres", "kafka"):
            svc = getattr(self, name)
            if svc is not None:
                self.on_step(f"stopping {name}")
                svc.stop()
                setattr(self, name, None)
