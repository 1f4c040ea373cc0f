"""An SMPP load generator (ESME side) built on smsgw's sans-IO Session.

Library: `result = await run_load(LoadConfig(...))`.
CLI: `python -m benchmarks.loadgen --help`.
"""

from benchmarks.loadgen.client import BindFailed, Collector, EsmeConnection, connect
from benchmarks.loadgen.config import LoadConfig, parse_mix
from benchmarks.loadgen.results import LoadResult
from benchmarks.loadgen.runner import run_load

__all__ = [
    "BindFailed",
    "Collector",
    "EsmeConnection",
    "LoadConfig",
    "LoadResult",
    "connect",
    "parse_mix",
    "run_load",
]
