"""`python -m benchmarks.e2e`: the whole path under load, scenario by scenario.

customer (loadgen) → gateway on Ray (listener, router, provider binds,
correlator, deliverer) → SMSC simulator → receipts back to the customer.

Uses the services of a running ``smsgw run`` if there is one (its Ray
cluster too), else starts the embedded stack itself. Configures the customer
`bench`, a provider per simulator and the routes through the ``smsgw`` CLI,
runs the chosen scenarios (`--scenario steady,step,multipart,throttled,kill`,
default all) `--runs` times each and writes into `--out` (default
``benchmarks/results/<timestamp>/``):

- ``report.json``: options, and per scenario every run's figures and the medians;
- ``<scenario>.png``: throughput and latency per second of the median run
  (``<scenario>-run<N>.png`` for every run);
- ``raw/``: each loadgen and simulator JSON.

    python -m benchmarks.e2e                                  # everything, 3 runs each
    python -m benchmarks.e2e --scenario steady --rate 500 --runs 3 --duration 30
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import click

from benchmarks import report
from benchmarks.bench_env import BenchEnv
from benchmarks.cpu import CpuMeter, machine_scope, per_message
from benchmarks.plots import plot_cpu, plot_run
from benchmarks.runs import ROOT
from benchmarks.scenarios import (
    KILL_KINDS,
    MAIN_PREFIX,
    SCENARIOS,
    Ctx,
    Options,
    parse_scenarios,
    warm_up,
)

SERIES_KEYS = ("per_second", "events", "marks", "plot_extra", "plot_hlines", "t0_unix")
LOSS_KEYS = ("receipts_missing", "receipts_duplicate", "timeouts", "rejected", "throttled")


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def summarise(name: str, description: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The report entry of one scenario: its runs, their medians and loss totals."""
    figures = [{k: v for k, v in r.items() if k not in SERIES_KEYS} for r in runs]
    return {
        "description": description,
        "runs": runs,
        "median": report.medians(figures) if figures else {},
        "totals": report.totals(figures, LOSS_KEYS),
    }


def plot_scenario(out: Path, name: str, runs: list[dict[str, Any]], delay_ms: float) -> list[str]:
    """One PNG per run, and `<name>.png` for the median run (by accepted/s)."""
    files: list[str] = []
    if not runs:
        return files
    best = report.median_run(runs)
    if any(r.get("cpu") for r in runs):
        cpu = [r.get("cpu") or {} for r in runs]
        files.append(plot_cpu(out / f"{name}-cpu.png", cpu, title=f"{name}: CPU per message").name)
    for i, r in enumerate(runs):
        title = (
            f"{name} run {i + 1}: offered {r.get('offered_rate')}/s, "
            f"accepted {r.get('accepted_per_s')}/s, receipts missing {r.get('receipts_missing')}"
        )
        kw: dict[str, Any] = {
            "title": title,
            "receipt_delay_ms": delay_ms,
            "events": [tuple(e) for e in r.get("events") or []],
            "marks": [tuple(e) for e in r.get("marks") or []],
            "extra_lines": r.get("plot_extra"),
            "hlines": r.get("plot_hlines"),
        }
        per_second = r.get("per_second") or {}
        path = plot_run(out / f"{name}-run{i + 1}.png", per_second, **kw)
        files.append(path.name)
        if i == best:
            kw["title"] = f"[median run] {title}"
            files.insert(0, plot_run(out / f"{name}.png", per_second, **kw).name)
    return files


