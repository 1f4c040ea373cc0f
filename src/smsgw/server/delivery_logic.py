"""The deliverer's decisions, without I/O: which delivery goes where, and its fate.

``Deliverer`` (smsgw.server.deliverer) owns the Kafka consumer, the producer
of ``delivered`` marks, the customers' binds and the calls to other nodes;
this class owns the waiting deliveries and every decision about them, so
tests/unit/test_pipeline_stateful.py drives it with the router's and the
provider bind's logic through crashes and any interleaving. Nothing here
awaits, reads a clock or touches Kafka; ``now`` is epoch seconds, passed in.

The rules (invariants 6 and 9):
- one delivery per id (``receipt_delivery_id``: one per *final* outcome of a
  message), the first to be answered for good wins: a copy whose id was
  delivered or failed (here, or by any deliverer: the ``delivered`` marks) is
  skipped; a copy of one on the wire waits for that one's answer;
- a receipt goes to the session that submitted its message while it is
  bound, else to any receiving bind of the customer (`session_home`); none
  bound: it waits, its offset uncommitted (store and forward);
- the customer's answer (`classify`): status 0 delivers it, a temporary error
  or no answer retries it after a back-off on its own timer while the
  customer's other deliveries flow on, a permanent error or ``generic_nack``
  fails it (SMPP 3.4 §4.3, §5.1.3);
- a delivery still waiting or retried when its TTL runs out expires;
- a final receipt goes out only if it tells the message's final state as the
  node's StateStore shows it (`shown`: the first final state on
  ``message-state``, ``StateStore.apply``); one telling another final state
  is finished unsent (``contradicted``). Two writers can decide a final
  outcome for one message: a provider bind that dies after the provider took
  a part and before its record's offset is committed sends that part again on
  replay and may fail it (unknown outcome, expiry, refusal of the copy) while
  the correlator turns the first send's DELIVRD receipt into DELIVERED; and
  the once-only receipt id cannot stop a failure receipt when the first final
  state had none (registered_delivery 2 wants failures only, SMPP 3.4
  §5.2.17). The state store's first final is the one outcome everyone agrees
  on, so the receipt follows it. A receipt read before its state record waits
  for it (``STATE_RECHECK_S``), at most ``STATE_WAIT_S``, then goes as it is.
  The destinations of a submit_multi share one id and one state shown: a
  receipt for another destination than the state's is not held to it (the
  once-only id, one per destination, is what holds there).
"""

from __future__ import annotations

import collections
import enum
import heapq
import itertools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from smsgw.records import Delivery
from smsgw.smpp.status import CommandStatus as S
from smsgw.state import MessageState, StateRecord

DEDUP_HORIZON_S = 3600.0  # replays after a crash are seconds old; keep an hour
REMOTE_BATCH = 200
# Deliveries looked at per dispatch: those of a session whose window is full stay
# queued while the ones behind them go to other sessions, up to this far back.
SCAN_LIMIT = 2000
LOCAL = ""  # session_home: the session is bound on this node
ON_WIRE_RECHECK_S = 1.0  # a replayed copy of a delivery on the wire is looked at again
# A final receipt read before the node's store has its message's state record (the
# follower of ``message-state`` lags a little, or catches up after a restart) is
# looked at again this often, and goes as it is once it has waited this long.
STATE_RECHECK_S = 0.1
STATE_WAIT_S = 30.0


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


# Statuses that say "not now" rather than "never" (SMPP 3.4 §5.1.3: ESME_RX_T_APPN
# is the ESME's temporary application error; throttling, a full queue and a
# system error pass with time). Every other error status is permanent, above all
# ESME_RX_P_APPN (0x65) and ESME_RX_R_APPN (0x66, "reject the message").
TEMPORARY: frozenset[S] = frozenset(
    {S.ESME_RX_T_APPN, S.ESME_RTHROTTLED, S.ESME_RMSGQFUL, S.ESME_RSYSERR}
)


