"""`python -m benchmarks.cpu 10`: CPU per gateway role while a benchmark runs.

Samples every process of this machine for N seconds and sums them by role
(each Ray actor kind, the Kafka broker, the load tools), so a load tester sees
which part of the stack eats the machine. Percentages are of one core.
"""

from __future__ import annotations

import json
import time

import click
import psutil

ROLES = (
    "ray::ListenerImpl",
    "ray::RouterImpl",
    "ray::CorrelatorImpl",
    "ray::ConnectorHostImpl",
    "ray::SupervisorImpl",
    "ray::DashboardAgent",
    "gcs_server",
    "raylet",
    "kafka.Kafka",
    "postgres",
    "benchmarks.loadgen",
    "benchmarks.smsc_sim",
)


def role_of(cmdline: list[str]) -> str | None:
    text = " ".join(cmdline)
    return next((r for r in ROLES if r in text), None)


def sample(seconds: float) -> dict[str, float]:
    """CPU % of one core per role over `seconds`, plus the machine's busy share."""
    procs: list[tuple[psutil.Process, str]] = []
    for p in psutil.process_iter():
        try:
            role = role_of(p.cmdline())
            if role:
                p.cpu_percent(None)
                procs.append((p, role))
        except psutil.Error:
            continue
    before = psutil.cpu_times()
    time.sleep(seconds)
    after = psutil.cpu_times()
    out: dict[str, float] = {}
    for p, role in procs:
        try:
            out[role] = round(out.get(role, 0.0) + p.cpu_percent(None), 1)
        except psutil.Error:
            continue
    busy = sum(
        getattr(after, f) - getattr(before, f) for f in ("user", "system", "nice", "irq", "softirq")
    )
    idle = (after.idle - before.idle) + (after.iowait - before.iowait)
    out["machine_busy_%"] = round(100 * busy / (busy + idle), 1) if busy + idle else 0.0
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("seconds", type=float, default=10.0)
def main(seconds: float) -> None:
    """Print CPU per role (% of one core) over SECONDS as JSON."""
    click.echo(json.dumps(dict(sorted(sample(seconds).items())), indent=1))


if __name__ == "__main__":
    main()
