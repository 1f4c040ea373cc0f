"""The end-to-end scenarios: what each one offers, what it measures beyond the basics.

Every scenario runs the load generator as the customer `bench` against the
gateway (receipts on) and returns one record per run: the loadgen figures
(`report.run_figures`), the per-second series for the plot and what is
particular to it (step analysis, the throttled provider's TPS, the kill).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.bench_env import CUSTOMER2, BenchEnv, BenchError, SimProcess
from benchmarks.runs import LoadProcess, loadgen_start

MAIN_PREFIX = "4477"
SLOW_PREFIX = "4478"
KILL_KINDS = ("router", "provider", "correlator")


@dataclass(frozen=True)
class Options:
    runs: int = 3
    duration: float = 20.0
    rate: float = 2000.0
    binds: int = 4
    window: int = 100
    provider_binds: int = 2
    receipt_delay: float = 0.5
    receipt_timeout: float = 30.0
    steps: tuple[float, ...] = (250, 500, 1000, 2000, 3000)
    step_seconds: float = 10.0
    multipart_share: float = 0.5
    slow_tps: int = 50
    slow_rate: float = 75.0
    kill_target: str = "router"
    kill_after: float | None = None  # default: a third into the run
    warmup: float = 15.0  # seconds of unreported load first (JIT, page cache, connections)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def receipt_delay_ms(self) -> float:
        return self.receipt_delay * 1000.0


@dataclass
class Ctx:
    """What a scenario run gets: the environment, the main provider, where to write."""

    env: BenchEnv
    opts: Options
    raw: Path
    main_provider: str
    log: Callable[[str], None]


Run = dict[str, Any]


class Scenario:
    name = ""
    description = ""

    def setup(self, ctx: Ctx) -> None:
        """Once before its runs (e.g. an extra provider)."""

    def teardown(self, ctx: Ctx) -> None:
        """Once after its runs."""

    def run(self, ctx: Ctx, i: int) -> Run:
        raise NotImplementedError

    # shared by the scenarios
    def _load(self, ctx: Ctx, i: int, role: str = "load", **kw: Any) -> LoadProcess:
        o = ctx.opts
        args: dict[str, Any] = {
            "rate": o.rate,
            "duration": o.duration,
            "binds": o.binds,
            "window": o.window,
            "receipts": True,
            "receipt_timeout": o.receipt_timeout,
        }
        args.update(kw)
        out = ctx.raw / f"{self.name}-run{i + 1}-{role}.json"
        return loadgen_start(ctx.env.port, out, **args)

    def _record(self, ctx: Ctx, load: dict[str, Any]) -> Run:
        return {
            **report.run_figures(load, receipt_delay_ms=ctx.opts.receipt_delay_ms),
            "t0_unix": load.get("t0_unix"),
            "send_seconds": load.get("send_seconds"),
            "per_second": load.get("per_second") or {},
            "events": [],  # (second, label): drawn as solid lines (the kill)
            "marks": [(load.get("send_seconds") or 0.0, "sending ends")],  # dotted lines
        }


class Steady(Scenario):
    name = "steady"
    description = "fixed offered rate (--rate) for --duration s: throughput, latency, loss"

    def run(self, ctx: Ctx, i: int) -> Run:
        rec = self._record(ctx, self._load(ctx, i).result())
        rec["target_rate"] = ctx.opts.rate
        return rec


def warm_up(ctx: Ctx) -> None:
    """Load the fresh stack for `warmup` seconds before anything is measured.

    The first seconds after start-up (the broker's JIT, first transactions,
    consumer groups settling) are much slower than the steady state and would
    otherwise land in the first run of the first scenario.
    """
    o = ctx.opts
    if o.warmup <= 0:
        return
    rate = min(o.rate, 500.0)
    ctx.log(f"warm-up: {o.warmup:.0f} s at {rate:.0f}/s (not reported)")
    Steady()._load(
        ctx, 0, role="warmup", rate=rate, duration=o.warmup, receipt_timeout=10.0
    ).result()


class Step(Scenario):
    name = "step"
    description = (
        "offered rate in steps (--steps, --step-seconds each): where accepted/s "
        "and receipts/s stop following the offered rate"
    )

    def run(self, ctx: Ctx, i: int) -> Run:
        o = ctx.opts
        steps = [(o.step_seconds, float(r)) for r in o.steps]
        spec = ",".join(f"{r:g}:{s:g}" for s, r in steps)
        load = self._load(
            ctx,
            i,
            rate=0.0,
            duration=None,
            receipt_timeout=max(o.receipt_timeout, 60.0),
            extra=["--rate-steps", spec],
        ).result()
        rec = self._record(ctx, load)
        rec["steps"] = report.step_analysis(rec["per_second"], steps)
        start = 0.0
        for secs, rate in steps:
            rec["marks"].append((start, f"{rate:g}/s"))
            start += secs
        return rec


class Multipart(Scenario):
    name = "multipart"
    description = (
        "--rate submits/s where --multipart-share of the messages are multipart "
        "(GSM 70 % / UCS2 30 %): the segment path end to end; part 1 asks for the receipt"
    )

    def run(self, ctx: Ctx, i: int) -> Run:
        o = ctx.opts
        load = self._load(
            ctx,
            i,
            extra=["--multipart-share", str(o.multipart_share), "--mix", "gsm=0.7,ucs2=0.3"],
        ).result()
        rec = self._record(ctx, load)
        rec["target_rate"] = o.rate
        rec["messages"] = load.get("messages")
        return rec


class Throttled(Scenario):
    name = "throttled"
    description = (
        "besides --rate to the main provider, --slow-rate msg/s to a second provider "
        "(prefix 4478) whose contract and simulator allow --slow-tps: the gateway "
        "must queue, never exceed the contract in any 1-s window (second customer "
        "bench2, so that each load generator gets its own receipts)"
    )

    def setup(self, ctx: Ctx) -> None:
        from smsgw.cluster.procs import free_port

        self.slow = ctx.env.provider_name("slow")
        self.port = free_port()
        self.sim: SimProcess | None = None
        ctx.env.ensure_customer(CUSTOMER2)
        ctx.env.add_provider(self.slow, self.port, tps=ctx.opts.slow_tps, binds=1, window=10)
        ctx.env.add_route(SLOW_PREFIX, self.slow, CUSTOMER2)

    def teardown(self, ctx: Ctx) -> None:
        if self.sim is not None:
            ctx.env.stop_sim(self.sim)
        ctx.env.remove_provider(self.slow)

    def run(self, ctx: Ctx, i: int) -> Run:
        o, env = ctx.opts, ctx.env
        # A fresh simulator per run: its per-second counters cover this run only.
        self.sim = env.start_sim(
            "slow", port=self.port, receipt_delay=o.receipt_delay, tps_limit=o.slow_tps
        )
        env.wait_bound(self.slow, 1)
        backlog_s = o.duration * max(0.0, o.slow_rate / o.slow_tps - 1.0)
        main = self._load(ctx, i)
        slow = self._load(
            ctx,
            i,
            role="slow",
            rate=o.slow_rate,
            binds=1,
            window=50,
            receipt_timeout=o.receipt_timeout + backlog_s,
            system_id=CUSTOMER2,
            extra=["--dest-prefix", SLOW_PREFIX],
        )
        main_load, slow_load = main.result(), slow.result()
        sim_json = env.stop_sim(self.sim)
        self.sim = None
        rec = self._record(ctx, main_load)
        rec["target_rate"] = o.rate
        tps = report.tps_compliance(sim_json, o.slow_tps, t0_unix=main_load.get("t0_unix"))
        rec["slow_provider"] = {k: v for k, v in tps.items() if k != "per_second"}
        rec["slow_customer"] = report.run_figures(slow_load, receipt_delay_ms=o.receipt_delay_ms)
        rec["plot_extra"] = {f"{self.slow} accepted/s at its SMSC": tps.get("per_second", [])}
        rec["plot_hlines"] = {f"contract {o.slow_tps}/s": float(o.slow_tps)}
        return rec


class Kill(Scenario):
    name = "kill"
    description = (
        "--rate for --duration s; after --kill-after s one gateway actor process "
        "(--kill-target) is SIGKILLed: loss, and seconds until accepted/s and "
        "receipts/s are back at the offered rate"
    )

    def run(self, ctx: Ctx, i: int) -> Run:
        o, env = ctx.opts, ctx.env
        if o.kill_target not in KILL_KINDS:
            raise BenchError(f"--kill-target must be one of {KILL_KINDS}")
        after = o.kill_after if o.kill_after is not None else o.duration / 3
        started = time.time()
        # a longer wait for receipts: the backlog after the kill is not loss
        load = self._load(ctx, i, receipt_timeout=max(o.receipt_timeout, 60.0))
        time.sleep(max(0.0, after + 0.5))  # + roughly the loadgen's start and bind
        name, pid = env.find_actor(o.kill_target, ctx.main_provider)
        ctx.log(f"kill: SIGKILL {name} (pid {pid})")
        killed_at = time.time()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError as exc:
            raise BenchError(f"{name} (pid {pid}) is not a process on this machine") from exc
        restart_s = env.wait_restarted(name, pid, timeout=max(5.0, o.duration))
        result = load.result()
        rec = self._record(ctx, result)
        t0 = float(result.get("t0_unix") or started)
        kill_s = killed_at - t0
        ps = rec["per_second"]
        end = int(o.duration)
        rec["target_rate"] = o.rate
        rec["kill"] = {
            "actor": name,
            "pid": pid,
            "at_s": round(kill_s, 3),
            "actor_back_after_s": restart_s,
            "recovery_accepted_s": report.recovery_time(
                ps.get("accepted") or [], kill_s, o.rate, end=end
            ),
            "recovery_receipts_s": report.recovery_time(ps.get("receipts") or [], kill_s, o.rate),
            "min_accepted_per_s_after": report.dip(ps.get("accepted") or [], kill_s, end=end),
            "min_receipts_per_s_after": report.dip(ps.get("receipts") or [], kill_s, end=end),
            "receipts_outage_s": report.outage(ps.get("receipts") or [], kill_s, o.rate),
            "zero_loss": rec["receipts_missing"] == 0 and not rec["timeouts"],
        }
        rec["events"].append((kill_s, f"SIGKILL {name}"))
        return rec


SCENARIOS: dict[str, type[Scenario]] = {
    s.name: s for s in (Steady, Step, Multipart, Throttled, Kill)
}


def parse_scenarios(text: str) -> list[str]:
    """`"steady,kill"` -> ["steady", "kill"]; "all" or "" -> every scenario, in order."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or names == ["all"]:
        return list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    return names
