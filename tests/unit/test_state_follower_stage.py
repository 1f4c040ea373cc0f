"""The state followers of two nodes against an in-memory, compacted ``message-state``.

``Follower`` below does what ``smsgw.server.state_follower.StateFollower``
does around ``StateStore`` and ``Restorer``: every node reads every
partition from the start (no group), applies each record in order and,
``RESTORE_AFTER_S`` after a record contradicting a message's first final
state, writes that first final again. The log cleaner then keeps the newest
record of each key (``MemLog.compact``), and a node rebuilding its store from
what is left must still show the first final state (issue 10, invariant 9).
"""

from __future__ import annotations

import dataclasses

from smsgw.state import RESTORE_AFTER_S, MessageState, Restorer, StateRecord, StateStore
from smsgw.topics import Topics
from tests.helpers.memlog import MemLog

TOPIC = Topics("t.").message_state
T0 = 1_000.0


class Follower:
    """One node's follower: its own read positions, from the topic's start."""

    def __init__(self, log: MemLog) -> None:
        self.log = log
        self.store = StateStore()
        self.restorer = Restorer()
        self.read = dict.fromkeys(range(log.partitions(TOPIC)), 0)
        self.written = 0

    def poll(self, now: float) -> None:
        for p, start in self.read.items():
            for r in self.log.records(TOPIC, p, start):
                self.read[p] = r.offset + 1
                if r.value:
                    record = StateRecord.decode(r.value)
                    self.restorer.read(record, self.store.apply(record), now)
        for kept in self.restorer.due(now):
            self.log.append(TOPIC, kept.id.encode(), kept.encode())
            self.written += 1


def _state(mid: str, state: MessageState, at: float, err: int = 0) -> StateRecord:
    return StateRecord(mid, "acme", "ACME", state, at, err, "sent", "491701234567")


def _write(log: MemLog, *records: StateRecord) -> None:
    for r in records:
        log.append(TOPIC, r.id.encode(), r.encode())


def _shown(log: MemLog, mid: str) -> StateRecord | None:
    """What a node started after the cleaner ran shows for ``mid``."""
    fresh = Follower(log)
    fresh.poll(T0 + 100)
    return fresh.store.get(mid)


def test_two_nodes_restore_the_first_final_once_each_at_most_and_compaction_keeps_it() -> None:
    log = MemLog()
    delivered = _state("m1", MessageState.DELIVERED, T0 + 1)
    replayed = dataclasses.replace(_state("m1", MessageState.UNDELIVERABLE, T0 + 2), error_code=906)
    _write(log, _state("m1", MessageState.ENROUTE, T0), delivered, replayed)
    _write(log, _state("m2", MessageState.DELIVERED, T0 + 1))
    a, b = Follower(log), Follower(log)
    a.poll(T0 + 3)
    b.poll(T0 + 3.5)
    a.poll(T0 + 3 + RESTORE_AFTER_S)  # a writes DELIVERED again, behind the contradiction
    b.poll(T0 + 3.5 + RESTORE_AFTER_S)  # b reads a's copy first: nothing more to write
    assert (a.written, b.written) == (1, 0)
    assert a.store.get("m1") == b.store.get("m1") == delivered

    # A node (re)started now reads the copy behind the contradiction: it writes nothing.
    late = Follower(log)
    late.poll(T0 + 10)
    late.poll(T0 + 10 + RESTORE_AFTER_S)
    assert late.written == 0

    log.compact(TOPIC)
    assert _shown(log, "m1") == delivered
    assert _shown(log, "m2") is not None


def test_without_the_followers_copy_compaction_shows_the_contradiction() -> None:
    """What the follower's copy prevents (the test's teeth): the cleaner keeps the
    replayed bind's UNDELIVERABLE, and a node rebuilt from the topic showed it."""
    log = MemLog()
    _write(
        log,
        _state("m1", MessageState.DELIVERED, T0 + 1),
        _state("m1", MessageState.UNDELIVERABLE, T0 + 2, 906),
    )
    log.compact(TOPIC)
    shown = _shown(log, "m1")
    assert shown is not None and shown.state is MessageState.UNDELIVERABLE
