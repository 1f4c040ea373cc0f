"""Several gateway hosts on one machine as Linux network namespaces, customers behind a VIP.

Each host is a network namespace with its own address on a bridge
(``10.77.0.1N/24``) and its own loopback, so every port a host opens is its
own and what one host reaches of another goes over the bridge, as between
machines. The root namespace holds the bridge's address ``10.77.0.1`` (the
"infra" host: Kafka, PostgreSQL and the test's SMS provider listen there) and
the customers' virtual IP ``10.77.0.100``, where HAProxy (TCP mode,
round-robin, health checks) spreads SMPP connections over the hosts'
listeners. Host 1 runs ``smsgw run`` (Ray head on its address, token auth);
the others join it with ``ray start --address`` and the token, each running
its own SMPP listener on its own address (``SMSGW_NODE_SMPP_LISTEN``).

Needs root (``ip netns``, veth, bridge) and Debian's ``haproxy``. Nothing
leaves the machine: every address is on the bridge. ``Lab`` removes every
namespace, veth, bridge and process it made on exit, on ``atexit`` when the
caller dies with an exception, and those of an earlier run that did not get
to (``cleanup_stale``) before it starts.

By hand (``docs/NETNS.md``): ``python -m smsgw.cluster.netns up`` (Ctrl-C
stops and cleans up), ``python -m smsgw.cluster.netns down`` (stale state).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smsgw.actors.loopback import NODE_START_TIMEOUT_ENV
from smsgw.cluster.kafka import EmbeddedKafka
from smsgw.cluster.postgres import EmbeddedPostgres
from smsgw.cluster.procs import ManagedProcess, ServiceError, free_port, port_open, wait_for
from smsgw.cluster.ray_local import (
    RAY_ENV,
    RAY_STARTED,
    agent_port_args,
    auth_env,
    ensure_auth_token,
    log_rotation_env,
    ray_command,
    require_token,
)
from smsgw.cluster.topics import ensure_topics
from smsgw.db.migrate import migrate
from smsgw.kafka.security import KafkaCredentials, client_config, use_security
from smsgw.topics import Topics

SMPP_PORT = 2775
RAY_PORT = 6380
# A loaded machine (CI, or 2 cores shared with other stacks) starts a node's
# Python agents in more than the 30 s Ray waits for them: wait longer.
SLOW_START_ENV = {NODE_START_TIMEOUT_ENV: "150", "RAY_agent_register_timeout_ms": "150000"}
JOINED = RAY_STARTED
# Ray declares a node dead after this many failed health checks this far apart
# (its defaults, 5 x 3 s, leave a dead host's provider binds down ~15 s).
HEAD_HEALTH_ENV = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass(frozen=True)
class Host:
    index: int  # 1-based; host 1 runs the Ray head
    netns: str
    address: str
    veth: str  # the root namespace's end, on the bridge

    @property
    def smpp(self) -> str:
        return f"{self.address}:{SMPP_PORT}"


class Lab:
    """Namespaces joined by a bridge, the VIP address, and the processes started in them."""

    def __init__(self, hosts: int = 3, *, prefix: str = "smsgw", subnet: str = "10.77.0") -> None:
        self.prefix = prefix
        self.subnet = subnet
        self.bridge = f"{prefix}-br0"
        self.infra = f"{subnet}.1"
        self.vip = f"{subnet}.100"
        self.hosts = [
            Host(i, f"{prefix}-h{i}", f"{subnet}.{10 + i}", f"{prefix}-h{i}v")
            for i in range(1, hosts + 1)
        ]
        self._up = False

    # -- the network ---------------------------------------------------------
    def up(self) -> Lab:
        if os.geteuid() != 0:
            raise ServiceError("network namespaces need root (ip netns)")
        self.cleanup_stale()
        atexit.register(self.down)
        self._up = True
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.infra}/24", "dev", self.bridge)
        _ip("addr", "add", f"{self.vip}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for h in self.hosts:
            _ip("netns", "add", h.netns)
            peer = f"{h.veth[:-1]}c"
            _ip("link", "add", h.veth, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", h.netns)
            _ip("link", "set", h.veth, "master", self.bridge)
            _ip("link", "set", h.veth, "up")
            self._in(h, "ip", "link", "set", peer, "name", "eth0")
            self._in(h, "ip", "addr", "add", f"{h.address}/24", "dev", "eth0")
            self._in(h, "ip", "link", "set", "eth0", "up")
            self._in(h, "ip", "link", "set", "lo", "up")
            # A default route on the bridge (no gateway behind it: nothing leaves):
            # Ray finds a node's address by a UDP connect towards 8.8.8.8, and
            # without any route falls back to resolving the host name.
            self._in(h, "ip", "route", "add", "default", "dev", "eth0")
            # No name server is reachable from a namespace: `ip netns exec` mounts this
            # file over /etc/resolv.conf, so lookups fail at once instead of timing out.
            self._etc(h.netns).mkdir(parents=True, exist_ok=True)
            (self._etc(h.netns) / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        return self

    @staticmethod
    def _etc(netns: str) -> Path:
        return Path("/etc/netns") / netns

    def _in(self, host: Host, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", host.netns, *argv], check=True, capture_output=True)

    def cleanup_stale(self) -> None:
        """Whatever an earlier run with this prefix left: processes, namespaces, the bridge."""
        listed = _ip("netns", "list", check=False).stdout.split()
        for name in listed:
            if name.startswith(f"{self.prefix}-h"):
                self._kill_netns(name)
                _ip("netns", "del", name, check=False)
        for etc in Path("/etc/netns").glob(f"{self.prefix}-h*"):
            shutil.rmtree(etc, ignore_errors=True)
        if _ip("link", "show", self.bridge, check=False).returncode == 0:
            _ip("link", "del", self.bridge, check=False)

    def down(self) -> None:
        if not self._up:
            return
        self._up = False
        for h in self.hosts:
            self._kill_netns(h.netns)
            _ip("netns", "del", h.netns, check=False)  # takes its veth pair along
            shutil.rmtree(self._etc(h.netns), ignore_errors=True)
        _ip("link", "del", self.bridge, check=False)
        with contextlib.suppress(ValueError):
            atexit.unregister(self.down)

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *_: object) -> None:
        self.down()

    # -- processes -----------------------------------------------------------
    @staticmethod
    def pids(netns: str) -> list[int]:
        out = _ip("netns", "pids", netns, check=False).stdout.split()
        return [int(p) for p in out if p.isdigit()]

    def _kill_netns(self, netns: str, timeout: float = 10.0) -> None:
        """SIGKILL every process in the namespace, again until none is left (forks race it)."""
        deadline = time.monotonic() + timeout
        while (pids := self.pids(netns)) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def kill_host(self, host: Host) -> None:
        """The host dies: all its processes at once (its namespace and address stay)."""
        self._kill_netns(host.netns)

    def set_link(self, host: Host, up: bool) -> None:
        """Cable pulled (or back): the host's processes live on, unreachable."""
        _ip("link", "set", host.veth, "up" if up else "down")

    def process(
        self, host: Host, name: str, argv: list[str], log: Path, env: dict[str, str]
    ) -> ManagedProcess:
        """A process of ``host``: started inside its namespace, in a group of its own."""
        return ManagedProcess(
            f"{name}@{host.netns}", ["ip", "netns", "exec", host.netns, *argv], log, env=env
        )


