"""Data at rest and in logs (issue 11): provider passwords sealed, phone numbers masked."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.db.providers import add_provider
from smsgw.db.routes import add_mt_route
from smsgw.topics import Topics
from tests.helpers.customer import Customer
from tests.helpers.gateway import GatewayNode
from tests.helpers.loop_thread import LoopThread
from tests.integration.conftest import gateway_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "Sx9#kq2P"


def _wait(what: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out: {message}")


def test_plaintext_password_sealed_at_start_provider_still_binds_numbers_masked(
    bootstrap: str,
    db_url: str,
    topics: Topics,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    loop = LoopThread("at-rest-sim")
    sim = SmscSimulator(SimConfig(system_id="acme", password=PASSWORD, seed=1, receipt_delay=0.2))
    loop.run(sim.start())
    # A row as written before sealing existed (no sealer: plaintext).
    with psycopg.connect(db_url) as conn:
        add_provider(
            conn, "acme", host="127.0.0.1", port=sim.port, system_id="acme", password=PASSWORD
        )
        add_mt_route(conn, prefix="4917", provider="acme")
    node = GatewayNode(
        gateway_settings(bootstrap, db_url, home=tmp_path), topics, with_pipeline=True
    )
    node.start()
    try:
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT password FROM providers WHERE name = 'acme'").fetchone()
        assert row is not None and row[0].startswith("fernet:"), "sealed at start"
        assert PASSWORD not in row[0]
        # The gateway opens it with its key: the SMSC accepts the bind.
        _wait(lambda: loop.call(lambda: sum(sim.bound.values())), 30, "provider bound")

        # A message's whole path (accepted, routed, sent, receipt) and one without a
        # route (the router logs its destination): no full number in any log line.
        node.add_customer("c1", "pw", tps=100)
        routed, unrouted = "4917612345678", "4930987654321"
        c = Customer(node.host, node.port, "c1", "pw").bind()
        try:
            c.submit(routed, source="4915111122233")
            c.submit(unrouted, source="4915111122233")
            c.wait(lambda: len(c.responses) == 2, 60, "both accepted")
            c.wait(lambda: len(c.receipts) == 2, 60, "receipts (delivered and no-route)")
        finally:
            c.close()
        out, err = capfd.readouterr()
        logs = out + err
        assert "no route" in logs and "***321" in logs, "the line that named the number"
        for number in (routed, unrouted, "4915111122233"):
            assert number not in logs
    finally:
        node.stop()
        loop.run(sim.stop())
        loop.close()
