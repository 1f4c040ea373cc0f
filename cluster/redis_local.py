"""A local ``redis-server`` for the Ray head's GCS fault tolerance (issue 14).

Ray's GCS keeps the cluster's tables (nodes, actors, placement groups, jobs)
in memory: when the head's GCS dies without a store behind it the cluster is
gone with it. Given ``RAY_REDIS_ADDRESS`` the GCS writes them to Redis and a
restarted head loads them back (Ray docs, "GCS Fault Tolerance"): meanwhile
running actors keep serving, and workers wait for the GCS up to
``RAY_gcs_rpc_server_reconnect_timeout_s``.

Production uses a highly available Redis of its own (``SMSGW_RAY_REDIS_ADDRESS
=host:port``); ``embedded`` starts this one, on loopback with a password (the
GCS tables name every node and actor: DESIGN invariant 10) and an append-only
file, so a restarted Redis keeps them too.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from smsgw.cluster.procs import ManagedProcess, ServiceError, port_open, wait_for

EMBEDDED = "embedded"  # SMSGW_RAY_REDIS_ADDRESS: start a local redis-server


def redis_server() -> str:
    """The ``redis-server`` binary (Debian's ``redis-server``, cluster/install-system-deps.sh)."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    if found is None:
        raise ServiceError("redis-server not found: apt-get install redis-server (make setup)")
    return found


def ensure_password(path: Path) -> str:
    """The Redis password, created (256 random bits, mode 0600) if absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def redis_conf(data_dir: Path, port: int, password: str) -> str:
    """A loopback-only, password-protected Redis that keeps its data in an append-only file."""
    return "\n".join(
        [
            "bind 127.0.0.1",
            "protected-mode yes",
            f"port {port}",
            f'requirepass "{password}"',
            f"dir {data_dir}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "daemonize no",
            "",
        ]
    )


class EmbeddedRedis:
    def __init__(self, data_dir: Path, *, port: int, password_path: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.password_path = password_path
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def password(self) -> str:
        return ensure_password(self.password_path)

    def start(self, timeout: float = 30.0) -> None:
        if port_open("127.0.0.1", self.port):
            raise ServiceError(f"port {self.port} on 127.0.0.1 is taken; Redis cannot use it")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        conf = self.data_dir / "redis.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:  # holds the password: the owner's only
            fh.write(redis_conf(self.data_dir, self.port, self.password))
        self.process = ManagedProcess(
            "redis", [redis_server(), str(conf)], self.data_dir / "redis.log"
        )
        self.process.start()
        wait_for(
            lambda: port_open("127.0.0.1", self.port),
            timeout=timeout,
            what="Redis",
            proc=self.process,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=15)
            self.process = None
