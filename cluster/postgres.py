"""A real PostgreSQL server (Debian's ``postgresql`` package) in a data dir we own.

``initdb`` once, then ``postgres -D`` as a direct child (not ``pg_ctl start``,
which detaches the server and would outlive us). PostgreSQL refuses to run as
root, so as root it runs as the unprivileged system user ``smsgw``.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote

from smsgw.cluster.procs import ManagedProcess, ServiceError, port_open, wait_for

SERVICE_USER = "smsgw"


def pg_bindir() -> Path:
    """The newest installed server's bin dir (Debian keeps them versioned)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise ServiceError("PostgreSQL server not found: apt-get install postgresql")


def _service_account() -> tuple[int, int] | None:
    """(uid, gid) to run the server as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
        )
        entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def _make_traversable(path: Path) -> None:
    """Let the service user reach ``path``: add search (x, not read) permission on ancestors."""
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


class EmbeddedPostgres:
    """One cluster in ``data_dir`` listening on 127.0.0.1:``port`` with a generated password.

    ``host`` and ``allow`` put it on another address (a private network's; the
    network-namespace hosts of ``cluster/netns.py``): clients from the ``allow``
    network (CIDR) authenticate with the password (scram-sha-256) like loopback ones.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        user: str = "smsgw",
        dbname: str = "smsgw",
        host: str = "127.0.0.1",
        allow: str | None = None,
    ):
        self.base = data_dir
        self.port = port
        self.host = host
        self.allow = allow
        self.user = user
        self.dbname = dbname
        self.process: ManagedProcess | None = None
        self.account = _service_account()

    @property
    def pgdata(self) -> Path:
        return self.base / "pgdata"

    @property
    def password_file(self) -> Path:
        return self.base / "password"

    def url(self, dbname: str | None = None) -> str:
        pw = quote(self.password_file.read_text().strip(), safe="")
        return f"postgresql://{self.user}:{pw}@{self.host}:{self.port}/{dbname or self.dbname}"

    def _run_as_service(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self.account:
            uid, gid = self.account
            kwargs["user"], kwargs["group"], kwargs["extra_groups"] = uid, gid, []
        done: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
            argv, capture_output=True, text=True, check=False, **kwargs
        )
        return done

    def init_once(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o700)
        if not self.password_file.exists():
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(24))
        if self.account:
            _make_traversable(self.base)
            _chown_tree(self.base, *self.account)
        done = self._run_as_service(
            [
                str(pg_bindir() / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                self.user,
                "--pwfile",
                str(self.password_file),
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        if done.returncode != 0:
            raise ServiceError(f"initdb failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self, timeout: float = 60.0) -> None:
        self.init_once()
        if self.account:
            # Every start: the home above is set back to 0700 by each `smsgw run`.
            _make_traversable(self.base)
        if port_open(self.host, self.port):
            raise ServiceError(
                f"port {self.port} on {self.host} is taken; PostgreSQL cannot listen there"
            )
        self._allow_network()
        uid, gid = self.account if self.account else (None, None)
        self.process = ManagedProcess(
            "postgres",
            [
                str(pg_bindir() / "postgres"),
                "-D",
                str(self.pgdata),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                f"port={self.port}",
                "-c",
                f"unix_socket_directories={self.pgdata}",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=64MB",
                "-c",
                "fsync=on",
                "-c",
                "logging_collector=off",
            ],
            self.base / "postgres.log",
            uid=uid,
            gid=gid,
            stop_signal=signal.SIGINT,  # "fast" shutdown
        )
        if self.account:
            (self.base / "postgres.log").touch()
            os.chown(self.base / "postgres.log", *self.account)
        self.process.start()
        wait_for(self.ready, timeout=timeout, what="PostgreSQL", proc=self.process)
        self._create_database(self.dbname)

    def _allow_network(self) -> None:
        """A password line for the ``allow`` network in pg_hba.conf (initdb's covers loopback)."""
        if self.allow is None:
            return
        hba = self.pgdata / "pg_hba.conf"
        line = f"host all all {self.allow} scram-sha-256"
        if line not in hba.read_text().splitlines():
            with hba.open("a") as fh:
                fh.write(line + "\n")

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def _create_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def create_database(self, name: str) -> str:
        """A fresh database (tests get one each); returns its URL."""
        self._create_database(name)
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=30)
            self.process = None
