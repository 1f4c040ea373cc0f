"""A running ``smsgw run``: Ray runs nobody's code without the token, every port is on
loopback, and Kafka and ``$SMSGW_HOME`` are closed to other local users.

Before: every Ray port listened on the host's external address, and a plain
``POST /api/job_agent/jobs/`` (or the dashboard's ``/api/jobs/``) ran its
entrypoint as the gateway's user; any driver could join the GCS; any local
user could read and write the gateway's Kafka topics.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import signal
import stat
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from smsgw.kafka.security import client_config
from smsgw.settings import read_runtime
from tests.helpers.run import SMSGW, run_env, wait_healthy
from tests.helpers.scratch import DataDir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JOB_PATHS = ("/api/jobs/", "/api/job_agent/jobs/")
WRONG = "0" * 64


@dataclass
class RunningStack:
    proc: subprocess.Popen[str]
    env: dict[str, str]
    home: Path

    @property
    def runtime(self) -> dict[str, object]:
        return read_runtime(self.home / "runtime.json")

    @property
    def token(self) -> str:
        return (self.home / "ray_auth_token").read_text().strip()

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def listening(self) -> list[tuple[psutil.Process, str, int]]:
        """Every listening TCP socket of ``smsgw run`` and everything it started."""
        out = []
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                for c in p.net_connections("tcp"):
                    if c.status == psutil.CONN_LISTEN:
                        out.append((p, c.laddr.ip, c.laddr.port))
        return out

    def ray_ports(self) -> set[int]:
        """Ports of Ray's processes (not Kafka's JVM, PostgreSQL or the SMPP listener)."""
        smpp = int(self.env["SMSGW_SMPP_LISTEN"].rsplit(":", 1)[1])
        ports = set()
        for p, _ip, port in self.listening():
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.name() in ("java", "postgres") or port == smpp:
                    continue
                ports.add(port)
        return ports


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    with DataDir("sec") as home:
        env = run_env(home)
        with (home / "run.log").open("w") as log:
            proc = subprocess.Popen([SMSGW, "run"], env=env, stderr=log, text=True)
        try:
            wait_healthy(proc, env)
            yield RunningStack(proc, env, home)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _post(port: int, path: str, body: dict[str, str], token: str | None) -> int | None:
    """The HTTP status of a job submission, None if the port does not speak HTTP to us."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError, http.client.HTTPException):
        return None


def test_no_port_of_a_single_node_run_listens_outside_loopback(stack: RunningStack) -> None:
    listening = stack.listening()
    ports = {port for _p, _ip, port in listening}
    ray_port = int(stack.env["SMSGW_RAY_PORT"])
    dashboard_port = int(stack.env["SMSGW_RAY_DASHBOARD_PORT"])
    assert {ray_port, dashboard_port} <= ports, "Ray's GCS and dashboard are among them"
    # GCS, raylet, object manager, workers, dashboard, agents, Ray Client, metrics.
    assert len(stack.ray_ports()) >= 8, sorted(stack.ray_ports())
    outside = [
        (ip, port, " ".join(p.cmdline())[:80]) for p, ip, port in listening if not _loopback(ip)
    ]
    assert outside == [], f"listening beyond loopback: {outside}"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_secrets_and_data_in_the_home_are_the_owners_only(stack: RunningStack) -> None:
    assert _mode(stack.home / "ray_auth_token") == 0o600
    assert len(stack.token) == 64
    assert _mode(stack.home / "kafka_credentials.json") == 0o600
    # As root, PostgreSQL's own user needs to traverse the home (o+x), nothing more.
    assert _mode(stack.home) & 0o077 in (0, 0o001), oct(_mode(stack.home))
    for d in ("kafka", "kafka/data", "kafka/logs"):
        assert _mode(stack.home / d) == 0o700, d


def test_kafka_of_the_run_refuses_a_client_without_the_credentials(stack: RunningStack) -> None:
    bootstrap = str(stack.runtime["kafka_bootstrap"])
    submit = "smsgw.submit"
    errors: list[KafkaError] = []
    consumer = Consumer(
        client_config(
            bootstrap,
            {"group.id": "intruder", "auto.offset.reset": "earliest", "error_cb": errors.append},
            security={},
        )
    )
    try:
        md_error: Exception | None = None
        try:
            consumer.list_topics(submit, timeout=10)
        except KafkaException as exc:
            md_error = exc
        assert md_error is not None, "an unauthenticated client read the topic list"
    finally:
        consumer.close()
    # The gateway's clients authenticate: `smsgw status` saw Kafka healthy with the topics.
    creds = json.loads((stack.home / "kafka_credentials.json").read_text())
    admin = AdminClient(
        client_config(
            bootstrap,
            security={
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": creds["mechanism"],
                "sasl.username": creds["username"],
                "sasl.password": creds["password"],
            },
        )
    )
    assert submit in admin.list_topics(timeout=10).topics


def test_job_submission_without_the_token_is_refused_on_every_ray_port(
    stack: RunningStack,
) -> None:
    marker = stack.home / "pwned"
    refused: dict[tuple[int, str, str], int | None] = {}
    for port in sorted(stack.ray_ports()):
        for path in JOB_PATHS:
            for label, token in (("none", None), ("wrong", WRONG)):
                status = _post(port, path, {"entrypoint": f"touch {marker}"}, token)
                refused[(port, path, label)] = status
    accepted = {k: v for k, v in refused.items() if v is not None and v < 400}
    assert accepted == {}, f"job submissions accepted without the token: {accepted}"
    dashboard = int(stack.env["SMSGW_RAY_DASHBOARD_PORT"])
    assert refused[(dashboard, "/api/jobs/", "none")] == 401
    assert refused[(dashboard, "/api/jobs/", "wrong")] == 403

    # With the token the same request runs: the refusals above were not a broken job API,
    # and once this job has run, any of the refused ones would have run too.
    control = stack.home / "control"
    status = _post(dashboard, "/api/jobs/", {"entrypoint": f"touch {control}"}, stack.token)
    assert status == 200
    deadline = time.monotonic() + 120
    while not control.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert control.exists(), "a job submitted with the token never ran"
    assert not marker.exists(), "a job submitted without the token ran"


# keep_loopback: else Ray dials 127.0.0.1 on the external address, where nothing listens
# now, and the attempts below would fail for that reason instead of the token.
DRIVER = textwrap.dedent(
    """
    import sys, ray
    from smsgw.actors.loopback import keep_loopback
    keep_loopback()
    ray.init(address=sys.argv[1], log_to_driver=False)
    print("JOINED", len(ray.nodes()))
    """
)


def _driver(address: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, address],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_driver_without_the_token_cannot_join(stack: RunningStack) -> None:
    address = str(stack.runtime["ray_address"])
    base = {k: v for k, v in stack.env.items() if not k.startswith(("RAY_", "SMSGW_"))}
    attempts = {
        "no token": base,
        "wrong token": base | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": WRONG},
        "right token": base | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": stack.token},
    }
    with ThreadPoolExecutor(len(attempts)) as pool:
        futures = {name: pool.submit(_driver, address, env) for name, env in attempts.items()}
        results = {name: f.result() for name, f in futures.items()}
    assert results["right token"].returncode == 0, results["right token"].stderr[-2000:]
    assert "JOINED" in results["right token"].stdout
    for name in ("no token", "wrong token"):
        r = results[name]
        assert r.returncode != 0 and "JOINED" not in r.stdout, f"{name}: joined the cluster"
        assert "Authentication token is missing or incorrect" in r.stderr, r.stderr[-2000:]
