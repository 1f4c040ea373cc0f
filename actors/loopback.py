"""Keep a loopback Ray address on loopback.

Ray rewrites ``127.0.0.1``/``localhost`` into the host's external address
wherever a user names it (``ray start --node-ip-address``, ``--address``,
``ray.init(address=...)``: ``ray._private.services.resolve_ip_for_localhost``),
so a node started on loopback is dialled, and a joining node binds, on the
external interface, and a loopback-only head is unreachable to its own
drivers. A node whose IP is loopback binds all its servers to loopback; this
keeps the IP it was given.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable
from typing import Any

# Seconds a starting node waits for its raylet to register (`ray start` gives it
# 30, hard-coded); a loaded machine starts the node's agents slower than that.
NODE_START_TIMEOUT_ENV = "SMSGW_RAY_NODE_START_TIMEOUT_S"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def keep_loopback() -> None:
    """Patch Ray's resolver in this process (idempotent) before it starts or joins a node."""
    from ray._private import services

    original: Callable[[str], str] = services.resolve_ip_for_localhost
    if getattr(original, "smsgw_keeps_loopback", False):
        return

    def resolve(host: str) -> str:
        return host if is_loopback(host) else original(host)

    resolve.smsgw_keeps_loopback = True  # type: ignore[attr-defined]
    services.resolve_ip_for_localhost = resolve


def patient_node_start(timeout_s: float) -> None:
    """Let ``ray start`` wait up to ``timeout_s`` for its node to register (idempotent).

    ``ray._private.node.Node`` polls ``services.get_node`` for 30 s and gives up
    ("The current node timed out during startup"); each poll here retries
    until the node is registered or ``timeout_s`` is over.
    """
    from ray._private import services

    original: Callable[..., Any] = services.get_node
    if getattr(original, "smsgw_patient", False):
        return

    def get_node(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return original(*args, **kwargs)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    get_node.smsgw_patient = True  # type: ignore[attr-defined]
    services.get_node = get_node


def ray_cli() -> None:
    """``ray`` with loopback kept (``python -m smsgw.actors.loopback start ...``)."""
    keep_loopback()
    if patience := os.environ.get(NODE_START_TIMEOUT_ENV):
        patient_node_start(float(patience))
    from ray.scripts.scripts import main

    main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    ray_cli()
