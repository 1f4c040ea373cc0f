"""The ``smsgw`` console entry point: configuration commands plus run/status."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

from smsgw import cli_dlq  # noqa: F401  (registers the dlq commands, which need Kafka)
from smsgw.cli import load_settings, main, raw_settings
from smsgw.settings import Settings, read_runtime


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
    log.configure(fresh.log_level, fresh.log_json)
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


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Report the health of Kafka, PostgreSQL, Ray and the SMPP listener."""
    from smsgw.cluster.health import all_health

    settings = load_settings(ctx)
    runtime = read_runtime(settings.runtime_file)
    listen = runtime.get("smpp_listen") or settings.smpp_listen
    report = all_health(
        settings.model_copy(update={"smpp_listen": listen}), runtime.get("ray_dashboard")
    )
    cluster = _cluster_status(settings) if report[2].healthy else None
    kafka = _kafka_status(settings) if report[0].healthy else None
    if as_json:
        click.echo(
            json.dumps(
                {"health": [h.__dict__ for h in report], "cluster": cluster, "kafka": kafka},
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
    sys.exit(0 if all(h.healthy for h in report) else 1)


def _kafka_status(settings: Settings) -> dict[str, Any] | None:
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


def _cluster_status(settings: Settings) -> dict[str, Any] | None:
    if not settings.ray_address:
        return None
    try:
        from smsgw.actors import runtime as rt

        rt.connect(settings.ray_address, settings.ray_auth_token_file)
        return rt.status(settings.topic_prefix)
    except Exception as exc:
        return {"error": repr(exc)}


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
        extra = ""
        if name.startswith("provider:"):
            b = a.get("bind") or {}
            extra = (
                f"bound={b.get('bound')} sent={b.get('accepted', 0)} tps_share={a.get('tps_share')}"
            )
        elif name.startswith("listener@"):
            extra = f"smpp={a.get('listen')} binds={a.get('binds')}"
        node = str(a.get("node", ""))[:12]
        click.echo(f"  {name:<32} {a.get('state', '?'):<12} pid={a.get('pid')} node={node} {extra}")
    binds: dict[str, int] = {}
    for name, a in actors.items():
        if name.startswith("listener@"):
            for cust, n in (a.get("binds") or {}).items():
                binds[cust] = binds.get(cust, 0) + n
    click.echo(
        "customer binds: " + (", ".join(f"{k}={v}" for k, v in sorted(binds.items())) or "none")
    )
    providers: dict[str, list[int]] = {}
    for name, a in actors.items():
        if name.startswith("provider:"):
            p = providers.setdefault(str(a.get("provider", name)), [0, 0])
            p[1] += 1
            p[0] += 1 if (a.get("bind") or {}).get("bound") else 0
    click.echo(
        "provider binds: "
        + (", ".join(f"{k}={u}/{t} up" for k, (u, t) in sorted(providers.items())) or "none")
    )
    lag = c.get("lag", {})
    click.echo("consumer lag: " + (", ".join(f"{k}={v}" for k, v in sorted(lag.items())) or "-"))


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
