"""Metrics out of the box and the operator console (issue 15), against one gateway started
by ``smsgw run``.

A real Prometheus, configured from the shipped ``cluster/observe/prometheus.yml``, scrapes
it after known traffic, and **every** PromQL query of the shipped Grafana dashboard returns
data with the value the traffic implies. Then headless Chromium logs in to the console while
traffic flows and reads the numbers it shows."""

from __future__ import annotations

import json
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.cluster.postgres import EmbeddedPostgres
from smsgw.cluster.procs import free_port
from smsgw.cluster.prometheus import EmbeddedPrometheus, dashboard_queries
from smsgw.db.customers import add_customer
from smsgw.db.providers import add_provider
from smsgw.db.routes import add_mt_route
from smsgw.segment import split_text
from smsgw.smpp.status import CommandStatus
from smsgw.topics import Topics
from tests.helpers.customer import Customer
from tests.helpers.kafka import produce_all
from tests.helpers.loop_thread import LoopThread
from tests.helpers.parts import submit_part
from tests.helpers.run_process import SMSGW, GatewayProcess
from tests.helpers.scratch import DataDir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECEIPT_DELAY_S = 0.3
DELIVERY_TTL_S = 20
Labels = frozenset[tuple[str, str]]


def _labels(**kw: str) -> Labels:
    return frozenset(kw.items())


class Sims:
    """A well-behaved provider and one that refuses every submit."""

    def __init__(self) -> None:
        self.loop = LoopThread("sims")
        self.good = SmscSimulator(
            SimConfig(system_id="pgood", password="pw", receipt_delay=RECEIPT_DELAY_S, window=50)
        )
        self.bad = SmscSimulator(
            SimConfig(
                system_id="pbad", password="pw", permanent_error=CommandStatus.ESME_RSUBMITFAIL
            )
        )
        self.loop.run(self.good.start())
        self.loop.run(self.bad.start())

    def stop(self) -> None:
        self.loop.run(self.good.stop())
        self.loop.run(self.bad.stop())
        self.loop.close()


@pytest.fixture(scope="module")
def sims() -> Iterator[Sims]:
    s = Sims()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gateway(kafka: Any, postgres: EmbeddedPostgres, sims: Sims) -> Iterator[GatewayProcess]:
    """``smsgw run``: customers obs, slow (2 TPS), idle (transmitter only: its receipts
    wait and expire); providers pgood (2 binds) and pbad (refuses all); routes 4917 -> pgood,
    4930 -> pbad, nothing for 4999."""
    db_url = postgres.create_database(f"t_obs_{free_port()}")
    from smsgw.db.migrate import migrate

    migrate(db_url)
    with psycopg.connect(db_url) as conn:
        add_customer(conn, "obs", "pw", tps=10_000, max_binds=4)
        add_customer(conn, "slow", "pw", tps=2, max_binds=4)
        add_customer(conn, "idle", "pw", tps=10_000, max_binds=4)
        add_customer(conn, "web", "pw", tps=10_000, max_binds=4)  # the console test's
        for name, sim, binds in (("pgood", sims.good, 2), ("pbad", sims.bad, 1)):
            add_provider(
                conn, name, host="127.0.0.1", port=sim.port, system_id=name, password="pw",
                binds=binds, tps=500, submit_id_format="hex", receipt_id_format="hex",
            )  # fmt: skip
        add_mt_route(conn, prefix="4917", provider="pgood")
        add_mt_route(conn, prefix="4930", provider="pbad")
    gw = GatewayProcess(
        kafka.bootstrap,
        db_url,
        delivery_ttl_s=str(DELIVERY_TTL_S),
        multipart_expiry_s="5",
    )
    try:
        gw.start(providers=3)
        yield gw
    finally:
        gw.close()


