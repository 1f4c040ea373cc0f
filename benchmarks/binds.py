"""`python -m benchmarks.binds`: what provider binds cost while idle (issue 13).

Starts the embedded stack (or uses a running ``smsgw run``), runs one SMSC
simulator in this process, then adds providers of two binds each until the
gateway holds N binds, for N = 10, 50, 100, 200 by default. At each N it
measures

- time to bound: from the first provider row written until the simulator has
  all N sessions bound;
- idle CPU over ``--idle`` seconds (30 by default) of every process of the
  gateway (its Ray actors: supervisor, listener, connector host, routers,
  correlators, history), as % of one core, summed and per actor kind;
- their resident memory (RSS), summed and per kind;

and, at the end, how long one provider added (and then removed) takes to be
bound (unbound) at the simulator. Writes ``binds-<time>.json`` and a plot of
CPU and memory against N into ``--out`` (``benchmarks/results``).

Targets: 200 binds bound within 60 s; the gateway idles at <= 10 % of one core;
RSS grows <= 1 MB per bind; add/remove of one provider effective within 1 s.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click
import psutil
import psycopg

from benchmarks.bench_env import BenchEnv
from benchmarks.runs import ROOT
from benchmarks.smsc_sim.config import SimConfig
from benchmarks.smsc_sim.server import SmscSimulator
from smsgw.db.providers import add_provider, remove_provider

SYSTEM_ID = "binds"  # every benchmark provider binds as this system_id
PROBE = "probe"  # the one provider added and removed at the end


class LoopThread:
    """The simulator's asyncio loop, in a thread beside the measuring."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="sim")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def call(self, fn: Callable[[], Any]) -> Any:
        async def wrapper() -> Any:
            return fn()

        return self.run(wrapper())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def gateway_processes(env: BenchEnv) -> dict[int, str]:
    """pid -> actor kind of every live actor of this gateway, and its supervisor."""
    import ray

    from smsgw.actors import runtime as rt

    out = {
        int(a["pid"]): str(a.get("kind") or name.split("@")[0].split("#")[0])
        for name, a in env.actors().items()
        if a.get("pid") and not name.startswith("provider:")  # binds: their host's pid
    }
    sup = rt.find_supervisor(env.settings.topic_prefix)
    if sup is not None:
        out[int(ray.get(sup.pid.remote(), timeout=30))] = "supervisor"
    return out


def idle_sample(pids: dict[int, str], seconds: float) -> dict[str, Any]:
    """CPU (% of one core) and RSS (MB) of `pids` over `seconds`, summed and per kind."""
    procs: dict[int, psutil.Process] = {}
    before: dict[int, float] = {}
    for pid in pids:
        try:
            p = procs[pid] = psutil.Process(pid)
            t = p.cpu_times()
            before[pid] = t.user + t.system
        except psutil.Error:
            continue
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    cpu: dict[str, float] = {}
    rss: dict[str, float] = {}
    count: dict[str, int] = {}
    for pid, p in procs.items():
        try:
            t = p.cpu_times()
            used = t.user + t.system - before[pid]
            mem = p.memory_info().rss / 2**20
        except psutil.Error:
            continue
        kind = pids[pid]
        cpu[kind] = cpu.get(kind, 0.0) + 100 * used / elapsed
        rss[kind] = rss.get(kind, 0.0) + mem
        count[kind] = count.get(kind, 0) + 1
    return {
        "cpu_pct": round(sum(cpu.values()), 2),
        "rss_mb": round(sum(rss.values()), 1),
        "processes": sum(count.values()),
        "by_kind": {
            k: {"processes": count[k], "cpu_pct": round(cpu[k], 2), "rss_mb": round(rss[k], 1)}
            for k in sorted(cpu)
        },
    }


def bound(loop: LoopThread, sim: SmscSimulator, system_id: str) -> int:
    n: int = loop.call(lambda: sim.bound.get(system_id, 0))
    return n