def classify(status: S | None, *, nacked: bool = False) -> Outcome:
    """What a customer's answer to a deliver_sm means for that delivery.

    `status` None is no answer at all (a timeout or a lost bind): the outcome is
    unknown, so it is retried. A ``generic_nack`` is a failure whatever its
    status, 0 included (SMPP 3.4 §4.3: it answers a PDU the peer could not take);
    resending the same PDU would only be refused again.
    """
    if nacked:
        return Outcome.FAILED
    if status is None or status in TEMPORARY:
        return Outcome.RETRY
    return Outcome.DELIVERED if status == S.ESME_ROK else Outcome.FAILED


def backoff_s(attempts: int) -> float:
    """Delay before the next attempt of a delivery temporarily refused `attempts` times."""
    return float(min(2**attempts, 60))


def session_home(session: str, here: Collection[str], peers: Mapping[str, str]) -> str | None:
    """Where a receipt goes: LOCAL, another node's listener, or None (any receiving bind).

    A receipt goes to the session that submitted its message while that session is
    bound, here or on another node, so two applications sharing a system_id each
    get their own receipts; once the session is gone, to any receiver or
    transceiver bind of the customer. SMPP 3.4 leaves the choice to the MC (§2.3:
    a receiver or transceiver of the ESME); Kannel's bearerbox routes a receipt to
    the smsbox that sent the message and to another only when that one is gone.
    A transmitter session cannot take deliver_sm (§2.2.1): `here` and `peers` hold
    receiving sessions only, so its receipts go to any receiving bind. MO has no
    session (""): any bind too.
    """
    if not session:
        return None
    if session in here:
        return LOCAL
    return peers.get(session)


@dataclass
class DelivererStats:
    delivered: int = 0
    failed: int = 0  # permanent error or generic_nack: not retried
    duplicates_skipped: int = 0
    contradicted: int = 0  # final receipts unsent: the message's final state is another
    unconfirmed: int = 0  # final receipts sent without their state in the store
    state_waits: int = 0  # final receipts read before their state record (then waited)
    expired: int = 0
    retries: int = 0
    waiting: int = 0
    forwarded: int = 0


H = TypeVar("H")  # a record's handle: a Kafka Message, or a position in a test's log
C = TypeVar("C")  # a receiving bind


@dataclass
class Pending(Generic[H]):
    handle: H
    partition: int
    delivery: Delivery
    not_before: float = 0.0
    attempts: int = 0
    state_wait_from: float | None = None  # first looked at without its state in the store
    unconfirmed: bool = False  # waited STATE_WAIT_S for its state: goes as it is


@dataclass
class Dispatched(Generic[H]):
    """What one dispatch of a customer's queue leaves to the caller."""

    done: list[Pending[H]] = field(default_factory=list)  # duplicates: finished, unsent
    target: str | None = None  # another node's listener for `batch`
    batch: list[Pending[H]] = field(default_factory=list)


# Puts a delivery on the first of the binds (2nd argument) that takes it, dropping
# a bind found full from the free ones (3rd); True if one took it.
Place = Callable[[Pending[H], list[C], list[C]], bool]
# The final state record the node's StateStore shows for a message id; None: none yet.
Shown = Callable[[str], StateRecord | None]


