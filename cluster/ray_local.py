"""A local Ray head node (``ray start --head --block``) owned by this process.

``--block`` keeps ``ray start`` in the foreground; stopping its process group
stops the GCS, raylet and dashboard it started, and nothing else's.

Ray runs whatever code a client sends it (job submission, Ray Client, a driver
joining the GCS), so a Ray nobody authenticates is a root shell for whoever
reaches its ports. Every node we start requires Ray's token authentication
(``RAY_AUTH_MODE=token``, the token in a 0600 file under ``$SMSGW_HOME``), and
a single-node head listens on loopback only.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from smsgw.actors.loopback import is_loopback
from smsgw.cluster.procs import ManagedProcess, ServiceError, free_port, port_open, wait_for
from smsgw.credentials import ray_token

RAY_STARTED = "Ray runtime started"  # `ray start` prints it once its node is registered


def ray_command() -> list[str]:
    """``ray`` with a loopback node IP kept on loopback (see ``smsgw.actors.loopback``)."""
    return [sys.executable, "-m", "smsgw.actors.loopback"]


def ensure_auth_token(path: Path) -> Path:
    """The cluster's token file, created (256 random bits, mode 0600) if absent.

    The same generator as ``ray get-auth-token --generate``; created with
    ``O_EXCL`` so that two starts never write different tokens.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        return path
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path


def auth_env(token_path: Path) -> dict[str, str]:
    """What every Ray process and driver needs in its environment to authenticate.

    Ray reads these when its config is first loaded (``ray start``, the GCS,
    raylets and every worker it spawns inherit them), so a driver must have
    them before ``ray.init``.
    """
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}


def auth_token(default_path: Path | None = None) -> str | None:
    """The token a client presents: ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, else ours."""
    return ray_token(default_path)


def require_token(node_ip: str, env: Mapping[str, str]) -> None:
    """Refuse to start a Ray node reachable from other hosts without token authentication.

    A node on loopback is reachable by this host's users only; on any other
    address Ray's ports answer the network (SECURITY.md), and a Ray that does
    not check the token runs whatever code a client sends. ``env`` is the
    node's own environment: an operator's ``RAY_AUTH_MODE=disabled`` there
    would otherwise win.
    """
    if is_loopback(node_ip):
        return
    if env.get("RAY_AUTH_MODE") != "token":
        raise ServiceError(
            f"Ray on {node_ip} (not loopback) needs RAY_AUTH_MODE=token, not "
            f"{env.get('RAY_AUTH_MODE')!r}: other hosts could run code through it"
        )
    named = env.get("RAY_AUTH_TOKEN_PATH")
    token = env.get("RAY_AUTH_TOKEN") or (
        Path(named).read_text().strip() if named and Path(named).is_file() else ""
    )
    if not token.strip():
        raise ServiceError(
            f"Ray on {node_ip} (not loopback) needs its token: RAY_AUTH_TOKEN or a non-empty "
            f"RAY_AUTH_TOKEN_PATH file (now {named!r})"
        )


def dashboard_ok(host: str, port: int, token: str | None = None) -> bool:
    """The dashboard answers ``/api/version`` (with the token: it refuses anything without)."""
    req = urllib.request.Request(f"http://{host}:{port}/api/version")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return bool(json.loads(resp.read()).get("ray_version"))
    except (OSError, ValueError):
        return False


# Nothing runs on a node we own but our own actors, whose work lives in Kafka:
# there is nothing to drain, so do not wait Ray's default 30 s. And Ray starts
# workers at nice 15 (batch jobs yield to the system); our actors are the
# system: niced, their SMPP sessions stall behind Kafka and the JVM's GC.
RAY_ENV = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "1", "RAY_worker_niceness": "0"}

# Ray rotates every log file (one per worker, raylet, GCS, dashboard...) at
# 512 MiB with 5 backups by default (ray._common.ray_constants): with a few
# dozen actors that is tens of GiB a peer's protocol errors could fill. Ours:
# 64 MiB x 3 per file. An operator's own RAY_ROTATION_* wins (Ray docs,
# "Log rotation": the environment of `ray start`).
LOG_ROTATION = {"RAY_ROTATION_MAX_BYTES": str(64 * 1024 * 1024), "RAY_ROTATION_BACKUP_COUNT": "3"}


def log_rotation_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Ray's log rotation settings: ours, unless the environment names its own."""
    env = os.environ if environ is None else environ
    return {k: env.get(k) or v for k, v in LOG_ROTATION.items()}


