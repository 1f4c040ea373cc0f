"""How many copies of each partition the gateway's topics keep, and checking them.

Invariant 1 (no loss after acceptance) holds across a broker's death only if a
record acknowledged with ``acks=all`` is on more than one broker: the topic's
replication factor (RF) says how many copies there are, ``min.insync.replicas``
how many must have a record before the leader acknowledges it. With RF 3 and
min ISR 2 one broker can die without losing an acknowledged record and without
refusing writes; with two down, produces fail (the customer gets an error,
never a false status 0).

Defaults follow the cluster: ``min(3, brokers)`` copies and ``RF - 1`` (at
least 1) in sync. ``SMSGW_KAFKA_REPLICATION`` and ``SMSGW_KAFKA_MIN_ISR`` name
them explicitly; a process sets them once (``use_replication``), like the
security settings, so every topic it creates gets them — also the
``out.<provider>`` topics made on demand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_DEFAULT_FACTOR = 3

_configured: dict[str, int | None] = {"factor": None, "min_isr": None}


@dataclass(frozen=True)
class Replication:
    factor: int
    min_isr: int

    def topic_config(self) -> dict[str, str]:
        """What a topic created under this policy carries in its own config."""
        return {"min.insync.replicas": str(self.min_isr)}


def replication_for(
    brokers: int, factor: int | None = None, min_isr: int | None = None
) -> Replication:
    """The policy for a cluster of ``brokers``: explicit values win, defaults follow it."""
    rf = factor if factor is not None else min(MAX_DEFAULT_FACTOR, max(1, brokers))
    if rf < 1:
        raise ValueError(f"replication factor {rf}: at least 1")
    isr = min_isr if min_isr is not None else max(1, rf - 1)
    if not 1 <= isr <= rf:
        raise ValueError(
            f"min.insync.replicas {isr} with replication factor {rf}: must be 1..{rf} "
            "(above RF no write could ever succeed)"
        )
    return Replication(rf, isr)


def use_replication(factor: int | None, min_isr: int | None) -> None:
    """Topics this process creates from now on get these (None: the cluster's default)."""
    if factor is not None or min_isr is not None:
        replication_for(factor or MAX_DEFAULT_FACTOR, factor, min_isr)  # fail early
    _configured.update(factor=factor, min_isr=min_isr)


def current(brokers: int) -> Replication:
    """This process's policy for a cluster of ``brokers``."""
    return replication_for(brokers, _configured["factor"], _configured["min_isr"])


@dataclass(frozen=True)
class TopicReplication:
    """One topic as the cluster has it: the fewest copies of any partition, and its min ISR."""

    name: str
    partitions: int
    factor: int
    min_isr: int | None  # the topic's min.insync.replicas (None: unknown)
    under_replicated: int  # partitions with fewer in-sync replicas than replicas
    offline: int  # partitions without a leader

    def meets(self, wanted: Replication) -> bool:
        return self.factor >= wanted.factor and (self.min_isr or 0) >= wanted.min_isr

    def problems(self, wanted: Replication) -> list[str]:
        out = []
        if self.factor < wanted.factor:
            out.append(f"replication factor {self.factor} < {wanted.factor}")
        if (self.min_isr or 0) < wanted.min_isr:
            out.append(f"min.insync.replicas {self.min_isr} < {wanted.min_isr}")
        return out


def below(topics: Iterable[TopicReplication], wanted: Replication) -> list[TopicReplication]:
    return [t for t in topics if not t.meets(wanted)]
