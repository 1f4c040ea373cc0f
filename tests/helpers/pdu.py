"""Reading whole SMPP PDUs off a raw socket, for test peers that speak SMPP by hand."""

from __future__ import annotations

import socket
import struct

HEADER = 16  # command_length, command_id, command_status, sequence_number (SMPP 3.4 §3.2)


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes; ConnectionError if the peer closes first (``recv`` returning b"" is EOF,
    and asking again would return b"" forever)."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_pdu(sock: socket.socket) -> bytes:
    """The next whole PDU (header and body); ConnectionError if the peer closes mid-PDU,
    ValueError if its command_length is below the header's 16 octets (SMPP 3.4 §3.2)."""
    head = _read_exactly(sock, HEADER)
    (length,) = struct.unpack(">I", head[:4])
    if length < HEADER:
        raise ValueError(f"command_length {length} is shorter than the header")
    return head + _read_exactly(sock, length - HEADER)


def command_status(pdu: bytes) -> int:
    """The command_status of a PDU read by ``read_pdu``."""
    return int(struct.unpack(">I", pdu[8:12])[0])
