"""Receipts go home to the session that submitted the message (issue 15).

Two applications under one system_id (two load generator runs, two Kannel
instances) each get their own receipts; a session's receipts go to another
receiving bind of the customer only once that session is gone.
"""

from __future__ import annotations

import psycopg
import pytest

from smsgw.db.routes import add_mt_route
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims, add_sim_provider, wait_bound

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 20
# Long enough that a session closed right after its submit_sm_resp is gone before
# its receipts come back (the simulator starts counting when it got the message).
RECEIPT_DELAY_S = 2.0


def _submit(c: Customer, first: int, expect: int) -> set[str]:
    """N submits from `c`; the gateway ids of all `expect` it has had accepted so far."""
    for i in range(first, first + N):
        c.submit(f"4917{i:07d}")
    c.wait(lambda: len(c.responses) == expect, 60, f"{c.system_id}: {expect} submit_sm_resp")
    ids = set(c.accepted_ids().values())
    assert len(ids) == expect
    return ids


def _receipted(c: Customer) -> list[str]:
    with c.lock:
        return [r.receipted_id for r in c.receipts]


def test_each_session_gets_its_own_receipts_and_a_gone_ones_go_to_the_other(
    node: GatewayNode, sims: Sims
) -> None:
    gw = node
    smsc = sims.start("smsc", receipt_delay=RECEIPT_DELAY_S)
    gw.add_customer("twin", "pw", tps=500)
    add_sim_provider(gw, "smsc", smsc.port, tps=500)
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix="", provider="smsc")
    wait_bound(gw, sims, ["smsc"])
    a = Customer(gw.host, gw.port, "twin", "pw").bind()
    b = Customer(gw.host, gw.port, "twin", "pw").bind()
    try:
        ids_a = _submit(a, 0, N)
        ids_b = _submit(b, 1000, N)
        everything = lambda: len(a.receipts) + len(b.receipts) >= 2 * N  # noqa: E731
        a.wait(everything, 60, f"receipts a={len(a.receipts)} b={len(b.receipts)}")
        assert sorted(_receipted(a)) == sorted(ids_a), "a got exactly its own receipts"
        assert sorted(_receipted(b)) == sorted(ids_b), "b got exactly its own receipts"

        # a submits more, then unbinds before their receipts come back: b gets them. The
        # provider holds its answers, and so the receipts, until a is gone (on a loaded
        # machine a's 20 submits took longer than the receipt delay: some came home to a).
        sims.loop.call(smsc.pause_responses)
        later_a = _submit(a, 2000, 2 * N) - ids_a
        a.close()
        sims.loop.call(smsc.resume_responses)
        b.wait(
            lambda: len(b.receipts) >= 2 * N,
            60,
            f"a's receipts at b: {len(b.receipts) - N}/{N}: {gw.pipeline_stats()}",
        )
        assert sorted(_receipted(b)) == sorted(ids_b | later_a)
        assert sorted(_receipted(a)) == sorted(ids_a), "nothing for a after it unbound"
    finally:
        a.close()
        b.close()