# A head of its own binds every server (GCS, raylet, object manager, workers,
# dashboard agent, runtime-env agent, Ray Client, metrics) to the node's IP, or
# to loopback when that IP is 127.0.0.1. But Ray turns an explicit
# ``--node-ip-address=127.0.0.1`` into the host's external address
# (``services.resolve_ip_for_localhost``) unless multi-node clusters are off
# (``ray_constants.ENABLE_RAY_CLUSTER``): then the node's IP stays 127.0.0.1.
# Only for a single-node head: a node with this set cannot join a cluster.
LOOPBACK_ONLY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def agent_port_args(metrics_export_port: int | None = None) -> list[str]:
    """``ray start`` flags naming every port of the node's agents in advance.

    A raylet whose agents pick their own ports waits for them to write the
    ports into files, 15 s at most, hard-coded, then exits with status 1
    (ray-project/ray#65983): a head restarted under load lost its raylet so
    (its agents took 15-17 s to start), and with it the head's listener.
    Ports given on the command line need no such wait. Free on this host's
    loopback when chosen; a node in a network namespace of its own has every
    port free.
    """
    return [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={metrics_export_port or free_port()}",
    ]


RAY_NODE_TIMEOUT = "timed out during startup"  # `ray start`'s words when it gives up


class EmbeddedRay:
    def __init__(
        self,
        log_dir: Path,
        *,
        port: int,
        token_path: Path,
        node_ip: str = "127.0.0.1",
        dashboard_host: str = "127.0.0.1",
        dashboard_port: int = 8265,
        object_store_mb: int = 256,
        num_cpus: int | None = None,
        resources: dict[str, float] | None = None,
        metrics_export_port: int | None = None,
        env: dict[str, str] | None = None,
        address: str | None = None,
        redis_address: str | None = None,
        redis_password: str | None = None,
        temp_dir: Path | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.port = port
        self.token_path = token_path
        self.node_ip = node_ip  # 127.0.0.1: nothing outside this host can reach the node
        self.dashboard_host = dashboard_host
        self.dashboard_port = dashboard_port
        self.object_store_mb = object_store_mb
        self.num_cpus = num_cpus
        self.resources = resources or {}
        self.env = env or {}
        self.join = address  # None: a head node; else the head's GCS address to join
        # A head with a Redis behind its GCS (GCS fault tolerance, smsgw.cluster.redis_local):
        # restarted with the same Redis, it loads the cluster's tables back.
        self.redis_address = redis_address
        self.redis_password = redis_password
        # The head's own Ray temp dir (default: Ray's /tmp/ray, shared by every Ray
        # on the machine): see _start_head for why a restarted head needs one.
        self.temp_dir = temp_dir
        # Ray's fixed defaults (client server 10001, agent 52365) collide when two
        # instances share a machine (a running gateway and the tests): pick free ones.
        self.metrics_export_port = metrics_export_port or free_port()
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"{self.node_ip}:{self.port}"

    @property
    def loopback_only(self) -> bool:
        return self.node_ip in ("127.0.0.1", "localhost")

    @property
    def metrics_url(self) -> str:
        """The node's Prometheus endpoint (Ray's metrics agent, metric names prefixed ``ray_``)."""
        return f"http://127.0.0.1:{self.metrics_export_port}/metrics"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.dashboard_host}:{self.dashboard_port}"

    @property
    def token(self) -> str:
        return self.token_path.read_text().strip()

    def _env(self, *extra: dict[str, str]) -> dict[str, str]:
        ensure_auth_token(self.token_path)
        merged = {**os.environ, **RAY_ENV, **log_rotation_env(), **auth_env(self.token_path)}
        for e in extra:
            merged.update(e)
        return {**merged, **self.env}

    def start(self, timeout: float = 120.0) -> None:
        if self.join:
            self._start_worker(timeout)
            return
        try:
            self._start_head(timeout)
        except ServiceError as exc:
            # Ray waits a fixed 30 s for its raylet to register (ray/_private/node.py);
            # on a loaded 2-core machine `ray start` gave up so ("The current node timed
            # out during startup") under `smsgw run` and the test harness. Once more.
            if RAY_NODE_TIMEOUT not in str(exc):
                raise
            self.stop()
            # What the first try started may hold the GCS port a moment longer.
            wait_for(
                lambda: not port_open("127.0.0.1", self.port), timeout=60, what="Ray's port free"
            )
            self._start_head(timeout)

    def _agent_ports(self) -> list[str]:
        return agent_port_args(self.metrics_export_port)

    def head_command(self) -> tuple[list[str], dict[str, str]]:
        """``ray start --head``'s argv and environment for this node."""
        argv = [
            *ray_command(),
            "start",
            "--head",
            "--block",
            f"--port={self.port}",
            f"--node-ip-address={self.node_ip}",
            "--include-dashboard=true",
            f"--dashboard-host={self.dashboard_host}",
            f"--dashboard-port={self.dashboard_port}",
            f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
            "--disable-usage-stats",
            f"--ray-client-server-port={free_port()}",
            *self._agent_ports(),
            "--min-worker-port=0",
            "--max-worker-port=0",
        ]
        if self.num_cpus is not None:
            argv.append(f"--num-cpus={self.num_cpus}")
        if self.resources:
            argv.append(f"--resources={json.dumps(self.resources)}")
        if self.temp_dir is not None:
            argv.append(f"--temp-dir={self.temp_dir}")
        ft: dict[str, str] = {}
        if self.redis_address:
            ft["RAY_REDIS_ADDRESS"] = self.redis_address  # Ray docs, "GCS Fault Tolerance"
            if self.redis_password:
                argv.append(f"--redis-password={self.redis_password}")
        env = self._env(LOOPBACK_ONLY_ENV if self.loopback_only else {}, ft)
        return argv, env

    def _start_head(self, timeout: float) -> None:
        for p in (self.port, self.dashboard_port, self.metrics_export_port):
            if port_open("127.0.0.1", p):
                raise ServiceError(f"port {p} on 127.0.0.1 is taken; Ray cannot use it")
        if self.temp_dir is not None:
            # `ray start --head` refuses an address that its temp dir names as the last
            # cluster while a local process still names that GCS: a worker node of
            # this machine waiting for its head to come back (GCS fault tolerance).
            (self.temp_dir / "ray_current_cluster").unlink(missing_ok=True)
        argv, env = self.head_command()
        require_token(self.node_ip, env)
        log_path = self.log_dir / "ray.log"
        # A head started again (after its loss, or a retry) appends to the same log: only
        # what this start wrote tells whether it is up (the last one's line fooled it).
        begin = log_path.stat().st_size if log_path.exists() else 0
        self.process = ManagedProcess("ray", argv, log_path, env=env)
        self.process.start()
        # The GCS and dashboard answer before the head's raylet has registered (its
        # agents start slower on a loaded machine); a driver connecting then finds
        # no node ("No node info found"), so wait for `ray start` to say it is up.
        wait_for(
            lambda: (
                port_open(self.node_ip, self.port)
                and dashboard_ok(self.dashboard_host, self.dashboard_port, self.token)
                and RAY_STARTED in _read_from(log_path, begin)
            ),
            timeout=timeout,
            what="Ray head",
            proc=self.process,
        )

    def _start_worker(self, timeout: float) -> None:
        """Join the head at ``self.join`` as a worker node (tests: two nodes, one host).

        No ``--node-ip-address``: Ray takes the address it reaches the head
        from, which is loopback for a head on loopback (an explicit 127.0.0.1
        would become the external address, see ``LOOPBACK_ONLY_ENV``).
        """
        argv = [
            *ray_command(),
            "start",
            "--block",
            f"--address={self.join}",
            f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
            *self._agent_ports(),
            "--min-worker-port=0",
            "--max-worker-port=0",
            "--disable-usage-stats",
        ]
        if self.num_cpus is not None:
            argv.append(f"--num-cpus={self.num_cpus}")
        env = self._env()
        require_token((self.join or "").rsplit(":", 1)[0], env)
        self.process = ManagedProcess("ray-worker", argv, self.log_dir / "ray-worker.log", env=env)
        self.process.start()
        wait_for(
            lambda: port_open("127.0.0.1", self.metrics_export_port),
            timeout=timeout,
            what="Ray worker node",
            proc=self.process,
        )

    def gcs_pid(self) -> int | None:
        """The head's ``gcs_server`` process (a test kills it alone: the GCS lost)."""
        if self.process is None or self.process.proc is None:
            return None
        group = os.getpgid(self.process.proc.pid)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "comm").read_text().strip() == "gcs_server" and os.getpgid(
                    int(entry.name)
                ) == group:
                    return int(entry.name)
            except (OSError, ProcessLookupError):
                continue
        return None

    def kill(self) -> None:
        """SIGKILL the node's whole process group (crash tests: a node lost)."""
        if self.process is not None:
            self.process.kill()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=15)
            self.process = None


def _read_from(path: Path, offset: int) -> str:
    """What a log file holds past ``offset`` (what one start of a process wrote)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""
