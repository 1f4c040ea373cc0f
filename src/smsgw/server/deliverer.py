"""Deliverer: receipts and MO from the ``deliver`` topic to customers' receiving binds.

Store and forward: a record waits (its offset uncommitted) until the customer
has a receiver or transceiver bind. The customer's answer decides its fate
(`classify`): status 0 delivers it; a temporary error (or no answer) retries
it with back-off, on its own timer, while the customer's other deliveries
flow on (no head-of-line blocking); a permanent error or a ``generic_nack``
ends it as failed (counted, logged once). A retried record whose TTL runs out
expires (counted). A finished record's id (delivered or failed) goes to the
compacted ``delivered`` topic before the offset is committed; every deliverer
follows that topic, so a record replayed after a crash or a rebalance is
recognised and not delivered again.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import heapq
import itertools
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import OFFSET_END, Consumer, Message, TopicPartition

from smsgw import log
from smsgw.kafka.consumer import AsyncConsumer, consumer_config
from smsgw.kafka.dlq import UNDECODABLE, DeadLetters
from smsgw.kafka.producer import AsyncProducer
from smsgw.records import Delivery
from smsgw.server.core import NodeCore
from smsgw.smpp.status import CommandStatus as S
from smsgw.topics import Topics

DEDUP_HORIZON_S = 3600.0  # replays after a crash are seconds old; keep an hour


class Nacked(Exception):
    """The customer answered a deliver_sm with ``generic_nack`` (whatever its status)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"generic_nack 0x{status:08X}")
        self.status = status


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


@dataclass
class _Pending:
    msg: Message
    delivery: Delivery
    not_before: float = 0.0
    attempts: int = 0


class RemoteBinds(Protocol):
    """Other nodes' listeners, for customers bound elsewhere (the Ray runtime provides it)."""

    def targets(self, customer: str) -> list[str]: ...

    def sessions(self, customer: str) -> dict[str, str]:
        """The customer's receiving sessions on other nodes: session id -> listener."""
        ...

    async def send(self, target: str, deliveries: list[bytes]) -> list[int]: ...


REMOTE_BATCH = 200
# Deliveries looked at per dispatch: those of a session whose window is full stay
# queued while the ones behind them go to other sessions, up to this far back.
SCAN_LIMIT = 2000
LOCAL = ""  # session_home: the session is bound on this node


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


NACKED = -2  # deliver_here's status for a delivery answered with generic_nack
# Deliveries live for days (SMSGW_DELIVERY_TTL_S): a scan of every waiting queue
# every few seconds is precise enough, and at 0.2 s it was a fifth of the
# listener's time under a backlog.
EXPIRY_SCAN_S = 5.0
NO_BIND = -1


@dataclass
class DelivererStats:
    delivered: int = 0
    failed: int = 0  # permanent error or generic_nack: not retried
    duplicates_skipped: int = 0
    expired: int = 0
    retries: int = 0
    waiting: int = 0
    forwarded: int = 0


