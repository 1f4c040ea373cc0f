"""Stops on purpose are quiet (issue 15): removing a provider and Ctrl-C on ``smsgw run``
print no traceback and no ERROR line for the actors the gateway stopped itself."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import smpplib.smpp

from smsgw.cluster.postgres import EmbeddedPostgres
from smsgw.cluster.procs import free_port
from smsgw.db.customers import add_customer
from smsgw.db.migrate import migrate
from smsgw.db.providers import add_provider
from tests.helpers import esme
from tests.helpers.run_process import GatewayProcess
from tests.helpers.sims import Sims

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A Python traceback, a log line at ERROR (structlog's JSON or console renderers, Ray's
# "ERROR worker.py:…" or "[E …]" of its C++ core), an actor death Ray reports to the driver.
NOISE = re.compile(
    r"Traceback \(most recent call last\)|\bERROR\b|\"level\": ?\"error\"|^\[?E\d{4}|"
    r"ActorDiedError|RayActorError|The actor died|worker died|SYSTEM_ERROR",
    re.MULTILINE | re.IGNORECASE,
)


def _noise(text: str) -> list[str]:
    return [line for line in text.splitlines() if NOISE.search(line)]


@pytest.fixture
def gateway(kafka: Any, postgres: EmbeddedPostgres, sims: Sims) -> Iterator[GatewayProcess]:
    sim = sims.start("pq")
    db_url = postgres.create_database(f"t_quiet_{free_port()}")
    migrate(db_url)
    with psycopg.connect(db_url) as conn:
        add_customer(conn, "q", "pw")
        add_provider(
            conn, "pq", host="127.0.0.1", port=sim.port, system_id="pq", password="pw", binds=2
        )
    gw = GatewayProcess(kafka.bootstrap, db_url)
    try:
        gw.start(providers=2)
        yield gw
    finally:
        gw.close()


def _since(gw: GatewayProcess, mark: tuple[str, str]) -> str:
    out, err = gw.output()
    return out[len(mark[0]) :] + err[len(mark[1]) :]


@pytest.mark.timeout(900)
def test_provider_remove_and_ctrl_c_print_no_error(gateway: GatewayProcess, sims: Sims) -> None:
    gw = gateway
    mark = gw.output()  # everything from here on is the removal and the stop
    done = gw.smsgw("provider", "remove", "pq")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _noise(done.stdout + done.stderr) == []

    # Its binds unbind and their actors go (the supervisor reconciles within seconds).
    deadline = time.monotonic() + 90
    left: list[str] = ["?"]
    while time.monotonic() < deadline and left:
        _code, report = gw.status()
        left = [n for n in (report.get("cluster") or {}).get("actors") or {} if "pq" in n]
        time.sleep(1)
    assert left == [], f"provider actors still there: {left}"
    assert sims.loop.call(lambda: sum(sims.sims["pq"].bound.values())) == 0
    # A customer bound when the gateway stops is asked to unbind (SMPP 3.4 §4.2), not cut off.
    client = esme.bind("127.0.0.1", gw.smpp_port, "q", "pw")
    heard: list[str] = []

    def listen() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                pdu = client.read_pdu()
            except TimeoutError:
                continue
            except Exception:
                return  # the connection closed
            heard.append(str(pdu.command))
            if pdu.command == "enquire_link":
                resp = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
                resp.sequence = pdu.sequence
                client.send_pdu(resp)

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    proc = gw.proc
    assert proc is not None
    gw.stop()  # SIGINT, as Ctrl-C
    reader.join(130)
    with contextlib.suppress(Exception):
        client.disconnect()
    assert "unbind" in heard, f"the customer heard {heard} before the connection closed"
    assert proc.returncode == 0
    # Read once the process is gone: a driver's stdout to a file is flushed at exit.
    said = _since(gw, mark)
    assert "stopping the gateway's actors" in said
    assert _noise(said) == [], said
