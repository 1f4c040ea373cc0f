"""Three gateway hosts as network namespaces, customers behind an HAProxy VIP (issue 14).

Every host has its own address on a bridge (``cluster/netns.py``): the Ray
head and one listener on host 1, a Ray node and a listener on each of the
others, Kafka, PostgreSQL and the simulated provider on the infra address,
customers reaching the hosts only through HAProxy's VIP. Then a host dies
with every process on it: its provider binds reopen on the others, its
customers reconnect through the VIP, no accepted message loses its receipt;
then it comes back and takes its share again. Needs root, as CI has.
"""

from __future__ import annotations

import collections
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.cluster.netns import (
    SMPP_PORT,
    NetnsCluster,
    binds_by_host,
    customer_binds_by_host,
)
from smsgw.db.customers import add_customer
from smsgw.db.providers import add_provider
from smsgw.db.routes import add_mt_route
from tests.helpers.customer import Customer
from tests.helpers.loop_thread import LoopThread

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BINDS = 4  # provider binds: 2/1/1 over three hosts, 2/2 over two
CUSTOMERS = ("c1", "c2")


def _spread(by_host: dict[str, list[str]], hosts: list[str]) -> bool:
    """Every bind up on exactly one of ``hosts``, none elsewhere, counts within one apart."""
    names = [n for binds in by_host.values() for n in binds]
    counts = [len(by_host.get(h, [])) for h in hosts]
    return (
        len(names) == BINDS
        and len(set(names)) == BINDS
        and sum(counts) == BINDS
        and max(counts) - min(counts) <= 1
    )


