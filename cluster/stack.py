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

from smsgw.cluster.kafka import EmbeddedKafka
from smsgw.cluster.postgres import EmbeddedPostgres
from smsgw.cluster.ray_local import EmbeddedRay
from smsgw.cluster.topics import ensure_topics
from smsgw.db.migrate import migrate
from smsgw.settings import Settings, write_runtime
from smsgw.topics import Topics


@dataclass
class Stack:
    settings: Settings
    with_ray: bool = True
    on_step: Callable[[str], None] = lambda _msg: None
    kafka: EmbeddedKafka | None = None
    postgres: EmbeddedPostgres | None = None
    ray: EmbeddedRay | None = None
    resolved: dict[str, Any] = field(default_factory=dict)

    def start(self) -> Settings:
        s = self.settings
        s.home.mkdir(parents=True, exist_ok=True)
        try:
            kafka_bootstrap = s.kafka_bootstrap
            if kafka_bootstrap is None:
                self.on_step(f"starting Kafka on 127.0.0.1:{s.kafka_port}")
                self.kafka = EmbeddedKafka(
                    s.home / "kafka",
                    port=s.kafka_port,
                    controller_port=s.kafka_controller_port,
                    version=s.kafka_version,
                    heap=s.kafka_heap,
                )
                self.kafka.start()
                kafka_bootstrap = self.kafka.bootstrap
            database_url = s.database_url
            if database_url is None:
                self.on_step(f"starting PostgreSQL on 127.0.0.1:{s.postgres_port}")
                self.postgres = EmbeddedPostgres(s.home / "postgres", port=s.postgres_port)
                self.postgres.start()
                database_url = self.postgres.url()
            ray_address = s.ray_address
            dashboard = None
            if ray_address is None and self.with_ray:
                self.on_step(
                    f"starting Ray (dashboard http://{s.ray_dashboard_host}:{s.ray_dashboard_port})"
                )
                self.ray = EmbeddedRay(
                    s.home / "ray",
                    port=s.ray_port,
                    dashboard_host=s.ray_dashboard_host,
                    dashboard_port=s.ray_dashboard_port,
                    object_store_mb=s.ray_object_store_mb,
                )
                self.ray.start()
                ray_address = self.ray.address
                dashboard = self.ray.dashboard_url
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
            ensure_topics(kafka_bootstrap, Topics(s.topic_prefix).specs(s.topic_partitions))
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
            "smpp_listen": s.smpp_listen,
            "smpp_tls_listen": s.smpp_tls_listen,
            "embedded": {
                "kafka": self.kafka is not None,
                "postgres": self.postgres is not None,
                "ray": self.ray is not None,
            },
        }
        write_runtime(s.runtime_file, self.resolved)
        return s.model_copy(
            update={
                "kafka_bootstrap": kafka_bootstrap,
                "database_url": database_url,
                "ray_address": ray_address,
            }
        )

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.resolved:
                self.settings.runtime_file.unlink()
        for name in ("ray", "postgres", "kafka"):
            svc = getattr(self, name)
            if svc is not None:
                self.on_step(f"stopping {name}")
                svc.stop()
                setattr(self, name, None)
