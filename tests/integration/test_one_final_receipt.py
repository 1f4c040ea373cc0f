"""One final state per message as the customer sees it (issue 10): an SMSC that sends a
second, contradicting receipt (DELIVRD, then UNDELIV a moment later) gives the customer
one receipt per message, the first, and query_sm keeps that first final state. The
same once-only key covers an outcome decided twice after a provider bind dies between
writing it and committing its offset."""

from __future__ import annotations

import psycopg
import pytest

from smsgw.db.routes import add_mt_route
from smsgw.state import MessageState
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims, add_sim_provider, wait_bound

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 6


def test_a_contradicting_second_receipt_never_reaches_the_customer(
    node: GatewayNode, sims: Sims
) -> None:
    gw = node
    smsc = sims.start("twice", second_receipt="UNDELIV", receipt_delay=0.2)
    gw.add_customer("once", "pw")
    add_sim_provider(gw, "twice", smsc.port, tps=100)
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix="", provider="twice")
    wait_bound(gw, sims, ["twice"])
    c = Customer(gw.host, gw.port, "once", "pw").bind()
    try:
        for i in range(N):
            c.submit(f"4917{i:07d}")
        c.wait(lambda: len(c.responses) == N, 30, "responses")
        ids = set(c.accepted_ids().values())

        def skipped() -> int:
            stats: dict[str, int] = gw.pipeline_stats()["deliverer"]  # type: ignore[assignment]
            return stats["duplicates_skipped"]

        # Every second receipt reached the deliverer and was skipped there.
        c.wait(lambda: skipped() >= N, 90, f"second receipts skipped: {gw.pipeline_stats()}")
        assert len(c.receipts) == N, [(r.receipted_id, r.text) for r in c.receipts]
        assert {r.receipted_id for r in c.receipts} == ids
        assert all(b"stat:DELIVRD" in r.text for r in c.receipts), [r.text for r in c.receipts]
        for mid in ids:
            c.query(mid)
        c.wait(lambda: len(c.queries) == N, 30, "query_sm answers")
        assert {state for _, state in c.queries.values()} == {int(MessageState.DELIVERED)}
    finally:
        c.close()
