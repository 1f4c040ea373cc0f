"""The ``smsgw`` console entry point: configuration commands plus run/status."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

from smsgw import (
    cli_dlq,  # noqa: F401  (registers the dlq commands, which need Kafka)
    cli_message,  # noqa: F401  (registers the message show/find commands)
    cli_routing,  # noqa: F401  (registers the provider, route and mo-route commands)
)
from smsgw.cli import load_settings, main, raw_settings
from smsgw.settings import read_runtime


@main.command()
@click.option("--smpp-listen", help="SMPP listen address host:port (env SMSGW_SMPP_LISTEN).")
@click.pass_context
def run(ctx: click.Context, smpp_listen: str | None) -> None:
    """Start Kafka, PostgreSQL and Ray (unless external ones are named), then the gateway.

    Runs in the foreground; Ctrl-C stops everything it started.
    """
    from smsgw import log
    from smsgw.cluster.procs import ServiceError
    from smsgw.cluster.stack import Stack

    # Start our own services: do not pick up a previous run's from the runtime file.
    fresh = raw_settings(ctx)
    if smpp_listen:
        fresh = fresh.model_copy(update={"smpp_listen": smpp_listen})
    log.configure(fresh.log_level, fresh.log_json, unmasked=fresh.log_unmasked)
    existing = read_runtime(fresh.runtime_file)
    if existing and _pid_alive(existing.get("pid")):
        raise click.ClickException(
            f"smsgw is already running (pid {existing['pid']}); stop it first with Ctrl-C there"
        )
    stack = Stack(fresh, on_step=lambda msg: click.echo(f"smsgw: {msg}", err=True))
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        running = stack.start()
        from smsgw.cluster.gateway_process import run_gateway

        run_gateway(running, stack.resolved, stop)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        stack.stop()
        click.echo("smsgw: stopped", err=True)


def _pid_alive(pid: Any) -> bool:
    import os

    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


STALE_S = 30.0  # the supervisor publishes at least every 10 s; older: not running


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Report the health of Kafka, PostgreSQL, Ray, the SMPP listener and the gateway's actors.

    Per provider and customer: the last minute's rates, totals, errors by status and
    why a bind is down. Exits 1 when something is unhealthy (a service, a provider
    with no bind up, growing lag, a stage restarting in a loop, no supervisor report).
    It reads the supervisor's report from PostgreSQL: no Ray driver, no Ray job.
    """
    from smsgw.cluster.health import all_health

    settings = load_settings(ctx)
    runtime = read_runtime(settings.runtime_file)
    listen = runtime.get("smpp_listen") or settings.smpp_listen
    report = all_health(
        settings.model_copy(update={"smpp_listen": listen}),
        runtime.get("ray_dashboard"),
        runtime.get("metrics"),
        runtime.get("console"),
    )
    cluster = _cluster_status(settings) if report[1].healthy else None
    kafka = _kafka_status(settings) if report[0].healthy else None
    problems = [f"{h.part}: {h.detail}" for h in report if not h.healthy]
    if cluster is not None:
        problems += list(cluster.get("problems", []))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "health": [h.__dict__ for h in report],
                    "cluster": cluster,
                    "kafka": kafka,
                    "problems": problems,
                },
                indent=2,
                default=str,
            )
        )
    else:
        for h in report:
            mark = (
                click.style("healthy  ", fg="green")
                if h.healthy
                else click.style("UNHEALTHY", fg="red")
            )
            click.echo(f"{h.part:<9} {mark} {h.detail}")
        if kafka:
            _print_kafka(kafka)
        if cluster:
            _print_cluster(cluster)
        for p in problems:
            click.echo(click.style("problem: ", fg="red") + p)
    sys.exit(1 if problems else 0)


def _kafka_status(settings: Any) -> dict[str, Any] | None:
    """Brokers, under-replicated partitions, each topic against the replication policy."""
    if not settings.kafka_bootstrap:
        return None
    from smsgw.kafka.admin import replication_report

    try:
        return replication_report(settings.kafka_bootstrap, settings.topic_prefix)
    except Exception as exc:
        return {"error": repr(exc)}


def _print_kafka(k: dict[str, Any]) -> None:
    if "error" in k:
        click.echo(f"kafka     {k['error']}")
        return
    p = k["policy"]
    click.echo(
        f"\nkafka brokers ({len(k['brokers'])}, controller {k['controller']}): "
        + ", ".join(f"{b['id']}@{b['address']}" for b in k["brokers"])
    )
    click.echo(
        f"replication: wanted RF {p['replication']}, min ISR {p['min_isr']}; "
        f"under-replicated partitions {k['under_replicated']}, offline {k['offline']}"
    )
    for t in k["topics"]:
        mark = "ok" if t["meets_policy"] else "BELOW: " + "; ".join(t["problems"])
        click.echo(
            f"  {t['name']:<32} RF {t['factor']} min ISR {t['min_isr']} "
            f"under-replicated {t['under_replicated']}  {mark}"
        )