def _timed(cond: Callable[[], bool], timeout: float, what: str, since: float) -> float:
    """Seconds from ``since`` until ``cond`` holds (polled every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return time.monotonic() - since
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s: {what}")


class Sender(threading.Thread):
    """One customer session through the VIP, submitting at ``rate`` with receipts.

    When its connection drops (its host died) it binds again through the VIP
    and notes how long it was without a bind.
    """

    def __init__(self, vip: str, system_id: str, tag: str, number: int, rate: float) -> None:
        super().__init__(name=f"sender-{tag}", daemon=True)
        self.vip, self.system_id, self.tag, self.rate = vip, system_id, tag, rate
        self.number = number  # in the destination number: digits only
        self.sessions: list[Customer] = [self._bind()]
        self.running = threading.Event()
        self.halt = threading.Event()
        self.lost_at: float | None = None
        self.rebinds: list[float] = []  # seconds from the drop to the next bind
        self.sent = 0

    def _bind(self) -> Customer:
        return Customer(self.vip, SMPP_PORT, self.system_id, "pw").bind()

    @property
    def session(self) -> Customer:
        return self.sessions[-1]

    def run(self) -> None:
        while not self.halt.is_set():
            if not self.running.is_set():
                time.sleep(0.05)
                continue
            s = self.session
            if s.reader is not None and not s.reader.is_alive():
                self._rebind()
                continue
            try:
                s.submit(f"4917{self.number}{self.sent:06d}", f"{self.tag}-{self.sent}".encode())
                self.sent += 1
            except Exception:
                self._rebind()
                continue
            time.sleep(1 / self.rate)

    def _rebind(self) -> None:
        self.lost_at = self.lost_at or time.monotonic()
        while not self.halt.is_set():
            try:
                self.sessions.append(self._bind())
            except Exception:
                time.sleep(0.2)
                continue
            self.rebinds.append(time.monotonic() - self.lost_at)
            self.lost_at = None
            return

    def accepted(self) -> set[str]:
        return {mid for s in self.sessions for mid in s.accepted_ids().values()}

    def close(self) -> None:
        self.halt.set()
        for s in self.sessions:
            s.close()


def _answers(senders: list[Sender]) -> collections.Counter[int]:
    """submit_sm_resp statuses over every session (for failure messages)."""
    got: collections.Counter[int] = collections.Counter()
    for snd in senders:
        for s in snd.sessions:
            with s.lock:
                got.update(st for st, _ in s.responses.values())
    return got


def _all_receipted(senders: list[Sender], customer: str, ids: set[str]) -> Callable[[], bool]:
    return lambda: set(_receipts(senders, customer)) >= ids


def _receipts(senders: list[Sender], customer: str) -> collections.Counter[str]:
    got: collections.Counter[str] = collections.Counter()
    for snd in senders:
        if snd.system_id != customer:
            continue
        for s in snd.sessions:
            with s.lock:
                got.update(r.receipted_id for r in s.receipts)
    return got


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[NetnsCluster]:
    if os.geteuid() != 0:
        raise AssertionError("network namespaces need root (CI runs the tests as root)")
    failed = request.session.testsfailed
    c = NetnsCluster(3, prefix="smsgwt", settings={"topic_partitions": "3"})
    try:
        c.start()
        yield c
    finally:
        c.stop()
    if request.session.testsfailed == failed:
        shutil.rmtree(c.work, ignore_errors=True)  # kept, with every host's logs, on failure
    else:
        print(f"\nnetns logs kept in {c.work}")


@pytest.fixture
def smsc(cluster: NetnsCluster) -> Iterator[tuple[LoopThread, SmscSimulator]]:
    """The provider, on the infra address: every host reaches it over the bridge."""
    loop = LoopThread("sim")
    sim = SmscSimulator(
        SimConfig(host=cluster.lab.infra, system_id="p1", password="pw", receipt_delay=0.2)
    )
    loop.run(sim.start())
    yield loop, sim
    loop.run(sim.stop())
    loop.close()


# Three Ray nodes, a broker and PostgreSQL from nothing: ~4 min on a loaded 2-core machine.
@pytest.mark.timeout(900)
def test_hosts_behind_a_vip_survive_a_host_loss(
    cluster: NetnsCluster, smsc: tuple[LoopThread, SmscSimulator]
) -> None:
    loop, sim = smsc
    hosts = [h.address for h in cluster.hosts]
    victim = cluster.hosts[2]
    with psycopg.connect(cluster.database_url) as conn:
        for c in CUSTOMERS:
            add_customer(conn, c, "pw", tps=1000, max_binds=8)
        add_provider(
            conn, "p1", host=cluster.lab.infra, port=sim.port, system_id="p1", password="pw",
            binds=BINDS, tps=400, window=50,
        )  # fmt: skip
        add_mt_route(conn, prefix="", provider="p1")
    assert cluster.haproxy is not None
    haproxy = cluster.haproxy

    t0 = time.monotonic()
    cluster.wait_status(
        lambda s: (
            _spread(binds_by_host(s, cluster), hosts)
            and set(haproxy.server_states().values()) == {"UP"}
        ),
        240,
        "every host's listener up behind the VIP, provider binds spread over the hosts",
    )

    # Two binds per customer through the VIP: round-robin puts them on different hosts.
    senders = [
        Sender(cluster.lab.vip, c, f"{c}{n}", number=10 * i + j, rate=10)
        for i, c in enumerate(CUSTOMERS, 1)
        for j, n in enumerate("ab")
    ]
    try:
        placed = cluster.wait_status(
            lambda s: all(
                sum(customer_binds_by_host(s).get(c, {}).values()) == 2 for c in CUSTOMERS
            ),
            30,
            "the customers' binds in the listeners' reports",
        )
        where = customer_binds_by_host(placed)
        for c in CUSTOMERS:
            assert len(where[c]) == 2, f"{c}'s two binds on one host: {where}"
        on_victim = [c for c in CUSTOMERS if victim.address in where[c]]
        assert on_victim, f"no customer bound on {victim.address}: {where}"

        # Traffic with receipts; each customer's receipts reach one of its binds, wherever
        # the message was accepted and wherever the provider bind got its receipt.
        for snd in senders:
            snd.start()
            snd.running.set()
        _timed(
            lambda: sum(len(s.accepted()) for s in senders) >= 100,
            60,
            f"100 accepted (answers: {_answers(senders)})",
            t0,
        )
        first = {
            c: set().union(*(s.accepted() for s in senders if s.system_id == c)) for c in CUSTOMERS
        }
        for c in CUSTOMERS:
            _timed(
                _all_receipted(senders, c, first[c]),
                90,
                f"{c}'s receipts before the host loss",
                t0,
            )

        # Host 3 dies with every process on it, traffic still flowing.
        moving = len(binds_by_host(cluster.status(), cluster).get(victim.address, []))
        assert moving, f"no provider bind on {victim.address}"
        binds_before = loop.call(lambda: sim.stats.binds)
        killed_at = time.monotonic()
        cluster.kill_host(victim)
        survivors = [h for h in hosts if h != victim.address]
        # Measured where it matters, at the provider: its binds bound again (the
        # status report below lags by its publishing period and the CLI's start).
        at_smsc = _timed(
            lambda: loop.call(lambda: sim.stats.binds) >= binds_before + moving,
            90,
            f"{moving} provider binds of {victim.address} bound again at the SMSC",
            killed_at,
        )
        binds_back = _timed(
            lambda: _spread(binds_by_host(cluster.status(), cluster), survivors),
            90,
            f"provider binds reopened on {survivors}",
            killed_at,
        )
        vip_down = _timed(
            lambda: haproxy.server_states().get(f"h{victim.index}") == "DOWN", 30,
            "the VIP's health check marks the dead host down", killed_at,
        )  # fmt: skip
        _timed(
            lambda: all(s.lost_at is None for s in senders) and any(s.rebinds for s in senders),
            60,
            "customers of the dead host bound again through the VIP",
            killed_at,
        )
        rebinds = [r for s in senders for r in s.rebinds]
        sent_before = sum(s.sent for s in senders)
        _timed(
            lambda: sum(s.sent for s in senders) >= sent_before + 100, 60,
            "traffic after the host loss", killed_at,
        )  # fmt: skip
        for snd in senders:
            snd.running.clear()

        # Every accepted message reaches the provider and its receipt the customer.
        accepted = {
            c: set().union(*(s.accepted() for s in senders if s.system_id == c)) for c in CUSTOMERS
        }
        for c in CUSTOMERS:
            try:
                _timed(
                    _all_receipted(senders, c, accepted[c]),
                    120,
                    f"{c}'s receipts",
                    killed_at,
                )
            except AssertionError:
                missing = accepted[c] - set(_receipts(senders, c))
                raise AssertionError(
                    f"{c}: {len(missing)} of {len(accepted[c])} accepted messages without "
                    f"a receipt: {sorted(missing)[:10]}"
                ) from None
        dup_receipts = sum(
            n - 1 for c in CUSTOMERS for n in _receipts(senders, c).values() if n > 1
        )
        at_provider = collections.Counter(
            r.short_message for r in loop.call(lambda: list(sim.received))
        )
        dup_provider = sum(n - 1 for n in at_provider.values() if n > 1)

        # The host comes back: its node joins, its listener is back behind the VIP
        # and it takes its share of the provider binds again.
        back_at = time.monotonic()
        cluster.start_host(victim)
        rejoined = _timed(
            lambda: (
                _spread(binds_by_host(cluster.status(), cluster), hosts)
                and haproxy.server_states().get(f"h{victim.index}") == "UP"
            ),
            180,
            f"{victim.address} back with its share of binds",
            back_at,
        )
        total = sum(len(a) for a in accepted.values())
        print(
            f"\nnetns hosts: {total} accepted, 0 lost; duplicates: {dup_provider} at the "
            f"provider, {dup_receipts} receipts; host {victim.address} killed: its {moving} "
            f"provider binds bound again at the SMSC after {at_smsc:.1f} s, in the status "
            f"report on the others after {binds_back:.1f} s, VIP had it down by "
            f"{vip_down:.1f} s (checked after the binds), customers bound again "
            f"{', '.join(f'{r:.1f}' for r in rebinds)} s after their session dropped; "
            f"host back with its share after {rejoined:.1f} s"
        )
        # Issue 14: the lost host's provider binds reopen on the others within 10 s.
        # Measured 3.7 s at load 40 (Ray's health check ~3 s, then the live hosts get
        # their binds first); 12-45 s before the supervisor stopped waiting on the
        # dead node's actors (docs/NETNS.md).
        assert at_smsc <= 10.0, f"provider binds back after {at_smsc:.1f} s, not within 10 s"
    finally:
        for snd in senders:
            snd.close()
