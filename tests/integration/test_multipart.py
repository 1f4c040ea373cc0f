"""Multipart messages through the real path: assembly, one provider bind, receipts per part."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import psycopg
import pytest

from benchmarks.smsc_sim.stats import ReceivedSubmit
from smsgw.db.providers import add_provider
from smsgw.db.routes import add_mt_route
from smsgw.receipts import parse_receipt
from smsgw.segment import Part, join_parts, split_text
from smsgw.state import MessageState
from smsgw.topics import Topics
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.kafka import drain
from tests.helpers.parts import assert_one_udh_message, submit_acked, submit_part, wait_for
from tests.helpers.sims import Sims, wait_bound
from tests.integration.conftest import gateway_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TAG_SAR_REF, TAG_SAR_TOTAL, TAG_SAR_SEQ = 0x020C, 0x020E, 0x020F
TEXT = ("Multipart over two binds: €uro [brackets] {braces} ~tilde^ " * 6).strip()


def _mp_node(bootstrap: str, db_url: str, topics: Topics, expiry_s: float) -> GatewayNode:
    node = GatewayNode(
        gateway_settings(bootstrap, db_url, multipart_expiry_s=expiry_s),
        topics,
        with_pipeline=True,
    )
    node.start()
    return node


@pytest.fixture
def mp_gateway(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    """Incomplete sets expire after 30 s: a routed message is remembered for twice that, so
    a late copy of a part is known as one however slowly a loaded machine routes it (with
    3 s, a copy 6 s after routing was taken for a new message and expired, err:904)."""
    node = _mp_node(bootstrap, db_url, topics, 30.0)
    yield node
    node.stop()


@pytest.fixture
def expiring_gateway(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    """Incomplete sets expire after 3 s (the expiry test's subject)."""
    node = _mp_node(bootstrap, db_url, topics, 3.0)
    yield node
    node.stop()


@pytest.fixture
def sims() -> Iterator[Sims]:
    s = Sims()
    yield s
    s.stop()


def _provider(gw: GatewayNode, sims: Sims, name: str, prefix: str, **kw: object) -> None:
    """A simulated provider routed for `prefix`, once its bind is up."""
    sim = sims.start(name, receipt_delay=0.2)
    with psycopg.connect(gw.db_url) as conn:
        add_provider(
            conn,
            name,
            host="127.0.0.1",
            port=sim.port,
            system_id=name,
            password="pw",
            tps=200,
            **kw,  # type: ignore[arg-type]
        )
        add_mt_route(conn, prefix=prefix, provider=name)
    wait_bound(gw, sims, [name])


def _receipts(*clients: Customer) -> dict[str, tuple[MessageState, str]]:
    """Receipted gateway id -> (state, err), from every client's receipts."""
    out = {}
    for c in clients:
        with c.lock:
            got = list(c.receipts)
        for r in got:
            fields = parse_receipt(r.text, {})
            assert fields is not None, r
            out[r.receipted_id] = (fields.state, fields.err)
    return out


def _received(sims: Sims, name: str) -> list[ReceivedSubmit]:
    got: list[ReceivedSubmit] = sims.loop.call(lambda: list(sims.sims[name].received))
    return got


def test_parts_on_two_binds_shuffled_with_a_duplicate_arrive_as_one_message(
    mp_gateway: GatewayNode, sims: Sims
) -> None:
    gw = mp_gateway
    gw.add_customer("mp", "pw")
    _provider(gw, sims, "keep", "4917")  # passes the customer's framing on
    parts = split_text(TEXT, 0, ref=0x42)
    assert len(parts) == 3
    a = Customer(gw.host, gw.port, "mp", "pw").bind()
    b = Customer(gw.host, gw.port, "mp", "pw").bind()
    dest = "491700000001"
    try:
        # Parts 3 (bind A), 1 (B), 1 again (A: a retransmission), 2 (B).
        ids = [submit_acked(c, dest, parts[n]) for c, n in ((a, 2), (b, 0), (a, 0), (b, 1))]
        assert len(set(ids)) == 4, "every part, the duplicate too, has its own gateway id"

        wait_for(lambda: len(_received(sims, "keep")) >= 3, 60, "three parts at the provider")
        time.sleep(1)  # nothing more may come
        got = _received(sims, "keep")
        assert len(got) == 3, f"one message of three parts at the provider, not {len(got)}"
        assert_one_udh_message(got, TEXT)

        # A copy of part 2 after the message went out: refused, not sent again.
        late = submit_acked(a, dest, parts[1])
        # One receipt per accepted part: the duplicate gets its segment's receipt.
        wait_for(lambda: len(_receipts(a, b)) >= 5, 60, f"receipts: {_receipts(a, b)}")
        time.sleep(1)
        receipts = _receipts(a, b)
        assert sorted(receipts) == sorted([*ids, late])
        assert {receipts[i][0] for i in ids} == {MessageState.DELIVERED}
        assert receipts[late] == (MessageState.REJECTED, "905")
        assert len(_received(sims, "keep")) == 3
        assert gw.pipeline_stats()["router"]["multipart_duplicates"] == 2  # type: ignore[index]
    finally:
        a.close()
        b.close()


def test_resegmented_for_a_sar_provider_and_payload_split(
    mp_gateway: GatewayNode, sims: Sims
) -> None:
    gw = mp_gateway
    gw.add_customer("mp", "pw")
    _provider(gw, sims, "sarp", "4930", segmentation="sar")
    text = "€" * 40 + "x" * 200  # escape pairs across every 8-bit cut
    parts = split_text(text, 0, ref=7)
    c = Customer(gw.host, gw.port, "mp", "pw").bind()
    try:
        seqs = [submit_part(c, "493000000001", p) for p in reversed(parts)]
        long_text = "payload " * 40
        seqs.append(
            c.submit("493000000002", b"", data_coding=0, message_payload=long_text.encode())
        )
        c.wait(lambda: len(c.responses) == len(seqs), 60, "responses")
        ids = c.accepted_ids()
        assert len(ids) == len(seqs)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len({r.dest for r in _received(sims, "sarp")}) < 2:
            time.sleep(0.1)
        time.sleep(1)
        got = _received(sims, "sarp")
        for dest, want in (("493000000001", text), ("493000000002", long_text)):
            mine = [r for r in got if r.dest == dest]
            sar = [
                tuple(
                    int.from_bytes(dict(r.tlvs)[t], "big")
                    for t in (TAG_SAR_REF, TAG_SAR_TOTAL, TAG_SAR_SEQ)
                )
                for r in mine
            ]
            assert all(r.esm_class & 0x40 == 0 for r in mine), "SAR parts carry no UDH"
            assert [s[2] for s in sar] == list(range(1, len(mine) + 1)), sar
            assert len({s[0] for s in sar}) == 1 and {s[1] for s in sar} == {len(mine)}
            assert (
                join_parts([Part(i + 1, len(mine), r.short_message) for i, r in enumerate(mine)], 0)
                == want
            )
        wait_for(lambda: len(_receipts(c)) >= len(ids), 60, "receipts")
        time.sleep(1)
        assert sorted(_receipts(c)) == sorted(ids.values()), "one receipt per customer id"
    finally:
        c.close()


def test_an_incomplete_message_expires_with_failure_receipts(
    expiring_gateway: GatewayNode, sims: Sims
) -> None:
    gw = expiring_gateway
    gw.add_customer("mp", "pw")
    _provider(gw, sims, "exp", "4940")
    parts = split_text("z" * 400, 0, ref=random.randrange(256))
    assert len(parts) == 3
    c = Customer(gw.host, gw.port, "mp", "pw").bind()
    try:
        seqs = [submit_part(c, "494000000001", p) for p in (parts[0], parts[2])]
        c.wait(lambda: len(c.responses) == 2, 60, "responses")
        ids = sorted(c.accepted_ids()[s] for s in seqs)
        c.wait(lambda: len(c.receipts) >= 2, 60, "failure receipts after expiry")
        time.sleep(0.5)
        with c.lock:
            receipts = list(c.receipts)
        assert sorted(r.receipted_id for r in receipts) == ids
        for r in receipts:
            fields = parse_receipt(r.text, {})
            assert fields is not None
            assert (fields.state, fields.err) == (MessageState.UNDELIVERABLE, "904"), fields
        assert _received(sims, "exp") == [], "nothing of it went to the provider"
        stats = gw.pipeline_stats()["router"]
        assert stats["multipart_expired"] == 1 and stats["multipart_held"] == 0, stats  # type: ignore[index]
        assert gw.call(lambda: len(gw.gateway.pipeline.router.assembler)) == 0  # type: ignore[union-attr]
        # The changelog holds nothing live: every part written was tombstoned.
        latest: dict[bytes, bytes | None] = {}
        for m in drain(gw.bootstrap, gw.topics.multipart, timeout=30):
            latest[m.key() or b""] = m.value()
        assert len(latest) == 2 and all(v is None for v in latest.values()), latest
    finally:
        c.close()
