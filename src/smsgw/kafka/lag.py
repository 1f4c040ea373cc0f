"""Consumer lag per group and topic: how many records each stage has not finished.

Records, not offsets: in a transactionally written topic every transaction
ends in a commit marker that takes an offset but is no record, so the
offset difference counted 10 waiting messages as 20. The waiting range is
read (``read_committed``, as the stages read it) and its records counted, up
to ``COUNT_BUDGET`` records; a longer backlog is counted on its first part and
the rest scaled by the records-per-offset seen there.

The log ends come from AdminClient futures with explicit timeouts. The group's
committed offsets come from a consumer of that group that never joins it, not
from ``AdminClient.list_consumer_group_offsets``: librdkafka (2.16 too) handles
a NOT_COORDINATOR answer to the admin request by queueing a coordinator query
on the admin client's consumer group, which it does not have, and crashes the
process (SIGSEGV in ``rd_kafka_cgrp_op``; librdkafka issue 5040). A broker just
started answers so while it loads ``__consumer_offsets``: the supervisor's first
probe killed its actor at almost every ``smsgw run`` start ("A worker died ...
unexpected system error"), and ``provider remove`` could die the same way.

A consumer's ``committed()`` can block for its whole timeout (or past it while a
coordinator moves), so a long-running process measures lag with ``LagProbe``:
on a thread of its own, its last answer read without waiting. The supervisor's
reconcile (placing actors, dealing out binds) never waits for a probe.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from smsgw import log
from smsgw.kafka.consumer import consumer_config
from smsgw.kafka.security import client_config

COUNT_BUDGET = 20_000  # records read per probe at most

Span = tuple[str, int, int, int]  # topic, partition, first waiting offset, end offset


# A group found caught up is asked for its committed offsets again only once its
# topic's log ends moved, or after this long (offsets reset or expired meanwhile).
RECHECK_SETTLED_S = 300.0
Ends = tuple[tuple[int, int], ...]  # (partition, end offset), sorted


def consumer_lag(
    bootstrap: str,
    groups: dict[str, str],
    timeout: float = 5.0,
    settled: dict[str, tuple[Ends, float]] | None = None,
    admin: AdminClient | None = None,
) -> dict[str, int]:
    """``{group: topic}`` -> ``{topic: records not yet committed by that group}``.

    ``settled`` (kept by the caller from one probe to the next): the groups found
    caught up, with their topic's log ends then. Such a group's lag is still 0 while
    the ends have not moved, so its committed offsets are not asked for: each ask
    is a consumer of the group's own, a connection and a SASL/SCRAM login, and with
    100 idle providers the supervisor spent ~30 % of a core on them (issue 13).

    ``admin``: a client kept from one probe to the next (else one made for this
    call). The log ends of every topic are asked for in one request per broker.
    """
    if admin is None:
        admin = AdminClient(client_config(bootstrap))
    md = admin.list_topics(timeout=timeout)
    topics = {t for t in groups.values() if t in md.topics}
    every = [TopicPartition(t, p) for t in sorted(topics) for p in md.topics[t].partitions]
    high_of: dict[str, dict[int, int]] = {t: {} for t in topics}
    if every:
        ends = admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in every},  # type: ignore[no-untyped-call]
            request_timeout=timeout,
        )
        for tp, f in ends.items():
            high_of[tp.topic][tp.partition] = f.result(timeout).offset
    spans: dict[str, list[Span]] = {}
    for group, topic in groups.items():
        if topic not in topics:
            continue
        parts = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
        high = high_of[topic]
        waiting = spans.setdefault(topic, [])
        now, ends_now = time.monotonic(), tuple(sorted(high.items()))
        known = settled.get(group) if settled is not None else None
        if known is not None and known[0] == ends_now and now - known[1] < RECHECK_SETTLED_S:
            continue
        behind = False
        for tp in committed_offsets(bootstrap, group, parts, timeout):
            end = high.get(tp.partition, 0)
            position = tp.offset if tp.offset >= 0 else 0
            if end > position:
                waiting.append((topic, tp.partition, position, end))
                behind = True
        if settled is not None:
            if behind:
                settled.pop(group, None)
            else:
                settled[group] = (ends_now, now)
    return {topic: count_records(bootstrap, s, timeout) for topic, s in spans.items()}


class LagMeter:
    """``consumer_lag`` from one long-running probe: its admin client and the groups
    found settled are kept from one measurement to the next (a client made for each
    was a connection, a SASL/SCRAM login and its threads every 5 s; issue 13)."""

    def __init__(self, bootstrap: str, timeout: float = 5.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self.settled: dict[str, tuple[Ends, float]] = {}
        self._admin: AdminClient | None = None

    def __call__(self, groups: dict[str, str]) -> dict[str, int]:
        if self._admin is None:
            self._admin = AdminClient(client_config(self.bootstrap))
        return consumer_lag(
            self.bootstrap, groups, self.timeout, settled=self.settled, admin=self._admin
        )


class LagProbe:
    """Measures lag every ``interval`` s on a daemon thread; ``latest`` never waits.

    ``measure`` gets the ``{group: topic}`` last set in ``groups`` (a dict replaced
    whole, never changed in place). A failed or slow measurement keeps the previous
    answer; ``version`` grows with every new one, so a reader can tell it changed.
    """

    def __init__(
        self,
        measure: Callable[[dict[str, str]], dict[str, int]],
        interval: float = 5.0,
        name: str = "lag-probe",
    ) -> None:
        self.groups: dict[str, str] = {}
        self.latest: dict[str, int] = {}
        self.version = 0
        self._measure = measure
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.log = log.get("smsgw.lag")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends the thread after its current measurement; never waits for it."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            groups = self.groups
            if groups:
                try:
                    self.latest = self._measure(groups)
                    self.version += 1
                except Exception as exc:  # a coordinator moving or loading: next time
                    self.log.warning("lag not measured", error=repr(exc)[:200])
            self._stop.wait(max(0.1, self._interval - (time.monotonic() - started)))


def committed_offsets(
    bootstrap: str, group: str, parts: list[TopicPartition], timeout: float = 5.0
) -> list[TopicPartition]:
    """The offsets ``group`` committed for ``parts`` (``OFFSET_INVALID`` where none).

    Asked by a consumer with the group's id that never subscribes: it neither joins the
    group nor commits, and a coordinator that moved or is still loading is looked up
    again instead of crashing the process (see the module's docstring).
    ``read_uncommitted``: the last stable commit, as the admin request answered. A
    ``read_committed`` consumer asks for stable offsets and, while a transaction with
    an offset commit is open (a bind killed inside one, until it times out), retries
    UNSTABLE_OFFSET_COMMIT for its whole timeout.
    """
    consumer = Consumer(
        consumer_config(bootstrap, group, **{"isolation.level": "read_uncommitted"})
    )
    try:
        return list(consumer.committed(parts, timeout=timeout))
    finally:
        consumer.close()


def count_records(
    bootstrap: str, spans: list[Span], timeout: float = 5.0, budget: int = COUNT_BUDGET
) -> int:
    """Committed records in the offset ranges ``spans`` (transaction markers and aborted
    records are not counted); beyond ``budget`` records or ``timeout``, an estimate."""
    if not spans:
        return 0
    config = consumer_config(
        bootstrap,
        f"lag-probe-{uuid.uuid4().hex[:8]}",  # assign() only: never joins or commits
        **{"enable.partition.eof": True, "fetch.wait.max.ms": 10},
    )
    consumer = Consumer(config)
    ends = {(t, p): end for t, p, _start, end in spans}
    starts = {(t, p): start for t, p, start, _end in spans}
    reached: dict[tuple[str, int], int] = {}  # next offset known not to hold a waiting record
    records = 0
    deadline = time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(t, p, start) for t, p, start, _end in spans])
        open_parts = set(ends)
        while open_parts and records < budget and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.1):
                key = (m.topic() or "", m.partition() or 0)
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        reached[key] = ends.get(key, 0)
                        open_parts.discard(key)
                    continue
                offset = m.offset() or 0
                if key not in ends or offset >= ends[key]:
                    open_parts.discard(key)
                    continue
                records += 1
                reached[key] = offset + 1
                if offset + 1 >= ends[key]:
                    open_parts.discard(key)
    finally:
        consumer.close()
    if not open_parts:
        return records
    covered = sum(reached.get(k, starts[k]) - starts[k] for k in ends)
    remaining = sum(ends[k] - reached.get(k, starts[k]) for k in ends)
    ratio = records / covered if covered else 1.0
    return records + round(ratio * remaining)
