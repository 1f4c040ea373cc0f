"""`smsgw run` brings up everything, `smsgw status` sees it, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import signal
import subprocess
import time

import psutil
import pytest

from tests.helpers.run import SMSGW, run_env, status, wait_healthy
from tests.helpers.scratch import TestDirs

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_run_status_and_ctrl_c_leaves_nothing_running(data_dir: TestDirs) -> None:
    home = data_dir("run")
    env = run_env(home)
    proc = subprocess.Popen([SMSGW, "run"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        report = wait_healthy(proc, env)
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
    code, report = status(env)
    assert code == 1 and not any(r["healthy"] for r in report)


def test_a_second_run_on_the_same_home_comes_up_with_the_same_secrets(data_dir: TestDirs) -> None:
    """The token, the Kafka user (formatted into the broker's storage) and the data persist;
    the home set back to 0700 by each start still lets PostgreSQL's own user through."""
    home = data_dir("rerun")
    env = run_env(home)
    seen = []
    for _ in range(2):
        proc = subprocess.Popen([SMSGW, "run"], env=env, stderr=subprocess.PIPE, text=True)
        try:
            report = wait_healthy(proc, env)
            assert all(r["healthy"] for r in report)
            seen.append(
                (
                    (home / "ray_auth_token").read_text(),
                    (home / "kafka_credentials.json").read_text(),
                )
            )
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert seen[0] == seen[1]
