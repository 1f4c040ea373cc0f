"""Customers behind HAProxy keep their own address (issue 14: the PROXY protocol).

A real HAProxy (Debian's) in TCP mode in front of the listener, as the VIP of
docs/DEPLOYMENT.md, connecting from its own address 127.0.0.3 with
``send-proxy`` (v1) or ``send-proxy-v2``. Customers connect to it from
127.0.0.2 or 127.0.0.4. Without the header the listener would see every
customer as 127.0.0.3: a customer's ``--allow-ip`` list, the per-IP bind
lockout and the per-IP connection limit would all apply to the proxy.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxyprotocol.result import ProxyResultIPv4
from proxyprotocol.v1 import ProxyProtocolV1

from smsgw.cluster.procs import ManagedProcess, free_port, port_open, wait_for
from smsgw.smpp.status import CommandStatus as S
from smsgw.topics import Topics
from tests.helpers.gateway import GatewayNode
from tests.helpers.raw_bind import bind_frame, raw_bind, read_status
from tests.integration.conftest import gateway_settings

pytestmark = pytest.mark.integration

PROXY_IP = "127.0.0.3"  # HAProxy's source address towards the listener
CUSTOMER_IP = "127.0.0.2"  # the customer's own, on its allowlist
STRANGER_IP = "127.0.0.4"


@pytest.fixture
def node(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    settings = gateway_settings(
        bootstrap,
        db_url,
        smpp_proxy_protocol_from=f"{PROXY_IP}/32",
        bind_failures_before_lockout=2,
    )
    gw = GatewayNode(settings, topics)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(params=["send-proxy", "send-proxy-v2"])
def vip(request: pytest.FixtureRequest, node: GatewayNode, tmp_path: Path) -> Iterator[int]:
    """HAProxy's frontend port, forwarding to the listener with a PROXY header."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "\n".join(
            [
                "defaults",
                "    mode tcp",
                "    timeout connect 5s",
                "    timeout client 60s",
                "    timeout server 60s",
                "frontend vip",
                f"    bind 127.0.0.1:{port}",
                "    default_backend listeners",
                "backend listeners",
                f"    server gw {node.host}:{node.port} {request.param} source {PROXY_IP}",
                "",
            ]
        )
    )
    proc = ManagedProcess("haproxy", [haproxy, "-db", "-f", str(cfg)], tmp_path / "haproxy.log")
    proc.start()
    try:
        wait_for(lambda: port_open("127.0.0.1", port), timeout=20, what="HAProxy", proc=proc)
        yield port
    finally:
        proc.stop()


def test_the_customer_address_behind_the_proxy_is_what_the_listener_checks(
    node: GatewayNode, vip: int
) -> None:
    node.add_customer("walled", "right", allow_ips=[f"{CUSTOMER_IP}/32"])
    # Its allowlist sees the customer, not the proxy (the old listener: RBINDFAIL).
    assert raw_bind("127.0.0.1", vip, "walled", "right", ip=CUSTOMER_IP)[0] == S.ESME_ROK
    assert raw_bind("127.0.0.1", vip, "walled", "right", ip=STRANGER_IP)[0] == S.ESME_RBINDFAIL
    # A stranger guessing passwords through the VIP is locked out by its own
    # address; the customer behind the same proxy is not.
    for n in range(3):
        raw_bind("127.0.0.1", vip, "walled", f"guess{n}", ip=STRANGER_IP)
    assert raw_bind("127.0.0.1", vip, "walled", "right", ip=CUSTOMER_IP)[0] == S.ESME_ROK
    events = node.counters()
    assert not any(e[0] == "proxy_header_invalid" for e in events), events


def test_only_the_configured_proxy_is_believed_and_it_must_send_the_header(
    node: GatewayNode,
) -> None:
    node.add_customer("walled", "right", allow_ips=[f"{CUSTOMER_IP}/32"])
    forged = ProxyProtocolV1().pack(
        ProxyResultIPv4(
            (ipaddress.IPv4Address(CUSTOMER_IP), 1), (ipaddress.IPv4Address(node.host), node.port)
        )
    )
    # A stranger that sends a header of its own is not a proxy: the header is
    # SMPP input to the framer, which refuses it; it is never bound as the customer.
    with socket.create_connection((node.host, node.port), source_address=(STRANGER_IP, 0)) as s:
        s.settimeout(30)
        s.sendall(forged + bind_frame("walled", "right"))
        try:
            status = read_status(s)
        except ConnectionError:
            status = -1
    assert status != S.ESME_ROK
    # The proxy's address without a header (send-proxy forgotten): closed unanswered.
    with socket.create_connection((node.host, node.port), source_address=(PROXY_IP, 0)) as s:
        s.settimeout(30)
        s.sendall(bind_frame("walled", "right"))
        with pytest.raises(ConnectionError):
            read_status(s)
    node_events = node.counters()
    assert any(e[0] == "proxy_header_invalid" for e in node_events), node_events
