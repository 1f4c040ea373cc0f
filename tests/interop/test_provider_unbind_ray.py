"""Third-party SMSCs see an unbind when the Ray runtime stops their binds on purpose (item 5).

On the Ray runtime the supervisor stops the bind actors of a disabled provider;
each must send ``unbind`` and wait for ``unbind_resp`` (SMPP 3.4 §4.2) before
its connection closes, instead of being killed with the TCP connection dropped
under it. node-smpp's server and jsmpp's server session report what arrived.
"""

from __future__ import annotations

import psycopg
import pytest

from smsgw.cluster.procs import free_port
from smsgw.db.providers import update_provider
from tests.helpers.cluster import Runtime
from tests.interop.peers import PeerProcess

pytestmark = [pytest.mark.integration, pytest.mark.interop]


def test_disabled_provider_unbinds_from_third_party_smscs(
    runtime: Runtime, node_peers: PeerProcess, java_peers: PeerProcess
) -> None:
    smscs = {"rnode": node_peers, "rjava": java_peers}
    ports = {}
    for name, peers in smscs.items():
        peers.send(name, "serve", port=free_port(), system_id=name, password="pw")
        ports[name] = peers.wait_for(name, "listening")[0]["port"]
    runtime.configure(
        customers=[],
        providers={name: {"port": port} for name, port in ports.items()},
        routes=[],
    )
    runtime.start(providers=len(smscs))
    for name, peers in smscs.items():
        peers.wait_for(name, "bound", timeout=90)

    with psycopg.connect(runtime.db_url) as conn:
        for name in smscs:
            update_provider(conn, name, enabled=False)
    # Both links close; what matters is how. node-smpp reports the unbind it answered; jsmpp
    # moves a session to UNBOUND on an unbind, straight to CLOSED on a dropped connection.
    node_peers.wait_for("rnode", "closed", timeout=60)
    java_peers.wait_for("rjava", "state", lambda e: e["state"] == "CLOSED", timeout=60)
    node_seen = [e["ev"] for e in node_peers.of("rnode") if e["ev"] in ("unbind", "closed")]
    java_seen = [e["state"] for e in java_peers.of("rjava", "state")]
    assert (node_seen, java_seen[-2:]) == (
        ["unbind", "closed"],
        ["UNBOUND", "CLOSED"],
    ), f"node-smpp saw {node_seen}, jsmpp {java_seen}"
    for name, peers in smscs.items():
        peers.send(name, "stop")
        peers.wait_for(name, "stopped")
