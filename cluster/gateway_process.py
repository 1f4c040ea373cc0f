"""The foreground of ``smsgw run``: the supervisor actor and, through it, the gateway."""

from __future__ import annotations

import threading
from typing import Any

import click

from smsgw import log
from smsgw.settings import Settings


def run_gateway(settings: Settings, runtime: dict[str, Any], stop: threading.Event) -> None:
    from smsgw.actors import runtime as rt

    logger = log.get("smsgw.run")
    assert settings.ray_address
    rt.connect(settings.ray_address, settings.ray_auth_token_file)
    rt.start_supervisor(settings)
    try:
        state = rt.wait_ready(timeout=180, topic_prefix=settings.topic_prefix)
        listeners = sorted(
            a.get("listen", "?") for n, a in state["actors"].items() if n.startswith("listener@")
        )
        logger.info(
            "gateway ready",
            smpp=",".join(listeners),
            nodes=len(state.get("nodes", [])),
            actors=len(state.get("actors", {})),
            dashboard=runtime.get("ray_dashboard"),
            metrics=runtime.get("metrics"),
        )
        tls = sorted(
            f"{a['tls_listen']} (certificate SHA-256 {a.get('tls_sha256')})"
            for n, a in state["actors"].items()
            if n.startswith("listener@") and a.get("tls_listen")
        )
        if tls:
            click.echo(f"smsgw: SMPP over TLS on {', '.join(tls)}", err=True)
        click.echo(
            f"smsgw: ready — SMPP on {', '.join(listeners)}; "
            f"Ray dashboard {runtime.get('ray_dashboard') or '(external cluster)'}; "
            f"metrics {runtime.get('metrics') or '(set by the external Ray cluster)'}; "
            f"console {runtime.get('console')} "
            f"(log in with the Ray token, {settings.ray_auth_token_file})",
            err=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        if runtime.get("embedded", {}).get("ray", False):
            click.echo("smsgw: stopping the gateway's actors", err=True)
            rt.stop_all(settings.topic_prefix)
            # The driver leaves before Ray stops: connected, it reports every worker
            # dying with the head as an error of its job.
            rt.disconnect()
        else:
            click.echo(
                "smsgw: leaving the cluster's actors running (`smsgw stop` stops them)", err=True
            )
