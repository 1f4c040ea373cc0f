"""Third-party SMPP client libraries as the gateway's customers: node-smpp, jsmpp, python-smpplib.

Each library binds (a transceiver; a transmitter and a receiver), sends
enquire_link, submits GSM text, UCS2 with an emoji, a message concatenated with
a UDH and one with SAR TLVs, gets each part's receipt (parsed with jsmpp's own
receipt parser; node-smpp and smpplib have none, they read the
``receipted_message_id`` TLV) under the id of its ``submit_sm_resp``, gets an
MO, and unbinds. The provider behind the gateway is the project's simulator,
which records what reached it: the octets the library encoded arrive intact.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import gsm0338  # type: ignore[import-untyped]  # registers the "gsm03.38" codec
import psycopg
import pytest

from benchmarks.smsc_sim.server import SmscSimulator
from benchmarks.smsc_sim.stats import ReceivedSubmit
from smsgw.db.providers import add_provider
from smsgw.db.routes import add_mo_route, add_mt_route
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims
from tests.interop.conftest import wait_configured
from tests.interop.peers import Event, PeerProcess

pytestmark = [pytest.mark.integration, pytest.mark.interop]

assert gsm0338

SIM = "isim"
LIBS = ["node", "java", "python"]
# Destination prefixes routed to the simulator, one per (library, bind kind): disjoint from the
# other interop modules, so that the shared gateway keeps every test's traffic apart.
PREFIX = {("node", "trx"): "4931", ("java", "trx"): "4932", ("python", "trx"): "4933",
          ("node", "tx+rx"): "4934", ("java", "tx+rx"): "4935",
          ("python", "tx+rx"): "4936", ("node", "nack"): "4937"}  # fmt: skip
MO_PREFIX = {k: "5553" + v[-1] for k, v in PREFIX.items()}
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_SAR = (0x020C, 0x020E, 0x020F)

UCS2_TEXT = "Grüße, мир ✓ 😀"
PARTS = ["The first half of a concatenated message, ", "and here is its second half."]


@pytest.fixture(scope="module")
def sim(interop_gateway: GatewayNode, interop_sims: Sims) -> SmscSimulator:
    """The provider every customer-side test routes to (hex ids, receipts after 0.2 s)."""
    s = interop_sims.start(SIM, receipt_delay=0.2)
    with psycopg.connect(interop_gateway.db_url) as conn:
        add_provider(
            conn, SIM, host="127.0.0.1", port=s.port, system_id=SIM, password="pw",
            tps=200, submit_id_format="hex", receipt_id_format="hex",
        )  # fmt: skip
    return s


@pytest.fixture(params=LIBS)
def lib(request: pytest.FixtureRequest) -> Iterator[tuple[str, PeerProcess]]:
    lang: str = request.param
    yield lang, request.getfixturevalue(f"{lang}_peers")


def _customer(gw: GatewayNode, key: tuple[str, str]) -> str:
    name = f"{key[0][:2]}{uuid.uuid4().hex[:8]}"
    gw.add_customer(name, "pw", tps=200)
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix=PREFIX[key], provider=SIM)
        add_mo_route(conn, MO_PREFIX[key], name)
    wait_configured(gw, name, f"{PREFIX[key]}0000001", f"{MO_PREFIX[key]}1")
    return name


def _bind(peers: PeerProcess, peer: str, gw: GatewayNode, customer: str, kind: str) -> None:
    peers.send(
        peer, "bind", host=gw.host, port=gw.port, system_id=customer, password="pw", type=kind
    )
    peers.wait_for(peer, "bound", timeout=60)


def _receipt_id(lang: str, e: Event) -> str:
    """The id a library hands its user for a receipt: jsmpp's receipt parser, else the TLV."""
    if lang == "java":
        assert "receipt_error" not in e, e
        tlv = bytes.fromhex(e["tlvs"][f"{TAG_RECEIPTED_MESSAGE_ID:04x}"]).rstrip(b"\0").decode()
        assert e["receipt_id"] == tlv, e
        assert e["stat"] == "DELIVRD", e
        return str(e["receipt_id"])
    assert e["message_state"] == 2, e  # DELIVERED
    return str(e["receipted_message_id"])


def _receipt_text(lang: str, e: Event) -> str:
    """The receipt's ``text:`` as the library shows it: jsmpp's parser, else the decoded text."""
    if lang == "java":
        return str(e["receipt_text"])
    body = (
        str(e["text"]) if lang == "node" else bytes.fromhex(e["short_message"]).decode("gsm03.38")
    )
    return body.split(" text:", 1)[1]