class DeliveryLogic(Generic[H]):
    """Deliveries waiting for a customer, on the wire, or set aside to be retried."""

    def __init__(self, shown: Shown | None = None) -> None:
        self.shown = shown  # None: receipts are not checked against a state store
        self.delivered: dict[str, float] = {}  # finished ids (delivered or failed) -> when
        self.waiting: dict[str, collections.deque[Pending[H]]] = collections.defaultdict(
            collections.deque
        )
        self.sending: set[str] = set()  # delivery ids on the wire now
        # Temporarily refused deliveries, per customer: a heap on the retry time,
        # aside from the queue so the customer's other deliveries go on meanwhile.
        self.retrying: dict[str, list[tuple[float, int, Pending[H]]]] = {}
        self._retry_seq = itertools.count()
        self.dirty: set[str] = set()  # customers whose queue may move
        self.stats = DelivererStats()

    # ------------------------------------------------------------ records in
    def seen(self, delivery_id: str, now: float) -> None:
        """A ``delivered`` mark: that delivery was finished (here or by another deliverer)."""
        self.delivered[delivery_id] = now

    def take(self, handle: H, partition: int, d: Delivery) -> Pending[H] | None:
        """Queue a delivery read from ``deliver``; None: a duplicate, finished at once."""
        if d.id in self.delivered:
            self.stats.duplicates_skipped += 1
            return None
        item = Pending(handle, partition, d)
        self.waiting[d.customer].append(item)
        self.dirty.add(d.customer)
        return item

    def revoked(self, partitions: Iterable[int]) -> None:
        """Partitions gone to another deliverer: their deliveries are its now."""
        gone = set(partitions)
        for customer, queue in list(self.waiting.items()):
            kept = collections.deque(p for p in queue if p.partition not in gone)
            if kept:
                self.waiting[customer] = kept
            else:
                del self.waiting[customer]
        for customer, heap in list(self.retrying.items()):
            heap[:] = [e for e in heap if e[2].partition not in gone]
            heapq.heapify(heap)
            if not heap:
                del self.retrying[customer]

    # ------------------------------------------------------------ dispatch
    def _due(self, customer: str, now: float) -> None:
        """Move the customer's retries whose time has come to the front of its queue."""
        heap = self.retrying.get(customer)
        while heap and heap[0][0] <= now:
            self.waiting[customer].appendleft(heapq.heappop(heap)[2])
        if heap is not None and not heap:
            del self.retrying[customer]

    def dispatch(
        self,
        customer: str,
        now: float,
        bound: Mapping[str, C],
        free: list[C],
        place: Place[H, C],
        *,
        peers: Mapping[str, str] | None = None,
        anywhere: Sequence[str] = (),
        forwarding: bool = False,
    ) -> Dispatched[H]:
        """Hand the customer's due deliveries to its binds here (`place`) or to a batch
        for another node; what stays waits. `bound` maps this node's receiving
        session ids to binds, `free` those with room; `peers` the customer's
        sessions on other nodes, `anywhere` the nodes it is bound on (used when
        none is bound here); `forwarding` whether a batch may go to another node now.
        """
        result: Dispatched[H] = Dispatched()
        if customer in self.retrying:
            self._due(customer, now)
        queue = self.waiting.get(customer)
        if not queue:
            self.waiting.pop(customer, None)
            return result
        peers = peers or {}
        batch = result.batch
        kept: collections.deque[Pending[H]] = collections.deque()
        scanned = 0
        while queue and scanned < SCAN_LIMIT:
            if not free and not (forwarding and len(batch) < REMOTE_BATCH):
                break  # nothing can take a delivery now
            item = queue.popleft()
            scanned += 1
            d = item.delivery
            if d.id in self.delivered:
                self.stats.duplicates_skipped += 1
                result.done.append(item)
                continue
            if d.id in self.sending:
                # A replayed copy of one on the wire: look again once that one is
                # answered (then it is a duplicate), without holding up the rest.
                self.later(item, now + ON_WIRE_RECHECK_S)
                continue
            agrees = self._agrees(item, now)
            if agrees is None:  # its state record is not in the store yet
                self.later(item, now + STATE_RECHECK_S)
                continue
            if not agrees:
                self.stats.contradicted += 1
                result.done.append(item)
                continue
            home = session_home(d.session, bound, peers)
            if home is None and not bound:  # its session is gone and none is bound here
                home = anywhere[int(now) % len(anywhere)] if anywhere else None
                if home is None:
                    kept.append(item)  # bound nowhere: wait
                    continue
            if home is None or home == LOCAL:
                conns = [bound[d.session]] if home == LOCAL else free
                if not place(item, conns, free):
                    kept.append(item)
            elif forwarding and result.target in (None, home) and len(batch) < REMOTE_BATCH:
                result.target = home
                batch.append(item)
            else:
                kept.append(item)
        queue.extendleft(reversed(kept))
        if not queue:
            self.waiting.pop(customer, None)
        if not batch:
            result.target = None
        return result

    def _agrees(self, item: Pending[H], now: float) -> bool | None:
        """Whether a delivery may go as far as the message's final state is concerned.

        True for MO, intermediate receipts and a final receipt telling the final
        state shown; False for a final receipt telling another one (no mark is
        written: its id is the one every final receipt of the message shares, and
        a replay of the record is skipped again); None: wait for the state record.
        A state shown for another destination (a submit_multi's destinations share
        one id and one record in the store) says nothing of this one: True.
        """
        d = item.delivery
        if self.shown is None or d.kind != "receipt" or not d.message_id:
            return True
        try:
            state = MessageState(d.state)
        except ValueError:
            return True
        if not state.final:
            return True
        shown = self.shown(d.message_id)
        if shown is not None:
            if shown.destination and shown.destination != d.source.addr:
                return True
            return shown.state == state
        if item.state_wait_from is None:
            item.state_wait_from = now
            self.stats.state_waits += 1
        if now - item.state_wait_from < STATE_WAIT_S:
            return None
        if not item.unconfirmed:
            item.unconfirmed = True
            self.stats.unconfirmed += 1
        return True

    def on_wire(self, item: Pending[H]) -> None:
        """The delivery was put on a bind (or handed to another node): wait for its answer."""
        self.sending.add(item.delivery.id)

    def answered(self, item: Pending[H], status: S | None, *, nacked: bool, now: float) -> Outcome:
        """The customer's answer; DELIVERED or FAILED: the caller writes its mark, then
        the record is finished. RETRY: set aside for its back-off."""
        d = item.delivery
        self.sending.discard(d.id)
        outcome = classify(status, nacked=nacked)
        self.dirty.add(d.customer)  # a window slot is free: send the next one now
        if outcome is Outcome.RETRY:
            item.attempts += 1
            self.stats.retries += 1
            self.later(item, now + backoff_s(item.attempts))
            return outcome
        self.delivered[d.id] = now
        if outcome is Outcome.FAILED:
            self.stats.failed += 1
        else:
            self.stats.delivered += 1
        return outcome

    def later(self, item: Pending[H], when: float) -> None:
        """Set a delivery aside on its own timer; the customer's queue goes on without it."""
        item.not_before = when
        heap = self.retrying.setdefault(item.delivery.customer, [])
        heapq.heappush(heap, (when, next(self._retry_seq), item))

    # ------------------------------------------------------------ time
    def expire(self, now: float) -> list[Pending[H]]:
        """Deliveries whose TTL ran out, let go (counted); the caller finishes them."""
        gone: list[Pending[H]] = []

        def expired(item: Pending[H]) -> bool:
            d = item.delivery
            if not d.expires_at or d.expires_at >= now:
                return False
            self.stats.expired += 1
            gone.append(item)
            return True

        for customer, queue in list(self.waiting.items()):
            kept = collections.deque(i for i in queue if not expired(i))
            if kept:
                self.waiting[customer] = kept
            else:
                del self.waiting[customer]
        for customer, heap in list(self.retrying.items()):
            live = [e for e in heap if not expired(e[2])]
            heapq.heapify(live)
            if live:
                self.retrying[customer] = live
            else:
                del self.retrying[customer]
        horizon = now - DEDUP_HORIZON_S
        if len(self.delivered) > 100_000:
            self.delivered = {k: t for k, t in self.delivered.items() if t > horizon}
        return gone

    @property
    def held(self) -> int:
        """Deliveries waiting or set aside (for flow control)."""
        return sum(len(q) for q in self.waiting.values()) + sum(
            len(h) for h in self.retrying.values()
        )