def _cluster_status(settings: Any) -> dict[str, Any]:
    """The supervisor's last report (PostgreSQL), with its problems; never a Ray driver."""
    import psycopg

    from smsgw.actors.workers import namespace_for
    from smsgw.db import status as status_row

    try:
        with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
            got = status_row.read(conn, namespace_for(settings.topic_prefix))
    except psycopg.Error as exc:
        return {"error": str(exc), "problems": [f"status not readable: {exc}"]}
    if got is None:
        return {"problems": ["no supervisor has reported (is `smsgw run` running?)"]}
    snapshot, rep, age = got
    out = {**snapshot, "report": rep, "age_s": round(age, 1)}
    problems = list(rep.get("problems", []))
    if age > STALE_S:
        problems.insert(0, f"the supervisor's last report is {age:.0f} s old (not running?)")
    out["problems"] = problems
    return out


def _print_cluster(c: dict[str, Any]) -> None:
    if "error" in c:
        click.echo(f"cluster   {c['error']}")
        return
    nodes = c.get("nodes", [])
    click.echo(f"\nnodes ({len(nodes)}):")
    for n in nodes:
        click.echo(f"  {n['id'][:12]}  {n.get('address')}")
    actors = c.get("actors", {})
    click.echo(f"actors ({len(actors)}):")
    for name, a in sorted(actors.items()):
        node = str(a.get("node", ""))[:12]
        click.echo(f"  {name:<32} {a.get('state', '?'):<12} pid={a.get('pid')} node={node}")
    rep = c.get("report") or {}
    click.echo("providers (per second over the last minute; totals since the first start):")
    for name, p in sorted((rep.get("provider") or {}).items()):
        click.echo(f"  {name}: binds {p.get('binds_up', 0)}/{p.get('binds', 0)} up  {_figures(p)}")
        if p.get("last_bind_error") and p.get("binds_up", 0) < p.get("binds", 0):
            click.echo(f"    last bind error: {p['last_bind_error']}")
    click.echo("customers:")
    binds: dict[str, int] = {}
    for name, a in actors.items():
        if name.startswith("listener@"):
            for cust, n in (a.get("binds") or {}).items():
                binds[cust] = binds.get(cust, 0) + n
    for name, cust in sorted((rep.get("customer") or {}).items()):
        click.echo(f"  {name}: binds {binds.get(name, 0)}  {_figures(cust)}")
    lag = c.get("lag", {})
    click.echo(
        "consumer lag (records): " + (", ".join(f"{k}={v}" for k, v in sorted(lag.items())) or "-")
    )


def _figures(entry: dict[str, Any]) -> str:
    """``accepted 12.5/s (1000)`` for each counter that moved, then errors by status."""
    totals, per_s = entry.get("totals", {}), entry.get("per_s", {})
    parts = [
        f"{k} {per_s.get(k, 0):g}/s ({v})" for k, v in sorted(totals.items()) if v or per_s.get(k)
    ]
    errors = entry.get("errors") or {}
    if errors:
        parts.append("errors " + ", ".join(f"{s}={n}" for s, n in sorted(errors.items())))
    return "  ".join(parts) or "no traffic"


@main.command()
@click.pass_context
def stop(ctx: click.Context) -> None:
    """Stop the gateway's actors in the Ray cluster (the cluster itself stays up)."""
    settings = load_settings(ctx)
    if not settings.ray_address:
        raise click.ClickException("no Ray cluster: set RAY_ADDRESS or start `smsgw run`")
    from smsgw.actors import runtime as rt

    rt.connect(settings.ray_address, settings.ray_auth_token_file)
    if rt.stop_all(settings.topic_prefix):
        click.echo("smsgw: actors stopped")
    else:
        click.echo("smsgw: no gateway actors were running")


@main.command()
@click.option(
    "--listen",
    default="127.0.0.1:9090",
    show_default=True,
    envvar="SMSGW_PROMETHEUS_LISTEN",
    help="Prometheus' web address (env SMSGW_PROMETHEUS_LISTEN); loopback unless you say so.",
)
@click.pass_context
def observe(ctx: click.Context, listen: str) -> None:
    """Run Prometheus (Debian's) against the running gateway, with the shipped scrape config.

    Scrapes every Ray node's metrics endpoint; the Grafana dashboard to import
    is cluster/observe/grafana-dashboard.json. Runs in the foreground.
    """
    from smsgw.cluster.procs import ServiceError
    from smsgw.cluster.prometheus import DASHBOARD, EmbeddedPrometheus, ray_metrics_targets
    from smsgw.settings import parse_hostport

    settings = load_settings(ctx)
    runtime = read_runtime(settings.runtime_file)
    targets: list[str] = []
    local = None
    if runtime.get("metrics"):
        local = str(runtime["metrics"]).removeprefix("http://").removesuffix("/metrics")
    if settings.ray_address:
        import ray

        from smsgw.actors import runtime as rt

        rt.connect(settings.ray_address, settings.ray_auth_token_file)
        targets = ray_metrics_targets(ray.nodes(), local)  # type: ignore[no-untyped-call]
    if not targets and local:
        targets = [local]
    if not targets:
        raise click.ClickException("no gateway to observe: start it with `make run` first")
    _host, port = parse_hostport(listen, 9090)
    prom = EmbeddedPrometheus(settings.home / "prometheus", targets, port=port)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        prom.start()
        click.echo(
            f"smsgw: Prometheus on {prom.url} scraping {', '.join(targets)}; "
            f"Grafana dashboard: {DASHBOARD} (Ctrl-C stops)",
            err=True,
        )
        while not stop.wait(0.5):
            if prom.process is None or not prom.process.alive():
                raise click.ClickException(f"Prometheus exited; see {prom.data_dir}/prometheus.log")
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        prom.stop()
