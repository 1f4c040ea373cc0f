"""The test peers' PDU reader (tests/helpers/pdu.py): a peer closing mid-PDU is an error.

The old ``raw_bind.read_status`` skipped the body with ``rest -= len(sock.recv(rest))``:
at EOF ``recv`` returns b"" forever, so it spun instead of failing.
"""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from tests.helpers.pdu import read_pdu
from tests.helpers.raw_bind import read_status

BIND_RESP = struct.pack(">IIII", 16 + 6, 0x80000002, 0x0D, 1) + b"smsc1\x00"


def _peer_sends(data: bytes) -> socket.socket:
    """Our end of a socket pair whose other end sent ``data`` and closed."""
    ours, theirs = socket.socketpair()
    ours.settimeout(5)  # the old loop never blocks (recv at EOF returns at once): no help
    theirs.sendall(data)
    theirs.close()
    return ours


def _in_thread(fn: object, sock: socket.socket) -> BaseException | object:
    """``fn(sock)``'s result or exception, or AssertionError if it is still running after
    5 s (a spin at EOF: what the old reader did)."""
    out: list[BaseException | object] = []

    def run() -> None:
        try:
            out.append(fn(sock))  # type: ignore[operator]
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():
        raise AssertionError(f"{fn} still reading 5 s after the peer closed")
    return out[0]


def test_a_whole_pdu_is_read_and_its_status_given() -> None:
    with _peer_sends(BIND_RESP + b"next") as s:
        assert read_status(s) == 0x0D
        assert s.recv(4) == b"next", "the body was consumed, nothing more"
    with _peer_sends(BIND_RESP) as s:
        assert read_pdu(s) == BIND_RESP


@pytest.mark.parametrize("cut", [0, 7, 16, 19], ids=["nothing", "mid-header", "header", "mid-body"])
def test_a_peer_closing_mid_pdu_raises_connection_error(cut: int) -> None:
    for reader in (read_status, read_pdu):
        with _peer_sends(BIND_RESP[:cut]) as s:
            assert isinstance(_in_thread(reader, s), ConnectionError), (reader, cut)


def test_a_length_below_the_header_is_refused() -> None:
    with (
        _peer_sends(struct.pack(">IIII", 8, 0x80000002, 0, 1)) as s,
        pytest.raises(ValueError, match="command_length 8"),
    ):
        read_pdu(s)