@pytest.fixture(scope="module")
def prometheus(gateway: GatewayProcess) -> Iterator[EmbeddedPrometheus]:
    with DataDir("prom") as data:
        prom = EmbeddedPrometheus(
            data, [f"127.0.0.1:{gateway.metrics_port}"], port=free_port(), scrape_interval_s=1.0
        )
        try:
            prom.start()
            yield prom
        finally:
            prom.stop()


def _vector(prom: EmbeddedPrometheus, expr: str, at: float | None = None) -> dict[Labels, float]:
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in prom.query(expr, at=at)}


def _wait(cond: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s: {what()}")


def _settled(
    prom: EmbeddedPrometheus, want: dict[str, dict[Labels, float]], timeout: float
) -> None:
    """Until Prometheus has scraped every expected value (actor -> Ray agent -> scrape)."""

    def got() -> dict[str, dict[Labels, float]]:
        return {expr: _vector(prom, expr) for expr in want}

    _wait(lambda: got() == want, timeout, lambda: f"want {want}\ngot  {got()}")


def _statuses(c: Customer) -> list[int]:
    with c.lock:
        return [st for st, _mid in c.responses.values()]


def test_every_dashboard_query_returns_the_traffic_it_carried(
    gateway: GatewayProcess, prometheus: EmbeddedPrometheus, sims: Sims, bootstrap: str
) -> None:
    # `smsgw run` printed the metrics endpoint, `smsgw status` shows it healthy.
    url = f"http://127.0.0.1:{gateway.metrics_port}/metrics"
    assert url in gateway.stderr()
    code, report = gateway.status()
    assert code == 0
    assert {"part": "metrics", "healthy": True}.items() <= next(
        h for h in report["health"] if h["part"] == "metrics"
    ).items()
    assert url in gateway.smsgw("status").stdout

    obs = Customer("127.0.0.1", gateway.smpp_port, "obs", "pw").bind()
    slow = Customer("127.0.0.1", gateway.smpp_port, "slow", "pw").bind()
    idle = Customer("127.0.0.1", gateway.smpp_port, "idle", "pw", mode="transmitter").bind()
    clients = [obs, slow, idle]
    try:
        with pytest.raises(Exception):  # noqa: B017 - smpplib's bind error type varies
            Customer("127.0.0.1", gateway.smpp_port, "obs", "wrong").bind()

        # Warm-up, so that every counter's series exists before the measured phase
        # (rate() cannot see the first value of a series): one message from each customer,
        # and more from obs until pgood's provider series exist (one per connector-host
        # process: both binds of a node share it, issue 13).
        for c in clients:
            c.submit("491700000000")
        produce_all(bootstrap, Topics(gateway.prefix).submit, [b"\xff not a record"])
        warm = 1
        series = 'count(ray_smsgw_{}_total{{provider="pgood"}})'
        while any(
            _vector(prometheus, series.format(m)).get(frozenset(), 0.0) < 1.0
            for m in ("provider_accepted", "receipts_received")
        ):
            assert warm < 240, "pgood's binds never carried a message"
            obs.submit(f"491700{warm:06d}")
            warm += 1
            time.sleep(0.5)
        _settled(
            prometheus,
            {
                "sum by (customer) (ray_smsgw_submits_accepted_total)": {
                    _labels(customer="obs"): float(warm),
                    _labels(customer="slow"): 1.0,
                    _labels(customer="idle"): 1.0,
                },
                'sum by (customer) (ray_smsgw_deliveries_total{kind="receipt"})': {
                    _labels(customer="obs"): float(warm),
                    _labels(customer="slow"): 1.0,
                },
                "sum(ray_smsgw_dead_letters_total)": {frozenset(): 1.0},
            },
            120,
        )
        t0 = time.time()

        # The measured phase.
        for i in range(40):
            obs.submit(f"4917{i:08d}")
        for i in range(10):
            obs.submit(f"4930{i:08d}")  # refused by pbad: receipt err:902
        for i in range(5):
            obs.submit(f"4999{i:08d}")  # no route: receipt err:901
        for i in range(3):
            obs.submit(f"4917{i:08d}", priority_flag=9)  # ESME_RINVPRTFLG
        # One part of two: expires incomplete after 5 s (err:904).
        submit_part(obs, "491799999999", split_text("x" * 200, 0, ref=0x42)[0])
        for i in range(6):
            slow.submit(f"4917{i:08d}")  # 2 TPS: most answered ESME_RTHROTTLED
        for i in range(2):
            idle.submit(f"4917{i:08d}")  # receipts wait for a receiver that never binds
        obs.wait(
            lambda: len(obs.receipts) >= warm + 56 and len(obs.responses) >= warm + 59, 90, "obs"
        )
        slow.wait(lambda: len(slow.responses) >= 7, 30, "slow's responses")
        slow_ok = sum(1 for st in _statuses(slow) if st == 0)
        slow_throttled = sum(1 for st in _statuses(slow) if st == CommandStatus.ESME_RTHROTTLED)
        assert slow_ok + slow_throttled == 7 and slow_throttled >= 1, _statuses(slow)
        slow.wait(lambda: len(slow.receipts) >= slow_ok, 60, "slow's receipts")
        idle.wait(lambda: len(idle.responses) >= 3, 30, "idle's responses")
        assert sorted(_statuses(obs)).count(0) == warm + 40 + 10 + 5 + 1
        assert _statuses(idle) == [0, 0, 0]

        accepted = {"obs": warm + 56.0, "slow": float(slow_ok), "idle": 3.0}
        to_pgood = warm + 40 + slow_ok + 3
        receipts = {"obs": warm + 56.0, "slow": float(slow_ok)}
        # Every measured message but the expiring part and idle's receipts is done: rates now.
        _settled(
            prometheus,
            {
                "sum by (customer) (ray_smsgw_submits_accepted_total)": {
                    _labels(customer=c): n for c, n in accepted.items()
                },
                'sum by (customer) (ray_smsgw_deliveries_total{kind="receipt"})': {
                    _labels(customer=c): n for c, n in receipts.items()
                },
                "sum by (provider) (ray_smsgw_provider_accepted_total)": {
                    _labels(provider="pgood"): float(to_pgood)
                },
                "sum by (provider) (ray_smsgw_receipts_received_total)": {
                    _labels(provider="pgood"): float(to_pgood)
                },
            },
            120,
        )
        t_rates = time.time()
        assert t_rates - t0 < 50, "the measured phase must fit in the dashboard's 1 m rate window"

        # Idle's three receipts wait, then their TTL runs out.
        _settled(
            prometheus,
            {
                "sum by (customer, kind) (ray_smsgw_deliveries_expired_total)": {
                    _labels(customer="idle", kind="receipt"): 3.0
                }
            },
            DELIVERY_TTL_S + 90,
        )

        exact: dict[str, dict[Labels, float]] = {
            "sum by (customer) (ray_smsgw_submits_accepted_total)": {
                _labels(customer=c): n for c, n in accepted.items()
            },
            "sum by (provider) (ray_smsgw_provider_accepted_total)": {
                _labels(provider="pgood"): float(to_pgood)
            },
            "sum(ray_smsgw_routed_total)": {frozenset(): float(to_pgood + 10)},
            "sum(ray_smsgw_no_route_total)": {frozenset(): 5.0},
            'sum by (customer) (ray_smsgw_deliveries_total{kind="receipt"})': {
                _labels(customer=c): n for c, n in receipts.items()
            },
            "sum by (customer, status) (ray_smsgw_submits_rejected_total)": {
                _labels(customer="obs", status="ESME_RINVPRTFLG"): 3.0
            },
            "sum by (customer) (ray_smsgw_submits_throttled_total)": {
                _labels(customer="slow"): float(slow_throttled)
            },
            "sum by (provider, status) (ray_smsgw_provider_errors_total)": {
                _labels(provider="pbad", status="0x45"): 10.0  # ESME_RSUBMITFAIL
            },
            "sum by (customer, status) (ray_smsgw_binds_total)": {
                _labels(customer="obs", status="ok"): 1.0,
                _labels(customer="slow", status="ok"): 1.0,
                _labels(customer="idle", status="ok"): 1.0,
                _labels(customer="obs", status="ESME_RBINDFAIL"): 1.0,
            },
            "sum by (provider) (ray_smsgw_provider_bound)": {
                _labels(provider="pgood"): 2.0,
                _labels(provider="pbad"): 1.0,
            },
            "sum by (customer) (ray_smsgw_customer_binds)": {
                _labels(customer=c): 1.0 for c in ("obs", "slow", "idle")
            },
            "sum(ray_smsgw_kafka_in_flight)": {frozenset(): 0.0},
            "sum(ray_smsgw_deliveries_waiting)": {frozenset(): 0.0},
            "sum(ray_smsgw_multipart_parts_held)": {frozenset(): 0.0},
            "sum by (customer, kind) (ray_smsgw_deliveries_expired_total)": {
                _labels(customer="idle", kind="receipt"): 3.0
            },
            "sum(ray_smsgw_multipart_expired_total)": {frozenset(): 1.0},
            "sum by (stage, topic) (ray_smsgw_dead_letters_total)": {
                _labels(stage="router", topic=f"{gateway.prefix}submit"): 1.0
            },
        }
        outbound = [f"{gateway.prefix}{t}" for t in ("submit", "inbound", "deliver")] + [
            f"{gateway.prefix}out.{p}" for p in ("pgood", "pbad")
        ]
        exact["sum by (topic) (ray_smsgw_consumer_lag)"] = {_labels(topic=t): 0.0 for t in outbound}
        # At rest every queue drains to 0 (lag is measured every 5 s: it may trail).
        _settled(
            prometheus,
            {e: v for e, v in exact.items() if "lag" in e or "waiting" in e or "in_flight" in e},
            60,
        )
        t_end = time.time()

        failures: list[str] = []
        queries = dashboard_queries()
        assert len(queries) >= 20
        for title, expr in queries:
            got = _vector(prometheus, expr, at=t_end)
            if not got:
                failures.append(f"{title}: {expr}: no data")
                continue
            rate = re.fullmatch(r"(.*)rate\((\w+(?:\{[^}]*\})?)\[1m\]\)(.*)", expr)
            if expr.startswith("histogram_quantile("):
                check_quantile(title, expr, _vector(prometheus, expr, at=t_rates), failures)
            elif rate:
                # The measured phase's growth of the same counters, seen as a rate.
                total = rate.group(1) + rate.group(2) + rate.group(3)
                grown = {
                    k: v - _vector(prometheus, total, at=t0).get(k, 0.0)
                    for k, v in _vector(prometheus, total, at=t_rates).items()
                }
                at_rates = _vector(prometheus, expr, at=t_rates)
                for k, n in grown.items():
                    per_min = at_rates.get(k, 0.0) * 60
                    if n > 0 and not 0.9 * n <= per_min <= 1.5 * n:
                        failures.append(f"{title}: {expr} {dict(k)}: {per_min}/min, grew {n}")
                if not any(n > 0 for n in grown.values()):
                    failures.append(f"{title}: {expr}: nothing grew ({grown})")
            elif expr in exact:
                if got != exact[expr]:
                    failures.append(f"{title}: {expr}: {got} != {exact[expr]}")
            else:
                failures.append(f"{title}: {expr}: the test has no expected value for it")
        assert not failures, "\n".join(failures)
    finally:
        for c in clients:
            c.close()


def check_quantile(title: str, expr: str, got: dict[Labels, float], failures: list[str]) -> None:
    """Accept latency: a real, small number; receipt latency: at least the SMSC's delay."""
    (value,) = got.values() or [float("nan")]
    low = RECEIPT_DELAY_S * 1000 * 0.6 if "e2e" in expr else 0.0
    if not low < value <= 10_000:
        failures.append(f"{title}: {expr}: {value} ms not in ({low}, 10000]")


def test_smsgw_observe_scrapes_every_ray_node_of_the_running_gateway(
    gateway: GatewayProcess,
) -> None:
    """What `make observe` runs: found through SMSGW_HOME alone, targets from Ray's nodes."""
    port = free_port()
    env = {k: v for k, v in gateway.env.items() if not k.startswith("SMSGW_")}
    env.update(SMSGW_HOME=str(gateway.home), SMSGW_TOPIC_PREFIX=gateway.prefix)
    proc = subprocess.Popen(
        [SMSGW, "observe", "--listen", f"127.0.0.1:{port}"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def up() -> list[str]:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/v1/targets", timeout=5
                ) as r:
                    targets = json.loads(r.read())["data"]["activeTargets"]
            except OSError:
                return []
            return [t["scrapeUrl"] for t in targets if t["health"] == "up"]

        want = f"http://127.0.0.1:{gateway.metrics_port}/metrics"
        _wait(lambda: up() == [want], 90, lambda: f"targets up: {up()}, want [{want}]")
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"Prometheus on http://127.0.0.1:{port}" in err


# ---------------------------------------------------------------- the console

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    opts.add_argument("--window-size=1500,1400")
    return webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts
    )


def _table(driver: Any, table_id: str) -> list[dict[str, str]]:
    """The rows of one of the page's tables, by its header."""
    cells: list[list[str]] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tr')]"
        ".map(r => [...r.cells].map(c => c.textContent))",
        f"#{table_id}",
    )
    if not cells:
        return []
    head, rows = cells[0], cells[1:]
    return [dict(zip(head, r, strict=False)) for r in rows if len(r) == len(head)]


