"""Kafka brokers die under traffic: 3 brokers, RF 3, min ISR 2, acks=all (issue 14).

A customer submits at a steady rate with receipts requested through a gateway
node running the whole pipeline (listener, router, correlator, deliverer,
provider bind to a simulated SMSC). One broker is SIGKILLed (the one leading
most ``submit`` partitions, or the router's group and transaction
coordinator), or two at once (below min ISR). Every submit answered 0 is on
Kafka, reaches the provider and its receipt the customer (0 lost);
duplicates to the provider are counted and printed; refused submits sent
anyway are asserted none with one broker lost, and with two none sooner than
the provider bind's withdrawal hold. The
killed brokers come back; the one-broker tests wait until every partition has
its three replicas in sync again.
"""

from __future__ import annotations

import asyncio
import faulthandler
import itertools
import os
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import smpplib.exceptions
from confluent_kafka import Consumer, ConsumerGroupState, Producer

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.cluster.kafka import EmbeddedKafkaCluster
from smsgw.db.providers import add_provider
from smsgw.db.routes import add_mt_route
from smsgw.kafka.admin import _admin, describe_replication, ensure_topics
from smsgw.kafka.security import client_config
from smsgw.message import decode, is_withdrawal
from smsgw.pipeline.outbox import withdrawal_hold_s
from smsgw.smpp.status import CommandStatus as S
from smsgw.topics import Topics
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.loop_thread import LoopThread
from tests.integration.conftest import gateway_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

RATE = 300  # submits per second, as issue 14 states the traffic
PRODUCE_TIMEOUT_S = 5.0  # the default
# A refusal reaches the customer within the produce timeout plus this: the
# listener's own deadline fires at the timeout after it read the submit; the rest
# is the submit's and the answer's way through a loop and a customer thread
# shared with the whole pipeline, on a loaded 2-core machine (the gateway loop's
# lag is printed with the numbers).
ANSWER_MARGIN_S = 1.5
INTERNAL = ["__consumer_offsets", "__transaction_state"]


class TimedCustomer(Customer):
    """A customer that also notes when each submit went out and when it was answered."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.sent_at: dict[int, float] = {}
        self.dest_of: dict[int, str] = {}
        self.answered_at: dict[int, float] = {}
        self.receipted: set[str] = set()  # receipted ids, kept as they come

    def _received(self, pdu: Any, **kw: Any) -> int:
        status = super()._received(pdu, **kw)
        if int(pdu.esm_class) & 0x3C:  # a receipt: the one just added
            with self.lock:
                self.receipted.add(self.receipts[-1].receipted_id)
        return status

    def _sent(self, pdu: Any, **kw: Any) -> None:
        super()._sent(pdu, **kw)
        with self.lock:
            self.answered_at.setdefault(int(pdu.sequence), time.monotonic())

    def send(self, n: int) -> None:
        dest = f"4917{n:08d}"
        t = time.monotonic()
        seq = self.submit(dest, f"m{n}".encode())
        with self.lock:
            self.sent_at[seq] = t
            self.dest_of[seq] = dest


@dataclass
class Traffic:
    """Submits at ``rate`` from a thread until stopped."""

    customer: TimedCustomer
    rate: int = RATE
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Traffic:
        def run() -> None:
            t0, n = time.monotonic(), 0
            while not self.stop.is_set():
                self.customer.send(n)
                n += 1
                pause = t0 + n / self.rate - time.monotonic()
                if pause > 0:
                    self.stop.wait(pause)

        self.thread = threading.Thread(target=run, daemon=True, name="traffic")
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join(30)


@dataclass
class Ha:
    cluster: EmbeddedKafkaCluster
    topics: Topics
    node: GatewayNode
    sim: SmscSimulator
    sims: LoopThread
    customer: TimedCustomer

    def received_dests(self) -> list[str]:
        return [r.dest for r in self.sims.call(lambda: list(self.sim.received))]


class LoopLag:
    """The gateway loop's worst lateness while it runs: how long a 50-ms sleep overslept."""

    def __init__(self, node: GatewayNode) -> None:
        self.worst = 0.0
        self._stop = threading.Event()
        self._done = asyncio.run_coroutine_threadsafe(self._probe(), node.loop)

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            t = loop.time()
            await asyncio.sleep(0.05)
            self.worst = max(self.worst, loop.time() - t - 0.05)

    def stop(self) -> float:
        self._stop.set()
        self._done.result(30)
        return self.worst


