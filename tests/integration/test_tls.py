"""SMPP over TLS on both sides (issue 11), with real Kafka and PostgreSQL.

The CAs are made by the test (trustme); the customer is python-smpplib with an
``ssl`` context (a third-party TLS client), the provider the SMSC simulator
behind TLS.
"""

from __future__ import annotations

import contextlib
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import smpplib.client
import smpplib.exceptions
import trustme

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.db.providers import add_provider, update_provider
from smsgw.db.routes import add_mt_route
from smsgw.smpp.status import CommandStatus as S
from smsgw.tls import fingerprint
from smsgw.topics import Topics
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.loop_thread import LoopThread
from tests.helpers.scratch import TestDirs
from tests.integration.conftest import gateway_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _wait(what: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out: {message}")


def _client_ctx(ca_file: Path, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """A customer's context: the gateway's chain verified (smpplib gives no server name)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = False
    if cert is not None:
        cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def sim_loop() -> Iterator[LoopThread]:
    loop = LoopThread("tls-sims")
    yield loop
    loop.close()


def test_customer_over_tls_with_self_signed_pair_gets_receipt(
    bootstrap: str, db_url: str, topics: Topics, tmp_path: Path, sim_loop: LoopThread
) -> None:
    """First start makes the pair in $SMSGW_HOME (key 0600); a TLS customer's message
    reaches the provider and its receipt comes back over the same TLS session."""
    sim = SmscSimulator(SimConfig(system_id="plain", password="pw", seed=1, receipt_delay=0.2))
    sim_loop.run(sim.start())
    node = GatewayNode(
        gateway_settings(bootstrap, db_url, home=tmp_path, smpp_tls_listen="127.0.0.1:0"),
        topics,
        with_pipeline=True,
    )
    node.start()
    try:
        cert, key = tmp_path / "tls" / "smpp.crt", tmp_path / "tls" / "smpp.key"
        assert cert.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
        assert node.gateway.tls_fingerprint
        node.add_customer("tlsc", "pw", tps=100)
        with psycopg.connect(node.db_url) as conn:
            add_provider(
                conn, "plain", host="127.0.0.1", port=sim.port, system_id="plain", password="pw"
            )
            add_mt_route(conn, prefix="49", provider="plain")
        node.wait_synced()  # the route too, not only the provider the bind came from
        _wait(lambda: sim_loop.call(lambda: sum(sim.bound.values())), 60, "provider bound")
        c = Customer(
            "127.0.0.1", node.gateway.tls_port, "tlsc", "pw", ssl_context=_client_ctx(cert)
        )
        c.bind()
        try:
            # The session is TLS, and the certificate is the one whose fingerprint was printed.
            der = c.client._socket.getpeercert(binary_form=True)
            assert fingerprint(der) == node.gateway.tls_fingerprint
            c.submit("4917600000001")
            c.wait(lambda: c.responses, 60, "submit accepted over TLS")
            ((status, mid),) = c.responses.values()
            assert status == 0
            c.wait(lambda: c.receipts, 60, "receipt over TLS")
            assert c.receipts[0].receipted_id == mid
        finally:
            c.close()
        # The plain listener still serves beside it.
        plain = Customer("127.0.0.1", node.port, "tlsc", "pw").bind()
        plain.close()
        # A plain SMPP client on the TLS port is not served.
        raw = smpplib.client.Client("127.0.0.1", node.gateway.tls_port, timeout=3)
        raw.connect()
        with pytest.raises((smpplib.exceptions.ConnectionError, OSError)):
            raw.bind_transceiver(system_id="tlsc", password="pw")
        raw.disconnect()
    finally:
        node.stop()
        sim_loop.run(sim.stop())


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def _bind_status(port: int, ctx: ssl.SSLContext | None, system_id: str) -> int | str:
    """0 bound, a command_status, or 'handshake' when TLS itself refused the client."""
    client = smpplib.client.Client("127.0.0.1", port, timeout=10, ssl_context=ctx)
    try:
        client.connect()
        client.bind_transceiver(system_id=system_id, password="pw")
    except smpplib.exceptions.PDUError as exc:
        return int(exc.args[1])
    except (ssl.SSLError, smpplib.exceptions.ConnectionError, ConnectionError):
        return "handshake"
    finally:
        client.disconnect()
    return 0


def test_client_certificate_required_and_pinned(
    bootstrap: str, db_url: str, topics: Topics, tmp_path: Path, ca: trustme.CA
) -> None:
    server = ca.issue_cert("127.0.0.1", "localhost")
    paths = {n: tmp_path / f"{n}.pem" for n in ("cert", "key", "clients")}
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    ca.cert_pem.write_to_path(str(paths["clients"]))
    ca.cert_pem.write_to_path(str(tmp_path / "server-ca.pem"))
    node = GatewayNode(
        gateway_settings(
            bootstrap,
            db_url,
            home=tmp_path,
            smpp_tls_listen="127.0.0.1:0",
            smpp_tls_cert=paths["cert"],
            smpp_tls_key=paths["key"],
            smpp_tls_client_ca=paths["clients"],
            bind_failures_before_lockout=100,
        ),
        topics,
    )
    node.start()
    try:
        assert not (tmp_path / "tls").exists(), "own pair given: nothing generated"
        good = ca.issue_cert("acme-client", common_name="acme-client")
        other = ca.issue_cert("someone-else", common_name="someone-else")
        stranger = trustme.CA().issue_cert(
            "acme-client", common_name="acme-client"
        )  # same name, CA not trusted
        good_fp = fingerprint(ssl.PEM_cert_to_DER_cert(good.cert_chain_pems[0].bytes().decode()))
        node.add_customer("free", "pw")
        node.add_customer("pinned", "pw", require_client_cert=True, client_cert_sha256=good_fp)
        node.add_customer("bycn", "pw", require_client_cert=True, client_cert_cn="acme-client")
        server_ca = tmp_path / "server-ca.pem"
        tls_port = node.gateway.tls_port

        def status(system_id: str, cert: trustme.LeafCert | None, tls: bool = True) -> int | str:
            if not tls:
                return _bind_status(node.port, None, system_id)
            return _bind_status(tls_port, _client_ctx(server_ca, cert), system_id)

        # A customer without the requirement binds over TLS with no certificate.
        assert status("free", None) == 0
        # The pinned customer: only over TLS, only with its own certificate.
        refused = int(S.ESME_RBINDFAIL)
        assert status("pinned", None, tls=False) == refused
        assert status("pinned", None) == refused
        assert status("pinned", other) == refused
        assert status("pinned", stranger) == "handshake"
        assert status("pinned", good) == 0
        # Pinned by subject name: any certificate of the trusted CA with that name.
        assert status("bycn", other) == refused
        assert status("bycn", good) == 0
        # A customer with its own CA (added while running: the handshake trusts it
        # from the next connection), and only certificates that CA issued.
        own_ca = trustme.CA()
        own = own_ca.issue_cert("branch", common_name="branch")
        assert status("pinned", own) == "handshake", "not trusted yet"
        node.add_customer(
            "ownca", "pw", require_client_cert=True, client_ca_pem=own_ca.cert_pem.bytes().decode()
        )
        assert status("ownca", own) == 0
        assert status("ownca", good) == refused, "the gateway-wide CA's is not this customer's"
        assert status("pinned", own) == refused, "another customer's CA admits only its own"
        # Dropping the requirement opens plain binds again.
        node.update_customer("pinned", require_client_cert=False)
        assert status("pinned", None, tls=False) == 0
    finally:
        node.stop()


def test_provider_over_tls_verifies_chain_and_hostname(
    bootstrap: str,
    db_url: str,
    topics: Topics,
    tmp_path: Path,
    ca: trustme.CA,
    sim_loop: LoopThread,
) -> None:
    """The SMSC's certificate names smsc.example, we connect to 127.0.0.1: refused until
    the operator opts out of the host name check (the chain is still checked)."""
    leaf = ca.issue_cert("smsc.example")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(server_ctx)
    handshakes: list[str | None] = []
    server_ctx.sni_callback = lambda _obj, name, _ctx: handshakes.append(name)  # type: ignore[assignment,func-returns-value]
    sim = SmscSimulator(
        SimConfig(system_id="secure", password="pw", seed=1, receipt_delay=0.2, tls=server_ctx)
    )
    sim_loop.run(sim.start())
    ca_file = tmp_path / "provider-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    node = GatewayNode(gateway_settings(bootstrap, db_url), topics, with_pipeline=True)
    node.start()
    try:
        node.add_customer("c1", "pw", tps=100)
        with psycopg.connect(node.db_url) as conn:
            add_provider(
                conn,
                "secure",
                host="127.0.0.1",
                port=sim.port,
                system_id="secure",
                password="pw",
                tls=True,
                tls_ca_file=str(ca_file),
            )
            add_mt_route(conn, prefix="49", provider="secure")
        node.wait_synced()  # the route too: the submit below must find it
        # The gateway tries (handshakes reach the SMSC) but never binds.
        _wait(lambda: len(handshakes) >= 2, 30, "TLS handshakes from the gateway")
        assert sim_loop.call(lambda: sum(sim.bound.values())) == 0
        c = Customer(node.host, node.port, "c1", "pw").bind()
        try:
            c.submit("4917600000009")
            c.wait(lambda: c.responses, 60, "accepted")
            with psycopg.connect(node.db_url) as conn:
                update_provider(conn, "secure", tls_verify_hostname=False)
            _wait(lambda: sim_loop.call(lambda: sum(sim.bound.values())), 30, "bound over TLS")
            _wait(
                lambda: sim_loop.call(lambda: [r.dest for r in sim.received]),
                30,
                "the submit reached the SMSC over TLS",
            )
            assert sim_loop.call(lambda: [r.dest for r in sim.received]) == ["4917600000009"]
            c.wait(lambda: c.receipts, 30, "receipt back")
        finally:
            c.close()
    finally:
        node.stop()
        sim_loop.run(sim.stop())


def test_provider_tls_with_untrusted_ca_never_binds(
    bootstrap: str,
    db_url: str,
    topics: Topics,
    tmp_path: Path,
    ca: trustme.CA,
    sim_loop: LoopThread,
) -> None:
    """Opting out of the host name check keeps the chain check: another CA is refused."""
    leaf = trustme.CA().issue_cert("127.0.0.1")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(server_ctx)
    handshakes: list[str | None] = []
    server_ctx.sni_callback = lambda _obj, name, _ctx: handshakes.append(name)  # type: ignore[assignment,func-returns-value]
    sim = SmscSimulator(SimConfig(system_id="fake", password="pw", seed=1, tls=server_ctx))
    sim_loop.run(sim.start())
    ca_file = tmp_path / "provider-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    node = GatewayNode(gateway_settings(bootstrap, db_url), topics, with_pipeline=True)
    node.start()
    try:
        with psycopg.connect(node.db_url) as conn:
            add_provider(
                conn,
                "fake",
                host="127.0.0.1",
                port=sim.port,
                system_id="fake",
                password="pw",
                tls=True,
                tls_ca_file=str(ca_file),
                tls_verify_hostname=False,
            )
        _wait(lambda: len(handshakes) >= 2, 30, "TLS handshakes from the gateway")
        assert sim_loop.call(lambda: sum(sim.bound.values())) == 0
    finally:
        node.stop()
        sim_loop.run(sim.stop())


def test_smsgw_run_makes_the_pair_prints_its_fingerprint_and_serves_tls(data_dir: TestDirs) -> None:
    """`smsgw run` with SMSGW_SMPP_TLS_LISTEN: the listener actor serves TLS with the
    pair made in $SMSGW_HOME on first start, whose fingerprint the command printed."""
    import os
    import re
    import signal
    import subprocess
    import threading

    from smsgw.cluster.procs import free_port
    from smsgw.db.customers import add_customer
    from smsgw.settings import read_runtime
    from tests.helpers.run import SMSGW, run_env

    home = data_dir("tls-run")
    env = run_env(home)
    tls_port = free_port()
    env["SMSGW_SMPP_TLS_LISTEN"] = f"127.0.0.1:{tls_port}"
    lines: list[str] = []
    proc = subprocess.Popen([SMSGW, "run"], env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        _wait(
            lambda: any("smsgw: ready" in x for x in list(lines)) or proc.poll() is not None,
            240,
            "smsgw run ready",
        )
        assert proc.poll() is None, "".join(lines[-20:])
        printed = "".join(lines)
        made = re.search(
            r"self-signed SMPP TLS certificate (\S+) \(SHA-256 ([0-9A-F:]+)\)", printed
        )
        assert made, printed[-2000:]
        cert = Path(made.group(1))
        assert cert == home / "tls" / "smpp.crt"
        assert stat.S_IMODE((home / "tls" / "smpp.key").stat().st_mode) == 0o600
        assert f"127.0.0.1:{tls_port} (certificate SHA-256 {made.group(2)})" in printed
        url = read_runtime(home / "runtime.json")["database_url"]
        with psycopg.connect(url) as conn:
            add_customer(conn, "runtls", "pw")
        c = Customer("127.0.0.1", tls_port, "runtls", "pw", ssl_context=_client_ctx(cert))
        _wait(lambda: _try_bind(c), 30, "bind over TLS to the listener actor")
        der = c.client._socket.getpeercert(binary_form=True)
        assert fingerprint(der) == made.group(2)
        c.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)


def _try_bind(c: Customer) -> bool:
    try:
        c.bind()
    except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError):
        return False
    return True


def test_tls_port_keeps_the_connection_limits_before_the_handshake(
    bootstrap: str, db_url: str, topics: Topics, tmp_path: Path
) -> None:
    """Was (asyncio's ssl= server): a connection was counted only once its handshake
    finished, so TCP connections that never sent a ClientHello escaped the per-IP limit
    and the bind deadline until the handshake timeout."""
    import socket

    node = GatewayNode(
        gateway_settings(
            bootstrap,
            db_url,
            home=tmp_path,
            smpp_tls_listen="127.0.0.1:0",
            smpp_max_connections_per_ip=3,
            smpp_bind_timeout_s=2.0,
            smpp_tls_handshake_timeout_s=60.0,
        ),
        topics,
    )
    node.start()
    held: list[socket.socket] = []
    try:
        port = node.gateway.tls_port
        for _ in range(3):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        core = node.gateway.core
        assert core is not None
        _wait(lambda: node.call(lambda: len(core.connections)) == 3, 30, "3 connections counted")
        extra = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            assert extra.recv(1) == b"", "the 4th from one address is closed at once"
        except ConnectionResetError:
            pass
        finally:
            extra.close()
        assert node.counters()[("connections_refused", "", "per_ip")] == 1
        # No ClientHello: closed at the bind deadline, long before the handshake timeout.
        started = time.monotonic()
        for s in held:
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(1) == b""
        assert time.monotonic() - started < 20
        assert node.counters()[("bind_timeouts", "", "")] == 3
    finally:
        for s in held:
            s.close()
        node.stop()
