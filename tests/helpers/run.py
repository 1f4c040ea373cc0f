"""Starting ``smsgw run`` as a subprocess with a home and ports of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from smsgw.cluster.procs import free_port

SMSGW = str(Path(sys.executable).parent / "smsgw")


def run_env(home: Path) -> dict[str, str]:
    """The environment of a fresh ``smsgw run``: nothing of the session's Ray or settings
    but the run's dir for Ray's session dirs (``RAY_TMPDIR``: removed with the run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSGW_", "RAY_"))}
    if "RAY_TMPDIR" in os.environ:
        env["RAY_TMPDIR"] = os.environ["RAY_TMPDIR"]
    env.update(
        SMSGW_HOME=str(home),
        SMSGW_KAFKA_PORT=str(free_port()),
        SMSGW_KAFKA_CONTROLLER_PORT=str(free_port()),
        SMSGW_POSTGRES_PORT=str(free_port()),
        SMSGW_RAY_PORT=str(free_port()),
        SMSGW_RAY_DASHBOARD_PORT=str(free_port()),
        SMSGW_METRICS_PORT=str(free_port()),
        SMSGW_CONSOLE_LISTEN=f"127.0.0.1:{free_port()}",
        SMSGW_SMPP_LISTEN=f"127.0.0.1:{free_port()}",
    )
    return env


def status(env: dict[str, str]) -> tuple[int, list[dict[str, object]]]:
    # Only SMSGW_HOME: status must find the services by itself.
    only_home = {k: v for k, v in env.items() if not k.startswith("SMSGW_") or k == "SMSGW_HOME"}
    done = subprocess.run(
        [SMSGW, "status", "--json"],
        check=False,
        env=only_home,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, out.get("health", [])


def wait_healthy(
    proc: subprocess.Popen[str], env: dict[str, str], timeout: float = 180
) -> list[dict[str, object]]:
    """Until ``smsgw status`` reports every part healthy; fails if ``smsgw run`` exits."""
    deadline = time.monotonic() + timeout
    code, report = 1, list[dict[str, object]]()
    while time.monotonic() < deadline and proc.poll() is None:
        code, report = status(env)
        if code == 0:
            return report
        time.sleep(0.2)  # each look is an `smsgw status` process of its own already
    if proc.poll() is not None:
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"smsgw run exited {proc.returncode}: {err}")
    raise AssertionError(f"status never healthy: {report}")