def _mo_text(lang: str, e: Event) -> str:
    if lang == "node":
        return str(e["text"])
    raw = bytes.fromhex(e["short_message"])
    return raw.decode("utf-16-be" if e["data_coding"] == 8 else "gsm03.38")


def _received(sims: Sims, sim: SmscSimulator, prefix: str) -> list[ReceivedSubmit]:
    got: list[ReceivedSubmit] = sims.loop.call(lambda: list(sim.received))
    return [r for r in got if r.dest.startswith(prefix)]


def test_customer_library_transceiver(
    interop_gateway: GatewayNode,
    interop_sims: Sims,
    sim: SmscSimulator,
    lib: tuple[str, PeerProcess],
) -> None:
    gw = interop_gateway
    lang, peers = lib
    key = (lang, "trx")
    prefix = PREFIX[key]
    customer = _customer(gw, key)
    peer = customer
    _bind(peers, peer, gw, customer, "trx")

    peers.send(peer, "enquire_link")
    [el] = peers.wait_for(peer, "enquire_link_resp")
    assert el["status"] == 0

    # jsmpp leaves encoding to its user (bytes in): plain ASCII letters are the same octets in
    # GSM 03.38; node-smpp and smpplib encode GSM themselves, escapes included.
    gsm_text = "Hello from " + lang + (" with GSM 03.38: £ € [x]" if lang != "java" else ".")
    ref = 0x5A
    submits: list[dict[str, Any]] = [
        {"tag": "gsm", "dest": f"{prefix}0000001", "text": gsm_text, "data_coding": 0},
        {"tag": "ucs2", "dest": f"{prefix}0000002", "text": UCS2_TEXT, "data_coding": 8},
    ]
    for i, part in enumerate(PARTS, start=1):
        submits.append({"tag": f"udh{i}", "dest": f"{prefix}0000003", "text": part,
                        "udh": f"050003{ref:02x}02{i:02x}"})  # fmt: skip
        submits.append({"tag": f"sar{i}", "dest": f"{prefix}0000004", "text": part,
                        "sar": [0x1234, 2, i]})  # fmt: skip
    for s in submits:
        peers.send(peer, "submit", **s)
    resps = peers.wait_for(peer, "submit_resp", count=len(submits), timeout=60)
    assert all(r["status"] == 0 and r["message_id"] for r in resps), resps
    ids = {r["tag"]: r["message_id"] for r in resps}
    assert len(set(ids.values())) == len(submits)

    # One receipt per submitted part, under the id its submit_sm_resp gave.
    receipts = peers.wait_for(peer, "receipt", count=len(submits), timeout=90)
    assert sorted(_receipt_id(lang, e) for e in receipts) == sorted(ids.values())
    # Their text: is the first 20 characters of the message or part (Appendix B), its UDH
    # skipped, in the GSM 03.38 alphabet the receipt declares (item 4: it was raw octets, the
    # UDH with them). jsmpp reads receipt text as ASCII, so it is shown the ASCII texts only.
    texts = {
        tag: _receipt_text(lang, e)
        for e in receipts
        for tag, mid in ids.items()
        if _receipt_id(lang, e) == mid
    }
    expected = {
        f"{kind}{i}": part[:20] for kind in ("udh", "sar") for i, part in enumerate(PARTS, 1)
    }
    if lang != "java":
        expected["gsm"] = gsm_text[:20]
        expected["ucs2"] = UCS2_TEXT[:20].encode("gsm03.38", "replace").decode("gsm03.38")
    assert {tag: texts[tag] for tag in expected} == expected

    # What the library encoded reached the provider unchanged (the UDH's reference is the bind's
    # own, the SAR reference likewise: only the text and the framing are compared).
    got: dict[str, list[ReceivedSubmit]] = defaultdict(list)
    for r in _received(interop_sims, sim, prefix):
        got[r.dest].append(r)
    [plain] = got[f"{prefix}0000001"]
    assert plain.data_coding == 0 and plain.short_message == gsm_text.encode("gsm03.38")
    [ucs2] = got[f"{prefix}0000002"]
    assert ucs2.data_coding == 8 and ucs2.short_message.decode("utf-16-be") == UCS2_TEXT
    udh_parts = sorted(got[f"{prefix}0000003"], key=lambda r: r.short_message[5])
    assert [r.esm_class & 0x40 for r in udh_parts] == [0x40, 0x40]
    assert [r.short_message[:3] for r in udh_parts] == [b"\x05\x00\x03"] * 2
    assert [r.short_message[4:6] for r in udh_parts] == [b"\x02\x01", b"\x02\x02"]
    assert b"".join(r.short_message[6:] for r in udh_parts).decode("gsm03.38") == "".join(PARTS)
    sar_parts = got[f"{prefix}0000004"]
    assert len(sar_parts) == 2
    seqs = []
    for r in sar_parts:
        tlvs = dict(r.tlvs)
        assert all(t in tlvs for t in TAG_SAR), r.tlvs
        seqs.append((tlvs[0x020F][0], r.short_message.decode("gsm03.38")))
    assert [t for _, t in sorted(seqs)] == PARTS

    # An MO from the provider to this customer.
    mo_dest = f"{MO_PREFIX[key]}1"
    interop_sims.loop.call(sim.send_mo, "4917099990000", mo_dest, f"MO to {lang}")
    [mo] = peers.wait_for(peer, "mo", timeout=60)
    assert (mo["source"], mo["dest"], _mo_text(lang, mo)) == (
        "4917099990000",
        mo_dest,
        f"MO to {lang}",
    )

    peers.send(peer, "unbind")
    [unbound] = peers.wait_for(peer, "unbound", timeout=30)
    assert unbound["status"] == 0


