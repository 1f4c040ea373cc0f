"""One final state per message as the customer sees it (issue 10): an SMSC that sends a
second, contradicting receipt (DELIVRD, then UNDELIV a moment later) gives the customer
one receipt per message, the first, and query_sm keeps that first final state. The
same once-only key covers an outcome decided twice after a provider bind dies between
writing it and committing its offset; and a final receipt telling another state than
the first final one on ``message-state`` is never delivered (the deliverer reads the
node's state store)."""

from __future__ import annotations

import time

import psycopg
import pytest
from confluent_kafka import Producer

from smsgw.db.routes import add_mt_route
from smsgw.kafka.security import client_config
from smsgw.message import AcceptedMessage
from smsgw.receipts import ERR_UNKNOWN_OUTCOME, failure_receipt
from smsgw.smpp.submission import Address
from smsgw.state import MessageState, StateRecord
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.messages import accepted_message
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
        # A receipt waits for its state record in the node's store (the deliverer's
        # check against the final state shown): it may come a moment after the counters.
        c.wait(lambda: len(c.receipts) >= N, 30, "every first receipt")
        assert len(c.receipts) == N, [(r.receipted_id, r.text) for r in c.receipts]
        assert {r.receipted_id for r in c.receipts} == ids
        print("deliverer:", gw.pipeline_stats()["deliverer"])
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


def test_a_failure_decided_on_a_bind_replay_never_contradicts_the_state_shown(
    node: GatewayNode,
) -> None:
    """The story the pipeline state machine found, as Kafka carries it: the provider took
    part 1 and its DELIVRD receipt made it DELIVERED (the correlator's state record,
    no receipt: the customer asks for failures only, registered_delivery 2); the bind
    had died before committing the record, and its replay failed the same part
    (unknown outcome, err:906): a second state record and a failure receipt. The
    customer gets no receipt for it and query_sm says DELIVERED; a bystander message
    failed for good gets its receipt. Before the fix both receipts arrived."""
    gw = node
    gw.add_customer("replayed", "pw")
    src = Address("4915100000001", 1, 1)
    taken, failed = (
        accepted_message(
            mid,
            customer="replayed",
            source=src,
            destination=Address(dest, 1, 1),
            registered_delivery=2,
            received_at=time.time(),
        )
        for mid, dest in (("replay-taken", "49170000001"), ("replay-failed", "49170000002"))
    )

    def state(m: AcceptedMessage, s: MessageState, err: int, stage: str) -> StateRecord:
        return StateRecord(
            m.id, m.customer, m.source.addr, s, time.time(), err, stage, m.destination.addr
        )

    producer = Producer(client_config(gw.bootstrap, {"enable.idempotence": True}))
    for record in (
        state(taken, MessageState.DELIVERED, 0, "receipt"),
        state(taken, MessageState.UNDELIVERABLE, ERR_UNKNOWN_OUTCOME, "unknown-outcome"),
        state(failed, MessageState.UNDELIVERABLE, ERR_UNKNOWN_OUTCOME, "unknown-outcome"),
    ):
        producer.produce(gw.topics.message_state, record.encode(), record.id.encode())
    for m in (taken, failed):
        receipt = failure_receipt(m, MessageState.UNDELIVERABLE, ERR_UNKNOWN_OUTCOME)
        producer.produce(gw.topics.deliver, receipt.encode(), m.customer.encode())
    assert producer.flush(30) == 0
    c = Customer(gw.host, gw.port, "replayed", "pw", mode="receiver").bind()
    try:

        def delivered() -> dict[str, int]:
            return gw.pipeline_stats()["deliverer"]  # type: ignore[return-value]

        def settled() -> bool:
            """Both records read and finished: delivered, or skipped unsent."""
            stats = delivered()
            return stats["delivered"] + stats.get("contradicted", 0) >= 2

        try:
            c.wait(settled, 60, "both receipts delivered or skipped")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {delivered()} {c.receipts}") from None
        c.wait(lambda: len(c.receipts) >= 1, 30, "the bystander's receipt")
        assert [r.receipted_id for r in c.receipts] == [failed.id], [r.text for r in c.receipts]
        assert delivered()["contradicted"] == 1, delivered()
        assert b"stat:UNDELIV" in c.receipts[0].text
    finally:
        c.close()
    query = Customer(gw.host, gw.port, "replayed", "pw").bind()
    try:
        query.query(taken.id)
        query.wait(lambda: taken.id in query.queries, 30, "query_sm answer")
        assert query.queries[taken.id] == (0, int(MessageState.DELIVERED))
    finally:
        query.close()
