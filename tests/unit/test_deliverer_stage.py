"""The deliverer stage against an in-memory log: store and forward, commits, once-only marks.

``DelivererStage`` below does what ``smsgw.server.deliverer.Deliverer`` does
around ``DeliveryLogic`` (the decisions), with tests/helpers/memlog.py for
Kafka: it reads its group's unread ``deliver`` records and the ``delivered``
marks, hands due deliveries to the customer's receiving sessions, writes a
mark for each answered for good and only then finishes its record, and
commits each partition up to its first unfinished record (``OffsetTracker``).
The tests assert what the customer's sessions got, the marks written and the
group's committed offsets (invariants 2, 3 and 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smsgw.offsets import OffsetTracker
from smsgw.receipts import ERR_NO_ROUTE, failure_receipt
from smsgw.records import Delivery
from smsgw.server.delivery_logic import DeliveryLogic, Outcome, Pending, backoff_s
from smsgw.smpp.status import CommandStatus as S
from smsgw.state import MessageState
from smsgw.topics import Topics
from tests.helpers.memlog import MemLog, Record
from tests.helpers.messages import accepted_message

TOPICS = Topics("t.")
GROUP = "deliverer"
T0 = 1_000.0
WINDOW = 2  # the session's deliver_sm window


@dataclass
class Session:
    """A customer's receiving bind: the deliver_sm it got, and those not yet answered."""

    name: str
    got: list[str] = field(default_factory=list)  # delivery ids, in the order sent
    in_flight: list[Pending[Record]] = field(default_factory=list)

    @property
    def room(self) -> bool:
        return len(self.in_flight) < WINDOW


class DelivererStage:
    def __init__(self, log: MemLog, now: float) -> None:
        self.log = log
        self.logic: DeliveryLogic[Record] = DeliveryLogic()
        for mark in log.records(TOPICS.delivered):  # the last hour's, in production
            self.logic.seen((mark.key or b"").decode(), now)
        self.tracker = OffsetTracker()
        self.read = {
            p: log.position(GROUP, TOPICS.deliver, p) for p in range(log.partitions(TOPICS.deliver))
        }
        # Answered for good, the mark not written yet.
        self.unmarked: list[tuple[Pending[Record], Outcome]] = []

    def fetch(self) -> None:
        for p, start in self.read.items():
            for r in self.log.records(TOPICS.deliver, p, start):
                self.read[p] = r.offset + 1
                self.tracker.read(r.topic, r.partition, r.offset)
                if self.logic.take(r, r.partition, Delivery.decode(r.value or b"")) is None:
                    self._finish(r)  # a duplicate of one finished: never sent

    def dispatch(self, now: float, sessions: list[Session]) -> None:
        customers = set(self.logic.waiting) | set(self.logic.retrying)
        for customer in sorted(customers):
            bound = {s.name: s for s in sessions}
            free = [s for s in sessions if s.room]
            result = self.logic.dispatch(customer, now, bound, free, self._place)
            for item in result.done:
                self._finish(item.handle)

    def _place(self, item: Pending[Record], targets: list[Session], free: list[Session]) -> bool:
        for s in targets:
            if s in free and s.room:
                s.in_flight.append(item)
                s.got.append(item.delivery.id)
                if not s.room:
                    free.remove(s)
                self.logic.on_wire(item)
                return True
        return False

    def answer(self, session: Session, status: S, now: float, *, nacked: bool = False) -> Outcome:
        """The customer answers the oldest deliver_sm of ``session``."""
        item = session.in_flight.pop(0)
        outcome = self.logic.answered(item, status, nacked=nacked, now=now)
        if outcome is not Outcome.RETRY:
            self.unmarked.append((item, outcome))
        return outcome

    def marks_written(self) -> None:
        """The ``delivered`` marks are acknowledged: only now are the records finished."""
        for item, outcome in self.unmarked:
            value = b"1" if outcome is Outcome.DELIVERED else b"failed"
            self.log.append(TOPICS.delivered, item.delivery.id.encode(), value)
            self._finish(item.handle)
        self.unmarked = []

    def expire(self, now: float) -> None:
        for item in self.logic.expire(now):
            self._finish(item.handle)

    def _finish(self, r: Record) -> None:
        self.tracker.done(r.topic, r.partition, r.offset)

    def commit(self) -> None:
        self.log.commit(GROUP, self.tracker.commit_points())


def _receipts(log: MemLog, *ids: str, ttl_s: float = 3600.0) -> list[Delivery]:
    """Failure receipts owed to customer acme (on ``deliver`` keyed by customer)."""
    out = []
    for mid in ids:
        m = accepted_message(mid, bind="node-1/gone")
        d = failure_receipt(m, MessageState.UNDELIVERABLE, ERR_NO_ROUTE, ttl_s=ttl_s, now=T0)
        log.append(TOPICS.deliver, d.customer.encode(), d.encode())
        out.append(d)
    return out


def _marks(log: MemLog) -> dict[str, bytes | None]:
    return {(r.key or b"").decode(): r.value for r in log.records(TOPICS.delivered)}


