"""What the gateway benchmarks share: loadgen runs as subprocesses, and medians."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def loadgen_cmd(
    port: int,
    out: Path,
    *,
    rate: float,
    duration: float | None,
    binds: int,
    window: int,
    receipts: bool,
    receipt_timeout: float = 30.0,
    system_id: str = "bench",
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line of one loadgen run as customer `system_id` (password `bench`)."""
    cmd = [
        sys.executable, "-m", "benchmarks.loadgen", "--host", "127.0.0.1", "--port", str(port),
        "--system-id", system_id, "--password", "bench", "--binds", str(binds),
        "--window", str(window), "--rate", str(rate),
        "--registered-delivery", "1" if receipts else "0",
        "--receipt-timeout", str(receipt_timeout), "--quiet", "--json-out", str(out),
    ]  # fmt: skip
    if duration is not None:
        cmd += ["--duration", str(duration)]
    return cmd + list(extra)


@dataclass
class LoadProcess:
    """A loadgen running in a process of its own (its own core); `result()` waits."""

    proc: subprocess.Popen[bytes]
    out: Path

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        rc = self.proc.wait(timeout)
        # 1 with a summary written = receipts missing after the timeout: a
        # figure of the run (receipts_missing), not a failed run.
        if rc != 0 and not (rc == 1 and self.out.exists()):
            raise RuntimeError(f"loadgen exited with {rc} (see its stderr above)")
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result


def loadgen_start(port: int, out: Path | None = None, **kw: Any) -> LoadProcess:
    """Start one loadgen run (keywords as `loadgen_cmd`) without waiting for it."""
    out = out or Path(tempfile.mkdtemp(prefix="smsgw-bench-")) / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(loadgen_cmd(port, out, **kw), stdout=subprocess.DEVNULL, cwd=ROOT)
    return LoadProcess(proc, out)


def loadgen_run(
    port: int, *, rate: float, duration: float, binds: int, window: int, receipts: bool
) -> dict[str, Any]:
    """One loadgen run as the customer `bench`, waited for."""
    return loadgen_start(
        port, rate=rate, duration=duration, binds=binds, window=window, receipts=receipts
    ).result()


def median(results: list[dict[str, Any]], get: Callable[[dict[str, Any]], float]) -> float:
    return float(statistics.median(get(r) for r in results))
