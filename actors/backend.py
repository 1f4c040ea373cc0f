"""The supervisor's Ray calls, all of them: the ``ActorBackend`` of ``smsgw.fleet`` on Ray.

Nodes come from the GCS (``ray.nodes``), actors are named and detached in the
gateway's namespace, pinned to their node by ``NodeAffinitySchedulingStrategy``
(soft for the workers that may run anywhere). The reconciling itself lives in
``smsgw.fleet`` and is unit-tested against a fake of this class.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from smsgw import log
from smsgw.actors.workers import (
    ConnectorHostActor,
    CorrelatorActor,
    HistoryActor,
    ListenerActor,
    RouterActor,
)
from smsgw.fleet import Node, Spec
from smsgw.node.binds import BindKey

# A connector host stopped on purpose gets this long to unbind its binds (each
# waits at most 2 s for unbind_resp, all at once) before it is killed.
STOP_GRACE_S = 8.0
FINGERPRINT_S = 3.0  # an actor found by name answers its fingerprint within this

_CLASSES = {
    "listener": ListenerActor,
    "router": RouterActor,
    "correlator": CorrelatorActor,
    "history": HistoryActor,
    "connectors": ConnectorHostActor,
}


class RayBackend:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.log = log.get("smsgw.supervisor")

    def alive_nodes(self) -> list[Node]:
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        return [
            Node(n["NodeID"], n.get("NodeManagerAddress", "node")) for n in nodes if n.get("Alive")
        ]

    def find(self, name: str) -> Any:
        try:
            return ray.get_actor(name, namespace=self.namespace)
        except ValueError:  # no such actor
            return None

    def fingerprint(self, handle: Any) -> str | None:
        with contextlib.suppress(Exception):  # dead, dying or slow: not adopted
            return str(ray.get(handle.fingerprint.remote(), timeout=FINGERPRINT_S))
        return None

    def create(self, spec: Spec) -> Any:
        cls = _CLASSES[spec.kind]
        try:
            return cls.options(  # type: ignore[attr-defined]
                name=spec.name,
                namespace=self.namespace,
                lifetime="detached",
                scheduling_strategy=NodeAffinitySchedulingStrategy(spec.node, soft=not spec.strict),
            ).remote(spec.name, *spec.args[:3], fingerprint=spec.fingerprint)
        except ValueError as exc:  # the old actor of that name is still dying
            self.log.info("actor name busy", actor=spec.name, error=str(exc))
            return None

    def stop(self, handles: Sequence[Any]) -> None:
        """Stop actors on purpose: each shuts down first (bounded), then is killed idle.

        Connector hosts unbind their binds from the SMSC and listeners ask their
        customers to unbind (SMPP 3.4 §4.2) instead of dropping TCP connections; every
        actor closes its Kafka clients. A kill in the middle of its work is what made an
        expected stop look like a crash.
        """
        polite = [handle.shutdown.remote() for handle in handles]
        if polite:
            with contextlib.suppress(Exception):
                ray.wait(polite, num_returns=len(polite), timeout=STOP_GRACE_S)
        self.kill(handles)

    def kill(self, handles: Sequence[Any]) -> None:
        for handle in handles:
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)

    def assign(self, handle: Any, version: int, binds: list[BindKey]) -> None:
        handle.assign.remote(version, binds)

    def stats(self, handle: Any) -> asyncio.Future[dict[str, Any]]:
        return asyncio.wrap_future(handle.stats.remote().future())

    def message(self, handle: Any, message_id: str) -> asyncio.Future[dict[str, Any] | None]:
        return asyncio.wrap_future(handle.message.remote(message_id).future())
