"""Starting, finding and stopping the gateway's actors from a driver (the CLI, tests)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from smsgw.actors.loopback import keep_loopback
from smsgw.actors.supervisor import NAMESPACE, SUPERVISOR, Supervisor
from smsgw.actors.workers import namespace_for
from smsgw.settings import Settings


def use_auth_token(token_path: Path | None) -> None:
    """Make this driver present the cluster's token (before ``ray.init``).

    A token named in the environment (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``:
    an external cluster's) wins; else the one ``smsgw run`` generated into
    ``$SMSGW_HOME``. Ray reads these at ``ray.init``; an explicit address never
    turns token mode on by itself, hence ``RAY_AUTH_MODE``.
    """
    named = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not named and token_path is not None and token_path.is_file():
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_path)
        named = str(token_path)
    if named:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    # Ray caches its config and token when it is imported, which in a CLI or a
    # test process is before this: reload both (what Ray's own
    # ``authentication_token_setup._enable_token_auth`` does).
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def connect(address: str, token_path: Path | None = None) -> None:
    if not ray.is_initialized():
        use_auth_token(token_path)
        keep_loopback()
        ray.init(
            address=address,
            namespace=NAMESPACE,
            logging_level=logging.WARNING,
            log_to_driver=False,
            configure_logging=False,
        )


def start_supervisor(settings: Settings) -> Any:
    """The supervisor (created if absent); it brings up every other actor."""
    values = settings.model_dump(mode="json")
    # Prefer the driver's node (the head): it outlives worker nodes coming and going.
    here = ray.get_runtime_context().get_node_id()
    return Supervisor.options(  # type: ignore[attr-defined]
        name=SUPERVISOR,
        namespace=namespace_for(settings.topic_prefix),
        lifetime="detached",
        get_if_exists=True,
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True),
    ).remote(values)


def find_supervisor(topic_prefix: str = "smsgw.") -> Any | None:
    try:
        return ray.get_actor(SUPERVISOR, namespace=namespace_for(topic_prefix))
    except ValueError:
        return None


def status(topic_prefix: str = "smsgw.", timeout: float = 10.0) -> dict[str, Any] | None:
    sup = find_supervisor(topic_prefix)
    if sup is None:
        return None
    result: dict[str, Any] = ray.get(sup.status.remote(), timeout=timeout)
    return result


def wait_ready(
    timeout: float = 120.0, providers: int = 0, topic_prefix: str = "smsgw."
) -> dict[str, Any]:
    """Until every listener is alive (and ``providers`` provider binds are up)."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = status(topic_prefix)
        if last:
            actors = last.get("actors", {})
            listeners = [a for n, a in actors.items() if n.startswith("listener@")]
            bound = [
                a
                for n, a in actors.items()
                if n.startswith("provider:") and (a.get("bind") or {}).get("bound")
            ]
            nodes = len(last.get("nodes", []))
            if (
                nodes
                and len(listeners) == nodes
                and all(a.get("state") == "ALIVE" and a.get("listen") for a in listeners)
                and len(bound) >= providers
            ):
                return last
        time.sleep(0.5)
    raise TimeoutError(f"the gateway's actors did not come up in {timeout:.0f} s: {last}")


def disconnect() -> None:
    """Leave the cluster (a driver still connected when Ray stops reports every worker dying)."""
    if ray.is_initialized():
        ray.shutdown()


def stop_all(topic_prefix: str = "smsgw.", timeout: float = 60.0) -> bool:
    """Stop every actor of the gateway; False if there was nothing running."""
    sup = find_supervisor(topic_prefix)
    if sup is None:
        return False
    with contextlib.suppress(Exception):
        ray.get(sup.shutdown.remote(), timeout=timeout)
    with contextlib.suppress(Exception):
        ray.kill(sup, no_restart=True)
    return True
