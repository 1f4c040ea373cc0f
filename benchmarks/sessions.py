"""`python -m benchmarks.sessions`: what bound customer sessions cost the listener (issue 13).

Starts the embedded stack (or uses a running ``smsgw run``), creates customers
and opens transceiver binds to the node's SMPP listener from this process in
steps (500, 1000, 2000 by default). At each step, with every session bound and
idle, it measures over ``--idle`` seconds

- the listener actor's resident memory (RSS) and its growth per session
  against the baseline of ``--concurrency`` sessions bound all at once;
- the listener's CPU and the gateway's (every process of the stack but this
  driver), as % of one core.

The sessions come from several loopback source addresses (127.0.0.2, …):
the listener allows ``smpp_max_connections_per_ip`` (64) connections per
address, as it would for customers behind their own NATs. Each customer has
at most ``--per-customer`` binds (its ``max_binds``). Binds are opened
``--concurrency`` at a time (each one is a password check, argon2id), and at
most ``CHECKS_PER_IP`` at a time from any one address: the listener checks at
most 8 passwords at once per source address and refuses the bind beyond that
(``BindGuard.max_in_progress``, issue 11) with ESME_RBINDFAIL, as it does any
bind it refuses.

Writes ``sessions-<time>.json`` and a plot into ``--out``.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import threading
import time
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click
import psutil

from benchmarks.bench_env import BenchEnv
from benchmarks.cpu import CpuMeter
from benchmarks.loadgen.client import EsmeConnection
from benchmarks.runs import ROOT
from smsgw.smpp import BindMode

PASSWORD = "sessions"
PER_IP = 60  # below the listener's default per-address limit of 64
# Binds in flight from one source address: the listener's BindGuard refuses a bind
# while 8 password checks from its address are under way (no lockout, but
# ESME_RBINDFAIL all the same). Kept below 8 so that no ordering of answers reaches it.
CHECKS_PER_IP = 4


class LoopThread:
    """The sessions' asyncio loop, in a thread beside the measuring."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="esmes")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def _open(
    port: int, start: int, count: int, per_customer: int, concurrency: int, addresses: int
) -> list[EsmeConnection]:
    """Bind sessions number `start` … `start + count - 1` (session i: customer i // per_customer,
    source address 127.0.0.(2 + i % addresses), the same for a session whatever the step).

    At most `concurrency` binds are in flight, and at most CHECKS_PER_IP from any one
    address: binds finish in any order, so the round-robin of addresses alone would
    not keep one address under the listener's 8 password checks at once."""
    gate = asyncio.Semaphore(concurrency)
    per_address = [asyncio.Semaphore(CHECKS_PER_IP) for _ in range(addresses)]

    async def one(i: int) -> EsmeConnection:
        async with gate, per_address[i % addresses]:
            src = f"127.0.0.{2 + i % addresses}"
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(
                lambda: EsmeConnection(_Quiet(), window=1, response_timeout=120.0),
                "127.0.0.1",
                port,
                local_addr=(src, 0),
            )
            await conn.bind(BindMode.TRX, f"sess{i // per_customer}", PASSWORD, 120.0)
            return conn

    return list(await asyncio.gather(*(one(i) for i in range(start, start + count))))


class _Quiet:
    """Handler of an idle session: nothing is submitted, deliveries are answered by the shell."""

    def on_submit_resp(self, *_a: Any) -> None: ...

    def on_submit_lost(self, *_a: Any) -> None: ...

    def on_deliver(self, *_a: Any) -> None: ...

    def on_input_done(self, *_a: Any) -> None: ...


async def _keep_alive(conns: list[EsmeConnection]) -> None:
    """Each session's timers (its own enquire_link every 30 s, as a real ESME sends them,
    so the listener's inactivity timer never closes an idle bind)."""
    while True:
        now = asyncio.get_running_loop().time()
        for c in list(conns):
            c.tick(now)
        await asyncio.sleep(1.0)


def _measure(listener: psutil.Process, idle: float) -> dict[str, float]:
    """Idle costs over `idle` s: every process this driver started (the embedded stack)."""
    rss_at_start_mb = listener.memory_info().rss / 2**20
    meter = CpuMeter().start()
    time.sleep(idle)  # the measuring window itself, not a wait for an event
    cpu = meter.stop()
    wall = cpu.pop("wall_s")
    return {
        "listener_rss_mb": listener.memory_info().rss / 2**20,
        "listener_rss_idle_growth_mb": listener.memory_info().rss / 2**20 - rss_at_start_mb,
        "gateway_cpu_pct": 100.0 * sum(v for k, v in cpu.items() if k != "bench driver") / wall,
        "listener_cpu_pct": 100.0 * cpu.get("listener", 0.0) / wall,
    }


def _step(
    port: int,
    addresses: int,
    loop: LoopThread,
    listener: psutil.Process,
    conns: list[EsmeConnection],
    n: int,
    idle: float,
    per_customer: int,
    concurrency: int,
) -> dict[str, float]:
    """Bind sessions until `n` are open, then measure them idle."""
    t0 = time.monotonic()
    start, count = len(conns), n - len(conns)
    conns += loop.run(_open(port, start, count, per_customer, concurrency, addresses), 600)
    bind_s = time.monotonic() - t0
    click.echo(f"{n} sessions bound ({bind_s:.1f} s for this step); measuring {idle:.0f} s")
    return {"sessions": float(n), "bind_s": bind_s, **_measure(listener, idle)}


