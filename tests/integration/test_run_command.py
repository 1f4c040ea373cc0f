"""`smsgw run` brings up everything, `smsgw status` sees it, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from smsgw.cluster.procs import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMSGW = str(Path(sys.executable).parent / "smsgw")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSGW_", "RAY_"))}
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


def _status(env: dict[str, str]) -> tuple[int, list[dict[str, object]]]:
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


def test_run_status_and_ctrl_c_leaves_nothing_running() -> None:
    home = Path(tempfile.mkdtemp(prefix="smsgw-test-run-"))
    env = _env(home)
    proc = subprocess.Popen([SMSGW, "run"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        code, report = 1, list[dict[str, object]]()
        while time.monotonic() < deadline and proc.poll() is None:
            code, report = _status(env)
            if code == 0:
                break
            time.sleep(1)
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"smsgw run exited {proc.returncode}: {err}")
        assert code == 0, f"status never healthy: {report}"
        assert {r["part"] for r in report} == {
            "kafka",
            "postgres",
            "ray",
            "smpp",
            "metrics",
            "console",
        }
        metrics = next(r for r in report if r["part"] == "metrics")
        assert f"127.0.0.1:{env['SMSGW_METRICS_PORT']}/metrics" in str(metrics["detail"])
        assert all(r["healthy"] for r in report)
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "kafka.Kafka" in names and "postgres" in names and "ray" in names
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    time.sleep(1)
    left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"left running: {[c.cmdline()[:3] for c in left]}"
    code, report = _status(env)
    assert code == 1 and not any(r["healthy"] for r in report)
