"""The bookkeeping of one provider bind, without I/O: where each message's fate is decided.

``ProviderBind`` (smsgw.pipeline.connector) owns the sockets, the Kafka
clients and the timers; this class owns every decision between them, so a
property test can drive it through any interleaving of provider answers,
time and crashes (tests/unit/test_outbox_stateful.py). The shape is h11's:
records, answers and the time go in; what to send, the outcomes to record
and the offsets that may be committed come out. Nothing here awaits, sleeps,
reads a clock or touches Kafka; ``now`` is epoch seconds, passed in.

In: routed records with their log position (``add``; ``skip`` for records
that carry no work), withdrawals, the session's answers to each send (``ok``
with the provider's id, an error status, no answer before the response
timeout, the connection lost), and the time (``expire``).
Out: the next part to send (``ready``/``next``), outcomes (``Paired``: the
provider took it; ``Failed``: a final state that is not the provider's
receipt, with its err code), ``Retry`` for a temporary refusal, and, once the
caller says an outcome is durable (``durable``), the offsets that may be
committed: per partition never beyond the first record with an unfinished
part (smsgw.offsets, the low-water mark).

The rules (invariant 9, every message fails alone):
- a window of ``window`` sends without an answer (SMPP 3.4 §2.6); a slot is
  taken by ``sent`` and given back by the answer, the timeout or the loss of
  the connection, never otherwise;
- a temporary refusal (0x58, 0x14, 0x08, 0x64: CommandStatus.retriable) puts
  the part first in the queue again, behind a back-off; any other refusal is
  final (err:902);
- a send without an answer (response timeout, §2.7; or the connection lost)
  has an unknown outcome: it is sent again *alone* (nothing else in flight),
  so a message that makes the provider drop the connection takes only its
  own attempts; after ``max_unknown_attempts`` it fails (err:906);
- a part past its deadline (validity period §7.1.1 or maximum age, earlier
  wins: smsgw.validity) is never sent (err:903); what is sent carries the
  validity that remains;
- a late-routed message is held until ``release``; a withdrawal drops it
  unsent (REJECTED, no receipt).
"""

from __future__ import annotations

import collections
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from smsgw import log
from smsgw.message import AcceptedMessage
from smsgw.offsets import OffsetTracker
from smsgw.receipts import ERR_EXPIRED, ERR_PROVIDER_REFUSED, ERR_UNKNOWN_OUTCOME, ERR_UNSENDABLE
from smsgw.records import Routed
from smsgw.reframe import OutPart, outgoing
from smsgw.smpp.status import CommandStatus
from smsgw.state import MessageState
from smsgw.validity import TimeFieldError, expires_at, parse_time, relative_time

Position = tuple[str, int, int]  # topic, partition, offset of a record
SENT_IDS_KEPT = 10_000  # ids remembered as sent, to count withdrawals that came too late
WITHDRAWAL_HOLD_S = 2.0  # at least this long: the marker's router transaction or two


def withdrawal_hold_s(
    received_at: float, now: float, produce_timeout_s: float, routed_at: float | None = None
) -> float:
    """Seconds a late-routed message waits for its withdrawal marker (wall-clock times).

    The listener answers the error at ``received_at + produce_timeout_s`` and only
    then writes the marker, whose own produce may take up to the produce timeout on
    the same troubled Kafka; the router then forwards it behind the message. A
    fixed 2-s hold let 624 refused submits out to the provider in a rolling restart
    (issue 14): the markers came later than that. A router that stalled (its
    transaction coordinator killed) routes a backlog long after it was received,
    and the markers in it follow at the router's pace, batches behind: the hold
    lasts a produce timeout after ``routed_at`` too (135 refused submits were sent
    when it did not, in the coordinator-kill test).
    """
    after_routing = 0.0 if routed_at is None else routed_at + produce_timeout_s - now
    return max(
        WITHDRAWAL_HOLD_S,
        received_at + 2 * produce_timeout_s + WITHDRAWAL_HOLD_S - now,
        after_routing,
    )


