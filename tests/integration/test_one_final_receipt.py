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
    gw.wait_routes(("491700000000", "twice"))  # else a slow reload leaves them unrouted
    wait_bound(gw, sims, ["twice"])
    c = Customer(gw.host, gw.port, "once", "pw").bind()
    try:
        for i in range(N):
            c.submit(f"4917{i:07d}")
        c.wait(lambda: len(c.responses) == N, 30, "responses")
        ids = set(c.accepted_ids().values())

        def seconds_stopped() -> bool:
            """Both receipts of every message reached the correlator, and the second one
            went no further (receipt_wanted), or reached the deliverer and was skipped
            there (one delivery id for every final receipt)."""
            stats: dict[str, dict[str, int]] = gw.pipeline_stats()  # type: ignore[assignment]
            correlator, deliverer = stats["correlator"], stats["deliverer"]
            passed_on = correlator["to_customer"] - deliverer["duplicates_skipped"]
            return correlator["matched"] >= 2 * N and passed_on == N

        try:
            c.wait(seconds_stopped, 90, "every second receipt seen and stopped")
        except AssertionError as exc:  # the counters at the end, not at the start
            raise AssertionError(f"{exc}: {gw.pipeline_stats()}") from None
        assert len(c.receipts) == N, [(r.receipted_id, r.text) for r in c.receipts]
        assert {r.receipted_id for r in c.receipts} == ids
        assert all(b"stat:DELIVRD" in r.text for r in c.receipts), [r.text for r in c.receipts]
        for mid in ids:
            c.query(mid)
        c.wait(lambda: len(c.queries) == N, 30, "query_sm answers")
        assert {state for _, state in c.queries.values()} == {int(MessageState.DELIVERED)}
    finally:
        c.close()


def test_a_failure_only_customer_gets_nothing_from_a_contradicting_second_receipt(
    node: GatewayNode, sims: Sims
) -> None:
    """registered_delivery 2 asks for failure receipts only (SMPP 3.4 §5.2.17): a message
    the provider reports DELIVRD and then UNDELIV is DELIVERED (its first final state),
    so the customer gets no receipt for it. Found by the pipeline state machine; before
    the fix the second receipt became a failure receipt (to_customer == N)."""
    gw = node
    smsc = sims.start("twice", second_receipt="UNDELIV", receipt_delay=0.2)
    gw.add_customer("failonly", "pw")
    add_sim_provider(gw, "twice", smsc.port, tps=100)
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix="", provider="twice")
    gw.wait_routes(("491700000000", "twice"))
    wait_bound(gw, sims, ["twice"])
    c = Customer(gw.host, gw.port, "failonly", "pw").bind()
    try:
        for i in range(N):
            c.submit(f"4917{i:07d}", registered_delivery=2)
        c.wait(lambda: len(c.responses) == N, 30, "responses")
        ids = set(c.accepted_ids().values())

        def correlated() -> dict[str, int]:
            stats: dict[str, int] = gw.pipeline_stats()["correlator"]  # type: ignore[assignment]
            return stats

        # Both receipts of every message reached the correlator.
        c.wait(lambda: correlated()["matched"] >= 2 * N, 90, f"receipts: {correlated()}")
        assert correlated()["to_customer"] == 0, correlated()
        for mid in ids:
            c.query(mid)
        c.wait(lambda: len(c.queries) == N, 30, "query_sm answers")
        assert {state for _, state in c.queries.values()} == {int(MessageState.DELIVERED)}
        assert c.receipts == [], [r.text for r in c.receipts]
    finally:
        c.close()
