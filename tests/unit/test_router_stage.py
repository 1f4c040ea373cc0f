"""The router stage against an in-memory log: submit records in, one transaction out.

``RouterStage`` below does what ``smsgw.pipeline.router.Router`` does around
``RoutingLogic`` (the decisions), with tests/helpers/memlog.py for Kafka: it
reads its group's unread ``submit`` records, has the logic decide them with the
time, and writes the records and the batch's offsets in one transaction (or,
crashing before the commit, nothing); on taking partitions over it rebuilds
the held multipart parts from their ``multipart`` changelog. The tests assert
the records on each topic and the group's committed offsets (invariants 2, 5
and 9; the rules are in routing_logic.py's docstring).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from smsgw.assembly import decode_changelog
from smsgw.db.providers import Provider
from smsgw.message import AcceptedMessage, encode
from smsgw.pipeline.routing_logic import RoutingLogic
from smsgw.receipts import ERR_EXPIRED, ERR_INCOMPLETE, ERR_NO_ROUTE
from smsgw.records import Delivery, Routed
from smsgw.routing import MtRoute, RoutingTable
from smsgw.smpp.submission import Address
from smsgw.smpp.udh import Concat
from smsgw.state import MessageState, StateRecord
from smsgw.topics import Topics
from tests.helpers.memlog import Aborted, MemLog, next_offsets
from tests.helpers.messages import accepted_message
from tests.helpers.providers import provider_row

TOPICS = Topics("t.")
GROUP = "router"
OUT_P = TOPICS.outbound("p")
T0 = 1_000.0  # accepted_message's received_at
EXPIRY_S = 60.0  # multipart sets


def _provider(name: str) -> Provider:
    return provider_row(name)


@dataclass
class Config:
    providers: dict[str, Provider]
    routing: RoutingTable


CONFIG = Config({"p": _provider("p")}, RoutingTable([MtRoute(1, "49", "p")]))
TO_P = Address("491701234567", 1, 1)
NOWHERE = Address("331701234567", 1, 1)


class RouterStage:
    """One router of the ``router`` group, owning ``partitions`` of ``submit``."""

    def __init__(self, log: MemLog, partitions: Iterable[int] | None = None) -> None:
        self.log = log
        self.partitions = sorted(
            range(log.partitions(TOPICS.submit)) if partitions is None else partitions
        )
        self.logic = RoutingLogic(TOPICS, CONFIG, multipart_expiry_s=EXPIRY_S, late_after_s=4.0)
        self.read: dict[int, int] = {}
        self.take(self.partitions)

    def take(self, partitions: Iterable[int]) -> None:
        """Partitions assigned: resume at the group's commits, restore their held parts."""
        for p in partitions:
            self.read[p] = self.log.position(GROUP, TOPICS.submit, p)
            self.logic.restore(
                (r.partition, r.key or b"", decode_changelog(r.partition, r.key or b"", r.value))
                for r in self.log.records(TOPICS.multipart, p)
            )

    def give_up(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self.logic.revoked(gone)
        for p in gone:
            del self.read[p]

    def poll(self, now: float, *, crash_before_commit: bool = False) -> int:
        """Route what is unread (one transaction); how many records that was."""
        batch = [
            r for p in sorted(self.read) for r in self.log.records(TOPICS.submit, p, self.read[p])
        ]
        decision = self.logic.route_batch([(r.partition, r.value or b"") for r in batch], now)
        assert not decision.bad
        with self.log.transaction() as txn:
            for topic, key, value, partition in decision.out:
                txn.produce(topic, key, value, partition)
            txn.send_offsets(GROUP, next_offsets(batch))
            if crash_before_commit:
                raise Aborted
        if not crash_before_commit:
            for (_topic, p), offset in next_offsets(batch).items():
                self.read[p] = offset
        return len(batch)

    def tick(self, now: float) -> None:
        """The router's 1-s check: incomplete sets whose time ran out (no offsets)."""
        out = self.logic.expire(now)
        with self.log.transaction() as txn:
            for topic, key, value, partition in out:
                txn.produce(topic, key, value, partition)


def _submit(log: MemLog, *messages: AcceptedMessage) -> None:
    """The listener's writes: each accepted message on ``submit`` by its key."""
    for m in messages:
        log.append(TOPICS.submit, m.kafka_key, encode(m))


def _states(log: MemLog) -> dict[str, StateRecord]:
    return {s.id: s for s in (StateRecord.decode(v) for v in log.values(TOPICS.message_state) if v)}


def _receipts(log: MemLog) -> list[Delivery]:
    return [Delivery.decode(v) for v in log.values(TOPICS.deliver) if v]


def _all_committed(log: MemLog) -> bool:
    return log.lag(GROUP, TOPICS.submit) == 0


def _parts(ref: int, total: int, seqs: Iterable[int], **fields: object) -> list[AcceptedMessage]:
    return [
        accepted_message(
            f"m{ref}.{seq}", destination=TO_P, concat=Concat(ref, total, seq, 8, "udh")
        )
        for seq in seqs
    ]


def test_routed_messages_go_to_their_providers_topic_and_the_batch_is_committed() -> None:
    log = MemLog()
    messages = [accepted_message(f"m{i}", destination=TO_P) for i in range(5)]
    _submit(log, *messages)
    RouterStage(log).poll(T0 + 1)

    routed = [(r.key, Routed.decode(r.value or b"")) for r in log.records(OUT_P)]
    assert sorted(r.message.id for _key, r in routed) == [m.id for m in messages]
    assert all(key == r.message.kafka_key and r.provider == "p" for key, r in routed)
    # Each on the partition of its key: a provider bind reads a message's records in order.
    for r in log.records(OUT_P):
        assert r.partition == log.partition_for(OUT_P, r.key)
    assert log.values(TOPICS.message_state) == [] and log.values(TOPICS.deliver) == []
    assert _all_committed(log)


def test_no_route_is_a_final_state_and_a_failure_receipt_never_a_dropped_message() -> None:
    log = MemLog()
    wants, silent = (
        accepted_message("m1", destination=NOWHERE, registered_delivery=1),
        accepted_message("m2", destination=NOWHERE, registered_delivery=0),
    )
    _submit(log, wants, silent)
    RouterStage(log).poll(T0 + 1)

    assert log.records(OUT_P) == []
    states = _states(log)
    assert {s.id: (s.state, s.error_code, s.stage) for s in states.values()} == {
        "m1": (MessageState.UNDELIVERABLE, ERR_NO_ROUTE, "no-route"),
        "m2": (MessageState.UNDELIVERABLE, ERR_NO_ROUTE, "no-route"),
    }
    # A receipt only for the customer who asked (registered_delivery, SMPP 3.4 §5.2.17),
    # keyed by customer: the deliverer's partition of that customer.
    [receipt] = _receipts(log)
    assert receipt.message_id == "m1" and receipt.customer == "acme"
    assert [r.key for r in log.records(TOPICS.deliver)] == [b"acme"]
    assert _all_committed(log)


def test_a_message_past_its_validity_is_expired_not_sent() -> None:
    log = MemLog()
    # Relative validity of 30 s (SMPP 3.4 §7.1.1.2), routed 31 s after acceptance.
    old = accepted_message("m1", destination=TO_P, validity_period="000000000030000R")
    fresh = accepted_message("m2", destination=TO_P, validity_period="000000000030000R")
    _submit(log, old)
    stage = RouterStage(log)
    stage.poll(T0 + 31)
    _submit(log, fresh)
    stage.poll(T0 + 29)
    assert [Routed.decode(r.value or b"").message.id for r in log.records(OUT_P)] == ["m2"]
    [state] = _states(log).values()
    assert (state.id, state.state, state.error_code) == ("m1", MessageState.EXPIRED, ERR_EXPIRED)


def test_a_crash_before_the_commit_leaves_no_trace_and_the_restart_routes_once() -> None:
    log = MemLog()
    _submit(log, *(accepted_message(f"m{i}", destination=TO_P) for i in range(4)))
    _submit(log, accepted_message("x", destination=NOWHERE))
    RouterStage(log).poll(T0 + 1, crash_before_commit=True)
    assert log.records(OUT_P) == [] and log.values(TOPICS.message_state) == []
    assert log.lag(GROUP, TOPICS.submit) == 5

    RouterStage(log).poll(T0 + 2)  # restarted: from the committed offsets
    assert sorted(Routed.decode(r.value or b"").message.id for r in log.records(OUT_P)) == [
        "m0",
        "m1",
        "m2",
        "m3",
    ]
    assert list(_states(log)) == ["x"] and len(log.values(TOPICS.message_state)) == 1
    assert _all_committed(log)


def test_parts_meet_on_one_partition_and_a_set_survives_its_router() -> None:
    """Parts 1 and 2 held (on the changelog, committed with their offsets); the router
    gives the partition up; the next owner rebuilds them from the changelog and
    routes the whole message once when part 3 comes (invariant 5)."""
    log = MemLog()
    parts = _parts(7, 3, [1, 2, 3])
    assert len({log.partition_for(TOPICS.submit, m.kafka_key) for m in parts}) == 1
    p = log.partition_for(TOPICS.submit, parts[0].kafka_key)
    _submit(log, parts[0], parts[1])
    first = RouterStage(log)
    first.poll(T0 + 1)
    assert log.records(OUT_P) == []
    held = log.latest(TOPICS.multipart, p)
    assert len(held) == 2 and all(r.partition == p for r in log.records(TOPICS.multipart))
    assert _all_committed(log)  # held parts are on the changelog, not in memory only

    first.give_up([p])
    second = RouterStage(log, [p])
    _submit(log, parts[2])
    second.poll(T0 + 2)
    [record] = log.records(OUT_P)
    routed = Routed.decode(record.value or b"")
    assert [m.id for m in routed.parts] == ["m7.1", "m7.2", "m7.3"]
    # The held parts are tombstoned; what stays is the routed marker that recognises
    # late copies of the parts.
    assert all(key is not None and key.endswith(b"|routed") for key in log.latest(TOPICS.multipart))
    assert _all_committed(log)


def test_an_incomplete_set_expires_by_the_clock_with_a_failure_per_part() -> None:
    log = MemLog()
    _submit(log, *_parts(9, 3, [1, 3]))
    stage = RouterStage(log)
    stage.poll(T0 + 1)
    stage.tick(T0 + EXPIRY_S - 1)
    assert _states(log) == {}
    stage.tick(T0 + EXPIRY_S + 1)
    states = _states(log)
    assert {s.id: (s.state, s.error_code) for s in states.values()} == {
        "m9.1": (MessageState.UNDELIVERABLE, ERR_INCOMPLETE),
        "m9.3": (MessageState.UNDELIVERABLE, ERR_INCOMPLETE),
    }
    assert sorted(r.message_id for r in _receipts(log)) == ["m9.1", "m9.3"]
    assert log.records(OUT_P) == []
    assert log.latest(TOPICS.multipart) == {}  # nothing held any more, nothing to restore
    # A router taking over now has nothing to expire again.
    again = RouterStage(log)
    again.tick(T0 + 2 * EXPIRY_S)
    assert len(log.values(TOPICS.message_state)) == 2
