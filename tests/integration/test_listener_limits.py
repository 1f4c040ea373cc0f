"""Issue 11: a listener no single peer can starve (invariant 8).

Attackers run in their own processes (tests.helpers.attacker) so that their
CPU does not compete with the in-process gateway for the GIL; the bystander
is a plain python-smpplib customer measuring its submit_sm_resp latency.
"""

from __future__ import annotations

import resource
import socket
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
import smpplib.smpp

from smsgw.topics import Topics
from tests.helpers import attacker, esme
from tests.helpers.gateway import GatewayNode
from tests.integration.conftest import gateway_settings

pytestmark = pytest.mark.integration


def _node(bootstrap: str, db_url: str, topics: Topics, **overrides: Any) -> Iterator[GatewayNode]:
    node = GatewayNode(gateway_settings(bootstrap, db_url, **overrides), topics)
    node.start()
    yield node
    node.stop()


def _bind_pdu(system_id: str, password: str, sequence: int = 1) -> bytes:
    pdu = smpplib.smpp.make_pdu(
        "bind_transmitter", client=None, sequence=sequence, system_id=system_id,
        password=password, system_type="",
    )  # fmt: skip
    pdu.sequence = sequence
    raw: bytes = pdu.generate()
    return raw


def _latencies(client: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        resp = esme.submit(client)
        out.append(time.perf_counter() - start)
        assert resp.status == 0
    return out


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def _closed_within(sock: socket.socket, timeout: float) -> bool:
    """True once the gateway closed `sock` (EOF or reset) within `timeout`."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
    return False


def _conn_stats(gw: GatewayNode) -> list[tuple[str | None, int, bool]]:
    """(system_id, octets held, reading paused) of every open connection."""
    assert gw.gateway.core is not None
    core = gw.gateway.core
    return gw.call(
        lambda: [
            (c.system_id, getattr(c, "buffered", -1), getattr(c, "_reading_paused", False))
            for c in core.connections
        ]
    )


@pytest.fixture
def limited(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    yield from _node(
        bootstrap, db_url, topics, smpp_bind_timeout_s=1.5, smpp_max_connections_per_ip=4,
        smpp_max_connections=6,
    )  # fmt: skip


def test_pipelined_flood_behind_a_refused_bind_does_not_stall_others(
    gateway: GatewayNode,
) -> None:
    """A wrong-password bind followed in one write by 4 MB of enquire_link (was: 3.5 s stall)."""
    gateway.add_customer("victim", "pw")
    gateway.add_customer("good", "pw")
    good = esme.bind(gateway.host, gateway.port, "good", "pw")
    try:
        _latencies(good, 20)  # warm-up
        baseline = _latencies(good, 50)
        bind = _bind_pdu("victim", "wrong")
        proc = attacker.start("pipelined", gateway.host, gateway.port, bind, 4 * 1024 * 1024 // 16)
        try:
            during = _latencies(good, 400)  # spans the refusal (0.2 s) and what follows
            refused = [k for k in gateway.counters() if k[0] == "binds" and k[1] == "victim"]
            assert refused, "the attacker's bind was answered meanwhile"
            held = [b for sid, b, _ in _conn_stats(gateway) if sid is None]
        finally:
            attacker.stop(proc)
    finally:
        good.unbind()
    print(f"bystander max {max(baseline) * 1000:.1f} ms quiet, {max(during) * 1000:.1f} attacked")
    assert max(during) < max(1.0, 5 * max(baseline)), (
        f"bystander stalled {max(during):.2f}s (baseline max {max(baseline):.3f}s)"
    )
    assert held and max(held) < 2 * 1024 * 1024, f"attacker connection holds {held} octets"


def _submit_frame() -> bytes:
    pdu = smpplib.smpp.make_pdu(
        "submit_sm", client=None, sequence=9, source_addr_ton=1, source_addr_npi=1,
        source_addr="4915100000001", dest_addr_ton=1, dest_addr_npi=1,
        destination_addr="4917600000002", short_message=b"flood",
    )  # fmt: skip
    pdu.sequence = 9
    raw: bytes = pdu.generate()
    return raw


FLOODS = {
    # one peer writes enquire_link flat out and never reads; another reads
    "enquire_link": [("flood", 0), ("flood-read", 0)],
    # a customer writes submit_sm flat out, far over its TPS (throttled answers).
    # Its TPS is small (20) so that what it is entitled to (20 accepted a second,
    # real Kafka traffic) does not count as the abuse being measured.
    "submit_sm": [("submit-flood", 1)],
}
FLOOD_TPS = {"enquire_link": 100, "submit_sm": 20}


ROUNDS = 10


ATTEMPTS = 3


def _measure(
    gateway: GatewayNode, good: Any, floods: list[tuple[str, int]]
) -> tuple[float, float, list[int]]:
    """(bystander p99 quiet, p99 attacked, octets the flooders held), in alternating rounds."""
    baseline: list[float] = []
    during: list[float] = []
    held: list[int] = []
    for _ in range(ROUNDS):
        baseline += _latencies(good, 500 // ROUNDS)
        bind = _bind_pdu("flood", "pw")
        procs = [
            attacker.start(mode, gateway.host, gateway.port, bind, _submit_frame() if n else 0)
            for mode, n in floods
        ]
        try:
            deadline = time.monotonic() + 20
            while sum(sid == "flood" and p for sid, _, p in _conn_stats(gateway)) < len(procs):
                assert time.monotonic() < deadline, "the flooders are never held back"
                time.sleep(0.05)
            during += _latencies(good, 500 // ROUNDS)
            held += [b for sid, b, _ in _conn_stats(gateway) if sid == "flood"]
        finally:
            for proc in procs:
                attacker.stop(proc)
        deadline = time.monotonic() + 20
        while any(sid == "flood" for sid, _, _ in _conn_stats(gateway)):
            assert time.monotonic() < deadline, "flooders' connections never closed"
            time.sleep(0.05)
    return _p99(baseline), _p99(during), held


@pytest.mark.parametrize("kind", list(FLOODS))
def test_flooding_peers_do_not_slow_a_bystander_and_buffers_stay_bounded(
    gateway: GatewayNode, kind: str
) -> None:
    """Bystander p99 under attack <= 2x its baseline; the flooders' buffers stay bounded.

    Quiet and attacked rounds alternate, so that load from outside the test
    (other processes on the machine) falls on both samples alike. A p99 of a
    few hundred samples on a shared two-core machine still jumps now and then
    by tens of milliseconds, so the measurement may be taken up to ATTEMPTS
    times: an attack that really slows the bystander (the old code: p99 1.4 s
    for the enquire_link flood, 1.8 s for the submit flood) fails every one.
    """
    floods = FLOODS[kind]
    gateway.add_customer("flood", "pw", max_binds=4, tps=FLOOD_TPS[kind])
    gateway.add_customer("good", "pw")
    good = esme.bind(gateway.host, gateway.port, "good", "pw")
    seen: list[str] = []
    try:
        _latencies(good, 50)  # warm-up
        for _ in range(ATTEMPTS):
            base99, attack99, held = _measure(gateway, good, floods)
            assert len(held) == ROUNDS * len(floods) and max(held) < 1024 * 1024, (
                f"flooders hold {held}"
            )
            seen.append(f"{attack99 * 1000:.1f} ms vs 2 x {base99 * 1000:.1f} ms")
            print(f"{kind} flood: bystander p99 {seen[-1]}")
            if attack99 <= 2 * base99:
                break
        else:
            pytest.fail(f"bystander p99 under attack above 2x its baseline: {seen}")
    finally:
        good.unbind()


def test_unbound_connections_are_closed_at_the_bind_deadline(limited: GatewayNode) -> None:
    gw = limited
    gw.add_customer("c", "pw")
    bound = esme.bind(gw.host, gw.port, "c", "pw")
    idle = socket.create_connection((gw.host, gw.port))
    chatty = socket.create_connection((gw.host, gw.port))
    try:
        start = time.monotonic()
        # enquire_link before bind is answered but does not extend the deadline.
        while time.monotonic() - start < 1.0:
            chatty.sendall(attacker.ENQUIRE_LINK)
            assert len(chatty.recv(16)) == 16
        assert _closed_within(chatty, 5.0), "chatty unbound connection still open"
        assert _closed_within(idle, 5.0), "idle unbound connection still open"
        assert time.monotonic() - start < 5.0
        assert ("bind_timeouts", "", "") in gw.counters()
        bound.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=bound))
        assert bound.read_pdu().command == "enquire_link_resp", "a bound customer stays"
    finally:
        idle.close()
        chatty.close()
        bound.unbind()


def _from(gw: GatewayNode, ip: str) -> socket.socket:
    return socket.create_connection((gw.host, gw.port), source_address=(ip, 0))


def test_connection_limits_per_ip_and_in_total(limited: GatewayNode) -> None:
    gw = limited
    gw.add_customer("c", "pw")
    mine = [_from(gw, "127.0.0.2") for _ in range(4)]
    others: list[socket.socket] = []
    try:
        over = _from(gw, "127.0.0.2")
        assert _closed_within(over, 10.0), "a 5th connection from one IP is refused"
        others = [_from(gw, "127.0.0.3"), _from(gw, "127.0.0.4")]  # 6 open: the total
        extra = _from(gw, "127.0.0.5")
        assert _closed_within(extra, 10.0), "a connection beyond the total is refused"
        refused = gw.counters()
        assert refused.get(("connections_refused", "", "per_ip")) == 1
        assert refused.get(("connections_refused", "", "total")) == 1
        mine.pop().close()  # room again: a customer gets in
        deadline = time.monotonic() + 30
        while True:
            try:
                client = esme.bind(gw.host, gw.port, "c", "pw")
                break
            except Exception:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        client.unbind()
    finally:
        for s in mine + others:
            s.close()


def test_the_listener_raises_its_file_descriptor_limit(
    bootstrap: str, db_url: str, topics: Topics
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(soft, hard, 512)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        for node in _node(bootstrap, db_url, topics):
            assert node.port
            now_soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            expected = hard if hard != resource.RLIM_INFINITY else 1 << 20
            assert now_soft == expected > low
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