def wait_until(cond: Any, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise click.ClickException(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.02)
    return time.monotonic() - t0


def plot(out: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["binds"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 6))
    top.plot(xs, [r["idle"]["cpu_pct"] for r in rows], "o-", label="all gateway processes")
    top.plot(
        xs,
        [r["idle"]["by_kind"].get("connectors", {}).get("cpu_pct", 0) for r in rows],
        "s--",
        label="connector host(s)",
    )
    top.axhline(10, color="red", linestyle=":", label="target 10 %")
    top.set_ylabel("idle CPU, % of one core")
    top.legend()
    base = rows[0]["idle"]["rss_mb"] - rows[0]["binds"]  # the 1 MB/bind target line
    bottom.plot(xs, [r["idle"]["rss_mb"] for r in rows], "o-", label="RSS, all gateway processes")
    bottom.plot(xs, [base + x for x in xs], "r:", label="+1 MB per bind (target)")
    bottom.set_ylabel("resident memory, MB")
    bottom.set_xlabel("provider binds (2 per provider)")
    bottom.legend()
    fig.suptitle("smsgw: idle cost of provider binds (benchmarks/binds.py)")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


@click.command()
@click.option("--steps", default="10,50,100,200", show_default=True, help="Binds at each step.")
@click.option("--idle", "idle_s", default=30.0, show_default=True, help="Seconds measured idle.")
@click.option("--settle", default=5.0, show_default=True, help="Seconds after bound, unmeasured.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=ROOT / "benchmarks" / "results",
    show_default=True,
)
def main(steps: str, idle_s: float, settle: float, out: Path) -> None:
    targets = sorted({int(s) for s in steps.split(",") if s.strip()})
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    loop = LoopThread()
    sim = SmscSimulator(
        SimConfig(system_id=SYSTEM_ID, password="pw", accounts={PROBE: "pw"}, receipt_delay=0.2)
    )
    loop.run(sim.start())
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {"started": stamp, "steps": rows}
    with tempfile.TemporaryDirectory() as work, BenchEnv(Path(work), log=click.echo) as env:
        assert env.settings.database_url
        url = env.settings.database_url
        names: list[str] = []

        def sample(n: int, took: float | None) -> None:
            time.sleep(settle)
            pids = gateway_processes(env)
            i = idle_sample(pids, idle_s)
            rows.append({"binds": n, "time_to_bound_s": took, "idle": i})
            click.echo(
                f"{n:4d} binds: bound in {took if took is None else round(took, 2)} s; idle "
                f"{i['cpu_pct']:.1f} % of a core, {i['rss_mb']:.0f} MB in {i['processes']} "
                f"processes; {json.dumps(i['by_kind'])}"
            )

        sample(0, None)
        for n in targets:
            add = (n - 2 * len(names)) // 2
            t0 = time.monotonic()
            with psycopg.connect(url) as conn:
                for _ in range(add):
                    name = f"b{len(names):04d}"
                    add_provider(
                        conn, name, host="127.0.0.1", port=sim.port, system_id=SYSTEM_ID,
                        password="pw", binds=2, tps=100,
                    )  # fmt: skip
                    names.append(name)
            want = 2 * len(names)
            wait_until(lambda w=want: bound(loop, sim, SYSTEM_ID) >= w, 600, f"{want} bound")
            sample(want, time.monotonic() - t0)
        # One provider added, then removed: effective at the simulator how soon?
        connections = loop.call(lambda: sim.stats.connections)
        with psycopg.connect(url) as conn:
            t0 = time.monotonic()
            add_provider(
                conn, PROBE, host="127.0.0.1", port=sim.port, system_id=PROBE, password="pw"
            )
        wait_until(lambda: bound(loop, sim, PROBE) == 1, 60, "probe bound")
        add_s = time.monotonic() - t0
        others = bound(loop, sim, SYSTEM_ID)
        with psycopg.connect(url) as conn:
            t0 = time.monotonic()
            remove_provider(conn, PROBE)
        wait_until(lambda: bound(loop, sim, PROBE) == 0, 60, "probe unbound")
        remove_s = time.monotonic() - t0
        result["add_one_provider_s"] = round(add_s, 2)
        result["remove_one_provider_s"] = round(remove_s, 2)
        # Untouched: as many bound as before, and the probe's was the only new connection.
        result["other_binds_untouched"] = (
            others == bound(loop, sim, SYSTEM_ID) == 2 * len(names)
            and loop.call(lambda: sim.stats.connections) == connections + 1
        )
        click.echo(
            f"one provider: bound {add_s:.2f} s after its row was written, unbound "
            f"{remove_s:.2f} s after its removal; other binds untouched: "
            f"{result['other_binds_untouched']}"
        )
        with psycopg.connect(url) as conn:
            for name in names:
                remove_provider(conn, name)
    loop.run(sim.stop())
    loop.close()
    if len(rows) > 1:
        first, last = rows[0]["idle"], rows[-1]["idle"]
        result["rss_mb_per_bind"] = round(
            (last["rss_mb"] - first["rss_mb"]) / max(1, rows[-1]["binds"] - rows[0]["binds"]), 3
        )
    path = out / f"binds-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    plot(out / f"binds-{stamp}.png", rows)
    click.echo(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
