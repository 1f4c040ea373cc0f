"""A local Ray head node (``ray start --head --block``) owned by this process.

``--block`` keeps ``ray start`` in the foreground; stopping its process group
stops the GCS, raylet and dashboard it started, and nothing else's.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path

from smsgw.cluster.procs import ManagedProcess, ServiceError, free_port, port_open, wait_for


def ray_executable() -> str:
    beside = Path(sys.executable).parent / "ray"
    if beside.exists():
        return str(beside)
    found = shutil.which("ray")
    if not found:
        raise ServiceError("the `ray` command is missing: pip install 'ray[default]'")
    return found


def dashboard_ok(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/api/version", timeout=2) as resp:
            return bool(json.loads(resp.read()).get("ray_version"))
    except (OSError, ValueError):
        return False


# Nothing runs on a node we own but our own actors, whose work lives in Kafka:
# there is nothing to drain, so do not wait Ray's default 30 s. And Ray starts
# workers at nice 15 (batch jobs yield to the system); our actors are the
# system: niced, their SMPP sessions stall behind Kafka and the JVM's GC.
RAY_ENV = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "1", "RAY_worker_niceness": "0"}


class EmbeddedRay:
    def __init__(
        self,
        log_dir: Path,
        *,
        port: int,
        dashboard_host: str = "127.0.0.1",
        dashboard_port: int = 8265,
        object_store_mb: int = 256,
        num_cpus: int | None = None,
        resources: dict[str, float] | None = None,
        metrics_export_port: int | None = None,
        env: dict[str, str] | None = None,
        address: str | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.port = port
        self.dashboard_host = dashboard_host
        self.dashboard_port = dashboard_port
        self.object_store_mb = object_store_mb
        self.num_cpus = num_cpus
        self.resources = resources or {}
        self.env = env or {}
        self.join = address  # None: a head node; else the head's GCS address to join
        # Ray's fixed defaults (client server 10001, agent 52365) collide when two
        # instances share a machine (a running gateway and the tests): pick free ones.
        self.metrics_export_port = metrics_export_port or free_port()
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """The node's Prometheus endpoint (Ray's metrics agent, metric names prefixed ``ray_``)."""
        return f"http://127.0.0.1:{self.metrics_export_port}/metrics"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.dashboard_host}:{self.dashboard_port}"

    def start(self, timeout: float = 120.0) -> None:
        if self.join:
            self._start_worker(timeout)
            return
        for p in (self.port, self.dashboard_port, self.metrics_export_port):
            if port_open("127.0.0.1", p):
                raise ServiceError(f"port {p} on 127.0.0.1 is taken; Ray cannot use it")
        argv = [
            ray_executable(),
            "start",
            "--head",
            "--block",
            f"--port={self.port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=true",
            f"--dashboard-host={self.dashboard_host}",
            f"--dashboard-port={self.dashboard_port}",
            f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
            "--disable-usage-stats",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={self.metrics_export_port}",
            "--min-worker-port=0",
            "--max-worker-port=0",
        ]
        if self.num_cpus is not None:
            argv.append(f"--num-cpus={self.num_cpus}")
        if self.resources:
            argv.append(f"--resources={json.dumps(self.resources)}")
        env = {**os.environ, **RAY_ENV, **self.env}
        self.process = ManagedProcess("ray", argv, self.log_dir / "ray.log", env=env)
        self.process.start()
        wait_for(
            lambda: (
                port_open("127.0.0.1", self.port)
                and dashboard_ok(self.dashboard_host, self.dashboard_port)
            ),
            timeout=timeout,
            what="Ray head",
            proc=self.process,
        )

    def _start_worker(self, timeout: float) -> None:
        """Join the head at ``self.join`` as a worker node (tests: two nodes, one host)."""
        argv = [
            ray_executable(),
            "start",
            "--block",
            f"--address={self.join}",
            "--node-ip-address=127.0.0.1",
            f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={self.metrics_export_port}",
            "--min-worker-port=0",
            "--max-worker-port=0",
            "--disable-usage-stats",
        ]
        if self.num_cpus is not None:
            argv.append(f"--num-cpus={self.num_cpus}")
        env = {**os.environ, **RAY_ENV, **self.env}
        self.process = ManagedProcess("ray-worker", argv, self.log_dir / "ray-worker.log", env=env)
        self.process.start()
        wait_for(
            lambda: port_open("127.0.0.1", self.metrics_export_port),
            timeout=timeout,
            what="Ray worker node",
            proc=self.process,
        )

    def kill(self) -> None:
        """SIGKILL the node's whole process group (crash tests: a node lost)."""
        if self.process is not None:
            self.process.kill()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=15)
            self.process = None
