"""`smsgw status` against a gateway on Ray: numbers per provider and customer, why a bind
is down, a non-zero exit when unhealthy, totals across a restart, and no Ray job per call."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import ray._private.state as ray_state

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.cluster.procs import free_port
from smsgw.cluster.ray_local import EmbeddedRay
from smsgw.topics import Topics
from tests.helpers.cluster import Runtime
from tests.helpers.customer import Customer
from tests.helpers.loop_thread import LoopThread

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMSGW = str(Path(sys.executable).parent / "smsgw")


def status(rt: Runtime, *args: str) -> tuple[int, str, str]:
    s = rt.settings
    done = subprocess.run(
        [SMSGW, "--database-url", s.database_url or "", "--kafka-bootstrap",
         s.kafka_bootstrap or "", "--ray-address", s.ray_address or "", "status", *args],
        env={"PATH": "/usr/bin:/bin", "SMSGW_TOPIC_PREFIX": s.topic_prefix,
             "SMSGW_SMPP_LISTEN": s.smpp_listen, "HOME": str(Path.home())},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def wait_report(rt: Runtime, ok: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        _code, out, err = status(rt, "--json")
        last = out or err
        if out.strip():
            got = json.loads(out)
            if ok(got):
                return dict(got)
        time.sleep(1)
    raise AssertionError(f"status never showed it: {last}")


def test_status_numbers_problems_restarts_and_no_ray_job(
    ray_head: EmbeddedRay, bootstrap: str, db_url: str, topics: Topics
) -> None:
    loop = LoopThread("status-sims")
    up = SmscSimulator(SimConfig(system_id="up", receipt_delay=0.1))
    down = SmscSimulator(SimConfig(system_id="down", password="other"))  # refuses our bind
    loop.run(up.start())
    loop.run(down.start())
    rt = Runtime(ray_head.address, bootstrap, db_url, topics, free_port())
    customer: Customer | None = None
    try:
        rt.configure(
            customers=["shop"],
            providers={
                "up": {"port": up.port, "tps": 200, "binds": 1},
                "down": {"port": down.port, "tps": 10, "binds": 1},
            },
            routes=[{"prefix": "4917", "provider": "up"}],
        )
        rt.start(providers=1)
        customer = Customer("127.0.0.1", rt.port, "shop", "pw").bind()
        c = customer
        for i in range(20):
            c.submit(f"4917000{i:04d}")
        c.wait(lambda: len(c.receipts) >= 20, 60, "receipts")

        def counted(n: int) -> Any:
            def ok(got: dict[str, Any]) -> bool:
                rep = (got.get("cluster") or {}).get("report") or {}
                totals = (rep.get("provider") or {}).get("up", {}).get("totals", {})
                return bool(totals.get("accepted", 0) >= n)

            return ok

        got = wait_report(rt, counted(20))
        rep = got["cluster"]["report"]
        assert rep["provider"]["up"]["totals"]["accepted"] == 20
        assert rep["provider"]["up"]["per_s"]["accepted"] > 0, "a rate over the last minute"
        assert rep["customer"]["shop"]["totals"]["accepted"] == 20
        assert rep["provider"]["down"]["binds_up"] == 0
        assert "ESME_RINVPASWD" in rep["provider"]["down"]["last_bind_error"]
        assert any(p.startswith("provider down down: ") for p in got["problems"])

        code, text, _err = status(rt)
        assert code == 1, "a provider with no bind up is unhealthy"
        assert "up: binds 1/1 up" in text and "accepted" in text
        assert "last bind error:" in text and "ESME_RINVPASWD" in text

        # No Ray job per call: the CLI reads the supervisor's report, not the GCS.
        jobs_before = len(ray_state.jobs())  # type: ignore[no-untyped-call]
        for _ in range(3):
            status(rt, "--json")
        assert len(ray_state.jobs()) == jobs_before  # type: ignore[no-untyped-call]

        # Totals survive the provider bind's restart (its own counters start at 0).
        old = rt.kill("provider:up#0")
        rt.wait_restarted("provider:up#0", old)
        for i in range(5):
            c.submit(f"4917100{i:04d}")
        c.wait(lambda: len(c.receipts) >= 25, 60, "receipts after the restart")
        got = wait_report(rt, counted(25))
        assert got["cluster"]["report"]["provider"]["up"]["totals"]["accepted"] == 25
    finally:
        if customer is not None:
            customer.close()
        rt.stop()
        loop.run(up.stop())
        loop.run(down.stop())
        loop.close()