@dataclass
class BindStats:
    submitted: int = 0
    accepted: int = 0
    throttled: int = 0
    retried: int = 0
    failed: int = 0
    resent_unknown: int = 0
    failed_over: int = 0
    expired: int = 0
    unknown_exhausted: int = 0
    unsendable: int = 0
    withdrawn: int = 0
    withdrawn_too_late: int = 0
    receipts: int = 0
    mo: int = 0
    connects: int = 0
    bound: bool = False
    errors: dict[str, int] = field(default_factory=dict)
    final: dict[str, int] = field(default_factory=dict)  # "STATE|reason" (count_final)
    last_error: str = ""  # why the last connection or bind failed (`smsgw status`)


@dataclass(eq=False)
class Group:
    """The provider parts of one routed record (one, unless multipart)."""

    pos: Position
    routed: Routed
    remaining: int  # parts whose outcome is not durable yet
    accepted: int = 0  # parts the provider took
    decided: int = 0  # parts with an outcome (taken or failed): no failover after the first
    deadline: float = float("inf")  # epoch s: expired after this (validity or max age)
    validity_end: float | None = None  # the customer's validity, forwarded as what remains


@dataclass(eq=False)
class Item:
    """One submit_sm of a group and what is known of its sends."""

    group: Group
    part: AcceptedMessage  # what goes on the wire
    ids: tuple[str, ...]  # gateway ids this part's outcome answers
    index: int = 0
    attempts: int = 0
    unknown: int = 0  # sends that got no answer (connection lost, response timeout)
    sent_at: float = 0.0

    @property
    def pos(self) -> Position:
        return self.group.pos


@dataclass(frozen=True)
class Paired:
    """The provider took the part under ``provider_id``: its receipt decides the rest."""

    item: Item
    provider_id: str


@dataclass(frozen=True)
class Failed:
    """A final state that is not the provider's receipt (``status``: the provider's refusal)."""

    item: Item
    state: MessageState
    err: int
    reason: str
    status: int = 0
    receipt: bool = True


@dataclass(frozen=True)
class Retry:
    """A temporary refusal: the part is first in the queue again, after ``backoff_s``."""

    item: Item
    backoff_s: float


Outcome = Paired | Failed
_O = TypeVar("_O", Paired, Failed)


