"""CPU per gateway role: `python -m benchmarks.cpu 10`, and the e2e runs' meter.

Two uses:

- ``python -m benchmarks.cpu N`` samples every process of this machine for N
  seconds and prints % of one core per role while some benchmark runs;
- `CpuMeter` (used by ``benchmarks.e2e`` around each run) sums the CPU
  seconds (user + system) each process of *one* stack spent during the run,
  by role, so the report can say how many CPU milliseconds one end-to-end
  message costs and where. The machine is shared (other stacks, other
  engineers), so wall-clock figures are noisy; CPU time per message is not
  (much): it counts only this stack's processes.

A process's role comes from its command line: Ray names a worker process
``ray::<ActorClass>`` (``ray::<ActorClass>.<method>`` while a call runs),
the broker is ``kafka.Kafka``, the load tools are ``benchmarks.loadgen`` and
``benchmarks.smsc_sim``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import click
import psutil

# (role, substrings of the command line), first match wins. The deliverer
# (receipts and MO to customers) runs inside the listener's process.
ROLE_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kafka broker", ("kafka.Kafka",)),
    # Ray titles an actor's process `ray::<name>:<Class>[.<method>]`
    ("listener", ("ListenerImpl",)),
    ("provider binds", ("ConnectorHostImpl",)),  # every bind of a node is a task there
    ("router", ("RouterImpl",)),
    ("correlator", ("CorrelatorImpl",)),
    (
        "ray system",
        (
            "ray::IDLE",
            "ray::Dashboard",
            "ray::RuntimeEnv",
            "gcs_server",
            "raylet",
            "ray/",
            "ray.dashboard",
            "smsgw.actors.loopback",  # `ray start --head --block` under its loopback shim
        ),
    ),
    ("other actors", ("ray::",)),
    ("load tools", ("benchmarks.loadgen", "benchmarks.smsc_sim")),
    ("postgres", ("postgres",)),
)
# Not the gateway's cost: what offers the load and plays the provider, and
# the benchmark's own driver process.
NOT_GATEWAY = frozenset({"load tools", "bench driver"})
ROLE_ORDER = (
    *(r for r, _ in ROLE_PATTERNS if r not in ("load tools", "postgres")),
    "postgres",
    "other",
    "load tools",
    "bench driver",
)
# The old flat names `python -m benchmarks.cpu` printed (kept for its output).
ROLES = tuple(s for _, subs in ROLE_PATTERNS for s in subs)


def role_of(cmdline: Iterable[str]) -> str | None:
    """The role of a process by its command line (None: not one we know)."""
    text = " ".join(cmdline)
    for role, subs in ROLE_PATTERNS:
        if any(s in text for s in subs):
            return role
    return None


def _cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


@dataclass
class _Seen:
    role: str
    base: float  # CPU seconds when the run began (0 for a process born during it)
    last: float


@dataclass
class CpuMeter:
    """CPU seconds by role of a set of processes between `start()` and `stop()`.

    `scope()` names the processes to count (default: every descendant of this
    process, i.e. the embedded stack the benchmark started and its load tools,
    plus this process as `bench driver`). It is sampled every `interval` s so
    processes born during the run (a restarted actor, a load generator) and
    processes that die during it (a killed actor: its CPU until the last
    sample) are counted too.
    """

    scope: Callable[[], list[psutil.Process]] | None = None
    interval: float = 1.0
    _seen: dict[tuple[int, float], _Seen] = field(default_factory=dict)
    _t0: float = 0.0
    _wall: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _procs(self) -> list[psutil.Process]:
        if self.scope is not None:
            return self.scope()
        me = psutil.Process()
        try:
            return [me, *me.children(recursive=True)]
        except psutil.Error:
            return [me]

    def _sample(self, first: bool) -> None:
        me = os.getpid()
        for p in self._procs():
            try:
                key = (p.pid, p.create_time())
                cpu = _cpu_s(p)
                seen = self._seen.get(key)
                if seen is None:
                    role = "bench driver" if p.pid == me else role_of(p.cmdline()) or "other"
                    born_during = not first and key[1] >= self._t0
                    seen = _Seen(role, 0.0 if born_during else cpu, cpu)
                    self._seen[key] = seen
                seen.last = cpu
            except psutil.Error:
                continue

    def start(self) -> CpuMeter:
        self._seen.clear()
        self._stop.clear()
        self._t0 = time.time()
        self._wall = time.monotonic()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._loop, name="cpu-meter", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(first=False)

    def stop(self) -> dict[str, float]:
        """CPU seconds per role since `start()` (plus `wall_s`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample(first=False)
        out: dict[str, float] = {}
        for s in self._seen.values():
            out[s.role] = out.get(s.role, 0.0) + max(0.0, s.last - s.base)
        out["wall_s"] = time.monotonic() - self._wall
        return out


def machine_scope() -> list[psutil.Process]:
    """Every process of a known role on this machine, and this one's descendants.

    For a running ``smsgw run`` (not a child of the benchmark): other stacks
    on the same machine are counted too, so prefer the embedded stack.
    """
    me = psutil.Process()
    out = {me.pid: me}
    with contextlib.suppress(psutil.Error):
        out.update((c.pid, c) for c in me.children(recursive=True))
    for p in psutil.process_iter():
        try:
            if p.pid not in out and role_of(p.cmdline()):
                out[p.pid] = p
        except psutil.Error:
            continue
    return list(out.values())


def per_message(cpu_s: Mapping[str, float], messages: int | None) -> dict[str, object]:
    """The report's `cpu` entry: ms per message by role, the gateway total, cores used.

    `gateway_ms_per_msg` is every process of the stack (broker, PostgreSQL,
    Ray, the actors) and not the load tools nor the benchmark's driver.
    """
    wall = cpu_s.get("wall_s") or 0.0
    roles = {r: v for r, v in cpu_s.items() if r != "wall_s"}
    ordered = [r for r in ROLE_ORDER if r in roles] + sorted(set(roles) - set(ROLE_ORDER))
    gateway = sum(v for r, v in roles.items() if r not in NOT_GATEWAY)
    n = messages or 0
    return {
        "messages": n,
        "wall_s": round(wall, 2),
        "cpu_s": {r: round(roles[r], 3) for r in ordered},
        "ms_per_msg": {r: round(1000 * roles[r] / n, 4) if n else None for r in ordered},
        "gateway_ms_per_msg": round(1000 * gateway / n, 4) if n else None,
        "gateway_cores": round(gateway / wall, 3) if wall else None,
        "load_tools_ms_per_msg": round(1000 * roles.get("load tools", 0.0) / n, 4) if n else None,
    }


def sample(seconds: float) -> dict[str, float]:
    """CPU % of one core per role over `seconds` (whole machine), plus its busy share."""
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
