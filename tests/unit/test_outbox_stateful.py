"""The provider bind's decisions under any interleaving of answers, time and crashes (issue 10).

A hypothesis state machine drives smsgw.pipeline.outbox.Outbox the way
ProviderBind does, against an in-memory log standing in for Kafka (a list of
records per partition and a committed offset each): messages are routed onto
the log, read, sent within the window, answered in any order (ok, temporary
error, permanent error, no answer before the response timeout, the
connection lost), expire as time passes, are withdrawn, go on to their
failover provider while nothing is in flight, and the bind **crashes**: its
state is dropped and rebuilt by reading the log again from the committed
offsets, as a restarted actor does. Invariants 2, 3 and 9:

- every message reaches a final outcome; a second one only for a message
  the crash made read again (its outcome was written, its offset not yet
  committed: a duplicate, at-least-once, like the duplicate send), never
  for one whose record lies below the committed offset;
- no part gets two outcomes from one incarnation of the bind;
- no commit passes a record whose outcome is not written;
- window slots never leak: the sends in flight are exactly those the
  provider has not answered, never more than the window;
- nothing waits forever: once the provider answers and holds end, every
  message is final and every partition committed to its end.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from smsgw.pipeline.outbox import Failed, Item, Outbox, Paired, Retry
from smsgw.records import Routed
from smsgw.smpp.status import CommandStatus as S
from smsgw.smpp.udh import Concat
from smsgw.state import MessageState
from tests.helpers.depth import examples
from tests.helpers.messages import accepted_message

TOPIC = "out.p"
PARTITIONS = 2
WINDOW = 3
MAX_UNKNOWN = 3
MAX_AGE_S = 120.0
LATE_AFTER_S = 4.0
VALIDITY = ["", "000000000030000R", "000000000300000R"]  # none, 30 s, 5 min (§7.1.1.2)


@dataclass(frozen=True)
class Record:
    """One record of out.<provider>: a routed message, or a withdrawal marker."""

    routed: Routed | None = None
    withdrawn: str = ""

    @property
    def ids(self) -> tuple[str, ...]:
        return () if self.routed is None else tuple(m.id for m in self.routed.segments)


def final_name(outcome: Paired | Failed) -> str:
    if isinstance(outcome, Paired):
        return "sent"
    return {
        MessageState.EXPIRED: "expired",
        MessageState.REJECTED: "rejected",
    }.get(outcome.state, "failed")


class BindMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = 1_000_000.0
        self.log: dict[int, list[Record]] = {p: [] for p in range(PARTITIONS)}
        self.committed = dict.fromkeys(range(PARTITIONS), 0)
        self.outcomes: dict[str, list[str]] = defaultdict(list)  # written, per gateway id
        self.replayed: set[str] = set()  # decided, then read again after a crash
        self.late: list[str] = []  # late-routed single messages (may be withdrawn)
        self.ids = itertools.count()
        self.seqs = itertools.count(1)
        self.crashes = 0
        self.silent_end = False
        self._start()

    @initialize(silent=st.booleans())
    def ending(self, silent: bool) -> None:
        """How the run ends: the provider answers again, or never answers (time passes)."""
        self.silent_end = silent

    def _start(self) -> None:
        """A (re)started bind: empty state, reading from the committed offsets."""
        self.outbox = Outbox(
            window=WINDOW,
            max_unknown_attempts=MAX_UNKNOWN,
            max_age_s=MAX_AGE_S,
            late_after_s=LATE_AFTER_S,
            ref=self.crashes,
        )
        self.read = dict(self.committed)
        self.provider: dict[int, Item] = {}  # sends the provider has not answered
        self.unwritten: list[Paired | Failed] = []  # outcomes produced, not acknowledged
        self.decided: Counter[tuple[int, int, int]] = Counter()  # (partition, offset, part)
        self.finished: set[tuple[int, int]] = set()  # records done in this incarnation

    # ------------------------------------------------------------ the log
    @rule(
        partition=st.integers(0, PARTITIONS - 1),
        parts=st.integers(1, 3),
        validity=st.sampled_from(VALIDITY),
        late=st.booleans(),
        failover=st.booleans(),
    )
    def route(self, partition: int, parts: int, validity: str, late: bool, failover: bool) -> None:
        """The router puts an accepted message (one record, multipart or not) on the log."""
        n = next(self.ids)
        received = self.clock - (LATE_AFTER_S + 1 if late and parts == 1 else 0)
        msgs = [
            accepted_message(
                f"m{n}.{seq}",
                validity_period=validity,
                received_at=received,
                concat=None if parts == 1 else Concat(n & 0xFFFF, parts, seq, 16, "sar"),
            )
            for seq in range(1, parts + 1)
        ]
        routed = Routed(
            msgs[0],
            "p",
            ("q",) if failover else (),
            routed_at=self.clock,
            parts=tuple(msgs) if parts > 1 else (),
        )
        self.log[partition].append(Record(routed))
        if late and parts == 1:
            self.late.append(msgs[0].id)

    @precondition(lambda self: self.late)
    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        """The customer of a late message was answered with an error: a marker follows it."""
        mid = data.draw(st.sampled_from(self.late))
        partition = next(p for p, recs in self.log.items() if any(mid in r.ids for r in recs))
        self.log[partition].append(Record(withdrawn=mid))

    @rule(partition=st.integers(0, PARTITIONS - 1))
    def fetch(self, partition: int) -> None:
        offset = self.read[partition]
        if offset >= len(self.log[partition]):
            return
        self.read[partition] += 1
        rec = self.log[partition][offset]
        pos = (TOPIC, partition, offset)
        if rec.routed is None:
            self._decided(self.outbox.withdraw(rec.withdrawn))
            self.outbox.skip(pos)
            self.finished.add((partition, offset))
        else:
            self.outbox.add(pos, rec.routed)

    @precondition(lambda self: self.outbox.held)
    @rule(data=st.data())
    def hold_over(self, data: st.DataObject) -> None:
        self.outbox.release(data.draw(st.sampled_from(sorted(self.outbox.held))))

    # ------------------------------------------------------------ the session
    @rule(how=st.sampled_from(["sent", "sent", "sent", "unencodable", "session-full"]))
    def send(self, how: str) -> None:
        out = self.outbox.next(self.clock)
        if out is None:
            return
        if isinstance(out, Failed):
            self._decided([out])
        elif how == "unencodable":
            self._decided([self.outbox.unsendable(out)])
        elif how == "session-full":
            self.outbox.unsent(out)
        else:
            seq = next(self.seqs)
            self.outbox.sent(seq, out, self.clock)
            self.provider[seq] = out

    @precondition(lambda self: self.provider)
    @rule(data=st.data(), answer=st.sampled_from(["ok", "temporary", "permanent", "none"]))
    def answer(self, data: st.DataObject, answer: str) -> None:
        """The provider answers any send still open, in any order."""
        seq = data.draw(st.sampled_from(sorted(self.provider)))
        del self.provider[seq]
        if answer == "none":  # the response timeout (SMPP 3.4 §2.7)
            failed = self.outbox.no_answer(seq)
            self._decided([] if failed is None else [failed])
            return
        status = {"ok": S.ESME_ROK, "temporary": S.ESME_RTHROTTLED, "permanent": S.ESME_RINVDSTADR}
        out = self.outbox.answer(seq, status[answer], f"P{seq}")
        assert out is not None
        if isinstance(out, Retry):
            assert answer == "temporary"
            assert self.outbox.queue[0] is out.item  # resent first
        else:
            assert isinstance(out, Paired) == (answer == "ok")
            self._decided([out])

    @rule(odds=st.integers(0, 3))
    def disconnect(self, odds: int) -> None:
        if odds:  # rarer than an answer: one draw in four
            return
        self._decided(self.outbox.disconnected())
        self.provider.clear()

    @rule(seconds=st.sampled_from([1.0, 10.0, 40.0, 130.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock += seconds
        self._decided(self.outbox.expire(self.clock))

    @precondition(lambda self: not self.provider)
    @rule()
    def fail_over(self) -> None:
        """Unbound for a while (nothing in flight): records with a failover route go on.

        Handing a record on is its outcome here (the failover provider's bind
        decides the rest); it is written at once, like the hand-over's produce.
        """
        for group in self.outbox.take_for_failover():
            for m in group.routed.segments:
                self.outcomes[m.id].append("handed-on")
            for index in range(len(group.routed.segments)):
                key = (group.pos[1], group.pos[2], index)
                self.decided[key] += 1
                assert self.decided[key] == 1, f"handed on after an outcome: {key}"
            self.outbox.handed_on(group)
            self.finished.add(group.pos[1:])

    # ------------------------------------------------------------ durability
    def _decided(self, outcomes: Sequence[Paired | Failed]) -> None:
        for o in outcomes:
            _, partition, offset = o.item.pos
            key = (partition, offset, o.item.index)
            self.decided[key] += 1
            assert self.decided[key] == 1, f"two outcomes for one part in one life: {key}"
            self.unwritten.append(o)

    @rule(count=st.integers(1, 4))
    def written(self, count: int) -> None:
        """The producer acknowledges outcome records (Kafka: acks=all); then they count."""
        done, self.unwritten = self.unwritten[:count], self.unwritten[count:]
        for o in done:
            for mid in o.item.ids:
                self.outcomes[mid].append(final_name(o))
            group = o.item.group
            self.outbox.durable(o.item)
            if group.remaining == 0:
                self.finished.add(group.pos[1:])

    @rule()
    def commit(self) -> None:
        for (_topic, partition), point in self.outbox.commit_points().items():
            for offset in range(self.committed[partition], point):
                assert (partition, offset) in self.finished, (
                    f"commit {point} passes unfinished record {partition}/{offset}"
                )
            assert point >= self.committed[partition]
            self.committed[partition] = point

    @rule(odds=st.integers(0, 5))
    def crash(self, odds: int) -> None:
        """The actor dies: unacknowledged outcomes are lost, the log is read again."""
        if odds:  # one draw in six, or few messages would get far between crashes
            return
        for partition, recs in self.log.items():
            for rec in recs[self.committed[partition] :]:
                self.replayed.update(mid for mid in rec.ids if self.outcomes[mid])
        self.crashes += 1
        self._start()

    # ------------------------------------------------------------ invariants
    @invariant()
    def window_slots_do_not_leak(self) -> None:
        assert set(self.outbox.in_flight) == set(self.provider)
        assert len(self.outbox.in_flight) <= WINDOW

    @invariant()
    def one_final_outcome_per_message(self) -> None:
        for mid, finals in self.outcomes.items():
            assert len(finals) <= 1 or mid in self.replayed, (mid, finals)

    @invariant()
    def committed_records_have_their_outcome(self) -> None:
        for partition, recs in self.log.items():
            for rec in recs[: self.committed[partition]]:
                for mid in rec.ids:
                    assert len(self.outcomes[mid]) >= 1, f"{mid} committed without an outcome"

    def teardown(self) -> None:
        """No message waits forever: every one ends, whether the provider answers again
        (sent) or never does (its attempts of unknown outcome run out, or it expires)."""
        for _ in range(500):
            progressed = False
            for partition in range(PARTITIONS):
                while self.read[partition] < len(self.log[partition]):
                    self.fetch(partition)
                    progressed = True
            for mid in sorted(self.outbox.held):
                self.outbox.release(mid)
                progressed = True
            while self.outbox.ready():
                self.send("sent")
                progressed = True
            for seq in sorted(self.provider):
                self.answer_at_last(seq)
                progressed = True
            if self.silent_end and (self.outbox.queue or self.outbox.held):
                self.time_passes(130.0)
            if self.unwritten:
                self.written(len(self.unwritten))
                progressed = True
            if not progressed:
                break
        self.commit()
        assert not self.outbox.queue and not self.outbox.in_flight and not self.outbox.held
        for partition, recs in self.log.items():
            assert self.committed[partition] == len(recs), (partition, self.committed)
            for rec in recs:
                for mid in rec.ids:
                    assert self.outcomes[mid], f"{mid} never reached a final state"

    def answer_at_last(self, seq: int) -> None:
        del self.provider[seq]
        if self.silent_end:
            failed = self.outbox.no_answer(seq)
            self._decided([] if failed is None else [failed])
            return
        out = self.outbox.answer(seq, S.ESME_ROK, f"P{seq}")
        assert isinstance(out, Paired)
        self._decided([out])


BindMachine.TestCase.settings = settings(
    max_examples=examples(150),
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBindOutbox = BindMachine.TestCase