class BridgeKafka(EmbeddedKafka):
    """The embedded broker with its client listener on ``host`` (the infra address).

    The controller listener stays on loopback: only the broker itself dials it.
    """

    def __init__(self, host: str, data_dir: Path, **kw: Any) -> None:
        self.host = host
        super().__init__(data_dir, **kw)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def _listener_properties(self) -> dict[str, str]:
        props = super()._listener_properties()
        for key in ("listeners", "advertised.listeners"):
            props[key] = props[key].replace(f"127.0.0.1:{self.port}", self.bootstrap)
        return props

    def ready(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        from confluent_kafka.admin import AdminClient

        try:
            admin = AdminClient(client_config(self.bootstrap, security=self.client_security))
            return len(admin.list_topics(timeout=2).brokers) > 0
        except Exception:
            return False


def _grew(log: Path, line: str, before: int) -> bool:
    """``line`` is in ``log`` more often than ``before``."""
    return log.read_text(errors="replace").count(line) > before


def _clean_env() -> dict[str, str]:
    """This process' environment without its own gateway or Ray settings (a test's, say)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SMSGW_", "RAY_"))}


class HAProxy:
    """The customers' VIP: TCP mode, round-robin over the hosts' listeners, health-checked.

    A server is marked down after two failed connects 500 ms apart and its
    sessions are closed (``on-marked-down shutdown-sessions``: a host whose
    link is down sends no RST), up again after two good ones.
    """

    def __init__(self, work: Path, vip: str, servers: list[Host], source: str) -> None:
        self.work = work
        self.vip = vip
        self.source = source  # its address towards the listeners, which trust its PROXY header
        self.servers = servers
        self.socket = work / "haproxy.sock"
        self.process: ManagedProcess | None = None

    def config(self) -> str:
        lines = [
            "global",
            f"    stats socket {self.socket} mode 600 level admin",
            "    maxconn 4000",
            "defaults",
            "    mode tcp",
            "    timeout connect 2s",
            "    timeout client 10m",
            "    timeout server 10m",
            "frontend smpp_vip",
            f"    bind {self.vip}:{SMPP_PORT}",
            "    default_backend smpp_listeners",
            "backend smpp_listeners",
            "    balance roundrobin",
            "    default-server check inter 500 fall 2 rise 2 on-marked-down shutdown-sessions",
            # send-proxy-v2: each connection starts with the customer's address
            # (smsgw.server.proxy_header), believed from `source` only.
            *(
                f"    server h{h.index} {h.smpp} send-proxy-v2 source {self.source}"
                for h in self.servers
            ),
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        cfg = self.work / "haproxy.cfg"
        self.work.mkdir(parents=True, exist_ok=True)
        cfg.write_text(self.config())
        check = subprocess.run(
            [haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise ServiceError(f"haproxy config refused: {check.stdout}{check.stderr}")
        self.process = ManagedProcess(
            "haproxy", [haproxy, "-db", "-f", str(cfg)], self.work / "haproxy.log"
        )
        self.process.start()
        wait_for(lambda: port_open(self.vip, SMPP_PORT), timeout=20, what="HAProxy", proc=None)

    def server_states(self) -> dict[str, str]:
        """``{"h1": "UP", "h3": "DOWN", ...}`` from the stats socket (``show stat``)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(self.socket))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, *rows = data.decode().splitlines()
        cols = head.lstrip("# ").split(",")
        out: dict[str, str] = {}
        for row in rows:
            f = dict(zip(cols, row.split(","), strict=False))
            if f.get("pxname") == "smpp_listeners" and f.get("svname", "").startswith("h"):
                out[f["svname"]] = f.get("status", "")
        return out

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=5)
            self.process = None


