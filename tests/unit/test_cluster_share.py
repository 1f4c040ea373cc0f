"""A customer's limits are cluster-wide: binds counted on every node, TPS split by binds."""

from __future__ import annotations

from typing import Any

from smsgw.server.binds import BindRegistry
from smsgw.server.core import NodeCore
from smsgw.smpp.events import BindMode


class Peers:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def binds_elsewhere(self, system_id: str) -> int:
        return self.counts.get(system_id, 0)


class Bound:
    def __init__(self, n: int) -> None:
        self.bind_id: str = f"b{n}"
        self.system_id: str | None = "acme"
        self.mode: BindMode | None = BindMode.TRX

    def close_for(self, reason: str) -> None: ...


def core_with(local: int, elsewhere: int | None) -> NodeCore:
    none: Any = None
    core = NodeCore(settings=none, topics=none, config=none, producer=none, ids=none)
    core.binds = BindRegistry()
    for i in range(local):
        core.binds.add(Bound(i))
    core.peers = None if elsewhere is None else Peers({"acme": elsewhere})
    return core


def test_binds_are_counted_on_every_node() -> None:
    assert core_with(1, None).binds_cluster_wide("acme") == 1
    assert core_with(1, 2).binds_cluster_wide("acme") == 3


def test_tps_is_split_in_proportion_to_binds() -> None:
    assert core_with(1, None).tps_here("acme", 100) == 100, "alone: the whole limit"
    assert core_with(0, 3).tps_here("acme", 100) == 100, "no bind here yet: first bind takes it"
    assert core_with(1, 3).tps_here("acme", 100) == 25
    assert core_with(2, 2).tps_here("acme", 100) == 50
