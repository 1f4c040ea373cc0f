"""Child processes that die with their parent and stop as a group.

Every embedded service runs as a direct child in its own process group, with
``PR_SET_PDEATHSIG`` so that even a SIGKILLed parent leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent(uid: int | None = None, gid: int | None = None) -> Callable[[], None]:
    def preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if gid is not None:
            os.setgid(gid)
            os.setgroups([])
        if uid is not None:
            os.setuid(uid)

    return preexec


class ServiceError(RuntimeError):
    """An embedded service could not be started; the message says what to look at."""


class ManagedProcess:
    """One long-running child, its log file, and a clean stop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        uid: int | None = None,
        gid: int | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.uid = uid
        self.gid = gid
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent(self.uid, self.gid),  # noqa: PLW1509 - prctl needs it
            )
        finally:
            log.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        """Ask politely, then kill the whole process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL the group at once (crash tests)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now, below the ephemeral range, never one this process was given before.

    Below the ephemeral range (``net.ipv4.ip_local_port_range``) because a port
    the kernel handed out for listening is, until the service binds it, just as
    likely to be taken as the local end of some outgoing connection (Kafka and
    Ray clients open hundreds): a listener then failed with EADDRINUSE in a
    loop. And never twice per process: Kafka's client and controller ports,
    picked in a row, must differ.
    """
    low, _ = _ephemeral_range()
    first, last = 10000, low - 1
    for _ in range(1000):
        port = random.randint(first, last) if last > first + 1000 else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise ServiceError(f"no free port on {host} between {first} and {last}")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(
    check: Callable[[], bool], *, timeout: float, what: str, proc: ManagedProcess | None = None
) -> None:
    """Poll ``check`` until true; fail loudly with the service's log if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.proc is not None and proc.proc.poll() is not None:
            raise ServiceError(
                f"{what}: process exited with code {proc.proc.returncode}; "
                f"log {proc.log_path}:\n{proc.log_tail()}"
            )
        if check():
            return
        time.sleep(0.2)
    tail = f"; log {proc.log_path}:\n{proc.log_tail()}" if proc else ""
    raise ServiceError(f"{what}: not ready after {timeout:.0f} s{tail}")
