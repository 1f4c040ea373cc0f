"""The PROXY protocol header a load balancer puts in front of a customer's SMPP bytes.

Behind HAProxy (the customers' VIP, docs/DEPLOYMENT.md) every connection comes
from the proxy's address, so the per-IP connection limit, the bind lockout and
a customer's ``--allow-ip`` list would all see the proxy. With ``send-proxy``
or ``send-proxy-v2`` on HAProxy's server lines, each connection starts with a
header naming the customer's own address (PROXY protocol v1 text or v2 binary,
https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt). The header is
parsed by the ``proxy-protocol`` library; this module only feeds it from the
connection's input buffer (sans-IO: bytes in, the address out) and decides
what may be believed:

- only from ``SMSGW_SMPP_PROXY_PROTOCOL_FROM`` (the proxies' addresses): a
  header from anyone else is not read as one, so no customer can claim another
  address; it is then SMPP input, which the framer refuses (generic_nack);
- from those addresses the header is required: a connection that starts with
  anything else is closed (a proxy misconfigured without ``send-proxy`` would
  otherwise make every customer look like the proxy);
- a ``LOCAL`` header (HAProxy's own health check with ``check-send-proxy``) or
  an ``UNKNOWN`` source keeps the proxy's address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from proxyprotocol import (
    ProxyProtocolChecksumError,
    ProxyProtocolIncompleteError,
    ProxyProtocolSyntaxError,
)
from proxyprotocol.detect import ProxyProtocolDetect
from proxyprotocol.result import is_ipv4, is_ipv6

# A v1 header is at most 107 octets (the specification, 2.1); a v2 header 16 plus
# its TLVs: HAProxy sends a few hundred at most (SSL and unique-id TLVs), more is
# not a proxy of ours.
MAX_V1 = 107
MAX_HEADER = 4096

_DETECT = ProxyProtocolDetect()


class ProxyHeaderError(ValueError):
    """The connection did not start with a usable PROXY header (closed)."""


@dataclass(frozen=True)
class ProxyHeader:
    """A whole header: its length in octets and the customer's address (None: keep
    the connection's own, for LOCAL and UNKNOWN)."""

    length: int
    source_ip: str | None


def read_proxy_header(buf: bytes | bytearray) -> ProxyHeader | None:
    """The PROXY header at the start of ``buf``; None while it is incomplete.

    Raises ``ProxyHeaderError`` when ``buf`` does not start with a v1 or v2
    header, the header is malformed or its v2 checksum is wrong, or no header
    ends within ``MAX_HEADER`` octets. The caller drops ``length`` octets.
    """
    data = bytes(buf[:MAX_HEADER])
    used = 0
    while True:
        try:
            result = _DETECT.unpack(data[:used])
        except ProxyProtocolIncompleteError as exc:
            want = exc.want_read
            if want.want_bytes is not None:
                more = used + want.want_bytes
            else:  # v1: up to the end of the line
                end = data.find(b"\n", used, MAX_V1)
                if end < 0 and len(buf) >= MAX_V1:
                    raise ProxyHeaderError(f"no PROXY v1 line end within {MAX_V1} octets") from None
                more = end + 1 if end >= 0 else len(data) + 1
            if more > len(data):
                if len(buf) >= MAX_HEADER:
                    raise ProxyHeaderError(f"no PROXY header within {MAX_HEADER} octets") from None
                return None
            used = more
            continue
        except (ProxyProtocolSyntaxError, ProxyProtocolChecksumError, ValueError) as exc:
            raise ProxyHeaderError(f"not a PROXY header: {exc or type(exc).__name__}") from None
        if is_ipv4(result) or is_ipv6(result):
            addr = result.source[0]
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
                addr = addr.ipv4_mapped
            return ProxyHeader(used, str(addr))
        return ProxyHeader(used, None)
