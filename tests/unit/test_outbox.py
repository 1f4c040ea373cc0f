"""smsgw.pipeline.outbox rules, example by example (the state machine covers their mix)."""

from __future__ import annotations

from smsgw.pipeline.outbox import Failed, Item, Outbox, Paired, Retry
from smsgw.records import Routed
from smsgw.smpp.status import CommandStatus as S
from smsgw.smpp.udh import Concat
from smsgw.state import MessageState
from tests.helpers.messages import accepted_message

T0 = 1_000_000.0


def outbox(window: int = 2, late_after_s: float = float("inf")) -> Outbox:
    return Outbox(window=window, max_unknown_attempts=2, max_age_s=600.0, late_after_s=late_after_s)


def routed(mid: str, **fields: object) -> Routed:
    return Routed(accepted_message(mid, received_at=T0, **fields), "p", routed_at=T0)


def take(box: Outbox, now: float = T0) -> Item:
    out = box.next(now)
    assert isinstance(out, Item)
    return out


def test_a_resend_of_unknown_outcome_goes_alone() -> None:
    box = outbox()
    for i in range(3):
        box.add(("t", 0, i), routed(f"m{i}"))
    a, b = take(box), take(box)
    box.sent(1, a, T0)
    box.sent(2, b, T0)
    assert not box.ready()  # window of 2
    assert box.no_answer(1) is None  # resent, first
    assert box.queue[0] is a and not box.ready()  # alone: b is still in flight
    assert isinstance(box.answer(2, S.ESME_ROK, "x"), Paired)
    assert take(box) is a
    box.sent(3, a, T0)
    assert not box.ready()  # nothing beside it until it is answered
    failed = box.no_answer(3)  # second attempt of unknown outcome: max reached
    assert isinstance(failed, Failed) and failed.err == 906 and failed.reason == "unknown-outcome"
    assert box.ready()


def test_refusals_temporary_and_permanent() -> None:
    box = outbox()
    box.add(("t", 0, 0), routed("m0"))
    item = take(box)
    box.sent(1, item, T0)
    retry = box.answer(1, S.ESME_RTHROTTLED)
    assert isinstance(retry, Retry) and retry.backoff_s > 0 and box.queue[0] is item
    box.sent(2, take(box), T0)
    failed = box.answer(2, S.ESME_RINVDSTADR)
    assert isinstance(failed, Failed)
    assert (failed.state, failed.err, failed.status) == (MessageState.UNDELIVERABLE, 902, 0x0B)
    assert box.answer(2, S.ESME_ROK) is None  # not ours any more


def test_the_commit_point_waits_for_every_earlier_record() -> None:
    box = outbox(window=5)
    box.add(("t", 0, 10), routed("m0"))
    box.add(("t", 0, 11), routed("m1"))
    first, second = take(box), take(box)
    box.durable(second)
    assert box.commit_points() == {}  # 10 is unfinished: the group stays at 10
    box.durable(first)
    assert box.commit_points() == {("t", 0): 12}


def test_expiry_in_the_queue_and_before_a_send_and_the_validity_that_remains() -> None:
    box = outbox()
    box.add(("t", 0, 0), routed("short", validity_period="000000000030000R"))  # 30 s
    box.add(("t", 0, 1), routed("long", validity_period="000000000500000R"))  # 5 min
    assert box.next_deadline() == T0 + 30
    expired = box.expire(T0 + 31)
    assert [f.item.part.id for f in expired] == ["short"] and expired[0].err == 903
    item = take(box, T0 + 100)
    assert box.validity_for(item, T0 + 100) == "000000000320000R"  # 200 s remain
    box.unsent(item)
    late = box.next(T0 + 301)
    assert isinstance(late, Failed) and late.state == MessageState.EXPIRED


def test_a_late_message_is_held_and_a_withdrawal_drops_it_unsent() -> None:
    box = outbox(late_after_s=4.0)
    late = Routed(accepted_message("w", received_at=T0 - 10), "p", routed_at=T0)
    assert box.add(("t", 0, 0), late)
    assert not box.ready()
    (rejected,) = box.withdraw("w")
    assert rejected.state == MessageState.REJECTED and not rejected.receipt
    assert box.withdraw("w") == []


def test_failover_takes_whole_records_not_started_ones() -> None:
    box = outbox()
    box.add(("t", 0, 0), Routed(accepted_message("a", received_at=T0), "p", ("q",), T0))
    box.add(("t", 0, 1), routed("b"))  # no failover route
    (group,) = box.take_for_failover()
    assert group.routed.message.id == "a" and [i.part.id for i in box.queue] == ["b"]
    box.handed_on(group)
    assert box.commit_points() == {("t", 0): 1}


def test_a_multipart_record_with_a_failed_part_does_not_fail_over() -> None:
    """The failover provider would send the refused part again: a second final state."""
    box = outbox()
    parts = tuple(
        accepted_message(f"m.{i}", received_at=T0, concat=Concat(1, 2, i, 16, "sar"))
        for i in (1, 2)
    )
    box.add(("t", 0, 0), Routed(parts[0], "p", ("q",), T0, parts))
    first = take(box)
    box.sent(1, first, T0)
    refused = box.answer(1, S.ESME_RINVDSTADR)
    assert isinstance(refused, Failed)
    assert box.take_for_failover() == []
    assert [i.part.id for i in box.queue] == ["m.2"]  # waits for this provider


