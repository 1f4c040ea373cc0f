"""What the gateway benchmarks share: one loadgen run as a subprocess, and medians."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def loadgen_run(
    port: int, *, rate: float, duration: float, binds: int, window: int, receipts: bool
) -> dict[str, Any]:
    """One loadgen run as the customer `bench` (a process of its own: its own core)."""
    out = Path(tempfile.mkdtemp(prefix="smsgw-bench-")) / "load.json"
    cmd = [
        sys.executable, "-m", "benchmarks.loadgen", "--host", "127.0.0.1", "--port", str(port),
        "--system-id", "bench", "--password", "bench", "--binds", str(binds),
        "--window", str(window), "--duration", str(duration), "--rate", str(rate),
        "--registered-delivery", "1" if receipts else "0", "--receipt-timeout", "30",
        "--quiet", "--json-out", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def median(results: list[dict[str, Any]], get: Callable[[dict[str, Any]], float]) -> float:
    return float(statistics.median(get(r) for r in results))