class Deliverer:
    def __init__(
        self,
        core: NodeCore,
        bootstrap: str,
        topics: Topics,
        producer: AsyncProducer,
        *,
        max_waiting: int = 100_000,
        remote: RemoteBinds | None = None,
    ) -> None:
        self.core = core
        self.topics = topics
        self.producer = producer
        self.max_waiting = max_waiting
        self.remote = remote
        self._remote_busy: set[str] = set()  # customers with a batch on its way elsewhere
        self.consumer = AsyncConsumer(
            consumer_config(bootstrap, f"{topics.prefix}deliverer"),
            [topics.deliver],
            on_revoke=self._revoked,
        )
        self.marks = Consumer(
            consumer_config(
                bootstrap,
                f"{topics.prefix}delivered-{uuid.uuid4().hex[:8]}",
                **{"isolation.level": "read_uncommitted"},
            )
        )
        self.delivered: dict[str, float] = {}
        self.waiting: dict[str, collections.deque[_Pending]] = collections.defaultdict(
            collections.deque
        )
        self.sending: set[str] = set()  # delivery ids on the wire now
        # Temporarily refused deliveries, per customer: a heap on the retry time,
        # aside from the queue so the customer's other deliveries go on meanwhile.
        self.retrying: dict[str, list[tuple[float, int, _Pending]]] = {}
        self._retry_seq = itertools.count()
        self.stats = DelivererStats()
        self.dead_letters = DeadLetters(bootstrap, topics, "deliverer")
        self._dirty: set[str] = set()
        self._paused = False
        self.log = log.get("smsgw.deliverer")
        core.delivery_wakers.append(self._dirty.add)

    def _follow_marks(self) -> None:
        """Read ``delivered`` from an hour ago on, on every partition."""
        md = self.marks.list_topics(self.topics.delivered, timeout=10)
        parts = md.topics[self.topics.delivered].partitions
        since = int((time.time() - DEDUP_HORIZON_S) * 1000)
        wanted = [TopicPartition(self.topics.delivered, p, since) for p in parts]
        offsets = self.marks.offsets_for_times(wanted, timeout=10)
        self.marks.assign(
            [
                TopicPartition(o.topic, o.partition, o.offset if o.offset >= 0 else OFFSET_END)
                for o in offsets
            ]
        )

    def _read_marks(self) -> None:
        for msg in self.marks.consume(2000, 0):
            if msg.error() is None and msg.key():
                self.delivered[(msg.key() or b"").decode()] = time.time()

    def _revoked(self, parts: list[TopicPartition]) -> None:
        gone = {p.partition for p in parts}
        for customer, queue in list(self.waiting.items()):
            kept = collections.deque(p for p in queue if (p.msg.partition() or 0) not in gone)
            if kept:
                self.waiting[customer] = kept
            else:
                del self.waiting[customer]
        for customer, heap in list(self.retrying.items()):
            heap[:] = [e for e in heap if (e[2].msg.partition() or 0) not in gone]
            heapq.heapify(heap)
            if not heap:
                del self.retrying[customer]

    def _due(self, customer: str, now: float) -> None:
        """Move the customer's retries whose time has come to the front of its queue."""
        heap = self.retrying.get(customer)
        while heap and heap[0][0] <= now:
            self.waiting[customer].appendleft(heapq.heappop(heap)[2])
        if heap is not None and not heap:
            del self.retrying[customer]

    async def run(self, stop: asyncio.Event) -> None:
        try:
            # A crashed worker must close its consumer, or it keeps its partitions
            # (librdkafka heartbeats on) until max.poll.interval.ms runs out.
            await asyncio.to_thread(self._follow_marks)
            last = last_expiry = time.monotonic()
            while not stop.is_set():
                self._read_marks()
                for msg in await self.consumer.batch(1000):
                    self._take(msg)
                self._dispatch_all()
                now = time.monotonic()
                if now - last > 0.2:
                    last = now
                    self.consumer.commit()
                    self._flow_control()
                    # retry timers, binds on other paths
                    self._dirty |= set(self.waiting) | set(self.retrying)
                if now - last_expiry > EXPIRY_SCAN_S:
                    last_expiry = now
                    self._expire()
        finally:
            await asyncio.to_thread(self.consumer.close)
            await asyncio.to_thread(self.marks.close)

    def _take(self, msg: Message) -> None:
        try:
            d = Delivery.decode(msg.value() or b"")
        except UNDECODABLE as exc:
            self.dead_letters.put(msg, exc)
            self.consumer.done(msg)
            return
        if d.id in self.delivered:
            self.stats.duplicates_skipped += 1
            self.consumer.done(msg)
            return
        self.waiting[d.customer].append(_Pending(msg, d))
        self._dirty.add(d.customer)

    def _dispatch_all(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for customer in dirty:
            self._dispatch(customer)

    def _dispatch(self, customer: str) -> None:
        now = time.time()
        if customer in self.retrying:
            self._due(customer, now)
        queue = self.waiting.get(customer)
        if not queue:
            self.waiting.pop(customer, None)
            return
        bound = {c.bind_id: c for c in self.core.binds.receivers(customer)}
        free = [c for c in bound.values() if getattr(c, "can_deliver", False)]
        peers = self.remote.sessions(customer) if self.remote is not None else {}
        anywhere = self.remote.targets(customer) if self.remote is not None and not bound else []
        # One batch per customer on its way to another node at a time.
        forwarding = bool(peers or anywhere) and customer not in self._remote_busy
        target: str | None = None
        batch: list[_Pending] = []
        kept: collections.deque[_Pending] = collections.deque()
        scanned = 0
        while queue and scanned < SCAN_LIMIT:
            if not free and not (forwarding and len(batch) < REMOTE_BATCH):
                break  # nothing can take a delivery now
            item = queue.popleft()
            scanned += 1
            d = item.delivery
            if d.id in self.delivered:
                self.stats.duplicates_skipped += 1
                self.consumer.done(item.msg)
                continue
            if d.id in self.sending:
                # A replayed copy of one on the wire: look again once that one is
                # answered (then it is a duplicate), without holding up the rest.
                self._later(item, now + 1.0)
                continue
            home = session_home(d.session, bound, peers)
            if home is None and not bound:  # its session is gone and none is bound here
                home = anywhere[int(now) % len(anywhere)] if anywhere else None
                if home is None:
                    kept.append(item)  # bound nowhere: wait
                    continue
            if home is None or home == LOCAL:
                conns = [bound[d.session]] if home == LOCAL else free
                if not self._send_here(item, conns, free):
                    kept.append(item)
            elif forwarding and target in (None, home) and len(batch) < REMOTE_BATCH:
                target = home
                batch.append(item)
            else:
                kept.append(item)
        queue.extendleft(reversed(kept))
        if not queue:
            self.waiting.pop(customer, None)
        if target is not None and batch:
            self._forward(customer, target, batch)

    def _send_here(self, item: _Pending, targets: list[Any], free: list[Any]) -> bool:
        """Put a delivery on the first of `targets` with room; a bind found full leaves `free`."""
        for conn in list(targets):
            if conn not in free:
                continue
            fut = conn.send_deliver(item.delivery)
            free.remove(conn)
            if fut is None:
                continue
            free.append(conn)  # round-robin over the customer's binds
            self.sending.add(item.delivery.id)
            fut.add_done_callback(lambda f, it=item: self._answered(f, it))
            return True
        return False

    def _forward(self, customer: str, target: str, batch: list[_Pending]) -> None:
        """Hand a batch to another node's listener (one call per batch, one batch at a time)."""
        self._remote_busy.add(customer)
        task = asyncio.ensure_future(self._send_remote(customer, target, batch))
        task.add_done_callback(lambda _t: self._remote_busy.discard(customer))

    async def _send_remote(self, customer: str, target: str, batch: list[_Pending]) -> None:
        assert self.remote is not None
        try:
            statuses = await self.remote.send(target, [i.delivery.encode() for i in batch])
        except Exception as exc:
            self.log.warning("forwarding to another node failed", target=target, error=repr(exc))
            statuses = [NO_BIND] * len(batch)
        loop = asyncio.get_running_loop()
        for item, status in zip(batch, statuses, strict=False):
            fut: asyncio.Future[Any] = loop.create_future()
            if status == NACKED:
                fut.set_exception(Nacked(0))
            elif status == NO_BIND:
                fut.set_exception(ConnectionError("not delivered on the other node"))
            else:
                fut.set_result(S.for_code(status))
            if status == 0:
                self.stats.forwarded += 1
            self.sending.add(item.delivery.id)
            self._answered(fut, item)
        self._dirty.add(customer)

    async def deliver_here(self, raw: list[bytes], timeout: float = 10.0) -> list[int]:
        """Deliver another node's batch to this node's binds; a status per delivery.

        A batch is larger than a bind's window: when every window is full, wait
        for answers to free a slot (up to `timeout` for the whole batch) rather
        than report the rest as undeliverable, which would send them into the
        other node's retry back-off.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        futures: list[asyncio.Future[Any] | None] = []
        for blob in raw:
            d = Delivery.decode(blob)
            sent = None
            while sent is None and self.core.binds.receivers(d.customer):
                for conn in self._receivers_for(d):
                    if getattr(conn, "can_deliver", False):
                        sent = conn.send_deliver(d)
                        if sent is not None:
                            break
                left = deadline - loop.time()
                if sent is not None or left <= 0:
                    break
                busy = [f for f in futures if f is not None and not f.done()]
                if busy:
                    await asyncio.wait(busy, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                else:  # the windows are full of this node's own deliveries
                    await asyncio.sleep(min(left, 0.01))
            futures.append(sent)
        pending = [f for f in futures if f is not None]
        left = deadline - loop.time()
        if pending and left > 0:
            await asyncio.wait(pending, timeout=left)
        out: list[int] = []
        for f in futures:
            if (
                f is not None
                and f.done()
                and not f.cancelled()
                and isinstance(f.exception(), Nacked)
            ):
                out.append(NACKED)
            elif f is None or not f.done() or f.cancelled() or f.exception() is not None:
                out.append(NO_BIND)
            else:
                out.append(int(f.result()))
        return out

    def _receivers_for(self, d: Delivery) -> list[Any]:
        """The delivery's own session if it is bound here, else every receiving bind."""
        receivers = self.core.binds.receivers(d.customer)
        own = [c for c in receivers if c.bind_id == d.session]
        return own or receivers

    def _answered(self, fut: asyncio.Future[Any], item: _Pending) -> None:
        d = item.delivery
        self.sending.discard(d.id)
        exc = None if fut.cancelled() else fut.exception()
        status: S | None = None if fut.cancelled() or exc is not None else fut.result()
        outcome = classify(status, nacked=isinstance(exc, Nacked))
        if outcome is Outcome.RETRY:
            item.attempts += 1
            self.stats.retries += 1
            self._later(item, time.time() + backoff_s(item.attempts))
            self._dirty.add(d.customer)  # its window slot is free for the next one
            return
        self._dirty.add(d.customer)  # a window slot is free: send the next one now
        self.delivered[d.id] = time.time()
        if outcome is Outcome.FAILED:
            answer = str(exc) if exc is not None else f"0x{int(status or 0):08X}"
            self.stats.failed += 1
            self.core.count("delivery_failed", d.customer, d.kind)
            self.log.warning(
                "customer refused a delivery for good: not retried",
                customer=d.customer,
                delivery=d.id,
                kind=d.kind,
                answer=answer,
            )
            mark = self.producer.produce(self.topics.delivered, b"failed", d.id.encode())
            mark.add_done_callback(lambda f: self._marked(f, item))
            return
        self.stats.delivered += 1
        accepted_at = d.extra.get("accepted_at")
        if accepted_at:
            self.core.record_e2e((time.time() - float(accepted_at)) * 1000)
        self.core.count("delivered", d.customer, d.kind)
        mark = self.producer.produce(self.topics.delivered, b"1", d.id.encode())
        mark.add_done_callback(lambda f: self._marked(f, item))

    def _later(self, item: _Pending, when: float) -> None:
        """Set a delivery aside on its own timer; the customer's queue goes on without it."""
        item.not_before = when
        heap = self.retrying.setdefault(item.delivery.customer, [])
        heapq.heappush(heap, (when, next(self._retry_seq), item))

    def _marked(self, fut: asyncio.Future[Any], item: _Pending) -> None:
        if fut.exception() is None:
            self.consumer.done(item.msg)
        else:
            self.log.error("could not record a delivery", error=str(fut.exception()))

    def _expire(self) -> None:
        now = time.time()
        for customer, queue in list(self.waiting.items()):
            kept = collections.deque(i for i in queue if not self._expired(customer, i, now))
            if kept:
                self.waiting[customer] = kept
            else:
                del self.waiting[customer]
        for customer, heap in list(self.retrying.items()):
            live = [e for e in heap if not self._expired(customer, e[2], now)]
            heapq.heapify(live)
            if live:
                self.retrying[customer] = live
            else:
                del self.retrying[customer]
        horizon = now - DEDUP_HORIZON_S
        if len(self.delivered) > 100_000:
            self.delivered = {k: t for k, t in self.delivered.items() if t > horizon}

    def _expired(self, customer: str, item: _Pending, now: float) -> bool:
        """Count and let go of a delivery whose TTL ran out."""
        if not item.delivery.expires_at or item.delivery.expires_at >= now:
            return False
        self.stats.expired += 1
        self.core.count("delivery_expired", customer, item.delivery.kind)
        self.consumer.done(item.msg)
        return True

    def _flow_control(self) -> None:
        """Bound memory: stop fetching while too much waits for offline customers."""
        waiting = sum(len(q) for q in self.waiting.values())
        waiting += sum(len(h) for h in self.retrying.values())
        self.stats.waiting = waiting
        parts = [TopicPartition(t, p) for t, p in self.consumer.assigned]
        if not self._paused and waiting > self.max_waiting:
            self.consumer.pause(parts)
            self._paused = True
        elif self._paused and waiting < self.max_waiting // 2:
            self.consumer.resume(parts)
            self._paused = False
