"""``smsgw run`` in a process of its own, on the harness' Kafka and PostgreSQL.

Its own Ray head (on free ports, metrics on ``SMSGW_METRICS_PORT``), so the
metrics it exports are this gateway's alone: nothing left over from other
tests' actors in a shared Ray cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from smsgw.cluster.procs import free_port
from tests.helpers.scratch import DataDir

SMSGW = str(Path(sys.executable).parent / "smsgw")


class GatewayProcess:
    def __init__(self, bootstrap: str, db_url: str, **settings: str) -> None:
        self._home = DataDir("gw")  # removed by close() unless a test failed meanwhile
        self.home = self._home.path
        self.smpp_port = free_port()
        self.metrics_port = free_port()
        self.console_port = free_port()
        self.prefix = f"t{uuid.uuid4().hex[:10]}."
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSGW_", "RAY_"))}
        if "RAY_TMPDIR" in os.environ:  # the run's dir for Ray's session dirs
            env["RAY_TMPDIR"] = os.environ["RAY_TMPDIR"]
        # The harness' broker wants its SASL login (tests/conftest.py exports it).
        env.update({k: v for k, v in os.environ.items() if k.startswith("SMSGW_KAFKA_S")})
        env.update(
            SMSGW_HOME=str(self.home),
            SMSGW_KAFKA_BOOTSTRAP=bootstrap,
            SMSGW_DATABASE_URL=db_url,
            SMSGW_RAY_PORT=str(free_port()),
            SMSGW_RAY_DASHBOARD_PORT=str(free_port()),
            SMSGW_METRICS_PORT=str(self.metrics_port),
            SMSGW_CONSOLE_LISTEN=f"127.0.0.1:{self.console_port}",
            SMSGW_SMPP_LISTEN=f"127.0.0.1:{self.smpp_port}",
            SMSGW_TOPIC_PREFIX=self.prefix,
            SMSGW_TOPIC_PARTITIONS="3",
            SMSGW_BIND_FAILURE_DELAY_S="0.2",
            # Metrics reach the export endpoint within a second (Ray's default: 10 s).
            RAY_metrics_report_interval_ms="1000",
        )
        env.update({f"SMSGW_{k.upper()}": v for k, v in settings.items()})
        self.env = env
        self.stderr_path = self.home / "run.stderr"
        self.stdout_path = self.home / "run.stdout"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, providers: int, timeout: float = 240) -> None:
        """Until the listener accepts and ``providers`` provider binds are up."""
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen([SMSGW, "run"], env=self.env, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"smsgw run exited {self.proc.returncode}: {self.stderr()}")
            code, last = self.status()
            actors = (last.get("cluster") or {}).get("actors") or {}
            bound = [
                a
                for n, a in actors.items()
                if n.startswith("provider:") and (a.get("bind") or {}).get("bound")
            ]
            if code == 0 and len(bound) >= providers:
                return
            time.sleep(0.2)  # each look is an `smsgw status` process of its own already
        raise AssertionError(f"the gateway did not come up: {last}\n{self.stderr()}")

    def smsgw(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """An ``smsgw`` command finding this gateway through its SMSGW_HOME alone."""
        only_home = {
            k: v
            for k, v in self.env.items()
            # The external broker's login is the operator's to give, as to `smsgw run`.
            if not k.startswith("SMSGW_") or k == "SMSGW_HOME" or k.startswith("SMSGW_KAFKA_S")
        }
        only_home["SMSGW_TOPIC_PREFIX"] = self.prefix
        return subprocess.run(
            [SMSGW, *args], env=only_home, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip

    def status(self) -> tuple[int, dict[str, Any]]:
        done = self.smsgw("status", "--json")
        try:
            return done.returncode, json.loads(done.stdout)
        except ValueError:
            return done.returncode, {}

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> tuple[str, str]:
        """What ``smsgw run`` printed so far: (stdout, stderr); Ray's actor logs come here."""
        out = self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""
        return out, self.stderr()

    def stop(self) -> None:
        """Ctrl-C (SIGKILL after 90 s); its output stays readable until ``close``."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        """Stop it, and remove its home (kept if a test failed meanwhile)."""
        try:
            self.stop()
        finally:
            self._home.done()
