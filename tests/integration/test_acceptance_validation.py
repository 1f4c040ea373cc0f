"""Issue 10 item 1: nothing accepted can later fail to encode for the provider.

A submit_sm with a 6-character service_type ("CMT123"; SMPP 3.4 §5.2.11 allows
5 + NUL) used to be answered 0 and then kill the provider bind's sender on an
encode error, stopping the provider for every customer. Now it is refused at
the door (ESME_RINVSERTYP) and never reaches Kafka, and a bystander customer
on the same provider gets every receipt.
"""

from __future__ import annotations

import struct

import psycopg
import pytest
import smpplib.smpp

from smsgw.db.routes import add_mt_route
from smsgw.smpp.status import CommandStatus as S
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims, wait_bound
from tests.integration.test_message_path import (  # noqa: F401  (fixtures)
    _provider,
    path_gateway,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _send_oversized_service_type(c: Customer, sequence: int, service_type: bytes) -> None:
    """smpplib silently truncates over-long C-strings, so put the octets in by hand."""
    pdu = smpplib.smpp.make_pdu(
        "submit_sm", client=None, sequence=sequence, service_type="S",
        source_addr_ton=1, source_addr_npi=1, source_addr="4915100000009",
        dest_addr_ton=1, dest_addr_npi=1, destination_addr="4917099999999",
        registered_delivery=1, short_message=b"poison",
    )  # fmt: skip
    pdu.sequence = sequence
    body = pdu.generate()[16:]
    assert body.startswith(b"S\0")
    body = service_type + body[1:]
    c.client._socket.sendall(struct.pack(">IIII", 16 + len(body), 4, 0, sequence) + body)


def test_six_character_service_type_is_refused_and_the_provider_keeps_flowing(
    path_gateway: GatewayNode,  # noqa: F811
    sims: Sims,
) -> None:
    gw = path_gateway
    sim = sims.start("shared", receipt_delay=0.2)
    gw.add_customer("bad", "pw", tps=500)
    gw.add_customer("bystander", "pw", tps=500)
    _provider(gw, "shared", sim.port, tps=200, binds=1)
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix="", provider="shared")
    wait_bound(gw, sims, ["shared"])
    bad = Customer(gw.host, gw.port, "bad", "pw").bind()
    by = Customer(gw.host, gw.port, "bystander", "pw").bind()
    try:
        # More poison than the provider's window (10): once, each would have held a slot.
        poison = [100_000 + i for i in range(15)]
        for seq in poison:
            _send_oversized_service_type(bad, seq, b"CMT123")
        bad.wait(lambda: all(s in bad.responses for s in poison), 60, "answers to the poison")
        assert {bad.responses[s][0] for s in poison} == {int(S.ESME_RINVSERTYP)}

        for i in range(30):
            by.submit(f"491700{i:05d}")
        by.wait(lambda: len(by.responses) == 30, 60, "bystander responses")
        ids = by.accepted_ids()
        assert len(ids) == 30
        by.wait(lambda: len(by.receipts) >= 30, 60, f"bystander receipts ({len(by.receipts)}/30)")
        assert sorted(r.receipted_id for r in by.receipts) == sorted(ids.values())

        records = gw.read_submits(expect=None, timeout=60)
        assert len(records) == 30 and {m.customer for m in records} == {"bystander"}
        assert not any(m.service_type.startswith("CMT12") for m in records)
        assert {r.dest for r in sims.loop.call(lambda: list(sim.received))} == {
            f"491700{i:05d}" for i in range(30)
        }
    finally:
        bad.close()
        by.close()
