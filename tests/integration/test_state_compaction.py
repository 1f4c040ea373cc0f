"""One final state per message after compaction (issue 10): ``message-state`` is
compacted, which keeps the newest record per gateway id, not the first final one.
An SMSC that sends DELIVRD and then UNDELIV makes the correlator write DELIVERED and
then UNDELIVERABLE for the message; a node that rebuilt its store from the compacted
topic found only UNDELIVERABLE and answered query_sm with it, while every live node
said DELIVERED. The node's state follower writes the first final state again behind
the contradicting one (``smsgw.state.Restorer``), so it is what compaction keeps.

The broker's log cleaner runs on its own schedule (after ``min.compaction.lag.ms``,
on closed segments only): the test reads what compaction keeps — the newest record
of each key on the real topic — and rebuilds a store from that, as a node starting
after the cleaner ran would.
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from smsgw.db.routes import add_mt_route
from smsgw.kafka.security import client_config
from smsgw.state import MessageState, StateRecord, StateStore
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims, add_sim_provider, wait_bound

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 6


def _newest_per_key(gw: GatewayNode) -> dict[str, StateRecord]:
    """Per gateway id, the newest record on ``message-state``: what compaction keeps."""
    topic = gw.topics.message_state
    group = {"group.id": f"diag-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    c = Consumer(client_config(gw.bootstrap, group))
    try:
        parts = c.list_topics(topic, 10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p in parts if ends[p] > 0])
        left = {p for p in parts if ends[p] > 0}
        newest: dict[str, StateRecord] = {}
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error() is not None:
                continue
            if m.value():
                newest[(m.key() or b"").decode()] = StateRecord.decode(m.value() or b"")
            if (m.offset() or 0) + 1 >= ends[m.partition() or 0]:
                left.discard(m.partition() or 0)
        assert not left, f"partitions {left} not read to their end"
        return newest
    finally:
        c.close()


def test_the_first_final_state_is_what_compaction_keeps(node: GatewayNode, sims: Sims) -> None:
    gw = node
    smsc = sims.start("twice", second_receipt="UNDELIV", receipt_delay=0.2)
    gw.add_customer("kept", "pw")
    add_sim_provider(gw, "twice", smsc.port, tps=100)
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix="", provider="twice")
    gw.wait_routes(("491700000000", "twice"))
    wait_bound(gw, sims, ["twice"])
    c = Customer(gw.host, gw.port, "kept", "pw").bind()
    try:
        for i in range(N):
            c.submit(f"4917{i:07d}")
        c.wait(lambda: len(c.responses) == N, 30, "responses")
        ids = set(c.accepted_ids().values())
        assert len(ids) == N

        def contradicted() -> bool:
            """Both receipts of every message became state records on the topic."""
            stats: dict[str, int] = gw.pipeline_stats()["correlator"]  # type: ignore[assignment]
            return stats["matched"] >= 2 * N

        c.wait(contradicted, 90, "both receipts of every message correlated")
        # The follower writes DELIVERED again a few seconds after it read UNDELIVERABLE.
        deadline = time.monotonic() + 60
        newest = _newest_per_key(gw)
        while time.monotonic() < deadline and not all(
            mid in newest and newest[mid].state is MessageState.DELIVERED for mid in ids
        ):
            newest = _newest_per_key(gw)  # a read of the whole topic each time: no spin
        shown = sorted((mid, newest[mid].state.name) for mid in ids if mid in newest)
        print("newest state of each message:", shown)
        rebuilt = StateStore()  # a node starting after the log cleaner ran
        for record in newest.values():
            rebuilt.apply(record)
        for mid in ids:
            got = rebuilt.lookup(mid, "kept", "")
            assert got is not None and got.state is MessageState.DELIVERED, shown
    finally:
        c.close()
