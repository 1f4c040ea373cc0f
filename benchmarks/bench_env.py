"""The environment of an end-to-end benchmark: the gateway, simulators, configuration.

Uses the services and Ray cluster of a running ``smsgw run`` if there is one,
else starts the embedded stack (Kafka, PostgreSQL, Ray) in a temporary home
and the gateway's supervisor on it. The customer, providers and routes are
configured the way an operator does it: through the ``smsgw`` command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.runs import ROOT
from smsgw.cluster.procs import free_port, port_open
from smsgw.settings import Settings

CUSTOMER = "bench"
PASSWORD = "bench"
# A second customer for a second, concurrent load: receipts go to any receiving
# bind of the customer, so two loadgens as one customer would get each other's.
CUSTOMER2 = "bench2"


def _is_ray_worker(pid: int) -> bool:
    """Whether `pid` is a Ray worker process here (never signal anything else)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::")
    except OSError:
        return False


class BenchError(RuntimeError):
    """Something in the set-up failed; the message says what."""


def smsgw_executable() -> list[str]:
    """The `smsgw` console script of this venv (or the module, if not installed)."""
    beside = Path(sys.executable).with_name("smsgw")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("smsgw")
    return [found] if found else [sys.executable, "-m", "smsgw.cluster.entry"]


@dataclass
class SimProcess:
    """One `benchmarks.smsc_sim` process; `stop()` returns its JSON summary."""

    proc: subprocess.Popen[bytes]
    port: int
    json_out: Path
    config: dict[str, Any] = field(default_factory=dict)

    def stop(self, timeout: float = 15.0) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        try:
            data: dict[str, Any] = json.loads(self.json_out.read_text())
        except (OSError, ValueError):
            return {}
        return data


