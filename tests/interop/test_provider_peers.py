"""Third-party SMSCs as the gateway's providers: node-smpp, jsmpp and smpp34 servers.

node-smpp's ``createServer``, jsmpp's server session and smpp34's ``Server`` (a
Rust core). Each SMSC answers ``submit_sm`` with a hex id and receipts it with
that id in ``receipted_message_id`` (SMPP 3.4 §5.3.2.12) and the same number in
decimal in the text (configured ``--submit-id-format hex --receipt-id-format
dec``, as the README suggests: issue 12 item 3), sends some receipts before its
``submit_sm_resp`` and some after, and sends MO in ``short_message`` and in
``message_payload``. node-smpp and jsmpp also run as SMSCs that refuse
transceiver binds (``--bind-mode tx+rx``: item 1). ``--enquire-link 1`` is
honoured on every link (item 2). Stopping a provider on purpose unbinds it
(item 5).
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from smsgw.cluster.procs import free_port
from smsgw.db.providers import add_provider, update_provider
from smsgw.db.routes import add_mo_route, add_mt_route
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.interop.conftest import wait_configured
from tests.interop.peers import PeerProcess

pytestmark = [pytest.mark.integration, pytest.mark.interop]

# Destination prefixes of this module's routes, one per (peer, bind mode): disjoint from the
# other interop modules so that the shared gateway keeps every test's traffic apart.
PREFIX = {("node", "trx"): "4921", ("java", "trx"): "4922", ("python", "trx"): "4925",
          ("node", "tx+rx"): "4923", ("java", "tx+rx"): "4924"}  # fmt: skip
UCS2_MO = "MO über RX ✓ 😀"
MO_PREFIX = {k: "5552" + v[-1] for k, v in PREFIX.items()}


def _config(
    gw: GatewayNode, customer: str, name: str, port: int, mode: str, key: tuple[str, str]
) -> None:
    gw.add_customer(customer, "pw", tps=100)
    with psycopg.connect(gw.db_url) as conn:
        add_provider(
            conn,
            name,
            host="127.0.0.1",
            port=port,
            system_id=name,
            password="pw",
            bind_mode=mode,
            tps=50,
            enquire_link_s=1,
            submit_id_format="hex",
            receipt_id_format="dec",
        )
        add_mt_route(conn, prefix=PREFIX[key], provider=name)
        add_mo_route(conn, MO_PREFIX[key], customer)
    wait_configured(gw, customer, f"{PREFIX[key]}00000001", f"{MO_PREFIX[key]}1")


def _wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


# smpp34 1.5.0 answers a receiver bind's deliver_sm_resp with generic_nack (ESME_RINVCMDID),
# whoever the ESME is (python-smpplib too), so its deliver_sm never completes there: it plays
# only the transceiver SMSC. node-smpp and jsmpp play both.
CASES = [("node", "trx"), ("node", "tx+rx"), ("java", "trx"), ("java", "tx+rx"), ("python", "trx")]


@pytest.mark.parametrize(("lang", "mode"), CASES, ids=[f"{lang}-{mode}" for lang, mode in CASES])
def test_third_party_smsc_as_provider(
    interop_gateway: GatewayNode, request: pytest.FixtureRequest, lang: str, mode: str
) -> None:
    gw = interop_gateway
    peers: PeerProcess = request.getfixturevalue(f"{lang}_peers")
    key = (lang, mode)
    name = f"p{lang[0]}{mode[:2]}{uuid.uuid4().hex[:6]}"
    customer = f"c{name}"
    prefix, mo_prefix = PREFIX[key], MO_PREFIX[key]
    before_dest, after_dest = f"{prefix}00000001", f"{prefix}00000002"
    peers.send(
        name,
        "serve",
        port=free_port(),
        system_id=name,
        password="pw",
        no_transceiver=mode == "tx+rx",
        receipt_before=[before_dest],
    )
    [listening] = peers.wait_for(name, "listening")
    _config(gw, customer, name, listening["port"], mode, key)
    bound = {"trx"} if mode == "trx" else {"tx", "rx"}
    if lang == "java":
        bound = {"BIND_" + b.upper() for b in bound}
    got = peers.wait_for(name, "bound", count=len(bound), timeout=60)
    if lang == "python":  # smpp34 tells only whether a bind receives
        assert [e["receives"] for e in got] == [True]
    else:
        assert {e["type"] for e in got} == bound
    assert not peers.of(name, "bind_refused"), "the gateway tried a transceiver bind"
    # --enquire-link 1: every link's first enquire_link follows its bind by about a second
    # (item 2: it came 120 s after the bind, when the pre-bind inactivity timer fired).
    # smpp34 answers enquire_link in its Rust core without telling.
    links = {"trx"} if mode == "trx" else {"tx", "rx"}
    if lang == "java":
        links = {"BOUND_" + b.upper() for b in links}

    def pinged() -> set[str]:
        return {e["type"] for e in peers.of(name, "enquire_link")}

    if lang != "python":
        _wait(lambda: pinged() >= links, 20, f"enquire_link on each of {links} (got {pinged()})")

    c = Customer(gw.host, gw.port, customer, "pw").bind()
    try:
        seq_before = c.submit(before_dest, b"receipt before the resp")
        seq_after = c.submit(after_dest, b"receipt after the resp")
        submits = peers.wait_for(name, "submit", count=2, timeout=60)
        c.wait(
            lambda: len(c.receipts) == 2,
            60,
            f"receipts at {customer} ({len(c.receipts)}/2); the SMSC saw {peers.of(name)}",
        )
        ids = c.accepted_ids()
        # The SMSC's ids are hex with letters; its receipts carry them in decimal.
        assert all(not e["message_id"].isdigit() for e in submits)
        sent = peers.wait_for(name, "receipt_sent", count=2)
        assert {e["decimal_id"] for e in sent} == {e["decimal_id"] for e in submits}
        assert all(e.get("status", 0) == 0 for e in sent), sent
        # Each receipt reaches the customer under the gateway id of its submit.
        assert sorted(r.receipted_id for r in c.receipts) == sorted(
            [ids[seq_before], ids[seq_after]]
        )
        for r in c.receipts:
            assert f"id:{r.receipted_id} ".encode() in r.text, r.text
            assert b"stat:DELIVRD" in r.text, r.text
        if mode == "tx+rx":  # submits go on the transmitter
            assert {e.get("type", e.get("bind")) for e in submits} <= {"tx", "BOUND_TX"}

        # MO in short_message and in message_payload, over the receiving bind.
        peers.send(
            name, "mo", source="4917012345678", dest=f"{mo_prefix}1", text="MO in sm", tag="sm"
        )
        peers.wait_for(name, "mo_sent", lambda e: e["tag"] == "sm")
        peers.send(
            name, "mo", source="4917012345678", dest=f"{mo_prefix}2", text="MO in payload",
            payload=True, tag="payload",
        )  # fmt: skip
        peers.wait_for(name, "mo_sent", lambda e: e["tag"] == "payload")
        peers.send(
            name, "mo", source="4917012345678", dest=f"{mo_prefix}3", text=UCS2_MO,
            data_coding=8, payload=True, tag="ucs2",
        )  # fmt: skip
        peers.wait_for(name, "mo_sent", lambda e: e["tag"] == "ucs2")
        c.wait(lambda: len(c.mos) == 3, 60, f"MO at {customer} ({len(c.mos)}/3)")
        assert sorted((m.dest, m.text) for m in c.mos) == [
            (f"{mo_prefix}1", b"MO in sm"),
            (f"{mo_prefix}2", b"MO in payload"),
            (f"{mo_prefix}3", UCS2_MO.encode("utf-16-be")),
        ]
        assert all(m.source == "4917012345678" for m in c.mos)
    finally:
        c.close()

    # Disabling the provider stops its binds on purpose: each unbinds first (item 5; on the
    # Ray runtime in test_provider_unbind_ray.py).
    with psycopg.connect(gw.db_url) as conn:
        update_provider(conn, name, enabled=False)
    if lang == "node":
        got = peers.wait_for(name, "unbind", count=len(bound), timeout=60)
        assert {e["type"] for e in got} == bound
    elif lang == "python":
        # smpp34 reports the end of a session, not whether it was unbound or dropped.
        peers.wait_for(name, "unbound", count=len(bound), timeout=60)
    else:
        # jsmpp reports an unbind as the session's state UNBOUND before CLOSED.
        peers.wait_for(
            name, "state", lambda e: e["state"] == "UNBOUND", count=len(bound), timeout=60
        )
    peers.send(name, "stop")
    peers.wait_for(name, "stopped")