def test_a_late_message_waits_as_long_as_its_withdrawal_marker_can_take() -> None:
    """Issue 14: the listener answers at received + T, then its marker's produce may take T
    more; a fixed 2-s hold let 624 refused submits out in a rolling restart."""
    from smsgw.pipeline.outbox import WITHDRAWAL_HOLD_S, withdrawal_hold_s

    t = 5.0
    # Routed 4.5 s after acceptance: held until received + 2T + 2 s.
    assert withdrawal_hold_s(1000.0, 1004.5, t) == 7.5
    # Routed a minute late (its marker is surely written by now): the minimum hold.
    assert withdrawal_hold_s(1000.0, 1060.0, t) == WITHDRAWAL_HOLD_S
    # Routed long after receipt (a stalled router's backlog): its marker follows at
    # the router's pace, so the hold runs a produce timeout past the routing.
    assert withdrawal_hold_s(1000.0, 1060.0, t, routed_at=1059.0) == t - 1.0
    assert withdrawal_hold_s(1000.0, 1060.0, t, routed_at=1000.5) == WITHDRAWAL_HOLD_S


def test_late_counts_from_two_seconds_or_a_second_before_the_produce_timeout() -> None:
    """A record the dead leader replicated is readable on the new leader only after the
    broker session timeout (3 s embedded): routed then, it must count as late (21
    such records were sent and refused at 5 s when late began at 4 s)."""
    from smsgw.message import late_after_s

    assert late_after_s(5.0) == 2.0
    assert late_after_s(2.5) == 1.5
    assert late_after_s(0.5) == 0.0


def test_a_revoked_partition_stops_sending_and_shows_what_is_unsettled() -> None:
    """What a bind giving partition 0 up waits for (connector ``_drain``): its sends in
    flight, then their outcomes until durable; its queued records are dropped."""
    box = outbox(window=5)
    for p, o in [(0, 10), (0, 11), (1, 20), (0, 12)]:
        box.add(("t", p, o), routed(f"m{p}-{o}"))
    a, b, c = take(box), take(box), take(box)  # 0/10, 0/11, 1/20 sent; 0/12 queued
    for seq, item in enumerate((a, b, c), 1):
        box.sent(seq, item, T0)
    box.revoke([("t", 0)])
    assert not box.queue  # 0/12 is the next owner's
    assert box.unsettled([("t", 0)]) == 2 and box.unsettled([("t", 1)]) == 1
    paired = box.answer(1, S.ESME_ROK, "x")
    assert isinstance(paired, Paired)
    assert box.unsettled([("t", 0)]) == 2  # answered, its pairing not durable yet
    box.durable(a)
    assert box.unsettled([("t", 0)]) == 1
    assert box.no_answer(2) is None  # unknown outcome: not queued again here
    assert not box.queue and box.unsettled([("t", 0)]) == 0
    assert box.commit_points() == {("t", 0): 11}  # 11 on goes to the next owner


def test_a_refused_or_failed_send_of_a_revoked_partition_is_not_queued_again() -> None:
    box = outbox(window=5)
    box.add(("t", 0, 0), routed("m0"))
    box.add(("t", 0, 1), routed("m1"))
    a, b = take(box), take(box)
    box.sent(1, a, T0)
    box.sent(2, b, T0)
    box.revoke([("t", 0)])
    assert isinstance(box.answer(1, S.ESME_RTHROTTLED), Retry)
    assert not box.queue  # throttled: resent by the next owner, not here as well
    failed = box.answer(2, S.ESME_RINVDSTADR)
    assert isinstance(failed, Failed)
    assert box.unsettled([("t", 0)]) == 1  # a final state being recorded
    box.not_recorded(b)  # its produce failed: nothing left to wait for
    assert box.unsettled([("t", 0)]) == 0
    box.assign([("t", 0)])  # back here: its records are sent here again
    box.add(("t", 0, 0), routed("m0"))
    item = take(box)
    box.sent(3, item, T0)
    assert isinstance(box.answer(3, S.ESME_RTHROTTLED), Retry) and box.queue[0] is item


def test_a_held_late_message_is_owed_until_sent_and_durable() -> None:
    """A late message held at offset 0 and the record behind it sent and done: the
    commit point stays at 0, so a bind giving the partition up with the late one
    unsent had the next owner send offset 1 again (connector ``_drain``, and a
    planned stop, send what is owed first while a late message is held)."""
    box = outbox(window=5, late_after_s=2.0)
    late = Routed(accepted_message("late", received_at=T0 - 3), "p", routed_at=T0)
    assert box.add(("t", 0, 0), late)  # held for its withdrawal marker
    box.add(("t", 0, 1), routed("m1"))
    box.add(("t", 1, 0), routed("other"))
    assert box.holding([("t", 0)]) and not box.holding([("t", 1)]) and box.holding()
    sent = take(box)
    assert sent.pos == ("t", 0, 1)
    box.sent(1, sent, T0)
    assert isinstance(box.answer(1, S.ESME_ROK, "x"), Paired)
    box.durable(sent)
    assert box.commit_points() == {}  # partition 0 held back at 0 by the late one
    assert box.owed([("t", 0)]) == 1 and box.owed() == 2  # the late one; + 1/0 queued
    box.release("late")
    assert not box.holding() and box.owed([("t", 0)]) == 1  # queued now, behind 1/0
    other, item = take(box), take(box)
    assert item.pos == ("t", 0, 0) and box.owed([("t", 1)]) == 0  # taken, not sent
    box.sent(2, item, T0)
    assert box.owed([("t", 0)]) == 1  # in flight
    assert isinstance(box.answer(2, S.ESME_ROK, "y"), Paired)
    assert box.owed([("t", 0)]) == 1  # its pairing not durable yet
    box.durable(item)
    assert box.owed([("t", 0)]) == 0
    assert box.commit_points()[("t", 0)] == 2
    assert other.pos == ("t", 1, 0)