def _bind_retrying(gateway: GatewayProcess, system_id: str) -> Customer:
    """smpplib's client waits 1 s for bind_resp; on a loaded machine that may be short."""
    for _ in range(10):
        try:
            return Customer("127.0.0.1", gateway.smpp_port, system_id, "pw").bind()
        except Exception:
            time.sleep(1)
    return Customer("127.0.0.1", gateway.smpp_port, system_id, "pw").bind()


def _http(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_console_page_in_headless_chromium_shows_what_was_sent(
    gateway: GatewayProcess, sims: Sims
) -> None:
    from selenium.webdriver.common.by import By

    base = f"http://127.0.0.1:{gateway.console_port}"
    # The console takes the Ray cluster's token, like the dashboard: no token of its own.
    token_file = gateway.home / "ray_auth_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert not (gateway.home / "console.token").exists()
    assert base in gateway.stderr()  # `smsgw run` says where the console is

    # Without the token: refused, pages and API alike.
    for path in ("/", "/api/summary", "/message/x"):
        assert _http(base + path)[0] == 401
        assert _http(base + path, token="wrong")[0] == 401
    code, body = _http(base + "/api/summary", token=token)
    assert code == 200 and "customers" in json.loads(body)

    web = _bind_retrying(gateway, "web")
    driver = _browser()
    try:
        driver.get(base + "/")
        assert driver.find_elements(By.ID, "token") and not driver.find_elements(By.ID, "nodes")
        driver.find_element(By.ID, "token").send_keys("wrong")
        driver.find_element(By.ID, "login").click()
        assert not driver.find_elements(By.ID, "nodes"), "a wrong token shows nothing"
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "login").click()
        _wait(lambda: bool(_table(driver, "nodes")), 30, lambda: driver.page_source[:500])
        cookie = (driver.get_cookie("smsgw_console") or {}).get("value")
        assert cookie and cookie != token, "the browser keeps a derived cookie, not the token"

        # Traffic while the page is open; it refreshes by itself (no reload from here on).
        good: list[int] = []
        bad: list[int] = []

        def send() -> None:
            for i in range(30):
                good.append(web.submit(f"4917{i:08d}"))
                if i % 8 == 0:
                    bad.append(web.submit(f"4930{i:08d}"))  # refused by pbad
                time.sleep(0.1)
            for i in range(2):
                web.submit(f"4917{i:08d}", priority_flag=9)  # ESME_RINVPRTFLG

        sender = threading.Thread(target=send)
        sender.start()
        want = {"binds": "1", "accepted": "34", "rejected": "2", "throttled": "0"}

        def web_row() -> dict[str, str]:
            rows = [r for r in _table(driver, "customers") if r.get("customer") == "web"]
            return rows[0] if rows else {}

        seen_during: list[dict[str, str]] = []

        def shows_all() -> bool:
            row = web_row()
            if sender.is_alive() and row:
                seen_during.append(row)
            return all(row.get(k) == v for k, v in want.items()) and row.get("delivered") == str(
                len(web.receipts)
            )

        sender.join(60)
        web.wait(lambda: len(web.receipts) >= 34, 60, "web's receipts")
        _wait(shows_all, 60, lambda: f"page shows {web_row()}, want {want}")
        assert web_row()["delivered"] == "34"
        assert any(int(r.get("accepted") or 0) < 34 for r in seen_during) or not seen_during

        nodes = _table(driver, "nodes")
        assert len(nodes) == 1 and nodes[0]["listener"] == "ALIVE"
        assert nodes[0]["SMPP"] == f"127.0.0.1:{gateway.smpp_port}"
        providers = {r["provider"]: r for r in _table(driver, "providers")}
        assert providers["pgood"]["binds up"] == "2/2" and providers["pbad"]["binds up"] == "1/1"
        assert int(providers["pgood"]["sent"]) >= 30 and int(providers["pbad"]["errors"]) >= 4
        errors = _table(driver, "errors")
        assert {"where": "customer web", "status": "ESME_RINVPRTFLG", "count": "2"} in errors
        lag = {r["what"]: r["records"] for r in _table(driver, "queues")}
        assert lag[f"lag {gateway.prefix}submit"] in {str(n) for n in range(0, 40)}

        # Recent failures: the four refused by pbad, each linking to its history.
        with web.lock:
            ids = {seq: mid for seq, (st, mid) in web.responses.items() if st == 0}
        bad_ids = {ids[s] for s in bad}
        _wait(
            lambda: bad_ids <= {r["message"] for r in _table(driver, "failures")},
            30,
            lambda: f"failures {_table(driver, 'failures')}, want {bad_ids}",
        )
        DOCS.mkdir(exist_ok=True)
        driver.save_screenshot(str(DOCS / "console.png"))

        first_bad = sorted(bad_ids)[0]
        driver.find_element(By.LINK_TEXT, first_bad).click()
        _wait(lambda: bool(driver.find_elements(By.ID, "msg-state")), 30, lambda: "message page")
        assert driver.find_element(By.ID, "msg-id").text == first_bad
        assert driver.find_element(By.ID, "msg-state").text == "UNDELIVERABLE"
        assert driver.find_element(By.ID, "msg-customer").text == "web"

        # The lookup form: a delivered one.
        driver.get(base + "/")
        delivered = ids[good[0]]
        driver.find_element(By.ID, "lookup-id").send_keys(delivered)
        driver.find_element(By.ID, "lookup-id").submit()
        _wait(lambda: bool(driver.find_elements(By.ID, "msg-state")), 30, lambda: "lookup")
        assert driver.find_element(By.ID, "msg-state").text == "DELIVERED"
        assert _http(f"{base}/api/message/nope", token=token)[0] == 404
    finally:
        web.close()
        driver.quit()