def test_customer_library_transmitter_and_receiver(
    interop_gateway: GatewayNode,
    interop_sims: Sims,
    sim: SmscSimulator,
    lib: tuple[str, PeerProcess],
) -> None:
    gw = interop_gateway
    lang, peers = lib
    key = (lang, "tx+rx")
    prefix = PREFIX[key]
    customer = _customer(gw, key)
    tx, rx = f"{customer}-tx", f"{customer}-rx"
    _bind(peers, tx, gw, customer, "tx")
    _bind(peers, rx, gw, customer, "rx")

    peers.send(tx, "submit", tag="m", dest=f"{prefix}0000001", text="over TX, receipt on RX")
    [resp] = peers.wait_for(tx, "submit_resp", timeout=60)
    assert resp["status"] == 0
    [receipt] = peers.wait_for(rx, "receipt", timeout=90)
    assert _receipt_id(lang, receipt) == resp["message_id"]

    mo_dest = f"{MO_PREFIX[key]}1"
    interop_sims.loop.call(sim.send_mo, "4917099990001", mo_dest, "MO on RX")
    [mo] = peers.wait_for(rx, "mo", timeout=60)
    assert _mo_text(lang, mo) == "MO on RX"
    assert not peers.of(tx, "receipt") and not peers.of(tx, "mo")

    for peer in (tx, rx):
        peers.send(peer, "unbind")
        [unbound] = peers.wait_for(peer, "unbound", timeout=30)
        assert unbound["status"] == 0


def test_a_generic_nack_answering_a_receipt_is_a_failure(
    interop_gateway: GatewayNode, sim: SmscSimulator, node_peers: PeerProcess
) -> None:
    """Item 6: node-smpp answers the receipt's deliver_sm with generic_nack, status 0: the
    gateway counts a failed delivery, not a delivered one (SMPP 3.4 §4.3)."""
    gw = interop_gateway
    key = ("node", "nack")
    customer = _customer(gw, key)

    def counts() -> tuple[int, int]:
        stats: Any = gw.pipeline_stats()["deliverer"]
        return int(stats["delivered"]), int(stats.get("failed", 0))

    delivered, failed = counts()
    node_peers.send(
        customer, "bind", host=gw.host, port=gw.port, system_id=customer, password="pw",
        type="trx", nack_deliveries=True,
    )  # fmt: skip
    node_peers.wait_for(customer, "bound", timeout=60)
    node_peers.send(customer, "submit", tag="m", dest=f"{PREFIX[key]}0000001", text="nacked")
    [resp] = node_peers.wait_for(customer, "submit_resp", timeout=60)
    [receipt] = node_peers.wait_for(customer, "receipt", timeout=90)
    assert _receipt_id("node", receipt) == resp["message_id"]
    deadline = time.monotonic() + 30
    while counts() == (delivered, failed) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counts() == (delivered, failed + 1)
    node_peers.send(customer, "unbind")
    node_peers.wait_for(customer, "unbound", timeout=30)