def test_deliveries_wait_uncommitted_until_a_receiver_binds_then_go_in_its_window() -> None:
    log = MemLog()
    a, b, c = _receipts(log, "m1", "m2", "m3")
    stage = DelivererStage(log, T0)
    stage.fetch()
    stage.dispatch(T0, [])  # nobody bound: store and forward
    stage.commit()
    assert log.lag(GROUP, TOPICS.deliver) == 3

    rx = Session("node-1/session-2")  # not the submitting session (gone): any bind takes it
    stage.dispatch(T0 + 1, [rx])
    assert rx.got == [a.id, b.id]  # its window
    stage.answer(rx, S.ESME_ROK, T0 + 1)
    stage.commit()
    assert log.lag(GROUP, TOPICS.deliver) == 3, "committed before the mark was written"
    stage.marks_written()
    stage.commit()
    assert log.lag(GROUP, TOPICS.deliver) == 2
    stage.dispatch(T0 + 1, [rx])
    assert rx.got == [a.id, b.id, c.id]
    stage.answer(rx, S.ESME_ROK, T0 + 2)
    stage.answer(rx, S.ESME_ROK, T0 + 2)
    stage.marks_written()
    stage.commit()
    assert log.lag(GROUP, TOPICS.deliver) == 0
    assert _marks(log) == {a.id: b"1", b.id: b"1", c.id: b"1"}


def test_after_a_crash_a_marked_delivery_is_skipped_and_an_unmarked_one_goes_again() -> None:
    """At-least-once, bounded: only a delivery answered but not yet marked when the
    deliverer died reaches the customer twice (invariant 3)."""
    log = MemLog()
    a, b = _receipts(log, "m1", "m2")
    first = DelivererStage(log, T0)
    rx = Session("node-1/session-2")
    first.fetch()
    first.dispatch(T0, [rx])
    first.answer(rx, S.ESME_ROK, T0)
    first.marks_written()  # a's mark; no commit made yet
    first.answer(rx, S.ESME_ROK, T0)  # b answered, its mark never written: the crash

    again = DelivererStage(log, T0 + 5)  # restarted: reads from the committed offset 0
    rx2 = Session("node-1/session-2")
    again.fetch()
    again.dispatch(T0 + 5, [rx2])
    assert rx2.got == [b.id]
    again.answer(rx2, S.ESME_ROK, T0 + 5)
    again.marks_written()
    again.commit()
    assert log.lag(GROUP, TOPICS.deliver) == 0
    assert rx.got + rx2.got == [a.id, b.id, b.id]


def test_a_temporary_refusal_waits_its_back_off_while_the_rest_flows() -> None:
    """ESME_RX_T_APPN (SMPP 3.4 §5.1.3) retries that delivery on its own timer; the
    commit stays before it until it is delivered."""
    log = MemLog()
    a, b = _receipts(log, "m1", "m2")
    stage = DelivererStage(log, T0)
    rx = Session("node-1/session-2")
    stage.fetch()
    stage.dispatch(T0, [rx])
    assert stage.answer(rx, S.ESME_RX_T_APPN, T0) is Outcome.RETRY
    assert stage.answer(rx, S.ESME_ROK, T0) is Outcome.DELIVERED
    stage.marks_written()
    stage.commit()
    assert log.lag(GROUP, TOPICS.deliver) == 2  # b is done, a (offset 0) is not
    stage.dispatch(T0 + backoff_s(1) - 0.1, [rx])
    assert rx.got == [a.id, b.id]
    stage.dispatch(T0 + backoff_s(1), [rx])
    assert rx.got == [a.id, b.id, a.id]
    stage.answer(rx, S.ESME_ROK, T0 + backoff_s(1))
    stage.marks_written()
    stage.commit()
    assert log.lag(GROUP, TOPICS.deliver) == 0


def test_a_permanent_refusal_or_generic_nack_fails_it_for_good() -> None:
    """ESME_RX_P_APPN, and a generic_nack whatever its status (SMPP 3.4 §4.3)."""
    log = MemLog()
    a, b = _receipts(log, "m1", "m2")
    stage = DelivererStage(log, T0)
    rx = Session("node-1/session-2")
    stage.fetch()
    stage.dispatch(T0, [rx])
    assert stage.answer(rx, S.ESME_RX_P_APPN, T0) is Outcome.FAILED
    assert stage.answer(rx, S.ESME_ROK, T0, nacked=True) is Outcome.FAILED
    stage.marks_written()
    stage.commit()
    stage.dispatch(T0 + 600, [rx])
    assert rx.got == [a.id, b.id] and log.lag(GROUP, TOPICS.deliver) == 0
    assert _marks(log) == {a.id: b"failed", b.id: b"failed"}


def test_a_delivery_nobody_binds_for_expires_and_is_committed_without_a_mark() -> None:
    log = MemLog()
    _receipts(log, "m1", ttl_s=60.0)
    stage = DelivererStage(log, T0)
    stage.fetch()
    stage.expire(T0 + 59)
    stage.commit()
    assert log.lag(GROUP, TOPICS.deliver) == 1
    stage.expire(T0 + 61)
    stage.commit()
    assert log.lag(GROUP, TOPICS.deliver) == 0 and _marks(log) == {}
    rx = Session("node-1/session-2")
    stage.dispatch(T0 + 62, [rx])
    assert rx.got == []
