"""The Ray runtime: kill each actor kind's process mid-traffic and count every message."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from benchmarks.smsc_sim.stats import ReceivedSubmit
from smsgw.cluster.ray_local import EmbeddedRay
from smsgw.segment import split_text
from smsgw.topics import Topics
from tests.helpers.cluster import Runtime
from tests.helpers.customer import Customer
from tests.helpers.kafka import produce_all
from tests.helpers.loop_thread import LoopThread
from tests.helpers.parts import assert_one_udh_message, submit_acked, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def sim() -> Iterator[tuple[LoopThread, SmscSimulator]]:
    loop = LoopThread("sim")
    s = SmscSimulator(
        SimConfig(
            system_id="p1", password="pw", accounts={"pm": "pw"}, receipt_delay=0.3, window=50
        )
    )
    loop.run(s.start())
    yield loop, s
    loop.run(s.stop())
    loop.close()


class Traffic(threading.Thread):
    """Submits unique texts at a steady rate; survives the listener going away."""

    def __init__(self, rt: Runtime, rate: float) -> None:
        super().__init__(daemon=True)
        self.rt, self.rate = rt, rate
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.clients: list[Customer] = []
        self.sent: dict[str, tuple[Customer, int]] = {}  # text -> (client, sequence)
        self.n = 0

    def _client(self) -> Customer:
        while True:
            try:
                c = Customer("127.0.0.1", self.rt.port, "c", "pw").bind()
                self.clients.append(c)
                return c
            except Exception:
                time.sleep(0.5)

    def run(self) -> None:
        c = self._client()
        gap = 1.0 / self.rate
        while not self.stop.is_set():
            if self.pause.is_set():
                time.sleep(0.05)
                continue
            text = f"m{self.n:06d}"
            try:
                seq = c.submit("4917000000", text.encode())
            except Exception:
                c = self._client()  # the listener went away: reconnect and go on
                continue
            self.sent[text] = (c, seq)
            self.n += 1
            time.sleep(gap)

    def accepted(self) -> dict[str, str]:
        """text -> gateway id, for every submit answered with status 0."""
        out = {}
        for text, (c, seq) in self.sent.items():
            with c.lock:
                resp = c.responses.get(seq)
            if resp and resp[0] == 0:
                out[text] = resp[1]
        return out

    def receipts(self) -> Counter[str]:
        got: Counter[str] = Counter()
        for c in self.clients:
            with c.lock:
                got.update(r.receipted_id for r in c.receipts)
        return got


def _diagnose(rt: Runtime, loop: LoopThread, smsc: SmscSimulator) -> str:
    actors = rt.status()["actors"]
    parts = {
        n: {
            k: a.get(k)
            for k in ("state", "error", "correlator", "deliverer", "bind", "router")
            if a.get(k)
        }
        for n, a in actors.items()
    }
    st = rt.status()
    return f"actors: {parts}; lag: {st.get('lag')}; simulator: {loop.call(smsc.stats.to_dict)}"


def _settle(
    traffic: Traffic, loop: LoopThread, smsc: SmscSimulator, rt: Runtime
) -> tuple[int, int]:
    """Wait until every accepted message reached the provider and every receipt came back.

    Returns (duplicate submits seen by the provider, duplicate receipts to the customer).
    """

    def provider_texts() -> Counter[str]:
        return Counter(r.short_message.decode() for r in loop.call(lambda: list(smsc.received)))

    accepted = traffic.accepted()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not set(accepted) <= set(provider_texts()):
        time.sleep(1)
    at_provider = provider_texts()
    missing = set(accepted) - set(at_provider)
    assert not missing, (
        f"{len(missing)} accepted messages never reached the provider; {_diagnose(rt, loop, smsc)}"
    )
    ids = set(accepted.values())
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not ids <= set(traffic.receipts()):
        time.sleep(1)
    time.sleep(2)  # late duplicates, if any, arrive now
    got = traffic.receipts()
    lost = ids - set(got)
    assert not lost, f"{len(lost)} receipts lost (of {len(ids)}); {_diagnose(rt, loop, smsc)}"
    dup_provider = sum(n - 1 for n in at_provider.values() if n > 1)
    dup_receipts = sum(n - 1 for i, n in got.items() if i in ids and n > 1)
    return dup_provider, dup_receipts


# Four kills, each with its restart (60 s) and a settle (90 s + 90 s) on a shared,
# overloaded machine: the test's own deadlines decide, not the suite's 300 s.
@pytest.mark.timeout(900)
def test_killing_each_actor_kind_loses_nothing(
    runtime: Runtime, sim: tuple[LoopThread, SmscSimulator]
) -> None:
    loop, smsc = sim
    runtime.configure(
        customers=["c"],
        providers={"p1": {"port": smsc.port, "tps": 400, "binds": 2, "window": 20}},
        routes=[{"prefix": "", "provider": "p1"}],
    )
    t0 = time.monotonic()

    def took() -> str:
        return f"[{time.monotonic() - t0:.0f} s]"

    runtime.start(providers=2)
    print(f"\n{took()} started")
    traffic = Traffic(runtime, rate=100)
    traffic.start()
    try:
        # Phase 1: the message path's workers; receipts must arrive exactly once.
        for prefix in ("router#", "correlator#", "provider:p1#"):
            time.sleep(4)
            runtime.wait_restarted(prefix, runtime.kill(prefix))
            print(f"{took()} {prefix} restarted")
        time.sleep(3)
        traffic.pause.set()
        dup_provider, dup_receipts = _settle(traffic, loop, smsc, runtime)
        n1 = len(traffic.accepted())
        assert n1 > 600, f"too little traffic got through: {n1}"
        assert dup_receipts == 0, "receipts are delivered exactly once"
        print(
            f"{took()} phase 1 (router, correlator, provider binds killed): {n1} accepted, "
            f"all at the provider ({dup_provider} duplicate submits), all receipts exactly once"
        )
        # Phase 2: the listener, which holds the customer's session and its deliverer.
        traffic.pause.clear()
        time.sleep(3)
        runtime.wait_restarted("listener@", runtime.kill("listener@"))
        print(f"{took()} listener restarted")
        time.sleep(3)
    finally:
        traffic.stop.set()
        traffic.join(10)
    dup_provider, dup_receipts = _settle(traffic, loop, smsc, runtime)
    print(
        f"{took()} phase 2 (listener killed): {len(traffic.accepted())} accepted in all, "
        f"none lost; {dup_provider} duplicate submits, {dup_receipts} duplicate receipts"
    )
    for c in traffic.clients:
        c.close()


def test_killing_the_aggregating_router_mid_message_loses_no_part(
    runtime: Runtime, sim: tuple[LoopThread, SmscSimulator]
) -> None:
    """Half the parts in, SIGKILL the router holding them: the message still completes."""
    loop, smsc = sim
    runtime.configure(
        customers=["c"],
        providers={"p1": {"port": smsc.port, "tps": 200, "binds": 1}},
        routes=[{"prefix": "", "provider": "p1"}],
    )
    runtime.start(providers=1)
    text = "Killed halfway: [€] " * 30
    parts = split_text(text, 0, ref=0x99)
    half = len(parts) // 2
    dest = "491788888888"

    def held() -> dict[str, int]:
        return {
            name: int((a.get("router") or {}).get("multipart_held", 0))
            for name, a in runtime.status()["actors"].items()
            if name.startswith("router#")
        }

    c = Customer("127.0.0.1", runtime.port, "c", "pw").bind()
    try:
        ids = [submit_acked(c, dest, p) for p in reversed(parts[half:])]
        wait_for(lambda: sum(held().values()) == len(ids), 30, f"parts held: {held()}")
        owner = next(name for name, n in held().items() if n)
        runtime.wait_restarted(owner, runtime.kill(owner))
        ids += [submit_acked(c, dest, p) for p in parts[:half]]

        def at_provider() -> list[ReceivedSubmit]:
            got: list[ReceivedSubmit] = loop.call(lambda: list(smsc.received))
            return [r for r in got if r.dest == dest]

        wait_for(lambda: len(at_provider()) >= len(parts), 60, "the message after the restart")
        c.wait(lambda: len(c.receipts) >= len(ids), 60, "receipts")
        time.sleep(1)
        assert_one_udh_message(at_provider(), text)
        with c.lock:
            assert sorted(r.receipted_id for r in c.receipts) == sorted(ids)
        assert sum(held().values()) == 0
    finally:
        c.close()


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def _value(text: str, metric: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(metric + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_show_known_counts(
    ray_head: EmbeddedRay, runtime: Runtime, sim: tuple[LoopThread, SmscSimulator]
) -> None:
    _loop, smsc = sim
    runtime.configure(
        customers=["c", "m2"],
        # Names of its own: metrics of earlier tests in this Ray cluster stay in the agent.
        providers={"pm": {"port": smsc.port, "tps": 200, "binds": 1}},
        routes=[{"prefix": "4917", "provider": "pm"}],
    )
    runtime.start(providers=1)
    want = {
        ("ray_smsgw_submits_accepted_total", "customer", "m2"): 30,
        ("ray_smsgw_provider_accepted_total", "provider", "pm"): 25,
        ("ray_smsgw_no_route_total", "customer", "m2"): 5,
        # Receipt outcomes per customer and provider (the simulator delivers every one).
        ("ray_smsgw_receipt_outcomes_total", "customer", "m2"): 25,
        ("ray_smsgw_deliveries_total", "customer", "m2"): 30,
        ("ray_smsgw_receipts_matched_total", None, None): 25,
        # Receipts from the provider carry the acceptance time: 25 end-to-end samples.
        ("ray_smsgw_e2e_latency_ms_count", None, None): 25,
        # One undecodable record on submit: set aside by a router, counted once.
        ("ray_smsgw_dead_letters_total", "stage", "router"): 1,
    }

    def scrape() -> dict[str, float]:
        text = _scrape(ray_head.metrics_export_port)
        out = {}
        for m, k, v in want:
            labels: dict[str, str] = {k: v} if k and v else {}
            out[m] = _value(text, m, **labels)
        return out

    # Counters of earlier tests in this Ray cluster stay in the metrics agent:
    # compare growth, not absolute values.
    time.sleep(3)
    before = scrape()
    s = runtime.settings
    assert s.kafka_bootstrap
    produce_all(s.kafka_bootstrap, Topics(s.topic_prefix).submit, [b"\xff not a record"])
    c = Customer("127.0.0.1", runtime.port, "m2", "pw").bind()
    try:
        for i in range(25):
            c.submit(f"49170000{i:02d}", b"x")
        for i in range(5):
            c.submit(f"49990000{i:02d}", b"x")  # no route
        c.wait(lambda: len(c.receipts) >= 30, 60, "receipts")
    finally:
        c.close()
    deadline = time.monotonic() + 60
    grown: dict[str, float] = {}
    while time.monotonic() < deadline:
        now = scrape()
        grown = {m: now[m] - before[m] for m in now}
        if all(grown[m] >= n for (m, _k, _v), n in want.items()):
            break
        time.sleep(1)
    time.sleep(2)
    now = scrape()
    grown = {m: now[m] - before[m] for m in now}
    assert grown == {m: float(n) for (m, _k, _v), n in want.items()}, grown
    text = _scrape(ray_head.metrics_export_port)
    assert re.search(r"ray_smsgw_accept_latency_ms_bucket\{", text), "latency histogram exported"
    # The lag gauge is sampled by the supervisor every few seconds: wait for the
    # sample after the last commit (this deployment's submit topic, not another test's).
    lag_zero = re.compile(
        r'ray_smsgw_consumer_lag\{[^}]*topic="' + re.escape(s.topic_prefix) + r'submit"\} 0'
    )
    deadline = time.monotonic() + 60
    while not lag_zero.search(text) and time.monotonic() < deadline:
        time.sleep(1)
        text = _scrape(ray_head.metrics_export_port)
    assert lag_zero.search(text), "lag 0"
