"""Poison records (issue 10 item 7): an undecodable record on any gateway topic goes to the
dead-letter topic with its reason and origin, is counted, and its stage goes on with the next
record; ``smsgw dlq`` lists, shows, replays and drops them against the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

from smsgw.cli_dlq import read_dead_letters
from smsgw.db.routes import add_mt_route
from smsgw.kafka import dlq
from smsgw.kafka.security import client_config
from smsgw.state import MessageState
from smsgw.topics import Topics
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims, wait_bound
from tests.integration.conftest import gateway_settings
from tests.integration.test_message_path import _provider

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _poison(topics: Topics) -> dict[str, tuple[bytes, bytes]]:
    """One undecodable record per gateway topic: source topic -> (key, value)."""
    return {
        topics.submit: (b"m1", b'{"v": 99, "from": "the future"}'),
        topics.outbound("p"): (b"m2", b"not json at all"),
        topics.sent: (b"p:abc", b'{"key": "p:abc"}'),
        topics.inbound: (b"p:abc", b"\x00\x01\x02"),
        topics.deliver: (b"c", b"[1, 2, 3]"),
        topics.message_state: (b"m3", b'{"id": "m3"}'),
        topics.multipart: (b"c|ref|3", b"\xff\xfe"),
    }


def _produce(bootstrap: str, records: dict[str, tuple[bytes, bytes]]) -> None:
    p = Producer(client_config(bootstrap, {"enable.idempotence": True, "acks": "all"}))
    for topic, (key, value) in records.items():
        p.produce(topic, value=value, key=key, headers=[("origin", b"test")])
    assert p.flush(30) == 0


def _cli(gw: GatewayNode, *args: str) -> str:
    """The installed ``smsgw`` command, in its own process (this one's stdout has the logs)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "smsgw"), "--kafka-bootstrap", gw.bootstrap, "dlq",
         *args],
        env={**os.environ, "SMSGW_TOPIC_PREFIX": gw.topics.prefix},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def sims() -> Iterator[Sims]:
    s = Sims()
    yield s
    s.stop()


def test_poison_records_go_to_the_dlq_and_every_stage_goes_on(
    bootstrap: str, db_url: str, topics: Topics, sims: Sims
) -> None:
    poison = _poison(topics)
    # The multipart changelog is read when the router takes its partitions: poison it first.
    _produce(bootstrap, {topics.multipart: poison[topics.multipart]})
    before = sum(dlq.dead_lettered.values())
    gw = GatewayNode(gateway_settings(bootstrap, db_url), topics, with_pipeline=True)
    gw.start()
    c: Customer | None = None
    try:
        smsc = sims.start("p", receipt_delay=0.2)
        gw.add_customer("c", "pw")
        _provider(gw, "p", smsc.port, tps=100)
        with psycopg.connect(gw.db_url) as conn:
            add_mt_route(conn, prefix="", provider="p")
        wait_bound(gw, sims, ["p"])
        c = Customer(gw.host, gw.port, "c", "pw").bind()
        c.submit("49170000001")  # warm-up: creates out.p, proves the path
        c.wait(lambda: len(c.receipts) == 1, 60, f"first receipt: {gw.pipeline_stats()}")

        _produce(bootstrap, {t: kv for t, kv in poison.items() if t != topics.multipart})
        c.submit("49170000002")  # the bystander, behind every poison record
        c.wait(lambda: len(c.receipts) == 2, 60, f"bystander receipt: {gw.pipeline_stats()}")
        bystander = c.accepted_ids()[max(c.accepted_ids())]
        assert c.receipts[1].receipted_id == bystander
        # The state follower went past its poison record too: query_sm knows the outcome.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and bystander not in c.queries:
            c.query(bystander)
            c.wait(lambda: bystander in c.queries, 30, "query_sm answer")
            if c.queries[bystander][1] != MessageState.DELIVERED:
                del c.queries[bystander]
                time.sleep(0.2)
        assert c.queries[bystander] == (0, MessageState.DELIVERED)

        deadline = time.monotonic() + 60
        letters = read_dead_letters(bootstrap, topics)
        while time.monotonic() < deadline and len(letters) < len(poison):
            time.sleep(0.5)
            letters = read_dead_letters(bootstrap, topics)
        by_topic = {d.row()["topic"]: d for d in letters}
        assert set(by_topic) == set(poison), [d.row() for d in letters]
        for topic, (key, value) in poison.items():
            d = by_topic[topic]
            assert d.value == value and d.source_key == key, topic
            assert ("origin", b"test") in d.source_headers
            assert d.meta("reason") and d.meta("stage"), d.row()
        assert by_topic[topics.submit].meta("stage") == "router"
        assert "version" in by_topic[topics.submit].meta("reason")
        assert by_topic[topics.outbound("p")].meta("stage") == "provider.p"
        assert by_topic[topics.message_state].meta("stage") == "state-follower"
        # The metric counts every one of them (by stage and source topic).
        counted = {t for (_stage, t), n in dlq.dead_lettered.items() if n}
        assert set(poison) <= counted
        assert sum(dlq.dead_lettered.values()) - before >= len(poison)

        # The CLI, against the same broker.
        listed = json.loads(_cli(gw, "list", "--json"))
        assert {r["topic"] for r in listed} == set(poison)
        assert all(r["reason"] for r in listed)
        assert "no dead letters" not in _cli(gw, "list")
        n_deliver = by_topic[topics.deliver].number
        shown = json.loads(_cli(gw, "show", str(n_deliver), "--json"))
        assert shown["value"] == "[1, 2, 3]" and shown["key"] == "c"
        assert shown["headers"] == {"origin": "test"} and shown["stage"] == "deliverer"
        # replay: back to its source topic, where the deliverer sets it aside again.
        old_offset = shown["offset"]
        _cli(gw, "replay", str(n_deliver))
        deadline = time.monotonic() + 60
        again: list[dict[str, object]] = []
        while time.monotonic() < deadline and not again:
            rows = json.loads(_cli(gw, "list", "--json"))
            again = [r for r in rows if r["topic"] == topics.deliver]
            time.sleep(0.3)
        assert again and again[0]["offset"] != old_offset and again[0]["n"] != n_deliver
        # drop: gone from the list.
        n_sent = by_topic[topics.sent].number
        assert json.loads(_cli(gw, "drop", str(n_sent), "--json")) == {"n": n_sent, "dropped": True}
        rows = json.loads(_cli(gw, "list", "--json"))
        assert n_sent not in {r["n"] for r in rows}
        assert len(rows) == len(poison) - 1
    finally:
        if c is not None:
            c.close()
        gw.stop()
