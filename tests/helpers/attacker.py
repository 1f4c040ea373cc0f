"""Hostile SMPP peers in their own processes (so their CPU is not the gateway's GIL).

Run as ``python -m tests.helpers.attacker <mode> <host> <port> <hex bytes> [n]``:
- ``pipelined``: send the given bytes (a bind) followed by ``n`` enquire_link
  in one write, then hold the connection without reading;
- ``flood``: send the given bytes (a bind), read its answer, then write
  enquire_link as fast as the socket takes it and never read;
- ``flood-read``: the same, draining every response in a second thread;
- ``submit-flood``: like ``flood-read`` but repeating ``submit_sm`` (given as ``n``
  in hex) instead of enquire_link: a customer far over its TPS.
Prints ``ready`` once the first write is under way / the bind is answered.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import threading
import time

from tests.helpers.pdu import command_status, read_pdu

ENQUIRE_LINK = struct.pack(">IIII", 16, 0x15, 0, 7)


def start(
    mode: str, host: str, port: int, first: bytes, n: int | bytes = 0
) -> subprocess.Popen[str]:
    arg = n.hex() if isinstance(n, bytes) else str(n)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.attacker", mode, host, str(port), first.hex(), arg],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise AssertionError(f"attacker did not start: {line!r}")
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(10)


def _drain(s: socket.socket) -> None:
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass


def main() -> None:
    mode, host, port, first = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
    s = socket.create_connection((host, port))
    if mode == "pipelined":
        data = first + ENQUIRE_LINK * int(sys.argv[5])
        print("ready", flush=True)
        with contextlib.suppress(OSError):
            s.sendall(data)
        time.sleep(3600)
        return
    s.sendall(first)
    assert command_status(read_pdu(s)) == 0, "flood bind refused"
    if mode in ("flood-read", "submit-flood"):
        threading.Thread(target=_drain, args=(s,), daemon=True).start()
    print("ready", flush=True)
    unit = bytes.fromhex(sys.argv[5]) if mode == "submit-flood" else ENQUIRE_LINK
    batch = unit * (65536 // len(unit))
    try:
        while True:
            s.sendall(batch)
    except OSError:
        time.sleep(3600)


if __name__ == "__main__":
    main()
