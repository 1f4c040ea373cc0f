"""`python -m benchmarks.loadgen.ceiling`: the tools' own throughput ceiling.

Starts smsc-sim and loadgen as two processes (one core each), repeats the
run and prints the median accepted msg/s and latency percentiles as JSON.
Extra arguments after `--` go to the load generator.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise click.ClickException(f"smsc-sim did not listen on {port}")


def one_run(sim_args: list[str], load_args: list[str], duration: float) -> dict[str, Any]:
    port = _free_port()
    out = Path(tempfile.mkdtemp(prefix="smsgw-ceiling-")) / "load.json"
    py = sys.executable
    sim = subprocess.Popen(
        [py, "-m", "benchmarks.smsc_sim", "--port", str(port), "--quiet", *sim_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port)
        command = [py, "-m", "benchmarks.loadgen", "--port", str(port), "--quiet"]
        command += ["--duration", str(duration), "--json-out", str(out), *load_args]
        subprocess.run(
            command,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    finally:
        sim.terminate()
        sim.wait(10)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--runs", default=3, show_default=True)
@click.option("--duration", default=20.0, show_default=True)
@click.option("--sim-window", default=50, show_default=True, help="smsc-sim deliver_sm window")
@click.option("--receipt-delay", default=0.5, show_default=True)
@click.argument("load_args", nargs=-1)
def main(
    runs: int, duration: float, sim_window: int, receipt_delay: float, load_args: tuple[str, ...]
) -> None:
    """Median of `runs` loadgen -> smsc-sim runs (default: 4 binds, window 50, open throttle)."""
    sim_args = ["--window", str(sim_window), "--receipt-delay", str(receipt_delay)]
    args = list(load_args) or ["--binds", "4", "--window", "50", "--registered-delivery", "1"]
    rows = []
    for i in range(runs):
        r = one_run(sim_args, args, duration)
        row = {
            "accepted_per_s": r["accepted_per_s"],
            "resp_p50_ms": r["submit_resp_latency_ms"]["p50"],
            "resp_p99_ms": r["submit_resp_latency_ms"]["p99"],
            "receipt_p50_ms": r["receipt_latency_ms"]["p50"],
            "receipt_p99_ms": r["receipt_latency_ms"]["p99"],
            "receipts_missing": r["receipts_missing"],
            "rejected": r["rejected"] + r["throttled"],
        }
        print(f"run {i + 1}: {json.dumps(row)}", file=sys.stderr, flush=True)
        rows.append(row)
    median = {k: statistics.median(row[k] or 0 for row in rows) for k in rows[0]}
    click.echo(
        json.dumps(
            {"runs": rows, "median": median, "load_args": args, "sim_args": sim_args}, indent=2
        )
    )


if __name__ == "__main__":
    main()
