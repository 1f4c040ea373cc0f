"""An SMSC that puts its hex submit_sm_resp id in the receipted_message_id TLV (SMPP 3.4
§5.3.2.12) and a decimal id in the receipt text (issue 12 item 3): configured
``--submit-id-format hex --receipt-id-format dec`` as the README says, every receipt pairs."""

from __future__ import annotations

import psycopg
import pytest

from smsgw.db.routes import add_mt_route
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims, add_sim_provider, wait_bound

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_tlv_hex_text_decimal_receipts_all_reach_the_customer(
    node: GatewayNode, sims: Sims
) -> None:
    gw = node
    smsc = sims.start(
        "hexdec", id_format="hex", receipt_id_format="dec", tlv_submit_id=True, receipt_delay=0.2
    )
    gw.add_customer("c", "pw")
    add_sim_provider(
        gw, "hexdec", smsc.port, tps=100, submit_id_format="hex", receipt_id_format="dec"
    )
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix="", provider="hexdec")
    wait_bound(gw, sims, ["hexdec"])
    c = Customer(gw.host, gw.port, "c", "pw").bind()
    try:
        for i in range(4):
            c.submit(f"4917{i:07d}")
        c.wait(lambda: len(c.responses) == 4, 60, "responses")
        ids = set(c.accepted_ids().values())
        c.wait(
            lambda: len(c.receipts) >= 4, 60, f"receipts {len(c.receipts)}/4: {gw.pipeline_stats()}"
        )
        assert {r.receipted_id for r in c.receipts} == ids
        stats: dict[str, int] = gw.pipeline_stats()["correlator"]  # type: ignore[assignment]
        assert stats["matched"] == 4 and stats["forwarded"] == 0, stats
    finally:
        c.close()