def _line(name: str, i: int, r: dict[str, Any]) -> str:
    resp, rcpt = r.get("resp_ms") or {}, r.get("receipt_minus_delay_ms") or {}
    text = (
        f"{name} run {i + 1}: offered {r.get('offered_rate')}/s accepted "
        f"{r.get('accepted_per_s')}/s | resp p50/p99 {resp.get('p50')}/{resp.get('p99')} ms | "
        f"receipt-delay p50/p99 {rcpt.get('p50')}/{rcpt.get('p99')} ms | missing "
        f"{r.get('receipts_missing')} dup {r.get('receipts_duplicate')} "
        f"rejected {r.get('rejected_by_status')}"
    )
    cpu = r.get("cpu") or {}
    if cpu.get("gateway_ms_per_msg") is not None:
        top = sorted((cpu.get("ms_per_msg") or {}).items(), key=lambda kv: -(kv[1] or 0))[:4]
        text += (
            f" | CPU/msg {cpu['gateway_ms_per_msg']:.2f} ms ("
            + ", ".join(f"{role} {ms:.2f}" for role, ms in top if ms is not None)
            + ")"
        )
    if "kill" in r:
        k = r["kill"]
        text += (
            f" | killed {k['actor']} at {k['at_s']} s, back after {k['actor_back_after_s']} s, "
            f"receipts stalled {k['receipts_outage_s']} s, recovery accepted/receipts "
            f"{k['recovery_accepted_s']}/{k['recovery_receipts_s']} s"
        )
    if "steps" in r:
        s = r["steps"]
        text += (
            f" | accepted follows up to {s['max_following']}/s (saturated at "
            f"{s['saturated_at']}), receipts up to {s['receipts_max_following']}/s"
        )
    if "slow_provider" in r:
        p = r["slow_provider"]
        text += (
            f" | slow provider max {p['max_per_second']}/s vs contract {p['contract_tps']}/s, "
            f"sim throttled {p['sim_throttled']}"
        )
    return text


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--scenario",
    "scenarios",
    default="all",
    show_default=True,
    help=f"Comma-separated: {','.join(SCENARIOS)} (or all).",
)
@click.option("--runs", default=3, show_default=True, help="Runs per scenario (medians reported).")
@click.option("--duration", default=20.0, show_default=True, help="Seconds of load per run.")
@click.option("--rate", default=2000.0, show_default=True, help="Offered submits/s (steady, …).")
@click.option("--binds", default=4, show_default=True, help="Customer transceiver binds.")
@click.option("--window", default=100, show_default=True, help="Outstanding submits per bind.")
@click.option("--provider-binds", default=2, show_default=True, help="Binds to the main SMSC.")
@click.option("--receipt-delay", default=0.5, show_default=True, help="Simulator receipt delay.")
@click.option("--receipt-timeout", default=30.0, show_default=True, help="Wait after sending.")
@click.option("--steps", default="250,500,1000,2000,3000", show_default=True, help="step: rates.")
@click.option("--step-seconds", default=10.0, show_default=True, help="step: seconds per step.")
@click.option("--multipart-share", default=0.5, show_default=True, help="multipart: share.")
@click.option("--slow-tps", default=50, show_default=True, help="throttled: contract TPS.")
@click.option("--slow-rate", default=75.0, show_default=True, help="throttled: offered to it.")
@click.option(
    "--kill-target",
    type=click.Choice(KILL_KINDS),
    default="router",
    show_default=True,
    help="kill: which actor kind gets SIGKILL.",
)
@click.option("--kill-after", type=float, default=None, help="kill: seconds in (default T/3).")
@click.option(
    "--warmup",
    default=15.0,
    show_default=True,
    help="Seconds of unreported load before the first scenario (0: none).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Results folder (default benchmarks/results/<timestamp>).",
)
def main(scenarios: str, out: Path | None, steps: str, **kw: Any) -> None:
    """End-to-end benchmark of the gateway: scenarios, JSON report, PNG plots."""
    try:
        names = parse_scenarios(scenarios)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    opts = Options(steps=_floats(steps), **kw)
    out = out or ROOT / "benchmarks" / "results" / time.strftime("%Y%m%d-%H%M%S")
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        click.echo(f"e2e: {msg}", err=True)

    doc: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": {**opts.to_dict(), "scenarios": names},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "scenarios": {},
    }
    path = out / "report.json"
    failed = False
    with BenchEnv(raw, log) as env:
        doc["gateway"] = "embedded stack" if env.embedded else "running smsgw"
        main_sim = env.start_sim("main", receipt_delay=opts.receipt_delay)
        provider = env.provider_name("main")
        env.add_provider(
            provider, main_sim.port, tps=100_000, binds=opts.provider_binds, window=100
        )
        env.add_route(MAIN_PREFIX, provider)
        env.wait_bound(provider, opts.provider_binds)
        ctx = Ctx(env, opts, raw, provider, log)
        warm_up(ctx)
        for name in names:
            scenario = SCENARIOS[name]()
            log(f"scenario {name}: {scenario.description}")
            runs: list[dict[str, Any]] = []
            error = None
            try:
                scenario.setup(ctx)
                for i in range(opts.runs):
                    meter = CpuMeter(scope=None if env.embedded else machine_scope).start()
                    r = scenario.run(ctx, i)
                    r["cpu"] = per_message(meter.stop(), r.get("accepted"))
                    click.echo(_line(name, i, r), err=True)
                    runs.append(r)
            except Exception as exc:  # keep the other scenarios' results
                failed = True
                error = f"{type(exc).__name__}: {exc}"
                log(f"scenario {name} failed: {error}")
                traceback.print_exc()
            finally:
                try:
                    scenario.teardown(ctx)
                except Exception as exc:
                    log(f"scenario {name}: teardown failed: {exc!r}")
            entry = summarise(name, scenario.description, runs)
            if error:
                entry["error"] = error
            entry["plots"] = plot_scenario(out, name, runs, opts.receipt_delay_ms)
            doc["scenarios"][name] = entry
            path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        doc["main_simulator"] = {
            k: v
            for k, v in env.stop_sim(main_sim).items()
            if k not in ("per_second_accepted", "per_second_submits")
        }
    doc["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    click.echo(json.dumps({n: s["median"] for n, s in doc["scenarios"].items()}, indent=2))
    log(f"report: {path}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if failed else 0)  # Ray's driver threads can hold the interpreter open


if __name__ == "__main__":
    main()
