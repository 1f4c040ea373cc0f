"""`python -m benchmarks.loadgen`: offer SMPP load to an SMSC (or the gateway).

Prints a JSON summary to stdout (and --json-out): offered rate, accepted/s,
latency percentiles of submit_sm_resp and of receipts, counts.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from benchmarks.loadgen.client import BindFailed
from benchmarks.loadgen.config import LoadConfig, parse_mix, parse_steps
from benchmarks.loadgen.runner import run_load


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2775, show_default=True)
@click.option("--system-id", default="smsc", show_default=True)
@click.option("--password", default="pw", show_default=True)
@click.option("--binds", default=1, show_default=True, help="trx binds, or tx+rx pairs")
@click.option("--bind-mode", type=click.Choice(["trx", "tx+rx"]), default="trx", show_default=True)
@click.option("--window", default=10, show_default=True, help="outstanding submits per bind")
@click.option(
    "--rate",
    type=float,
    default=None,
    help="submit_sm/s in total (required unless --rate-steps); 0 = as fast as the windows allow",
)
@click.option(
    "--rate-steps",
    default="",
    help="step load RATE:SECONDS,… (e.g. 250:10,500:10,1000:10) instead of --rate",
)
@click.option("--duration", type=float, default=None, help="seconds of sending")
@click.option("--count", type=int, default=None, help="messages to send (or --duration)")
@click.option("--mix", default="gsm=1", show_default=True, help="e.g. gsm=0.8,ucs2=0.2")
@click.option("--multipart-share", default=0.0, show_default=True)
@click.option("--registered-delivery", default=1, show_default=True, help="0, 1 or 2")
@click.option("--receipt-all-parts", is_flag=True, help="every part asks for a receipt")
@click.option("--receipt-timeout", default=10.0, show_default=True)
@click.option("--response-timeout", default=10.0, show_default=True)
@click.option("--source", default="12345", show_default=True)
@click.option("--dest-prefix", default="4477", show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--quiet", is_flag=True, help="no progress bar")
def main(**opts: Any) -> None:
    """SMPP 3.4 load generator (ESME).

    Exits 1 when receipts it asked for are missing after --receipt-timeout.
    """
    if opts["rate"] is None and not opts["rate_steps"]:
        raise click.UsageError(
            "say how fast: --rate N submit_sm/s (--rate 0: unthrottled), or --rate-steps"
        )
    if opts["count"] is None and opts["duration"] is None and not opts["rate_steps"]:
        raise click.UsageError("say how much: --count N messages, or --duration SECONDS")
    config = LoadConfig(
        host=opts["host"],
        port=opts["port"],
        system_id=opts["system_id"],
        password=opts["password"],
        binds=opts["binds"],
        bind_mode=opts["bind_mode"],
        window=opts["window"],
        rate=opts["rate"] or 0.0,
        rate_steps=parse_steps(opts["rate_steps"]),
        duration=opts["duration"],
        count=opts["count"],
        mix=parse_mix(opts["mix"]),
        multipart_share=opts["multipart_share"],
        registered_delivery=opts["registered_delivery"],
        receipt_all_parts=opts["receipt_all_parts"],
        receipt_timeout=opts["receipt_timeout"],
        response_timeout=opts["response_timeout"],
        source=opts["source"],
        dest_prefix=opts["dest_prefix"],
        seed=opts["seed"],
        progress=not opts["quiet"] and sys.stderr.isatty(),
    )
    try:
        result = asyncio.run(run_load(config))
    except BindFailed as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot connect: {exc}") from None
    text = json.dumps(result.to_dict(), indent=2)
    if opts["json_out"] is not None:
        opts["json_out"].write_text(text + "\n")
    click.echo(text)
    missing = result.receipts_missing
    if missing:
        click.echo(
            f"loadgen: {missing} of {result.receipts_expected} receipts missing after "
            f"{config.receipt_timeout:g} s (--receipt-timeout)",
            err=True,
        )
        sys.exit(1)
