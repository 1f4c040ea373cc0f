"""`python -m benchmarks.smsc_sim`: run the simulator for load testers.

Prints one line of per-second counters to stderr and, at the end (after
--duration or on SIGINT/SIGTERM), a JSON summary to stdout (and --json-out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import click

from benchmarks.smsc_sim.config import SimConfig, parse_mix
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.smpp import CommandStatus


def _status(value: str | None) -> CommandStatus | None:
    """A status by number (0x58, 88) or by name (ESME_RTHROTTLED)."""
    if value is None:
        return None
    if value.upper().startswith("ESME_"):
        return CommandStatus[value.upper()]
    return CommandStatus.for_code(int(value, 0))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2775, show_default=True, help="0 = any free port")
@click.option("--system-id", default="smsc", show_default=True)
@click.option("--password", default="pw", show_default=True)
@click.option("--max-binds", type=int, default=None, help="bound sessions per system_id")
@click.option("--max-binds-status", default="ESME_RALYBND", show_default=True)
@click.option("--no-transceiver", is_flag=True, help="refuse bind_transceiver (TX+RX only)")
@click.option("--tps-limit", type=int, default=None, help="accepted submits per 1-s window")
@click.option("--receipt-delay", type=float, default=0.5, show_default=True)
@click.option("--receipt-before-resp", is_flag=True, help="receipt on the wire before the resp")
@click.option(
    "--outcomes", default="DELIVRD=1", show_default=True, help="e.g. DELIVRD=.9,UNDELIV=.1"
)
@click.option(
    "--id-format", type=click.Choice(["hex", "decimal"]), default="hex", show_default=True
)
@click.option("--receipt-id-format", type=click.Choice(["hex", "decimal"]), default=None)
@click.option("--no-receipt-tlvs", is_flag=True, help="receipt text only, no TLVs")
@click.option("--window", type=int, default=10, show_default=True, help="deliver_sm per bind")
@click.option("--mo-rate", type=float, default=0.0, show_default=True)
@click.option("--permanent-error", default=None, help="answer every submit with this status")
@click.option("--reject-rate", type=float, default=0.0, show_default=True)
@click.option("--reject-status", default="ESME_RSUBMITFAIL", show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--duration", type=float, default=None, help="seconds; default: until SIGINT")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--quiet", is_flag=True, help="no per-second lines")
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="PEM certificate: speak SMPP over TLS (with --tls-key)",
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None)
def main(**opts: Any) -> None:
    """An SMPP 3.4 SMSC simulator (provider side)."""
    config = SimConfig(
        host=opts["host"],
        port=opts["port"],
        system_id=opts["system_id"],
        password=opts["password"],
        max_binds=opts["max_binds"],
        max_binds_status=_status(opts["max_binds_status"]) or CommandStatus.ESME_RALYBND,
        transceiver=not opts["no_transceiver"],
        tps_limit=opts["tps_limit"],
        receipt_delay=opts["receipt_delay"],
        receipt_before_resp=opts["receipt_before_resp"],
        outcomes=parse_mix(opts["outcomes"]),
        id_format=opts["id_format"],
        receipt_id_format=opts["receipt_id_format"],
        receipt_tlvs=not opts["no_receipt_tlvs"],
        window=opts["window"],
        mo_rate=opts["mo_rate"],
        permanent_error=_status(opts["permanent_error"]),
        reject_rate=opts["reject_rate"],
        reject_status=_status(opts["reject_status"]) or CommandStatus.ESME_RSUBMITFAIL,
        record_received=False,
        seed=opts["seed"],
        tls=_tls(opts["tls_cert"], opts["tls_key"]),
    )
    try:
        summary = asyncio.run(_run(config, opts["duration"], opts["quiet"]))
    except OSError as exc:  # the port is taken, or the address is not this host's
        raise click.ClickException(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
            " (another simulator or SMSC there? choose --port)"
        ) from None
    text = json.dumps(summary, indent=2)
    if opts["json_out"] is not None:
        opts["json_out"].write_text(text + "\n")
    click.echo(text)


def _tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


async def _run(config: SimConfig, duration: float | None, quiet: bool) -> dict[str, Any]:
    sim = SmscSimulator(config)
    await sim.start()
    started_at_unix = time.time()  # second 0 of the per-second counters
    print(f"smsc-sim listening on {config.host}:{sim.port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reporter = asyncio.create_task(_report(sim, quiet))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
    reporter.cancel()
    elapsed = sim.elapsed
    await sim.stop()
    stats = sim.stats.to_dict()
    return {
        "config": config.to_dict(),
        "started_at_unix": round(started_at_unix, 3),
        "elapsed_s": round(elapsed, 3),
        "accepted_per_s": round(sim.stats.accepted / elapsed, 1) if elapsed else 0.0,
        **stats,
    }


async def _report(sim: SmscSimulator, quiet: bool) -> None:
    """Once a second: what happened in the last whole second."""
    second = 0
    last_receipts = 0
    while True:
        await asyncio.sleep(second + 1 - sim.elapsed + 0.01)
        s = sim.stats
        if not quiet:
            print(
                f"t={second:>4}s submits={s.per_second_submits.get(second, 0):>6} "
                f"accepted={s.per_second_accepted.get(second, 0):>6} "
                f"receipts={s.receipts_sent - last_receipts:>6} throttled={s.throttled} "
                f"rejected={s.rejected} binds={sum(sim.bound.values())} backlog={sim.backlog}",
                file=sys.stderr,
                flush=True,
            )
        last_receipts = s.receipts_sent
        second += 1
