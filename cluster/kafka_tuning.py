"""Broker settings for the load of a small deployment (issue 16), each with its reason.

The embedded broker shares a couple of cores with PostgreSQL, Ray and the
gateway's actors, and serves a handful of clients per node (a producer and
a few consumers per actor) at a few thousand requests a second. Kafka's
defaults size its thread pools for a dedicated many-core machine; here every
idle thread is one more to schedule and wake. Nothing below changes what is
stored, when it is acknowledged or how it is replicated.
"""

from __future__ import annotations

BROKER_LOAD_SETTINGS: dict[str, str] = {
    # One selector thread reads and writes every client socket: a few dozen
    # connections at a few thousand small requests a second is well within one.
    "num.network.threads": "1",
    # Request handlers: appends go to the page cache and held fetches wait in
    # purgatory, not on a handler; one per core is enough.
    "num.io.threads": "2",
    # Scheduler for retention checks, log cleaner triggers, delayed deletes
    # (default 10): a few tasks a minute.
    "background.threads": "2",
    # The group coordinator's event loop (default 4): the gateway has a few
    # groups (router, correlator, deliverer, binds, history), one commit
    # every 200 ms each.
    "group.coordinator.threads": "1",
}