def _java_hash(s: str) -> int:
    h = 0
    for ch in s.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(ch, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def _coordinator_partition(key: str, partitions: int) -> int:
    """Kafka's ``Utils.abs(key.hashCode) % partitions`` (group and transaction coordinators)."""
    h = _java_hash(key)
    return (0 if h == -(2**31) else abs(h)) % partitions


def _leaders(bootstrap: str, topic: str) -> dict[int, int]:
    md = _admin(bootstrap).list_topics(topic, timeout=15)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


def _coordinator_topics_exist(bootstrap: str) -> None:
    """The first transactional producer makes ``__transaction_state`` (and a group
    lookup ``__consumer_offsets``): before a node name can be picked by their leaders."""
    p = Producer(client_config(bootstrap, {"transactional.id": f"probe-{uuid.uuid4().hex}"}))
    p.init_transactions(60)
    admin = _admin(bootstrap)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=15).topics
        if all(t in topics for t in INTERNAL):
            return
        c = Consumer(client_config(bootstrap, {"group.id": f"probe-{uuid.uuid4().hex}"}))
        c.subscribe(["__probe_none"])
        c.poll(1)
        c.close()
    raise AssertionError("the coordinator topics were not created")


def _caught_up(cluster: EmbeddedKafkaCluster, prefix: str, timeout: float = 180) -> float:
    """Seconds until every partition of our topics (and the coordinators') has 3 in sync."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            brokers, ours = describe_replication(cluster.bootstrap, prefix=prefix)
            _, internal = describe_replication(cluster.bootstrap, INTERNAL)
        except Exception as exc:
            last = exc
        else:
            last = [t for t in ours + internal if t.under_replicated or t.offline]
            if brokers == 3 and ours and not last:
                return time.monotonic() - t0
        time.sleep(0.5)
    raise AssertionError(f"replicas not back in sync after {timeout:.0f} s: {last}")


@pytest.fixture
def ha(kafka3: EmbeddedKafkaCluster, db_url: str) -> Iterator[Ha]:
    cluster = kafka3
    cluster.start()  # a previous test's broker left down is started again
    topics = Topics(prefix=f"h{uuid.uuid4().hex[:10]}.")
    ensure_topics(cluster.bootstrap, topics.specs(partitions=3))
    _coordinator_topics_exist(cluster.bootstrap)
    _caught_up(cluster, topics.prefix)  # a broker the last test restarted is in sync
    # The router's transactional id holds the node name: one whose transaction
    # coordinator is also the router group's coordinator, so that killing that
    # broker takes both (found from the coordinator topics' leaders).
    group_leader = _leaders(cluster.bootstrap, "__consumer_offsets")[
        _coordinator_partition(f"{topics.prefix}router", 10)
    ]
    txn_leaders = _leaders(cluster.bootstrap, "__transaction_state")
    node_name = next(
        name
        for name in (f"ha{i}" for i in range(1000))
        if txn_leaders[_coordinator_partition(f"{topics.prefix}router-{name}-{os.getpid()}", 4)]
        == group_leader
    )
    sims = LoopThread("smsc-sim")
    sim = SmscSimulator(SimConfig(system_id="smsc", password="pw", seed=1, receipt_delay=0.2))
    sims.run(sim.start())
    node = GatewayNode(
        gateway_settings(
            cluster.bootstrap,
            db_url,
            produce_timeout_s=PRODUCE_TIMEOUT_S,
            node_name=node_name,
            topic_partitions=3,
        ),
        topics,
        with_pipeline=True,
    )
    node.start()
    customer: TimedCustomer | None = None
    try:
        node.add_customer("acme", "pw", tps=2000)  # first: it waits for a config change
        with psycopg.connect(db_url) as conn:
            add_provider(
                conn,
                "smsc",
                host="127.0.0.1",
                port=sim.port,
                system_id="smsc",
                password="pw",
                tps=1000,
                binds=2,
                window=50,
            )
            add_mt_route(conn, prefix="4917", provider="smsc")
        deadline = time.monotonic() + 30
        while not sum(sims.call(lambda: dict(sim.bound)).values()) >= 2:
            assert time.monotonic() < deadline, "provider binds never came up"
            time.sleep(0.1)
        _wait_group_settled(cluster.bootstrap, f"{topics.prefix}provider.smsc", members=2)
        _warm_up(node)
        customer = TimedCustomer(node.host, node.port, "acme", "pw")
        deadline = time.monotonic() + 60
        while True:  # the helper reads the bind_resp with a 1 s timeout: the machine is busy
            try:
                customer.bind()
                break
            except (smpplib.exceptions.ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
        yield Ha(cluster, topics, node, sim, sims, customer)
    finally:
        if customer is not None:
            customer.close()
        try:
            node.stop()
        except TimeoutError:  # the in-process pipeline can hang in a Kafka call after
            # broker churn; the broker state is restored below either way
            print("\ngateway node did not stop within 60 s")
        sims.run(sim.stop())
        sims.close()
        cluster.start()


def _warm_up(node: GatewayNode, timeout: float = 180) -> None:
    """One submit answered 0 and its receipt home before the test's traffic.

    The first test on a fresh cluster (the file's first user of ``kafka3``) had
    its first seconds of submits refused, the listener's first produces not
    confirmed within 5 s and the router not routing for ~35 s: refusals (770)
    that no broker's loss caused, some of them sent (15, an issue-10 case), and
    counted against the kill. A probe of the whole path, on a session of its
    own and with numbers of its own, waits that out.
    """
    probe = Customer(node.host, node.port, "acme", "pw")
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe.bind()
            break
        except (smpplib.exceptions.ConnectionError, TimeoutError):
            assert time.monotonic() < deadline, "no bind for the warm-up"
    try:
        for k in itertools.count():
            seq = probe.submit(f"49179999{k:04d}", b"warm-up")
            probe.wait(lambda s=seq: s in probe.responses, 30, "warm-up answered")
            if probe.responses[seq][0] == 0:
                mid = probe.responses[seq][1]
                left = max(1.0, deadline - time.monotonic())
                probe.wait(
                    lambda m=mid: any(r.receipted_id == m for r in probe.receipts),
                    left,
                    "the warm-up's receipt",
                )
                return
            assert time.monotonic() < deadline, "the pipeline never accepted a submit"
    finally:
        probe.close()


@dataclass
class Outcome:
    ok: dict[int, str]
    failed: dict[int, int]
    duplicates: int
    longest_gap_s: float
    sent_after_error: int
    refused_sent_after: list[float] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{len(self.ok)} accepted, {len(self.failed)} refused "
            f"({dict(Counter(S(s).name for s in self.failed.values()))}), "
            f"{self.duplicates} duplicates to the provider, "
            f"{self.sent_after_error} refused submits sent, "
            f"longest pause between answers {self.longest_gap_s:.2f} s"
        )


def _settle(ha: Ha, *, refused_unsent: bool = False) -> Outcome:
    """Every submit answered; every accepted one on Kafka, at the provider and its
    receipt home (0 lost); duplicates and refused submits sent anyway counted, the
    latter asserted to be none only with ``refused_unsent``."""
    c = ha.customer
    c.wait(lambda: set(c.responses) >= set(c.sent_at), 60, "every submit answered")
    with c.lock:
        ok = {s: mid for s, (st, mid) in c.responses.items() if st == 0}
        failed = {s: st for s, (st, _) in c.responses.items() if st != 0}
        answers = sorted(c.answered_at.values())
    assert set(failed.values()) <= {S.ESME_RSYSERR, S.ESME_RMSGQFUL}, failed
    want = set(ok.values())
    missing = want - _read_ids(ha, want, 120)
    assert not missing, f"{len(missing)} accepted submits are not on Kafka"
    try:
        # A backlog built while brokers restarted drains at the pipeline's pace.
        # (Against a set kept as receipts come: building one of every receipt each
        # 50 ms, under the lock the customer's reader takes for each receipt, cost
        # the in-process pipeline a tenth of its CPU while the backlog drained.)
        c.wait(
            lambda: want <= c.receipted,
            180 + len(want) / 100,
            f"receipts for every accepted submit ({len(want)})",
        )
    except AssertionError:
        with c.lock:
            home = len(want & c.receipted)
        # Where each thread is: a stage blocked in a Kafka call shows here (the
        # router in send_offsets_to_transaction, issue 14).
        faulthandler.dump_traceback(sys.stdout, all_threads=True)
        print(
            f"\n{home}/{len(want)} receipts home; pipeline:",
            ha.node.pipeline_stats(),
            "provider got",
            len(ha.received_dests()),
        )
        raise
    at_provider = ha.sims.call(lambda: [(r.dest, r.received_at) for r in ha.sim.received])
    received = Counter(d for d, _ in at_provider)
    first_at: dict[str, float] = {}
    for d, t in at_provider:
        first_at.setdefault(d, t)
    assert all(received[c.dest_of[s]] >= 1 for s in ok), "accepted and never sent"
    sent_after_error = [c.dest_of[s] for s in failed if received[c.dest_of[s]]]
    # Seconds from each refused-yet-sent submit to its first arrival at the provider
    # (the simulator's loop.time() is time.monotonic(), as the customer's clock).
    refused_sent_after = sorted(
        first_at[c.dest_of[s]] - c.sent_at[s] for s in failed if received[c.dest_of[s]]
    )
    if refused_unsent:
        assert not sent_after_error, f"{len(sent_after_error)} refused submits were sent"
    gaps = [b - a for a, b in itertools.pairwise(answers)]
    return Outcome(
        ok,
        failed,
        sum(n - 1 for n in received.values()),
        max(gaps, default=0.0),
        len(sent_after_error),
        refused_sent_after,
    )


def _read_ids(ha: Ha, want: set[str], timeout: float) -> set[str]:
    """Gateway ids on the submit topic, read until all of ``want`` were seen (or timeout)."""
    consumer = Consumer(
        client_config(
            ha.cluster.bootstrap,
            {
                "group.id": f"read-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            },
        )
    )
    consumer.subscribe([ha.topics.submit])
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while not want <= seen and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error() and not is_withdrawal(msg.value()):
                seen.add(decode(msg.value() or b"").id)
    finally:
        consumer.close()
    return seen


def _wait_group_settled(bootstrap: str, group: str, members: int, timeout: float = 90) -> None:
    """Wait until ``group`` is STABLE with ``members`` members that own a partition each.

    A bind that joins its provider's group after traffic started takes partitions
    from the other one mid-flight: what that one sent and had not committed yet is
    sent again by the new owner (a rebalance's at-least-once, not a broker loss).
    After a test that restarted a broker the join can lag the SMPP bind by seconds
    (the coordinator is still loading), so the control waits for the group itself.
    """
    admin = _admin(bootstrap)
    deadline = time.monotonic() + timeout
    last = "not described"
    while time.monotonic() < deadline:
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(10)
        except Exception as exc:  # the coordinator is loading: ask again
            last = repr(exc)
        else:
            owning = [m for m in desc.members if m.assignment.topic_partitions]
            last = f"{desc.state}, {len(owning)}/{len(desc.members)} members own partitions"
            if desc.state == ConsumerGroupState.STABLE and len(owning) >= members:
                return
        time.sleep(0.2)
    raise AssertionError(f"group {group} never settled: {last}")


def _most_submit_partitions(ha: Ha) -> int:
    leaders = Counter(_leaders(ha.cluster.bootstrap, ha.topics.submit).values())
    return leaders.most_common(1)[0][0]


def _router_coordinator(ha: Ha) -> int:
    """The router group's coordinator, as the admin API reports it (the transaction
    coordinator is the same broker: the fixture chose the node name so)."""
    admin = _admin(ha.cluster.bootstrap)
    group = f"{ha.topics.prefix}router"
    desc = admin.describe_consumer_groups([group])[group].result(30)
    return int(desc.coordinator.id)


def _answered_after(ha: Ha, t: float, *, ok: bool) -> int:
    """Submits answered (with 0 if ``ok``, else with an error) after monotonic ``t``."""
    c = ha.customer
    return sum(
        1
        for seq, (st, _) in c.responses.items()
        if (st == 0) == ok and c.answered_at.get(seq, 0.0) > t
    )


def _wait_answers(
    ha: Ha, t: float, n: int, what: str, *, ok: bool = True, timeout: float = 90
) -> None:
    c = ha.customer
    c.wait(lambda: _answered_after(ha, t, ok=ok) >= n, timeout, what)  # wait() holds the lock


def _wait_accepting(ha: Ha, n: int = 50, timeout: float = 60) -> None:
    _wait_answers(ha, 0.0, n, "traffic flowing before the kill", timeout=timeout)


def _refusals_window(ha: Ha) -> float:
    """Seconds from the first to the last error answer (0 if none)."""
    c = ha.customer
    with c.lock:
        at = [c.answered_at[s] for s, (st, _) in c.responses.items() if st != 0]
    return max(at) - min(at) if at else 0.0


@pytest.mark.parametrize(
    "victim", [_most_submit_partitions, _router_coordinator], ids=["submit-leader", "coordinator"]
)
def test_sigkill_one_broker_loses_nothing_end_to_end(ha: Ha, victim: Callable[[Ha], int]) -> None:
    """Invariants 1, 3 and 6 across a broker's death: what was answered 0 is readable
    from the surviving replicas while the broker is down, reaches the provider and
    its receipt reaches the customer; nothing refused is sent; duplicates to the
    provider are counted. The broker comes back and catches up. Before the pipeline
    stages had a producer of their own (``AsyncProducer.stage_producer``), their
    outcomes timed out with the listener's 5 s and receipts stalled. With the
    router's coordinator killed, the router blocked in send_offsets_to_transaction
    past its timeout (librdkafka #5456/#5511) and routed nothing more (14 of 10 613
    accepted, never restarted) until its transactions had a deadline of their own."""
    c = ha.customer
    traffic = Traffic(c).start()
    try:
        _wait_accepting(ha)
        broker = victim(ha)
        killed_at = time.monotonic()
        ha.cluster.node(broker).kill()
        _wait_answers(ha, killed_at, RATE * 5, "traffic accepted on two brokers")
        # With one copy, what the dead broker led would wait for it to come back.
        with c.lock:
            accepted = {mid for st, mid in c.responses.values() if st == 0}
        missing = accepted - _read_ids(ha, accepted, 60)
        assert not missing, f"{len(missing)} accepted submits unreadable with a broker down"
        t0 = time.monotonic()
        ha.cluster.restart(broker)
        restart_s = time.monotonic() - t0
        catch_up = _caught_up(ha.cluster, ha.topics.prefix)  # under traffic
    finally:
        traffic.finish()
    out = _settle(ha, refused_unsent=True)
    print(
        f"\nbroker {broker} SIGKILLed: {out.line()}; refusals within "
        f"{_refusals_window(ha):.1f} s; restart took {restart_s:.1f} s, "
        f"all replicas in sync {catch_up:.1f} s after"
    )
    assert len(out.ok) > RATE * 5, "traffic went on while the broker was down"


def test_two_brokers_down_refuses_in_time_and_resumes(ha: Ha) -> None:
    """Below min ISR nothing can be acknowledged by all in-sync replicas: every submit
    is answered with an error, never 0 (invariant 1); when one broker returns,
    traffic is accepted again without anyone restarting anything."""
    c = ha.customer
    keep = _most_submit_partitions(ha)
    coordinator = _router_coordinator(ha)
    # The router's coordinator, if among them, is the one left down to the end: its
    # router must move on to the new coordinator, not wait for the old one.
    down = sorted((b for b in (1, 2, 3) if b != keep), key=lambda b: b == coordinator)
    traffic = Traffic(c).start()
    lag: LoopLag | None = None
    try:
        _wait_accepting(ha)
        lag = LoopLag(ha.node)
        killed_at = time.monotonic()
        for b in down:
            ha.cluster.node(b).kill()
        _wait_answers(ha, killed_at, RATE * 3, "submits refused below min ISR", ok=False)
        back_at = time.monotonic()
        ha.cluster.restart(down[0])
        restart_s = time.monotonic() - back_at
        _wait_answers(ha, back_at, RATE * 3, "traffic accepted again", timeout=120)
        resumed_s = time.monotonic() - back_at
    finally:
        traffic.finish()
        worst_lag = lag.stop() if lag is not None else 0.0
    with c.lock:
        early_ok = [
            s
            for s, (st, _) in c.responses.items()
            if st == 0 and c.sent_at[s] > killed_at + 1 and c.answered_at[s] < back_at
        ]
        refused = [c.answered_at[s] - c.sent_at[s] for s, (st, _) in c.responses.items() if st != 0]
    slowest, median = max(refused), statistics.median(refused)
    print(
        f"\ntwo brokers down: {len(refused)} refused, answered after {median:.2f} s "
        f"(median), {slowest:.2f} s (slowest); gateway loop late by up to {worst_lag:.2f} s; "
        f"restart took {restart_s:.1f} s, accepting again {resumed_s:.1f} s after it began"
    )
    # Refused submits sent anyway are possible here: a record the surviving leader
    # appended becomes durable when a follower returns, and its marker, if its own
    # produce failed meanwhile, is retried later (0, 0, 0 and 110 in four runs at
    # 150/s; docs/DEPLOYMENT.md). What the design does guarantee is the hold: the
    # listener answers at the produce timeout, the router sees such a record only
    # after "late" (smsgw.message.late_after_s), and the bind holds a late record
    # at least received + 2 x produce timeout + 2 s for its marker
    # (outbox.withdrawal_hold_s); so none reaches the provider sooner than that.
    out = _settle(ha)
    hold = withdrawal_hold_s(0.0, 0.0, PRODUCE_TIMEOUT_S)
    earliest = min(out.refused_sent_after, default=float("nan"))
    print(
        f"two brokers down: {out.line()}; the earliest refused one at the provider "
        f"{earliest:.1f} s after its submit (hold {hold:.0f} s)"
    )
    assert not early_ok, f"{len(early_ok)} submits answered 0 with two brokers down"
    assert slowest <= PRODUCE_TIMEOUT_S + ANSWER_MARGIN_S, (
        f"a refusal came {slowest:.2f} s after its submit (produce timeout {PRODUCE_TIMEOUT_S} s)"
    )
    assert not out.refused_sent_after or out.refused_sent_after[0] >= hold, (
        f"a refused submit reached the provider {out.refused_sent_after[0]:.1f} s after it "
        f"was submitted, within the withdrawal hold ({hold:.0f} s)"
    )


def test_pipeline_runs_on_three_brokers(ha: Ha) -> None:
    """The control: the same traffic with no broker lost."""
    traffic = Traffic(ha.customer).start()
    try:
        _wait_answers(ha, 0.0, RATE * 10, "ten seconds of traffic accepted")
    finally:
        traffic.finish()
    out = _settle(ha, refused_unsent=True)
    print(f"\nno broker lost: {out.line()}")
    assert not out.failed and out.duplicates == 0


def test_rolling_restart_loses_nothing(ha: Ha) -> None:
    """An operator's rolling restart under traffic: each broker in turn stopped cleanly
    (SIGTERM: controlled shutdown moves its leaderships first) and started again, the
    next one only once every replica is back in sync. Every submit answered 0 reaches
    the provider and its receipt the customer (0 lost); the errors answered during the
    leader moves are bounded, and printed per broker with how long they lasted."""
    c = ha.customer
    traffic = Traffic(c).start()
    phases: list[tuple[int, float, float, str]] = []
    try:
        _wait_accepting(ha)
        for broker in (1, 2, 3):
            t0 = time.monotonic()
            ha.cluster.node(broker).stop()
            stopped = time.monotonic()
            ha.cluster.restart(broker)
            started = time.monotonic()
            in_sync = _caught_up(ha.cluster, ha.topics.prefix)
            _wait_answers(ha, time.monotonic(), RATE * 2, f"traffic accepted after broker {broker}")
            phases.append(
                (
                    broker,
                    t0,
                    time.monotonic(),
                    f"stop {stopped - t0:.1f} s, start {started - stopped:.1f} s,"
                    f" in sync {in_sync:.1f} s after",
                )
            )
    finally:
        traffic.finish()
    # Per broker, printed before the end-to-end checks (also when one fails): how
    # many submits were refused while it restarted, and over how long.
    c.wait(lambda: set(c.responses) >= set(c.sent_at), 60, "every submit answered")
    with c.lock:
        errors_at = sorted(c.answered_at[s] for s, (st, _) in c.responses.items() if st != 0)
    per_broker = []
    for broker, begin, end, times in phases:
        at = [t for t in errors_at if begin <= t < end]
        window = f"over {at[-1] - at[0]:.1f} s" if at else "none"
        per_broker.append(f"broker {broker}: {times}; {len(at)} refused ({window})")
    print("\nrolling restart per broker: " + "; ".join(per_broker))
    out = _settle(ha, refused_unsent=True)
    print(f"rolling restart: {out.line()}")
    # A clean stop hands its leaderships over before the broker goes, but the
    # listener's 5-s produce timeout still expires for what was in flight while
    # leaders and ISRs move on a loaded machine (a starting broker's JVM takes
    # most of it): 2,256 refusals, 15 s of traffic, over three restarts in the
    # run that set this bound of ~10 s of traffic per broker.
    assert len(out.failed) <= RATE * 10 * 3, f"{len(out.failed)} refused during the restart"
    assert len(out.ok) > RATE * 10, "traffic went on during the restart"
