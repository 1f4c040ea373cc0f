"""`smsgw message show|find`: each message's fate through the real pipeline, read by the CLI.

Messages go through a real gateway (Kafka, PostgreSQL, simulated SMSCs):
one delivered, one refused by its provider, one expired at the handset and
one with no route. The history stage writes their events to PostgreSQL;
the CLI, run as a subprocess like an operator would, tells each one's story.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.cluster.procs import free_port
from smsgw.cluster.ray_local import EmbeddedRay
from smsgw.db.providers import add_provider
from smsgw.db.routes import add_mt_route
from smsgw.smpp import CommandStatus
from smsgw.topics import Topics
from tests.helpers.cluster import Runtime
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.loop_thread import LoopThread
from tests.integration.conftest import gateway_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMSGW = str(Path(sys.executable).parent / "smsgw")
ROLES = frozenset({"router", "correlator", "deliverer", "providers", "history"})


@pytest.fixture
def history_gateway(bootstrap: str, db_url: str, topics: Topics) -> Iterator[GatewayNode]:
    node = GatewayNode(gateway_settings(bootstrap, db_url), topics, with_pipeline=True, roles=ROLES)
    node.start()
    yield node
    node.stop()


def smsgw(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SMSGW, "--database-url", db_url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def show(db_url: str, *args: str) -> dict[str, Any]:
    done = smsgw(db_url, "message", "show", *args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def wait_state(
    db_url: str, mid: str, state: str, timeout: float = 60.0, kinds: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The story once the history shows the expected final state (batches land every 0.5 s)
    and every event of ``kinds`` (a new ``out.<provider>`` topic is found by the history's
    pattern subscription within its 5-s metadata refresh, so ``routed`` may come last)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        done = smsgw(db_url, "message", "show", mid, "--json")
        if done.returncode == 0:
            last = json.loads(done.stdout)
            seen = {e["kind"] for e in last["events"]}
            if last["state"] == state and "delivered" in seen and seen.issuperset(kinds):
                return dict(last)
        else:
            last = done.stderr
        time.sleep(0.5)
    raise AssertionError(f"{mid} never reached {state} in the history: {last}")


def test_message_show_and_find_tell_each_fate(history_gateway: GatewayNode, db_url: str) -> None:
    gw = history_gateway
    loop = LoopThread("history-sims")
    sims = {
        "okay": SmscSimulator(SimConfig(system_id="okay", receipt_delay=0.2)),
        "picky": SmscSimulator(
            SimConfig(system_id="picky", permanent_error=CommandStatus.ESME_RSUBMITFAIL)
        ),
        "late": SmscSimulator(
            SimConfig(system_id="late", receipt_delay=0.2, outcomes={"EXPIRED": 1.0})
        ),
    }
    customer: Customer | None = None
    try:
        for name, sim in sims.items():
            loop.run(sim.start())
            with psycopg.connect(db_url) as conn:
                add_provider(
                    conn, name, host="127.0.0.1", port=sim.port, system_id=name, password="pw"
                )
        with psycopg.connect(db_url) as conn:
            add_mt_route(conn, prefix="4917", provider="okay")
            add_mt_route(conn, prefix="4915", provider="picky")
            add_mt_route(conn, prefix="4930", provider="late")
        gw.add_customer("hist", "pw")
        deadline = time.monotonic() + 60
        while not all(loop.call(lambda s=s: sum(s.bound.values())) for s in sims.values()):
            assert time.monotonic() < deadline, "providers never bound"
            time.sleep(0.1)

        customer = Customer(gw.host, gw.port, "hist", "pw").bind()
        c = customer
        seqs = {
            "delivered": c.submit("491701234567"),
            "refused": c.submit("491512345678"),
            "expired": c.submit("493012345678"),
            "no-route": c.submit("499912345678"),
        }
        c.wait(lambda: len(c.responses) == 4, 60, "submit responses")
        ids = {k: c.accepted_ids()[seq] for k, seq in seqs.items()}
        c.wait(lambda: len(c.receipts) >= 4, 60, f"receipts ({len(c.receipts)}/4)")

        story = ("accepted", "routed", "sent", "receipt", "state", "deliver", "delivered")
        delivered = wait_state(db_url, ids["delivered"], "delivered", kinds=story)
        kinds = [e["kind"] for e in delivered["events"]]
        for kind in story:
            assert kind in kinds, (kind, delivered)
        assert delivered["customer"] == "hist" and delivered["provider"] == "okay"
        assert delivered["destination"] == "4917******67", "masked by default"
        sent = next(e for e in delivered["events"] if e["kind"] == "sent")
        assert sent["bind"] == "provider:okay#0" and sent["provider_id"]
        assert delivered["events"][-1]["outcome"] == "delivered", "the customer took the receipt"

        refused = wait_state(db_url, ids["refused"], "undeliverable")
        assert refused["why"] == "the provider refused the submit_sm (error 0x45)"
        expired = wait_state(db_url, ids["expired"], "expired")
        assert expired["why"] == "the provider's delivery receipt"
        no_route = wait_state(db_url, ids["no-route"], "undeliverable")
        assert no_route["why"].startswith("no route matches the destination")
        assert "routed" not in [e["kind"] for e in no_route["events"]]

        # The text form, unmasked, and the lookup by the provider's id.
        text = smsgw(db_url, "message", "show", ids["delivered"], "--unmask")
        assert text.returncode == 0, text.stderr
        assert "final state  delivered" in text.stdout and "491701234567" in text.stdout
        by_pid = show(db_url, "--provider-id", f"okay:{sent['provider_id']}")
        assert by_pid["id"] == ids["delivered"]
        unknown = smsgw(db_url, "message", "show", "no-such-id")
        assert unknown.returncode == 1 and "not in the history" in unknown.stderr

        # find: the failed ones, newest first; all four without --state.
        found = smsgw(db_url, "message", "find", "--customer", "hist", "--since", "10m",
                      "--state", "failed", "--json")  # fmt: skip
        assert found.returncode == 0, found.stderr
        rows = json.loads(found.stdout)
        assert {r["id"] for r in rows} == {ids["refused"], ids["expired"], ids["no-route"]}
        assert {r["state"] for r in rows} == {"undeliverable", "expired"}
        every = json.loads(smsgw(db_url, "message", "find", "--customer", "hist", "--json").stdout)
        assert {r["id"] for r in every} == set(ids.values())
        table = smsgw(db_url, "message", "find", "--customer", "hist", "--state", "failed")
        assert table.stdout.splitlines()[0].split() == [
            "ID", "ACCEPTED", "DESTINATION", "STATE", "WHY"
        ]  # fmt: skip
        assert len(table.stdout.splitlines()) == 4
    finally:
        if customer is not None:
            customer.close()
        for sim in sims.values():
            loop.run(sim.stop())
        loop.close()


def test_the_history_actor_writes_under_ray_and_survives_a_kill(
    ray_head: EmbeddedRay, bootstrap: str, db_url: str, topics: Topics
) -> None:
    """The supervisor runs `history#0`; a SIGKILLed writer resumes from its committed offset."""
    loop = LoopThread("history-ray-sim")
    sim = SmscSimulator(SimConfig(system_id="hp", receipt_delay=0.2))
    loop.run(sim.start())
    runtime = Runtime(ray_head.address, bootstrap, db_url, topics, free_port())
    customer: Customer | None = None
    try:
        runtime.configure(
            customers=["hc"],
            providers={"hp": {"port": sim.port, "tps": 100, "binds": 1}},
            routes=[{"prefix": "4917", "provider": "hp"}],
        )
        runtime.start(providers=1)
        assert runtime.actor("history#0")["state"] == "ALIVE"
        customer = Customer("127.0.0.1", runtime.port, "hc", "pw").bind()
        c = customer
        first = c.submit("491701111111")
        c.wait(lambda: len(c.receipts) >= 1, 60, "first receipt")
        wait_state(db_url, c.accepted_ids()[first], "delivered")
        old = runtime.kill("history#0")
        runtime.wait_restarted("history#0", old)
        second = c.submit("491702222222")
        c.wait(lambda: len(c.receipts) >= 2, 60, "second receipt")
        wait_state(db_url, c.accepted_ids()[second], "delivered")
    finally:
        if customer is not None:
            customer.close()
        runtime.stop()
        loop.run(sim.stop())
        loop.close()