class BenchEnv:
    """`with BenchEnv(...) as env:` the gateway is up, the customer `bench` exists."""

    def __init__(self, workdir: Path, log: Callable[[str], None] = lambda _m: None) -> None:
        self.workdir = workdir
        self.log = log
        self.tag = uuid.uuid4().hex[:4]
        self.stack: Any = None
        self.settings = Settings()
        self.sims: list[SimProcess] = []
        self.providers: list[str] = []
        self.cli_env: dict[str, str] = {}
        self.port = 0
        self.embedded = False

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> BenchEnv:
        from smsgw.actors import runtime as rt
        from smsgw.cluster.stack import Stack

        running = Settings().with_runtime()
        if running.kafka_bootstrap and running.database_url and running.ray_address:
            self.settings = running
            self.log(f"using the running gateway (Ray at {running.ray_address})")
        else:
            home = Path(tempfile.mkdtemp(prefix="smsgw-e2e-home-"))
            base = Settings(
                home=home,
                kafka_port=free_port(),
                kafka_controller_port=free_port(),
                postgres_port=free_port(),
                ray_port=free_port(),
                ray_dashboard_port=free_port(),
                metrics_port=free_port(),
                smpp_listen=f"127.0.0.1:{free_port()}",
                log_level="WARNING",
            )
            self.stack = Stack(base, on_step=self.log)
            self.settings = self.stack.start()
            self.embedded = True
        try:
            assert self.settings.ray_address and self.settings.database_url
            self.cli_env = dict(
                os.environ,
                SMSGW_DATABASE_URL=self.settings.database_url,
                SMSGW_HOME=str(self.settings.home),
                SMSGW_TOPIC_PREFIX=self.settings.topic_prefix,
            )
            rt.connect(self.settings.ray_address, self.settings.ray_auth_token_file)
            if self.embedded:
                rt.start_supervisor(self.settings)
            self.ensure_customer()
            state = rt.wait_ready(timeout=180, topic_prefix=self.settings.topic_prefix)
            listen = next(
                a["listen"] for n, a in state["actors"].items() if n.startswith("listener@")
            )
            self.port = int(listen.rsplit(":", 1)[1])
            deadline = time.monotonic() + 30
            while not port_open("127.0.0.1", self.port):
                if time.monotonic() > deadline:
                    raise BenchError(f"the SMPP listener {listen} does not accept connections")
                time.sleep(0.2)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for name in list(self.providers):
            with contextlib.suppress(Exception):
                self.remove_provider(name)
        for sim in self.sims:
            with contextlib.suppress(Exception):
                sim.stop(5)
        self.sims.clear()
        if self.stack is not None:
            from smsgw.actors import runtime as rt

            with contextlib.suppress(Exception):
                rt.stop_all(self.settings.topic_prefix)
            self.stack.stop()
            self.stack = None

    # ------------------------------------------------------------ smsgw CLI
    def smsgw(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `smsgw ARGS…` against this environment's database."""
        proc = subprocess.run(
            [*smsgw_executable(), *args],
            check=False,
            env=self.cli_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise BenchError(f"smsgw {' '.join(args)}: {proc.stderr.strip() or proc.stdout}")
        return proc

    def ensure_customer(self, name: str = CUSTOMER) -> None:
        """Customer `name` (password `bench`) with limits no benchmark reaches."""
        limits = ["--password", PASSWORD, "--tps", "1000000", "--max-binds", "64"]
        if self.smsgw("customer", "show", name, check=False).returncode == 0:
            self.smsgw("customer", "update", name, *limits, "--clear-allow-ip", "--enable")
        else:
            self.smsgw("customer", "add", name, *limits)

    def provider_name(self, role: str) -> str:
        return f"bench-{self.tag}-{role}"

    def add_provider(self, name: str, port: int, *, tps: int, binds: int, window: int) -> None:
        self.remove_provider(name)
        self.smsgw(
            "provider", "add", name, "--host", "127.0.0.1", "--port", str(port),
            "--system-id", "smsc", "--password", "pw", "--binds", str(binds),
            "--tps", str(tps), "--window", str(window),
            "--submit-id-format", "hex", "--receipt-id-format", "hex",
        )  # fmt: skip
        self.providers.append(name)

    def add_route(self, prefix: str, provider: str, customer: str = CUSTOMER) -> None:
        self.smsgw(
            "route", "add", "--prefix", prefix, "--provider", provider, "--customer", customer
        )  # fmt: skip

    def remove_provider(self, name: str) -> None:
        """Its routes first, then the provider (nothing if it does not exist)."""
        if self.smsgw("provider", "show", name, check=False).returncode != 0:
            return
        routes = json.loads(self.smsgw("route", "list", "--json").stdout or "[]")
        for r in routes:
            if r.get("provider") == name or name in (r.get("failover") or []):
                self.smsgw("route", "remove", str(r["id"]))
        self.smsgw("provider", "remove", name)
        with contextlib.suppress(ValueError):
            self.providers.remove(name)

    # ------------------------------------------------------------ simulators
    def start_sim(
        self,
        name: str,
        *,
        port: int | None = None,
        receipt_delay: float,
        tps_limit: int | None = None,
        window: int = 100,
    ) -> SimProcess:
        port = port or free_port()
        json_out = self.workdir / f"sim-{name}-{time.strftime('%H%M%S')}-{port}.json"
        cmd = [
            sys.executable, "-m", "benchmarks.smsc_sim", "--port", str(port),
            "--window", str(window), "--receipt-delay", str(receipt_delay),
            "--quiet", "--json-out", str(json_out),
        ]  # fmt: skip
        if tps_limit:
            cmd += ["--tps-limit", str(tps_limit)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the SMSC simulator did not start on port {port}")
            time.sleep(0.1)
        sim = SimProcess(proc, port, json_out, {"tps_limit": tps_limit, "port": port})
        self.sims.append(sim)
        return sim

    def stop_sim(self, sim: SimProcess) -> dict[str, Any]:
        with contextlib.suppress(ValueError):
            self.sims.remove(sim)
        return sim.stop()

    # ------------------------------------------------------------ actors
    def actors(self) -> dict[str, dict[str, Any]]:
        from smsgw.actors import runtime as rt

        with contextlib.suppress(Exception):
            state = rt.status(self.settings.topic_prefix) or {}
            return dict(state.get("actors") or {})
        return {}

    def wait_bound(self, provider: str, binds: int, timeout: float = 90.0) -> None:
        """Until `binds` provider binds of `provider` report bound."""
        deadline = time.monotonic() + timeout
        up = 0
        while time.monotonic() < deadline:
            up = sum(
                1
                for n, a in self.actors().items()
                if n.startswith(f"provider:{provider}#") and (a.get("bind") or {}).get("bound")
            )
            if up >= binds:
                return
            time.sleep(0.5)
        raise BenchError(f"provider {provider}: {up} of {binds} binds up after {timeout:.0f} s")

    def find_actor(self, kind: str, provider: str | None = None) -> tuple[str, int]:
        """(name, pid) of a live actor of this kind on this machine (a bind of `provider`)."""
        import ray

        here = ray.get_runtime_context().get_node_id()
        for name, a in sorted(self.actors().items()):
            if a.get("state") != "ALIVE" or not a.get("pid") or a.get("node") != here:
                continue
            if not _is_ray_worker(int(a["pid"])):
                continue
            if kind == "provider" and provider and not name.startswith(f"provider:{provider}#"):
                continue
            if a.get("kind") == kind or name.startswith(kind):
                return name, int(a["pid"])
        raise BenchError(f"no live {kind} actor found")

    def wait_restarted(self, name: str, old_pid: int, timeout: float) -> float | None:
        """Seconds until actor `name` answers again from a new process (None: not in time)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            a = self.actors().get(name) or {}
            if a.get("state") == "ALIVE" and a.get("pid") and int(a["pid"]) != old_pid:
                return round(time.monotonic() - t0, 2)
            time.sleep(0.25)
        return None
