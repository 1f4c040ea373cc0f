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
from collections.abc import Callable


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


def ray_cli() -> None:
    """``ray`` with loopback kept (``python -m smsgw.actors.loopback start ...``)."""
    keep_loopback()
    from ray.scripts.scripts import main

    main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    ray_cli()
