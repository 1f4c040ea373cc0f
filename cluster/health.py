"""Health of each part, for ``smsgw status`` and the test harness."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from smsgw.cluster.procs import port_open
from smsgw.cluster.ray_local import auth_token, dashboard_ok
from smsgw.kafka.security import client_config
from smsgw.settings import Settings, parse_hostport


@dataclass(frozen=True)
class Health:
    part: str
    healthy: bool
    detail: str


def kafka_health(bootstrap: str | None) -> Health:
    if not bootstrap:
        return Health("kafka", False, "no bootstrap address (is `smsgw run` running?)")
    from confluent_kafka.admin import AdminClient

    try:
        md = AdminClient(client_config(bootstrap)).list_topics(timeout=3)
    except Exception as exc:
        return Health("kafka", False, f"{bootstrap}: {exc}")
    if not md.brokers:
        return Health("kafka", False, f"{bootstrap}: no broker answered")
    topics = sorted(t for t in md.topics if not t.startswith("__"))
    return Health(
        "kafka", True, f"{bootstrap}: {len(md.brokers)} broker(s), {len(topics)} topic(s)"
    )


def postgres_health(url: str | None) -> Health:
    if not url:
        return Health("postgres", False, "no database URL (is `smsgw run` running?)")
    import psycopg

    from smsgw.db.migrate import available, current_version

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            version = current_version(conn)
    except psycopg.Error as exc:
        return Health("postgres", False, str(exc).strip().splitlines()[0])
    latest = available()[-1].version
    where = url.rsplit("@", 1)[-1]
    if version < latest:
        return Health("postgres", False, f"{where}: schema v{version}, v{latest} expected")
    return Health("postgres", True, f"{where}: schema v{version}")


def ray_health(address: str | None, dashboard: str | None, token: str | None = None) -> Health:
    if not address:
        return Health("ray", False, "no Ray address (is `smsgw run` running?)")
    host, port = parse_hostport(address, 6379)
    if not port_open(host, port):
        return Health("ray", False, f"{address}: GCS not reachable")
    if dashboard:
        dhost, dport = parse_hostport(dashboard.removeprefix("http://"), 8265)
        if not dashboard_ok(dhost, dport, token):
            return Health("ray", False, f"{address}: dashboard {dashboard} not answering")
        return Health("ray", True, f"{address}, dashboard {dashboard}")
    return Health("ray", True, address)


def listener_health(listen: str) -> Health:
    host, port = parse_hostport(listen, 2775)
    probe = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    ok = port_open(probe, port)
    return Health(
        "smpp", ok, f"{probe}:{port} {'accepting' if ok else 'not accepting'} connections"
    )


def metrics_health(url: str | None, ray_address: str | None) -> Health:
    """Ray's metrics agent, where Prometheus scrapes the gateway (``ray_smsgw_*``)."""
    if not url:
        if ray_address:
            return Health("metrics", True, "on each node of the external Ray cluster")
        return Health("metrics", False, "no metrics endpoint (is `smsgw run` running?)")
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            ok = resp.status == 200
    except OSError as exc:
        return Health("metrics", False, f"{url}: {exc}")
    return Health("metrics", ok, f"{url} (Prometheus: `make observe`)")


def console_health(url: str | None) -> Health:
    """The operator console answers (its login form needs no token; every other page does)."""
    if not url:
        return Health("console", False, "no console address (is `smsgw run` running?)")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/login", timeout=3) as resp:
            ok = resp.status == 200
    except OSError as exc:
        return Health("console", False, f"{url}: {exc}")
    return Health("console", ok, f"{url} (log in with the Ray token, $SMSGW_HOME/ray_auth_token)")


def all_health(
    settings: Settings,
    dashboard: str | None,
    metrics: str | None = None,
    console: str | None = None,
) -> list[Health]:
    return [
        kafka_health(settings.kafka_bootstrap),
        postgres_health(settings.database_url),
        ray_health(settings.ray_address, dashboard, auth_token(settings.ray_auth_token_file)),
        listener_health(settings.smpp_listen),
        metrics_health(metrics, settings.ray_address),
        console_health(console),
    ]
