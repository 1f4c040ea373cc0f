"""`python -m benchmarks.accept`: accepted submits/s and submit_sm_resp latency, acks=all.

Measures the customer-facing half of the gateway: the SMPP listener validating,
producing to Kafka with an idempotent ``acks=all`` producer and answering from
the delivery report. Uses the stack of a running ``smsgw run`` if there is
one, else starts an embedded Kafka and PostgreSQL of its own. The gateway and
the load generator run as separate processes; every run prints its figures
and the command ends with the medians as JSON.

    python -m benchmarks.accept --runs 3 --duration 20             # open throttle
    python -m benchmarks.accept --runs 3 --duration 20 --rate 500  # latency at 500/s
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import psycopg

from benchmarks.runs import ROOT, loadgen_run, median
from smsgw.cluster.procs import free_port, port_open
from smsgw.settings import Settings


@contextlib.contextmanager
def stack() -> Iterator[tuple[str, str]]:
    """(kafka bootstrap, database url) of a running smsgw, or of services started here."""
    running = Settings().with_runtime()
    if running.kafka_bootstrap and running.database_url:
        _use_kafka_security(running)
        yield running.kafka_bootstrap, running.database_url
        return
    from smsgw.cluster.kafka import EmbeddedKafka
    from smsgw.cluster.postgres import EmbeddedPostgres
    from smsgw.kafka.security import KafkaCredentials

    kafka_dir = Path(tempfile.mkdtemp(prefix="smsgw-bench-kafka-"))
    creds = KafkaCredentials.load_or_create(kafka_dir / "credentials.json")
    kafka = EmbeddedKafka(
        kafka_dir, port=free_port(), controller_port=free_port(), credentials=creds
    )
    pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="smsgw-bench-pg-")), port=free_port())
    kafka.start()
    pg.start()
    _use_kafka_security(
        Settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism=creds.mechanism,
            kafka_sasl_username=creds.username,
            kafka_sasl_password=creds.password,
        )
    )
    try:
        yield kafka.bootstrap, pg.url()
    finally:
        kafka.stop()
        pg.stop()


def _use_kafka_security(settings: Settings) -> None:
    """This process's Kafka clients, and the gateway process (its environment), authenticate."""
    from smsgw.kafka.security import use_settings

    use_settings(settings)
    for key in ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password"):
        value = getattr(settings, f"kafka_{key}")
        if value is not None:
            os.environ[f"SMSGW_KAFKA_{key.upper()}"] = value


def prepare(bootstrap: str, db_url: str, prefix: str, partitions: int) -> None:
    from smsgw.db.customers import ConfigError, add_customer, update_customer
    from smsgw.db.migrate import migrate
    from smsgw.kafka.admin import ensure_topics
    from smsgw.topics import Topics

    migrate(db_url)
    ensure_topics(bootstrap, Topics(prefix).specs(partitions))
    with psycopg.connect(db_url) as conn:
        try:
            add_customer(conn, "bench", "bench", tps=1_000_000, max_binds=64)
        except ConfigError:
            update_customer(conn, "bench", password="bench", tps=1_000_000, max_binds=64)


def serve() -> None:
    """The gateway process (acceptance only): settings come from the environment."""
    from smsgw import log
    from smsgw.kafka.security import use_settings
    from smsgw.node.gateway import Gateway
    from smsgw.topics import Topics

    settings = Settings()
    use_settings(settings)
    log.configure("WARNING")

    async def main() -> None:
        gw = Gateway(settings, Topics(settings.topic_prefix), with_pipeline=False)
        await gw.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await gw.stop()

    asyncio.run(main())


@click.command()
@click.option("--runs", default=3, show_default=True)
@click.option("--duration", default=20.0, show_default=True, help="Seconds per run.")
@click.option("--rate", default=0.0, show_default=True, help="Offered msg/s; 0 = open throttle.")
@click.option("--binds", default=4, show_default=True)
@click.option("--window", default=50, show_default=True)
@click.option("--partitions", default=6, show_default=True)
@click.argument("mode", required=False, type=click.Choice(["serve"]))
def main(
    runs: int,
    duration: float,
    rate: float,
    binds: int,
    window: int,
    partitions: int,
    mode: str | None,
) -> None:
    if mode == "serve":
        serve()
        return
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    with stack() as (bootstrap, db_url):
        prepare(bootstrap, db_url, prefix, partitions)
        port = free_port()
        env = dict(
            os.environ,
            SMSGW_KAFKA_BOOTSTRAP=bootstrap,
            SMSGW_DATABASE_URL=db_url,
            SMSGW_TOPIC_PREFIX=prefix,
            SMSGW_SMPP_LISTEN=f"127.0.0.1:{port}",
        )
        gw = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.accept", "serve"], env=env, cwd=ROOT
        )
        try:
            deadline = time.monotonic() + 60
            while not port_open("127.0.0.1", port):
                if time.monotonic() > deadline or gw.poll() is not None:
                    raise click.ClickException("the gateway did not start")
                time.sleep(0.2)
            results = []
            for i in range(runs):
                r = loadgen_run(
                    port, rate=rate, duration=duration, binds=binds, window=window, receipts=False
                )
                lat = r["submit_resp_latency_ms"]
                click.echo(
                    f"run {i + 1}: accepted {r['accepted_per_s']:.0f}/s, "
                    f"p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, "
                    f"rejected {r['rejected']}, throttled {r['throttled']}",
                    err=True,
                )
                results.append(r)
        finally:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(30)
            except subprocess.TimeoutExpired:
                gw.kill()

    summary = {
        "runs": runs,
        "duration_s": duration,
        "offered_rate": rate or "open",
        "binds": binds,
        "window": window,
        "accepted_per_s_median": median(results, lambda r: r["accepted_per_s"]),
        "submit_resp_p50_ms_median": median(results, lambda r: r["submit_resp_latency_ms"]["p50"]),
        "submit_resp_p99_ms_median": median(results, lambda r: r["submit_resp_latency_ms"]["p99"]),
        "rejected_total": sum(r["rejected"] for r in results),
        "per_run_accepted_per_s": [round(r["accepted_per_s"]) for r in results],
    }
    click.echo(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
