"""The README's "First message in five minutes" block, run as written.

The commands are read from the README (the fenced block after the
``<!-- first-run -->`` marker), so the two cannot drift. Two liberties, both
about sharing the machine: the fixed ports 2775 (gateway SMPP) and 2776 (the
simulator) become free ports, and ``make run`` is its last step,
``.venv/bin/smsgw run`` (the harness has already done ``make setup``).
Everything else is the README's text.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from smsgw.cluster.procs import free_port
from tests.helpers.scratch import TestDirs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SMSGW = str(Path(sys.executable).parent / "smsgw")


def first_run_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    marker = text.index("<!-- first-run -->")
    block = re.search(r"```sh\n(.*?)```", text[marker:], re.DOTALL)
    assert block is not None, "no ```sh block after the first-run marker"
    return [
        line.strip()
        for line in block.group(1).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


class Background:
    """A foreground command of the README, in the background; its stderr is watched."""

    def __init__(self, argv: list[str], env: dict[str, str], ready: str) -> None:
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.pattern = ready
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if self.pattern in line:
                self.ready.set()

    def wait_ready(self, timeout: float) -> None:
        if not self.ready.wait(timeout):
            tail = "".join(self.lines[-30:])
            raise AssertionError(f"{self.proc.args!r} not ready in {timeout:.0f} s:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def test_the_readme_first_run_block_sends_a_message_and_gets_its_receipt(
    data_dir: TestDirs,
) -> None:
    commands = first_run_commands()
    assert commands[0] == "make run"
    home = data_dir("first-run")
    gw_port, sim_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSGW_", "RAY_"))}
    env["RAY_TMPDIR"] = os.environ["RAY_TMPDIR"]  # the run's Ray dirs, removed with it
    env.update(
        SMSGW_HOME=str(home),
        SMSGW_KAFKA_PORT=str(free_port()),
        SMSGW_KAFKA_CONTROLLER_PORT=str(free_port()),
        SMSGW_POSTGRES_PORT=str(free_port()),
        SMSGW_RAY_PORT=str(free_port()),
        SMSGW_RAY_DASHBOARD_PORT=str(free_port()),
        SMSGW_SMPP_LISTEN=f"127.0.0.1:{gw_port}",
    )

    def ports(cmd: str) -> str:
        cmd = re.sub(r"--port 2775\b", f"--port {gw_port}", cmd)
        return re.sub(r"--port 2776\b", f"--port {sim_port}", cmd)

    running: list[Background] = []
    try:
        gateway = Background([SMSGW, "run"], env, "smsgw: ready")
        running.append(gateway)
        gateway.wait_ready(240)
        last = None
        for cmd in commands[1:]:
            argv = shlex.split(ports(cmd))
            if argv[0].endswith("smsc-sim"):
                sim = Background(argv, env, "smsc-sim listening")
                running.append(sim)
                sim.wait_ready(60)
                continue
            last = subprocess.run(
                argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
            )
            assert last.returncode == 0, f"{cmd}\n{last.stdout}\n{last.stderr}"
        assert last is not None and "loadgen-run" in last.args[0]
        summary = json.loads(last.stdout)
        assert summary["accepted"] == 10
        assert summary["receipts_matched"] == 10, summary
        assert summary["receipts_missing"] == 0
    finally:
        for bg in reversed(running):
            bg.stop()
