"""A provider's binds change under traffic: no message goes to the provider twice.

The provider's binds share its consumer group; when the bind count changes
(or a node joins or leaves) partitions move between binds mid-flight. A bind
giving a partition up stops sending its records, waits (bounded) for the sends
in flight on it to be answered and their outcome to be durable, commits, and
only then lets it go: the next owner starts after what was sent. Before, the
next owner read again what the last one had sent but not committed, and sent it
again (the broker-loss control test saw 4 such duplicates with no broker lost).
At-least-once toward the provider is for crashes, not for a planned move.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka import Consumer, ConsumerGroupState, TopicPartition

from benchmarks.smsc_sim.stats import ReceivedSubmit
from smsgw.db.providers import update_provider
from smsgw.db.routes import add_mt_route
from smsgw.kafka import consumer as kafka_consumer
from smsgw.kafka.admin import _admin
from smsgw.kafka.security import client_config
from smsgw.records import Routed
from smsgw.topics import Topics
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.sims import Sims, add_sim_provider, wait_bound
from tests.integration.conftest import gateway_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

RATE = 150  # submits per second: modest, the machine has 2 cores
BIND_COUNTS = [2, 3, 1, 2]  # each change moves partitions between binds under traffic


@pytest.fixture
def gw(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    node = GatewayNode(gateway_settings(bootstrap, db_url), topics, with_pipeline=True)
    node.start()
    yield node
    node.stop()


def _wait_group(gw: GatewayNode, group: str, members: int, timeout: float = 120) -> None:
    """Until ``group`` is STABLE with exactly ``members`` members, each owning partitions."""
    admin = _admin(gw.bootstrap)
    deadline = time.monotonic() + timeout
    last = "not described"
    while time.monotonic() < deadline:
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(10)
        except Exception as exc:  # the coordinator is busy: ask again
            last = repr(exc)
        else:
            owning = [m for m in desc.members if m.assignment.topic_partitions]
            last = f"{desc.state}, {len(owning)}/{len(desc.members)} members own partitions"
            if (
                desc.state == ConsumerGroupState.STABLE
                and len(desc.members) == members
                and len(owning) == members
            ):
                return
        time.sleep(0.2)
    raise AssertionError(f"group {group} never settled with {members} members: {last}")


def _offsets(gw: GatewayNode, group: str, topic: str) -> list[tuple[int, int, int]]:
    """(partition, committed, end) of ``topic`` for ``group`` (a failure's diagnosis)."""
    c = Consumer(client_config(gw.bootstrap, {"group.id": group}))
    try:
        parts = [TopicPartition(topic, p) for p in range(gw.settings.topic_partitions)]
        return [
            (tp.partition, tp.offset, c.get_watermark_offsets(tp, 10)[1])
            for tp in c.committed(parts, 10)
        ]
    finally:
        c.close()


def _routed_dests(gw: GatewayNode, topic: str) -> dict[str, tuple[int, int]]:
    """(partition, offset) by destination of every committed record on ``topic`` (a
    failure's diagnosis)."""
    c = Consumer(
        client_config(
            gw.bootstrap,
            {
                "group.id": f"diag-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            },
        )
    )
    out: dict[str, tuple[int, int]] = {}
    try:
        c.subscribe([topic])
        idle = 0
        while idle < 20:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                idle += 1
                continue
            idle = 0
            try:
                dest = Routed.decode(msg.value() or b"").message.destination.addr
                out[dest] = (msg.partition() or 0, msg.offset() or 0)
            except Exception:
                continue  # a withdrawal marker
    finally:
        c.close()
    return out


def _print_duplicates(
    sends: list[ReceivedSubmit],
    received: Counter[str],
    on_topic: dict[str, tuple[int, int]],
    moves: list[tuple[float, str]],
) -> None:
    """When and by which simulator binds the duplicates were sent (a failure's diagnosis)."""
    if not sends:
        return
    t0 = min(r.received_at for r in sends)
    print("moves at:", [(round(t - t0, 2), what) for t, what in moves])
    firsts: dict[str, ReceivedSubmit] = {}
    pairs: Counter[tuple[int, int, int]] = Counter()  # (partition, first bind, again bind)
    shown = 0
    for r in sends:
        first = firsts.setdefault(r.dest, r)
        if first is r or received[r.dest] < 2:
            continue
        part = on_topic.get(r.dest, (-1, -1))[0]
        pairs[(part, first.bind_id, r.bind_id)] += 1
        if shown < 15:
            shown += 1
            print(
                f"again: {r.dest} at {on_topic.get(r.dest)} first by bind {first.bind_id} "
                f"at {first.received_at - t0:.2f}, again by bind {r.bind_id} "
                f"at {r.received_at - t0:.2f}"
            )
    print("duplicates by (partition, first bind, again bind):", dict(pairs))


def test_changing_a_providers_binds_under_traffic_sends_nothing_twice(
    gw: GatewayNode, sims: Sims
) -> None:
    sim = sims.start("smsc", receipt_delay=0.2)
    gw.add_customer("acme", "pw", tps=2000)
    add_sim_provider(gw, "smsc", sim.port, tps=1000, binds=1, window=50)
    with psycopg.connect(gw.db_url) as conn:
        add_mt_route(conn, prefix="4917", provider="smsc")
    wait_bound(gw, sims, ["smsc"])
    group = f"{gw.topics.prefix}provider.smsc"
    refused_before = kafka_consumer.commits_refused[group]
    _wait_group(gw, group, 1)
    customer = Customer(gw.host, gw.port, "acme", "pw").bind()
    dest_of: dict[int, str] = {}
    stop = threading.Event()

    def traffic() -> None:
        t0, n = time.monotonic(), 0
        while not stop.is_set():
            dest = f"4917{n:08d}"
            seq = customer.submit(dest, f"m{n}".encode())
            with customer.lock:
                dest_of[seq] = dest
            n += 1
            pause = t0 + n / RATE - time.monotonic()
            if pause > 0:
                stop.wait(pause)

    def accepted() -> int:
        return sum(1 for st, _ in customer.responses.values() if st == 0)

    moves: list[tuple[float, str]] = []  # (monotonic time, what): a failure's diagnosis
    sender = threading.Thread(target=traffic, daemon=True, name="traffic")
    sender.start()
    try:
        customer.wait(lambda: accepted() >= RATE * 3, 60, "traffic flowing")
        for binds in BIND_COUNTS:
            moves.append((time.monotonic(), f"binds={binds}"))
            with psycopg.connect(gw.db_url) as conn:
                update_provider(conn, "smsc", binds=binds)
            wait_bound(gw, sims, ["smsc"])
            _wait_group(gw, group, binds)
            moves.append((time.monotonic(), f"group of {binds} settled"))
            # The new owners send for a while before the next move.
            mark = accepted()
            customer.wait(lambda m=mark: accepted() >= m + RATE * 2, 60, "traffic after a move")
    finally:
        stop.set()
        sender.join(30)
    try:
        customer.wait(lambda: set(customer.responses) >= set(dest_of), 60, "every submit answered")
        ok = customer.accepted_ids()
        assert len(ok) == len(dest_of), "submits refused"
        want = set(ok.values())
        try:
            customer.wait(
                lambda: want <= {r.receipted_id for r in customer.receipts},
                120 + len(want) / 100,
                f"receipts for every accepted submit ({len(want)})",
            )
        finally:
            sends = sims.loop.call(lambda: list(sim.received))
            received = Counter(r.dest for r in sends)
            with customer.lock:
                home = want & {r.receipted_id for r in customer.receipts}
            unsent = sorted(dest_of[s] for s in ok if not received[dest_of[s]])
            never_sent = len(unsent)
            twice = sum(n - 1 for n in received.values() if n > 1)
            print(
                f"\n{len(ok)} accepted over {len(BIND_COUNTS)} bind-count changes "
                f"{[1, *BIND_COUNTS]}: {twice} duplicates to the provider, "
                f"{never_sent} never sent {unsent[:10]}, {len(home)} receipts home"
            )
            if never_sent or twice:
                print("simulator:", sims.loop.call(sim.stats.to_dict))
                print("pipeline:", gw.pipeline_stats())
                print("offsets:", _offsets(gw, group, gw.topics.outbound("smsc")))
                on_topic = _routed_dests(gw, gw.topics.outbound("smsc"))
                print(f"of those never sent, {len(set(unsent) & set(on_topic))} are on the topic")
                print("never sent at (partition, offset):", [on_topic.get(d) for d in unsent])
                _print_duplicates(sends, received, on_topic, moves)
        assert not never_sent, f"{never_sent} accepted submits never reached the provider"
        refused = kafka_consumer.commits_refused[group] - refused_before
        # A planned move sends nothing twice; a member the broker fenced (its session
        # ran out on a loaded machine: its commit refused) is a crash to the group,
        # and at-least-once is all that holds then.
        assert twice == 0 or refused, f"{twice} submits went to the provider twice"
        if twice:
            print(f"{refused} commits of {group} refused: the duplicates are a fenced member's")
    finally:
        customer.close()
