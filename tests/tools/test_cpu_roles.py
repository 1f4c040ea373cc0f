"""CPU per message by role (benchmarks.cpu): roles from command lines, the report entry."""

from __future__ import annotations

import subprocess
import sys

import psutil

from benchmarks.cpu import CpuMeter, per_message, role_of


def test_roles_from_command_lines() -> None:
    assert role_of(["java", "-cp", "x", "kafka.Kafka", "server.properties"]) == "kafka broker"
    assert role_of(["ray::ListenerImpl.start"]) == "listener"
    assert role_of(["ray::connector-host:ConnectorHostImpl.assign"]) == "provider binds"
    assert role_of(["ray::router#0:RouterImpl.__init__"]) == "router"
    assert role_of(["ray::CorrelatorImpl"]) == "correlator"
    assert role_of(["ray::SupervisorImpl.status"]) == "other actors"
    assert role_of(["python", "-m", "smsgw.actors.loopback", "start", "--head"]) == "ray system"
    assert role_of(["ray::IDLE"]) == "ray system"
    assert role_of(["/x/ray/core/src/ray/gcs/gcs_server", "--port=1"]) == "ray system"
    assert role_of(["/v/bin/python", "-m", "benchmarks.loadgen", "--port", "1"]) == "load tools"
    assert role_of(["postgres: bench bench 127.0.0.1 idle"]) == "postgres"
    assert role_of(["bash"]) is None


def test_per_message_excludes_the_load_tools_from_the_gateway_total() -> None:
    cpu = per_message(
        {
            "kafka broker": 1.0,
            "listener": 0.5,
            "load tools": 2.0,
            "bench driver": 0.1,
            "wall_s": 10,
        },
        1000,
    )
    assert cpu["gateway_ms_per_msg"] == 1.5
    assert cpu["load_tools_ms_per_msg"] == 2.0
    assert cpu["ms_per_msg"] == {
        "kafka broker": 1.0,
        "listener": 0.5,
        "load tools": 2.0,
        "bench driver": 0.1,
    }
    assert cpu["gateway_cores"] == 0.15
    assert per_message({"listener": 1.0, "wall_s": 1}, 0)["gateway_ms_per_msg"] is None


def test_the_meter_counts_a_child_born_during_the_run() -> None:
    meter = CpuMeter(interval=0.05).start()
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn, "benchmarks.loadgen"])
    try:
        while child.poll() is None and psutil.pid_exists(child.pid):
            try:
                if psutil.Process(child.pid).cpu_times().user > 0.25:
                    break
            except psutil.Error:
                break
        got = meter.stop()
    finally:
        child.wait()
    assert got.get("load tools", 0.0) >= 0.2
