"""A bind over a raw socket from a chosen source address: what the listener sees of it."""

from __future__ import annotations

import socket
import struct
import time

import smpplib.smpp


def bind_frame(system_id: str, password: str, sequence: int = 1) -> bytes:
    """A bind_transmitter PDU (any system_id length: smpplib would truncate a long one)."""
    pdu = smpplib.smpp.make_pdu(
        "bind_transmitter", client=None, sequence=sequence, system_id="X", password=password,
        system_type="",
    )  # fmt: skip
    pdu.sequence = sequence
    raw: bytes = pdu.generate()
    body = system_id.encode() + raw[16 + 1 :]
    return struct.pack(">IIII", 16 + len(body), 2, 0, sequence) + body


def read_status(sock: socket.socket) -> int:
    """The command_status of the next PDU (its body skipped); ConnectionError if closed."""
    head = b""
    while len(head) < 16:
        chunk = sock.recv(16 - len(head))
        if not chunk:
            raise ConnectionError("closed before the bind answer")
        head += chunk
    length, _cid, status, _seq = struct.unpack(">IIII", head)
    rest = length - 16
    while rest > 0:
        rest -= len(sock.recv(rest))
    return int(status)


def raw_bind(
    host: str, port: int, system_id: str, password: str, ip: str, prefix: bytes = b""
) -> tuple[int, float]:
    """(command_status, seconds to the answer) of one bind from source address ``ip``,
    after ``prefix`` (a PROXY header, say)."""
    with socket.create_connection((host, port), source_address=(ip, 0), timeout=30) as s:
        start = time.monotonic()
        s.sendall(prefix + bind_frame(system_id, password))
        status = read_status(s)
        return status, time.monotonic() - start
