"""The PROXY protocol header off a connection's input (smsgw.server.proxy_header)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proxyprotocol import ProxyProtocol
from proxyprotocol.result import (
    ProxyResultIPv4,
    ProxyResultIPv6,
    ProxyResultLocal,
    ProxyResultUnknown,
)
from proxyprotocol.v1 import ProxyProtocolV1
from proxyprotocol.v2 import ProxyProtocolV2

from smsgw.server.proxy_header import MAX_HEADER, ProxyHeaderError, read_proxy_header

BIND = bytes.fromhex("0000002500000009000000000000000161636d6500707700000034000000")
CUSTOMER = ipaddress.IPv4Address("203.0.113.7")
LISTENER = ipaddress.IPv4Address("10.0.0.1")
VERSIONS = [ProxyProtocolV1(), ProxyProtocolV2()]


@pytest.mark.parametrize("pp", VERSIONS, ids=["v1", "v2"])
def test_the_customer_address_and_length_whichever_way_the_bytes_arrive(
    pp: ProxyProtocol,
) -> None:
    header = pp.pack(ProxyResultIPv4((CUSTOMER, 40123), (LISTENER, 2775)))
    stream = header + BIND
    answers = [read_proxy_header(stream[:n]) for n in range(len(stream) + 1)]
    assert all(a is None for a in answers[: len(header)]), "a part is not a header"
    for a in answers[len(header) :]:
        assert a is not None and a.length == len(header) and a.source_ip == "203.0.113.7"


def test_ipv6_and_ipv4_mapped_sources() -> None:
    v2 = ProxyProtocolV2()
    six = ipaddress.IPv6Address("2001:db8::5")
    got = read_proxy_header(v2.pack(ProxyResultIPv6((six, 1), (ipaddress.IPv6Address("::1"), 2))))
    assert got is not None and got.source_ip == "2001:db8::5"
    mapped = ipaddress.IPv6Address("::ffff:198.51.100.9")
    got = read_proxy_header(
        v2.pack(ProxyResultIPv6((mapped, 1), (ipaddress.IPv6Address("::1"), 2)))
    )
    assert got is not None and got.source_ip == "198.51.100.9"  # as an allowlist reads it


@pytest.mark.parametrize(
    "header",
    [ProxyProtocolV2().pack(ProxyResultLocal()), ProxyProtocolV1().pack(ProxyResultUnknown())],
    ids=["v2-local", "v1-unknown"],
)
def test_local_and_unknown_keep_the_connection_address(header: bytes) -> None:
    got = read_proxy_header(header + BIND)
    assert got is not None and got.length == len(header) and got.source_ip is None


@pytest.mark.parametrize(
    "data",
    [
        BIND,  # a proxy configured without send-proxy: SMPP straight away
        b"PROXY TCP4 1.2.3.4\r\n",  # too few fields
        b"PROXY TCP4 1.2.3.999 10.0.0.1 1 2\r\n",  # not an address
        b"GET / HTTP/1.1\r\n",
        b"PROXY " + b"1" * 200,  # no line end where v1 must have one (107 octets)
    ],
    ids=["smpp", "short", "bad-address", "http", "endless-v1"],
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        read_proxy_header(data)


def test_a_v2_header_longer_than_the_limit_is_refused() -> None:
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    huge = signature + b"\x21\x11" + (MAX_HEADER).to_bytes(2, "big") + b"\x00" * MAX_HEADER
    with pytest.raises(ProxyHeaderError):
        read_proxy_header(huge)


@given(st.binary(max_size=300))
def test_arbitrary_input_is_a_header_an_error_or_incomplete(data: bytes) -> None:
    try:
        got = read_proxy_header(data)
    except ProxyHeaderError:
        return
    assert got is None or 0 < got.length <= len(data)