class Outbox:
    """Queue, window and in-flight sends of one bind; decisions only (see the module)."""

    def __init__(
        self,
        *,
        window: int,
        max_unknown_attempts: int,
        max_age_s: float,
        late_after_s: float = float("inf"),
        segmentation: str = "keep",
        offsets: OffsetTracker | None = None,
        stats: BindStats | None = None,
        ref: int = 0,
    ) -> None:
        self.window = window
        self.max_unknown_attempts = max_unknown_attempts
        self.max_age_s = max_age_s
        self.late_after_s = late_after_s
        self.segmentation = segmentation
        self.offsets = offsets if offsets is not None else OffsetTracker()
        self.stats = stats if stats is not None else BindStats()
        self.queue: collections.deque[Item] = collections.deque()
        self.in_flight: dict[int, Item] = {}
        # Parts with an outcome (taken, refused, expired...) not yet durable: with
        # ``in_flight``, what a bind giving up a partition waits for (``unsettled``).
        self.recording: set[Item] = set()
        # Partitions given to another member since: a send of theirs that comes back
        # unanswered or refused for now is not queued again (the next owner sends it).
        self.revoked: set[tuple[str, int]] = set()
        self.held: dict[str, list[Item]] = {}  # late messages waiting out the hold
        self._sent_ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        # Queued groups by deadline: expire() pops the due ones (a timer, not a scan).
        self._deadlines: list[tuple[float, int, Group]] = []
        self._deadline_seq = itertools.count()
        # Concatenation references this bind hands out (the caller picks a random
        # start, so a restarted bind does not reuse those of the messages just sent).
        self._ref = ref & 0xFFFF
        self.log = log.get("smsgw.connector")

    # ------------------------------------------------------------ records in
    def add(self, pos: Position, routed: Routed) -> bool:
        """A routed record read at ``pos``: queued, or held (True) until ``release``.

        A message routed late (its customer may have been answered with an
        error: smsgw.server.withdraw) is held for the withdrawal marker that
        would follow it.
        """
        self.offsets.read(*pos)
        items = self._items(pos, routed)
        m = routed.message
        if not routed.parts and routed.routed_at - m.received_at > self.late_after_s:
            self.held[m.id] = items
            return True
        self.queue.extend(items)
        return False

    def skip(self, pos: Position) -> None:
        """A record with no work for this bind (a withdrawal marker, a dead letter): done."""
        self.offsets.read(*pos)
        self.offsets.done(*pos)

    def release(self, mid: str) -> None:
        """The hold of a late message is over: queue it."""
        items = self.held.pop(mid, None)
        if items:
            self.queue.extend(items)

    def withdraw(self, mid: str) -> list[Failed]:
        """The customer was answered with an error: drop the message if it is not sent."""
        items = self.held.pop(mid, None)
        if items is None:
            items = [i for i in self.queue if mid in i.ids]
            if items:
                self.queue = collections.deque(i for i in self.queue if mid not in i.ids)
        if not items:
            if mid in self._sent_ids:
                self.stats.withdrawn_too_late += 1
            return []
        self.stats.withdrawn += 1
        return [
            self._decided(
                Failed(i, MessageState.REJECTED, err=0, reason="withdrawn", receipt=False)
            )
            for i in items
        ]

    def revoke(self, parts: Iterable[tuple[str, int]]) -> None:
        """Partitions went to another member: their queued and held work is theirs now."""
        gone = set(parts)
        self.revoked |= gone
        for mid, items in list(self.held.items()):
            if items[0].pos[:2] in gone:
                del self.held[mid]
        self.queue = collections.deque(i for i in self.queue if i.pos[:2] not in gone)

    def assign(self, parts: Iterable[tuple[str, int]]) -> None:
        """Partitions (back) in this member's hands: their records are sent here."""
        self.revoked -= set(parts)

    def unsettled(self, parts: Iterable[tuple[str, int]]) -> int:
        """Sends on ``parts`` the provider may have taken whose outcome is not durable yet:
        in flight (no answer yet) or answered and still being recorded.

        A partition let go before these settle is read again by its next owner,
        which sends them again (duplicates on a mere rebalance).
        """
        gone = set(parts)
        return sum(
            1
            for items in (self.in_flight.values(), self.recording)
            for i in items
            if i.pos[:2] in gone
        )

    def holding(self, parts: Iterable[tuple[str, int]] | None = None) -> bool:
        """Whether a late message of ``parts`` (None: any) waits out its hold here."""
        gone = None if parts is None else set(parts)
        return any(gone is None or items[0].pos[:2] in gone for items in self.held.values())

    def owed(self, parts: Iterable[tuple[str, int]] | None = None) -> int:
        """Parts of records of ``parts`` (None: all) read here and not settled: held,
        queued, in flight or being recorded.

        A held late message is a hole in its partition's commit point: let go
        unsent, the partition's next owner read it again and with it every record
        behind it, which this bind had sent already, and sent those again (3,747
        duplicates over test_bind_rebalance's bind counts, routing ~2 s behind).
        """
        gone = None if parts is None else set(parts)

        def mine(item: Item) -> bool:
            return gone is None or item.pos[:2] in gone

        held = sum(len(items) for items in self.held.values() if mine(items[0]))
        queued = sum(1 for i in self.queue if mine(i))
        unsettled = sum(
            1 for items in (self.in_flight.values(), self.recording) for i in items if mine(i)
        )
        return held + queued + unsettled

    def _items(self, pos: Position, routed: Routed) -> list[Item]:
        """The provider parts of a routed record, each with the ids its receipt answers."""
        segments = routed.segments
        if len(segments) > 1 or routed.message.message_payload is not None:
            self._ref = (self._ref + 1) & 0xFFFF
        try:
            parts = outgoing(segments, routed.ids_by_seq(), mode=self.segmentation, ref=self._ref)
        except ValueError as exc:  # a mode this code does not know: send as received
            self.log.error("cannot segment for provider", error=str(exc))
            parts = [OutPart(m, (m.id,)) for m in segments]
        m = routed.message
        group = Group(
            pos,
            routed,
            remaining=len(parts),
            deadline=expires_at(m.validity_period, m.received_at, self.max_age_s),
        )
        try:
            group.validity_end = parse_time(m.validity_period, m.received_at)
        except TimeFieldError:
            group.validity_end = None
        self._watch_deadline(group)
        return [Item(group, p.message, p.ids, index=i) for i, p in enumerate(parts)]

    # ------------------------------------------------------------ sending
    def _must_wait_alone(self) -> bool:
        """A resend of unknown outcome goes alone: nothing beside it in flight, then nothing
        after it until it is answered. A message that makes the provider drop the
        connection then takes only its own attempts, not its neighbours'."""
        if not self.in_flight:
            return False
        return self.queue[0].unknown > 0 or any(i.unknown for i in self.in_flight.values())

    def ready(self) -> bool:
        """Something may be sent now: queued, a window slot free, no resend waiting alone."""
        return (
            bool(self.queue) and len(self.in_flight) < self.window and not self._must_wait_alone()
        )

    def next(self, now: float) -> Item | Failed | None:
        """The part to send now (then ``sent``, ``unsent`` or ``unsendable``), or its expiry."""
        if not self.ready():
            return None
        item = self.queue.popleft()
        if now >= item.group.deadline:
            return self._expired(item)
        return item

    def validity_for(self, item: Item, now: float) -> str | None:
        """What remains of the customer's validity, relative (SMPP 3.4 §7.1.1.2); None: as is."""
        end = item.group.validity_end
        return None if end is None else relative_time(end - now)

    def sent(self, seq: int, item: Item, now: float) -> None:
        """The session took the submit under sequence number ``seq``: a window slot is taken."""
        item.attempts += 1
        item.sent_at = now
        for mid in item.ids:  # a withdrawal arriving after this is too late (counted)
            self._sent_ids[mid] = None
        while len(self._sent_ids) > SENT_IDS_KEPT:
            self._sent_ids.popitem(last=False)
        self.in_flight[seq] = item
        self.stats.submitted += 1

    def unsent(self, item: Item) -> None:
        """The session could not take it yet (its own window was full): first again."""
        self.queue.appendleft(item)

    def unsendable(self, item: Item) -> Failed:
        """The submit does not encode for this provider: it fails alone (err:907)."""
        self.stats.unsendable += 1
        return self._decided(
            Failed(item, MessageState.UNDELIVERABLE, err=ERR_UNSENDABLE, reason="unencodable")
        )

    # ------------------------------------------------------------ answers
    def answer(
        self, seq: int, status: CommandStatus, message_id: str = ""
    ) -> Paired | Failed | Retry | None:
        """The provider's submit_sm_resp (SMPP 3.4 §4.4.2); None: not a send of ours."""
        item = self.in_flight.pop(seq, None)
        if item is None:
            return None
        if status == CommandStatus.ESME_ROK:
            item.group.accepted += 1
            self.stats.accepted += 1
            return self._decided(Paired(item, message_id))
        key = f"0x{int(status):02X}"
        self.stats.errors[key] = self.stats.errors.get(key, 0) + 1
        if status.retriable:
            if status == CommandStatus.ESME_RTHROTTLED:
                self.stats.throttled += 1
            self.stats.retried += 1
            self._again(item)  # resent first: parts keep their order
            return Retry(item, min(0.1 * (2 ** min(item.attempts, 6)), 10.0))
        self.stats.failed += 1
        return self._decided(
            Failed(
                item,
                MessageState.UNDELIVERABLE,
                err=ERR_PROVIDER_REFUSED,
                reason="refused",
                status=int(status),
            )
        )

    def no_answer(self, seq: int) -> Failed | None:
        """No submit_sm_resp within the response timeout (§2.7): outcome unknown."""
        item = self.in_flight.pop(seq, None)
        return None if item is None else self._unanswered(item)

    def disconnected(self) -> list[Failed]:
        """The connection is gone: every send in flight has an unknown outcome."""
        items = sorted(self.in_flight.values(), key=lambda i: (i.pos[2], i.index))
        self.in_flight.clear()
        failed = []
        for item in reversed(items):  # appendleft: the first record ends up first again
            outcome = self._unanswered(item)
            if outcome is not None:
                failed.append(outcome)
        return failed

    def _decided(self, outcome: _O) -> _O:
        """Every outcome passes here: a record with a decided part stays with this provider."""
        outcome.item.group.decided += 1
        self.recording.add(outcome.item)
        return outcome

    def _unanswered(self, item: Item) -> Failed | None:
        """No answer to a send: resend it (alone, first), or fail it once its attempts ran out."""
        item.unknown += 1
        if item.unknown >= self.max_unknown_attempts:
            self.stats.unknown_exhausted += 1
            return self._decided(
                Failed(
                    item,
                    MessageState.UNDELIVERABLE,
                    err=ERR_UNKNOWN_OUTCOME,
                    reason="unknown-outcome",
                )
            )
        self.stats.resent_unknown += 1
        self._again(item)
        return None

    def _again(self, item: Item) -> None:
        """First in the queue again, unless its partition went to another member."""
        if item.pos[:2] not in self.revoked:
            self.queue.appendleft(item)

    # ------------------------------------------------------------ time
    def _watch_deadline(self, group: Group) -> None:
        if len(self._deadlines) > 1000 + 2 * (len(self.queue) + len(self.in_flight)):
            # Finished groups stay in the heap until their deadline; drop them now and
            # then (amortised O(1)), or a day's TTL would hold a day of messages.
            self._deadlines = [d for d in self._deadlines if d[2].remaining > 0]
            heapq.heapify(self._deadlines)
        heapq.heappush(self._deadlines, (group.deadline, next(self._deadline_seq), group))

    def next_deadline(self) -> float:
        """When ``expire`` has something to do next (epoch s; inf: nothing queued)."""
        return self._deadlines[0][0] if self._deadlines else float("inf")

    def expire(self, now: float) -> list[Failed]:
        """Queued parts of the groups past their deadline fail with EXPIRED (err:903).

        Parts in flight are left to their answer: if they come back unanswered,
        ``next`` expires them before they are sent again.
        """
        due: set[int] = set()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, group = heapq.heappop(self._deadlines)
            if group.remaining > 0:
                due.add(id(group))
        if not due:
            return []
        keep: collections.deque[Item] = collections.deque()
        out = []
        for item in self.queue:
            if id(item.group) in due:
                out.append(self._expired(item))
            else:
                keep.append(item)
        self.queue = keep
        return out

    def _expired(self, item: Item) -> Failed:
        self.stats.expired += 1
        return self._decided(Failed(item, MessageState.EXPIRED, err=ERR_EXPIRED, reason="expired"))

    # ------------------------------------------------------------ failover
    def take_for_failover(self) -> list[Group]:
        """The queued records that may go to their failover provider, out of the queue.

        Not a record without a failover route, nor one with a part whose
        outcome is decided (taken by the provider, or failed: the failover
        provider would send it again and give it a second final state); the
        rest of such a multipart message waits for this provider.
        """
        keep: collections.deque[Item] = collections.deque()
        handed: dict[int, Group] = {}
        for item in self.queue:
            g = item.group
            if id(g) in handed:
                continue
            if not g.routed.failover or g.decided:
                keep.append(item)
                continue
            handed[id(g)] = g
        self.queue = keep
        self.stats.failed_over += len(handed)
        return list(handed.values())

    def handed_on(self, group: Group) -> None:
        """The whole record is on the failover provider's topic: its offset is done here."""
        group.remaining = 0
        self.offsets.done(*group.pos)

    # ------------------------------------------------------------ offsets
    def durable(self, item: Item) -> None:
        """One part's outcome is recorded; the record is done with its last part."""
        self.recording.discard(item)
        item.group.remaining -= 1
        if item.group.remaining == 0:
            self.offsets.done(*item.pos)

    def not_recorded(self, item: Item) -> None:
        """Recording the outcome failed: the record stays unfinished (its offset is not
        committed; the next reader sends it again), nothing more to wait for here."""
        self.recording.discard(item)

    def commit_points(self) -> dict[tuple[str, int], int]:
        """Per partition, the offset to commit if it moved: the first unfinished record."""
        return self.offsets.commit_points()
