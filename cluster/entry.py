"""The ``smsgw`` console entry point: configuration commands plus run/status."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

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
    if as_json:
        click.echo(json.dumps([h.__dict__ for h in report], indent=2))
    else:
        for h in report:
            mark = (
                click.style("healthy  ", fg="green")
                if h.healthy
                else click.style("UNHEALTHY", fg="red")
            )
            click.echo(f"{h.part:<9} {mark} {h.detail}")
    sys.exit(0 if all(h.healthy for h in report) else 1)
