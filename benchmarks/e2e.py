"""`python -m benchmarks.e2e`: the whole path under load, receipts included.

customer (loadgen) → gateway on Ray (listener, router, provider binds,
correlator, deliverer) → SMSC simulator → receipts back to the customer.
Uses the services of a running ``smsgw run`` if there is one (its Ray
cluster too), else starts the embedded stack itself. Prints one line per
run and the medians as JSON; ``--json-out`` keeps every run's loadgen report.

    python -m benchmarks.e2e --runs 3 --duration 30 --rate 2000
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import click
import psycopg

from benchmarks.runs import ROOT, loadgen_run, median
from smsgw.cluster.procs import free_port, port_open
from smsgw.settings import Settings


def _configure(db_url: str, sim_port: int, provider: str, tps: int, binds: int) -> None:
    from smsgw.db.customers import ConfigError, add_customer, update_customer
    from smsgw.db.providers import add_provider, remove_provider
    from smsgw.db.routes import add_mt_route, list_mt_routes, remove_mt_route

    with psycopg.connect(db_url) as conn:
        try:
            add_customer(conn, "bench", "bench", tps=1_000_000, max_binds=64)
        except ConfigError:
            update_customer(conn, "bench", tps=1_000_000, max_binds=64)
        for r in list_mt_routes(conn):
            if r.provider == provider:
                remove_mt_route(conn, r.id)
        with contextlib.suppress(ConfigError):
            remove_provider(conn, provider)
        add_provider(
            conn,
            provider,
            host="127.0.0.1",
            port=sim_port,
            system_id="smsc",
            password="pw",
            tps=tps,
            binds=binds,
            window=100,
        )
        add_mt_route(conn, prefix="4477", provider=provider, customer="bench")


@click.command()
@click.option("--runs", default=3, show_default=True)
@click.option("--duration", default=30.0, show_default=True, help="Seconds of load per run.")
@click.option("--rate", default=1000.0, show_default=True, help="Offered msg/s (0 = open).")
@click.option("--binds", default=4, show_default=True, help="Customer binds.")
@click.option("--window", default=100, show_default=True)
@click.option("--provider-binds", default=2, show_default=True)
@click.option("--receipt-delay", default=0.5, show_default=True)
@click.option("--json-out", type=click.Path(dir_okay=False), help="Write all runs here.")
def main(
    runs: int,
    duration: float,
    rate: float,
    binds: int,
    window: int,
    provider_binds: int,
    receipt_delay: float,
    json_out: str | None,
) -> None:
    from smsgw.cluster.stack import Stack

    running = Settings().with_runtime()
    stack = None
    if running.kafka_bootstrap and running.database_url and running.ray_address:
        settings = running
    else:
        home = Path(tempfile.mkdtemp(prefix="smsgw-e2e-home-"))
        base = Settings(
            home=home,
            kafka_port=free_port(),
            kafka_controller_port=free_port(),
            postgres_port=free_port(),
            ray_port=free_port(),
            ray_dashboard_port=free_port(),
            smpp_listen=f"127.0.0.1:{free_port()}",
            log_level="WARNING",
        )
        stack = Stack(base, on_step=lambda m: click.echo(f"e2e: {m}", err=True))
        settings = stack.start()
    sim_port = free_port()
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.smsc_sim",
            "--port",
            str(sim_port),
            "--window",
            "100",
            "--receipt-delay",
            str(receipt_delay),
            "--quiet",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    results: list[dict[str, Any]] = []
    try:
        from smsgw.actors import runtime as rt

        assert settings.ray_address and settings.database_url
        rt.connect(settings.ray_address)
        if stack is not None:
            rt.start_supervisor(settings)
        provider = f"bench{uuid.uuid4().hex[:4]}"
        _configure(settings.database_url, sim_port, provider, tps=100_000, binds=provider_binds)
        state = rt.wait_ready(
            timeout=180, providers=provider_binds, topic_prefix=settings.topic_prefix
        )
        listen = next(a["listen"] for n, a in state["actors"].items() if n.startswith("listener@"))
        port = int(listen.rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.2)
        for i in range(runs):
            r = loadgen_run(
                port, rate=rate, duration=duration, binds=binds, window=window, receipts=True
            )
            lat, rlat = r["submit_resp_latency_ms"], r["receipt_latency_ms"]
            click.echo(
                f"run {i + 1}: accepted {r['accepted_per_s']:.0f}/s, receipts "
                f"{r['receipts_matched']}/{r['accepted']} (missing {r['receipts_missing']}, "
                f"dup {r['receipts_duplicate']}), resp p99 {lat.get('p99')} ms, "
                f"receipt p50/p99 {rlat.get('p50')}/{rlat.get('p99')} ms",
                err=True,
            )
            results.append(r)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)
        if stack is not None:
            from smsgw.actors import runtime as rt

            rt.stop_all(settings.topic_prefix)
            stack.stop()

    summary = {
        "runs": runs,
        "duration_s": duration,
        "offered_rate": rate or "open",
        "receipt_delay_s": receipt_delay,
        "accepted_per_s_median": median(results, lambda r: r["accepted_per_s"]),
        "receipts_missing_total": sum(r["receipts_missing"] or 0 for r in results),
        "receipts_duplicate_total": sum(r["receipts_duplicate"] for r in results),
        "resp_p99_ms_median": median(results, lambda r: r["submit_resp_latency_ms"]["p99"]),
        "receipt_p50_ms_median": median(results, lambda r: r["receipt_latency_ms"]["p50"]),
        "receipt_p99_ms_median": median(results, lambda r: r["receipt_latency_ms"]["p99"]),
        "per_run_accepted_per_s": [round(r["accepted_per_s"]) for r in results],
    }
    if json_out:
        Path(json_out).write_text(json.dumps({"summary": summary, "runs": results}, indent=2))
    click.echo(json.dumps(summary, indent=2))
    os._exit(0)  # Ray's driver threads can hold the interpreter open


if __name__ == "__main__":
    main()