def join_command(head: str, node_ip: str) -> list[str]:
    """``ray start`` of a host's Ray node joining the head at ``head`` (host:port)."""
    return [
        *ray_command(),
        "start",
        "--block",
        f"--address={head}",
        f"--node-ip-address={node_ip}",
        "--object-store-memory=100000000",
        *agent_port_args(),  # the raylet never waits for its agents' port files
        "--min-worker-port=0",
        "--max-worker-port=0",
        "--disable-usage-stats",
    ]


class NetnsCluster:
    """The whole set-up: infra (Kafka, PostgreSQL), N gateway hosts, the VIP.

    ``settings`` are extra ``SMSGW_*`` values (without the prefix) for every host.
    """

    def __init__(
        self,
        hosts: int = 3,
        *,
        work: Path | None = None,
        prefix: str = "smsgw",
        kafka_port: int | None = None,
        postgres_port: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.lab = Lab(hosts, prefix=prefix)
        self.work = work or Path(tempfile.mkdtemp(prefix="smsgw-netns-"))
        self.kafka_port = kafka_port
        self.postgres_port = postgres_port
        self.settings = settings or {}
        self.kafka: BridgeKafka | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.haproxy: HAProxy | None = None
        self.procs: dict[int, ManagedProcess] = {}
        self.topic_prefix = self.settings.get("topic_prefix", "smsgw.")
        self._lock = threading.Lock()

    @property
    def hosts(self) -> list[Host]:
        return self.lab.hosts

    @property
    def head(self) -> Host:
        return self.lab.hosts[0]

    @property
    def database_url(self) -> str:
        assert self.postgres is not None
        return self.postgres.url()

    @property
    def bootstrap(self) -> str:
        assert self.kafka is not None
        return self.kafka.bootstrap

    def home(self, host: Host) -> Path:
        return self.work / host.netns

    def token_file(self, host: Host) -> Path:
        return self.home(host) / "ray_auth_token"

    def start(self) -> NetnsCluster:
        """Network, infra, every host, the VIP; returns once Ray sees every host."""
        self.work.mkdir(parents=True, exist_ok=True)
        self.lab.up()
        try:
            self._start_infra()
            # One token for the cluster, made before the head, copied to each host (0600).
            token = ensure_auth_token(self.token_file(self.head)).read_text()
            for h in self.hosts[1:]:
                path = self.token_file(h)
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(token)
            self.start_host(self.head)
            # Nodes join once the head is registered in its GCS (an open port is too
            # early: "No node info found for head node"); `smsgw run` says when.
            proc = self.procs[self.head.index]
            wait_for(
                lambda: "smsgw: Prometheus metrics on" in proc.log_tail(200),
                timeout=240,
                what="Ray head",
                proc=proc,
            )
            for h in self.hosts[1:]:
                self.start_host(h)
            self.haproxy = HAProxy(self.work / "haproxy", self.lab.vip, self.hosts, self.lab.infra)
            self.haproxy.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_infra(self) -> None:
        infra = self.lab.infra
        # Free ports: the infra address is the root namespace's, where 0.0.0.0 listeners live.
        kafka_port = self.kafka_port or free_port(infra)
        kdir = self.work / "kafka"
        creds = KafkaCredentials.load_or_create(kdir / "credentials.json")
        self.kafka = BridgeKafka(
            infra,
            kdir,
            port=kafka_port,
            controller_port=free_port(),
            heap="512m",
            credentials=creds,
        )
        self.postgres = EmbeddedPostgres(
            self.work / "postgres",
            port=self.postgres_port or free_port(infra),
            host=infra,
            allow=f"{self.lab.subnet}.0/24",
        )
        self.kafka.start()
        use_security(self.kafka.client_security)  # this process' clients (topics, tests)
        self.postgres.start()
        migrate(self.postgres.url())  # the schema before anyone adds customers (smsgw run too)
        partitions = int(self.settings.get("topic_partitions", "6"))
        ensure_topics(self.kafka.bootstrap, Topics(self.topic_prefix).specs(partitions))

    def _kafka_env(self) -> dict[str, str]:
        assert self.kafka is not None and self.kafka.credentials is not None
        c = self.kafka.credentials
        return {
            "SMSGW_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "SMSGW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SMSGW_KAFKA_SASL_MECHANISM": c.mechanism,
            "SMSGW_KAFKA_SASL_USERNAME": c.username,
            "SMSGW_KAFKA_SASL_PASSWORD": c.password,
        }

    def admin_env(self) -> dict[str, str]:
        """What an ``smsgw`` command in the root namespace needs to reach this gateway."""
        return {
            **self._kafka_env(),
            "SMSGW_DATABASE_URL": self.database_url,
            "SMSGW_TOPIC_PREFIX": self.topic_prefix,
        }

    def start_host(self, host: Host, attempts: int = 3) -> None:
        """Host 1: ``smsgw run`` (Ray head on its address); the others: a Ray node joining it."""
        home = self.home(host)
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        env = {
            **_clean_env(),
            **{f"SMSGW_{k.upper()}": v for k, v in self.settings.items()},
            "SMSGW_HOME": str(home),
            "SMSGW_NODE_SMPP_LISTEN": host.smpp,
            "SMSGW_SMPP_PROXY_PROTOCOL_FROM": f"{self.lab.infra}/32",  # HAProxy's address
            "PYTHONUNBUFFERED": "1",
        }
        if host == self.head:
            env.update(
                **self._kafka_env(),
                **HEAD_HEALTH_ENV,
                **SLOW_START_ENV,
                SMSGW_DATABASE_URL=self.database_url,
                SMSGW_RAY_NODE_IP=host.address,
                SMSGW_SMPP_LISTEN=host.smpp,
            )
            argv = [str(Path(sys.executable).parent / "smsgw"), "run"]
        else:
            env.update(**RAY_ENV, **log_rotation_env(), **auth_env(self.token_file(host)))
            env.update(SLOW_START_ENV)
            require_token(host.address, env)
            argv = join_command(f"{self.head.address}:{RAY_PORT}", host.address)
        log = home / "host.log"
        for attempt in range(1, attempts + 1):
            joined = log.read_text(errors="replace").count(JOINED) if log.exists() else 0
            proc = self.lab.process(host, "gateway", argv, log, env)
            proc.start()
            with self._lock:
                self.procs[host.index] = proc
            if host == self.head:
                return
            # One node at a time: a node names its Unix sockets (plasma store, raylet)
            # in the head's session directory, which the hosts share (one file system),
            # by the first free name; two starting together take the same one. And
            # `ray start` gives its raylet 30 s to register (hard-coded): on a loaded
            # machine the node's agents take longer, so it gives up; start it again.
            try:
                wait_for(
                    functools.partial(_grew, log, JOINED, joined),
                    timeout=180,
                    what=f"Ray node on {host.address}",
                    proc=proc,
                )
                return
            except ServiceError:
                self.lab.kill_host(host)
                if attempt == attempts:
                    raise

    def kill_host(self, host: Host) -> None:
        """SIGKILL every process of the host at once (a machine losing power)."""
        self.lab.kill_host(host)
        with self._lock:
            proc = self.procs.pop(host.index, None)
        if proc is not None and proc.proc is not None:
            proc.proc.wait(10)

    def status(self) -> dict[str, Any]:
        """The supervisor's last report (``gateway_status`` in PostgreSQL), ``{}`` if none."""
        import psycopg

        from smsgw.actors.workers import namespace_for
        from smsgw.db import status as status_row

        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            got = status_row.read(conn, namespace_for(self.topic_prefix))
        if got is None:
            return {}
        snapshot, report, age = got
        return {**snapshot, "report": report, "age_s": age}

    def wait_status(self, cond: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                last = self.status()
                if last and cond(last):
                    return last
            head = self.procs.get(self.head.index)
            if head is not None and head.proc is not None and head.proc.poll() is not None:
                raise ServiceError(f"smsgw run on {self.head.netns} exited:\n{head.log_tail()}")
            time.sleep(0.5)
        raise ServiceError(f"{what}: not within {timeout:.0f} s; last status: {last}")

    def stop(self) -> None:
        """Stop the gateway cleanly (head first: it stops the actors), then everything else."""
        head = self.procs.get(self.head.index)
        if head is not None:
            head.stop(timeout=30)
        for proc in list(self.procs.values()):
            proc.stop(timeout=10)
        self.procs.clear()
        if self.haproxy is not None:
            self.haproxy.stop()
        self.lab.down()  # whatever is left in the namespaces
        if self.postgres is not None:
            self.postgres.stop()
        if self.kafka is not None:
            self.kafka.stop()

    def __enter__(self) -> NetnsCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def binds_by_host(status: dict[str, Any], cluster: NetnsCluster) -> dict[str, list[str]]:
    """Bound provider binds per host address, from the supervisor's report."""
    by_node = {n["id"]: n.get("address") for n in status.get("nodes", [])}
    out: dict[str, list[str]] = {h.address: [] for h in cluster.hosts}
    for name, a in (status.get("actors") or {}).items():
        if (
            name.startswith("provider:")
            and a.get("state") == "ALIVE"
            and (a.get("bind") or {}).get("bound")
        ):
            out.setdefault(str(by_node.get(a.get("node"), a.get("node"))), []).append(name)
    return out


def customer_binds_by_host(status: dict[str, Any]) -> dict[str, dict[str, int]]:
    """``{customer: {host address: binds}}`` from the listeners' reports."""
    by_node = {n["id"]: n.get("address") for n in status.get("nodes", [])}
    out: dict[str, dict[str, int]] = {}
    for name, a in (status.get("actors") or {}).items():
        if name.startswith("listener@") and a.get("state") == "ALIVE":
            addr = str(by_node.get(a.get("node"), a.get("node")))
            for customer, n in (a.get("binds") or {}).items():
                if n:
                    out.setdefault(customer, {})[addr] = int(n)
    return out


@contextlib.contextmanager
def running(hosts: int = 3, **kw: Any) -> Iterator[NetnsCluster]:
    cluster = NetnsCluster(hosts, **kw)
    with cluster:
        yield cluster


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m smsgw.cluster.netns", description=__doc__)
    ap.add_argument("command", choices=["up", "down"])
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--prefix", default="smsgw", help="names of namespaces and the bridge")
    args = ap.parse_args(argv)
    if args.command == "down":
        Lab(args.hosts, prefix=args.prefix).cleanup_stale()
        return
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running(args.hosts, prefix=args.prefix) as cluster:
        cluster.wait_status(
            lambda s: len(s.get("nodes", [])) == len(cluster.hosts), 240, "every host in Ray"
        )
        print(f"smsgw-netns: hosts {', '.join(h.address for h in cluster.hosts)}", flush=True)
        print(f"smsgw-netns: customers' VIP {cluster.lab.vip}:{SMPP_PORT}", flush=True)
        print(f"smsgw-netns: work dir {cluster.work} (logs: */host.log)", flush=True)
        print("smsgw-netns: admin environment (export it for smsgw commands):", flush=True)
        for k, v in cluster.admin_env().items():
            print(f"export {k}='{v}'", flush=True)
        print("smsgw-netns: ready (Ctrl-C stops and removes everything)", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