@click.command()
@click.option("--steps", default="500,1000,2000", show_default=True, help="sessions bound")
@click.option("--idle", default=30.0, show_default=True, help="seconds measured at each step")
@click.option("--per-customer", default=100, show_default=True, help="binds per customer")
@click.option("--concurrency", default=16, show_default=True, help="binds opened at once")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=ROOT / "benchmarks" / "results",
    show_default=True,
)
def main(steps: str, idle: float, per_customer: int, concurrency: int, out: Path) -> None:
    counts = sorted(n for n in {int(s) for s in steps.split(",") if s.strip()} if n > concurrency)
    if not counts:
        raise click.BadParameter("no step above the baseline (--concurrency)", param_hint="--steps")
    total = counts[-1]
    out.mkdir(parents=True, exist_ok=True)
    loop = LoopThread()
    conns: list[EsmeConnection] = []
    rows: list[dict[str, float]] = []
    with BenchEnv(Path(tempfile.mkdtemp(prefix="smsgw-sessions-")), log=click.echo) as env:
        for c in range(math.ceil(total / per_customer)):
            env.smsgw(
                "customer", "add", f"sess{c}", "--password", PASSWORD,
                "--max-binds", str(per_customer),
            )  # fmt: skip
        name, pid = env.find_actor("listener")
        listener = psutil.Process(pid)
        before_first_bind_mb = listener.memory_info().rss / 2**20
        click.echo(f"listener {name} pid {pid}: {before_first_bind_mb:.0f} MB before any bind")
        # One address list for every step: session i keeps its address, and no address
        # carries more than PER_IP sessions at the last step.
        addresses = max(math.ceil(total / PER_IP), concurrency)
        keep_alive = asyncio.run_coroutine_threadsafe(_keep_alive(conns), loop.loop)
        try:
            # The baseline: `concurrency` sessions bound at once, so that their password
            # checks run together on every thread of the listener's pool. Each Argon2id
            # check takes 19 MiB, which the thread's malloc arena keeps afterwards: the
            # listener's RSS rose 95 MB from 1 to 10 sessions and not at all from 10 to
            # 50. That is what every later bind shares, not a per-session cost; with a
            # baseline of one session it went into the slope (10 MB "per session").
            for n in [concurrency, *counts]:
                rows.append(
                    _step(
                        env.port,
                        addresses,
                        loop,
                        listener,
                        conns,
                        n,
                        idle,
                        per_customer,
                        concurrency,
                    )
                )
                if n > concurrency:
                    grown_mb = rows[-1]["listener_rss_mb"] - rows[0]["listener_rss_mb"]
                    rows[-1]["rss_per_session_kb"] = 1024 * grown_mb / (n - concurrency)
        except BaseException:
            # Said now: leaving BenchEnv stops Ray, and Ray's client may end this process
            # (it aborts when its GCS is gone) before Python prints the exception.
            traceback.print_exc()
            raise
        alive = sum(1 for c in conns if not c.closed.done())
        click.echo(f"{alive} of {len(conns)} sessions still bound at the end")

        async def close_all() -> None:
            await asyncio.gather(*(c.unbind(grace=5.0) for c in conns))

        keep_alive.cancel()
        loop.run(close_all(), timeout=120)
    loop.close()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = {
        "before_first_bind_mb": before_first_bind_mb,
        "steps": rows,
        "idle_s": idle,
        "still_bound": alive,
        "total": len(conns),
    }
    (out / f"sessions-{stamp}.json").write_text(json.dumps(report, indent=2))
    click.echo(
        "| sessions | bind time (s) | listener RSS (MB) | per session (KB) "
        "| listener CPU (% core) | gateway CPU (% core) |"
    )
    click.echo("|---|---|---|---|---|---|")
    for r in rows:
        per = f"{r['rss_per_session_kb']:.1f}" if "rss_per_session_kb" in r else "— (baseline)"
        click.echo(
            f"| {int(r['sessions'])} | {r['bind_s']:.1f} | {r['listener_rss_mb']:.0f} "
            f"| {per} | {r['listener_cpu_pct']:.1f} "
            f"| {r['gateway_cpu_pct']:.1f} |"
        )
    _plot(out / f"sessions-{stamp}.png", rows)


def _plot(path: Path, rows: list[dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["sessions"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(xs, [r["listener_rss_mb"] for r in rows], "o-", label="listener RSS (MB)")
    ax.set_xlabel("bound customer sessions")
    ax.set_ylabel("MB")
    ax2 = ax.twinx()
    ax2.plot(xs, [r["listener_cpu_pct"] for r in rows], "s--", color="tab:red", label="CPU %")
    ax2.set_ylabel("listener CPU, % of one core (idle)")
    fig.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    click.echo(f"plot: {path}")


if __name__ == "__main__":
    main()
