"""Random and mutated byte streams against the real listener (invariant 8)."""

from __future__ import annotations

import socket
import struct

import pytest
import smpplib.smpp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import esme
from tests.helpers.gateway import GatewayNode

pytestmark = pytest.mark.integration


def _valid_frames() -> list[bytes]:
    bind = smpplib.smpp.make_pdu(
        "bind_transceiver",
        client=None,
        sequence=1,
        system_id="fuzz",
        password="pw",
        system_type="",
    )
    bind.sequence = 1
    submit = smpplib.smpp.make_pdu(
        "submit_sm",
        client=None,
        sequence=2,
        source_addr="1",
        destination_addr="4917600000002",
        short_message=b"hello",
    )
    submit.sequence = 2
    return [bind.generate(), submit.generate(), struct.pack(">IIII", 16, 0x15, 0, 3)]


VALID = _valid_frames()


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "mutated", "lengths"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=400))
    if kind == "lengths":  # valid header shapes with hostile lengths and ids
        length = draw(st.integers(0, 2**32 - 1))
        cid = draw(st.sampled_from([0x4, 0x9, 0x15, 0x103, 0x80000004, 0x21, 0x12345678]))
        return struct.pack(">IIII", length, cid, 0, draw(st.integers(0, 2**32 - 1)))
    data = bytearray(b"".join(VALID))
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


def _poke(host: str, port: int, data: bytes) -> None:
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(data)
        s.settimeout(0.15)
        try:
            while s.recv(4096):
                pass
        except (TimeoutError, ConnectionError):
            pass


def test_listener_survives_hostile_streams_and_other_sessions_keep_working(
    gateway: GatewayNode,
) -> None:
    gateway.add_customer("fuzz", "pw")
    gateway.add_customer("good", "pw")
    good = esme.bind(gateway.host, gateway.port, "good", "pw")

    @settings(
        max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(streams())
    def one(data: bytes) -> None:
        _poke(gateway.host, gateway.port, data)

    try:
        one()
        assert esme.submit(good).status == 0, "a bystander session is unharmed"
        assert esme.bind_status(gateway.host, gateway.port, "fuzz", "pw") == 0, "still accepting"
    finally:
        good.disconnect()
