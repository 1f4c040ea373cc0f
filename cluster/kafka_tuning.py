"""Broker settings for the load of a small deployment (issue 16), each with its reason.

The embedded broker shares a couple of cores with PostgreSQL, Ray and the
gateway's actors. Nothing here changes what is stored, when it is
acknowledged or how it is replicated.

Tried and left out: fewer request threads (``num.network.threads`` 1,
``num.io.threads`` 2, ``group.coordinator.threads`` 1). On a machine whose
cores are contended, a pool of fewer threads also gets a smaller share of
the CPU, and the actor-kill test (restarted actors rejoining their groups
within 60 s) failed twice with them on the overloaded shared machine while
passing without; the request counts per message, not the thread counts,
are what to lower (``smsgw.kafka.tuning``).
"""

from __future__ import annotations

BROKER_LOAD_SETTINGS: dict[str, str] = {
    # Scheduler for retention checks, log cleaner triggers and delayed
    # deletes (default 10 threads): a few tasks a minute here, never on a
    # request's path.
    "background.threads": "2",
}
