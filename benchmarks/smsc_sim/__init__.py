"""An SMPP 3.4 SMSC simulator (the provider side) for tests and load runs.

Library: `async with SmscSimulator(SimConfig(...)) as sim: ...`.
CLI: `python -m benchmarks.smsc_sim --help`.
"""

from benchmarks.smsc_sim.config import OUTCOMES, SimConfig, parse_mix
from benchmarks.smsc_sim.server import SmscSimulator
from benchmarks.smsc_sim.stats import ReceivedSubmit, SimStats

__all__ = ["OUTCOMES", "ReceivedSubmit", "SimConfig", "SimStats", "SmscSimulator", "parse_mix"]
