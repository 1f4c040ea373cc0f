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
recognised and not delivered again. A final receipt goes out only if it tells
the final state the node's StateStore shows (the first final state on
``message-state``): one message, one final outcome, in query_sm and in the
receipt alike (delivery_logic).

The decisions live in smsgw.server.delivery_logic (sans-IO); this class reads,
writes, commits and talks to the binds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Protocol

from confluent_kafka import OFFSET_END, Consumer, Message, TopicPartition

from smsgw import log
from smsgw.kafka.consumer import IDLE_WAIT_S, LONG_WAIT_S, AsyncConsumer, consumer_config
from smsgw.kafka.dlq import UNDECODABLE, DeadLetters
from smsgw.kafka.producer import AsyncProducer
from smsgw.records import Delivery
from smsgw.server.core import NodeCore
from smsgw.server.delivery_logic import (
    DEDUP_HORIZON_S,
    LOCAL,
    REMOTE_BATCH,
    SCAN_LIMIT,
    TEMPORARY,
    DelivererStats,
    DeliveryLogic,
    Outcome,
    Pending,
    backoff_s,
    classify,
    session_home,
)
from smsgw.smpp.status import CommandStatus as S
from smsgw.state import StateRecord
from smsgw.topics import Topics

__all__ = [
    "DEDUP_HORIZON_S",
    "LOCAL",
    "REMOTE_BATCH",
    "SCAN_LIMIT",
    "TEMPORARY",
    "Deliverer",
    "DelivererStats",
    "Nacked",
    "Outcome",
    "RemoteBinds",
    "backoff_s",
    "classify",
    "session_home",
]

_Pending = Pending[Message]


class Nacked(Exception):
    """The customer answered a deliver_sm with ``generic_nack`` (whatever its status)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"generic_nack 0x{status:08X}")
        self.status = status


class RemoteBinds(Protocol):
    """Other nodes' listeners, for customers bound elsewhere (the Ray runtime provides it)."""

    def targets(self, customer: str) -> list[str]: ...

    def sessions(self, customer: str) -> dict[str, str]:
        """The customer's receiving sessions on other nodes: session id -> listener."""
        ...

    async def send(self, target: str, deliveries: list[bytes]) -> list[int]: ...


NACKED = -2  # deliver_here's status for a delivery answered with generic_nack
# Deliveries live for days (SMSGW_DELIVERY_TTL_S): a scan of every waiting queue
# every few seconds is precise enough, and at 0.2 s it was a fifth of the
# listener's time under a backlog.
EXPIRY_SCAN_S = 5.0
COMMIT_S = 0.2  # finished deliveries are committed (and retries looked at) this far apart
NO_BIND = -1


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
        self.logic: DeliveryLogic[Message] = DeliveryLogic(shown=self._shown)
        self.stats = self.logic.stats
        self.dead_letters = DeadLetters(bootstrap, topics, "deliverer")
        self._paused = False
        # Ends a long wait for records: a receiver bound (or the stop), and while a
        # long wait is under way (``_long_wait``) an answer or a mark.
        self._woken = asyncio.Event()
        self._long_wait = False
        self.log = log.get("smsgw.deliverer")
        core.delivery_wakers.append(self._wake)
        core.states.on_final.append(self._state_arrived)

    def _shown(self, message_id: str) -> StateRecord | None:
        """The final state the node's store shows (the state follower's first final)."""
        record = self.core.states.get(message_id)
        return record if record is not None and record.state.final else None

    def _wake(self, customer: str) -> None:
        """A bind of the customer came up: look at its queue on the next turn."""
        self.logic.dirty.add(customer)
        self._woken.set()

    def _nudge(self) -> None:
        """Something to look at (an answer, a record finished): at once if the loop
        is in a long wait (a wake leaves it running), else on its next turn."""
        if self._long_wait:
            self._woken.set()

    def _wait_s(self) -> float:
        """How long the next wait for records may last.

        Anything held (waiting for a bind, a retry, an answer, a state record, a batch
        on its way to another node, a mark or a commit to make) is looked at every turn, as
        before; with nothing, only a record, a receiver's bind or the stop ends the
        wait (``_woken``).
        """
        logic = self.logic
        busy = (
            logic.waiting
            or logic.retrying
            or logic.sending
            or logic.dirty
            or logic.awaiting_state
            or self._remote_busy
            or self._paused
            or self.stats.waiting
            or self.consumer.progress.is_set()
            or self.producer.in_flight
        )
        return IDLE_WAIT_S if busy else LONG_WAIT_S

    def _state_arrived(self, message_id: str) -> None:
        """The state follower stored a message's final state (on this loop's thread): the
        receipts waiting for it go on this turn, not after a recheck timer."""
        if self.logic.state_arrived(message_id, time.time()):
            self._woken.set()

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
                self.logic.seen((msg.key() or b"").decode(), time.time())

    def _revoked(self, parts: list[TopicPartition]) -> None:
        self.logic.revoked(p.partition for p in parts)

    async def run(self, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _f: self._woken.set())
        try:
            # A crashed worker must close its consumer, or it keeps its partitions
            # (librdkafka heartbeats on) until max.poll.interval.ms runs out.
            await asyncio.to_thread(self._follow_marks)
            last = last_expiry = time.monotonic()
            while not stop.is_set():
                wait = self._wait_s()
                self._long_wait = self._long_wait or wait > IDLE_WAIT_S
                self._woken.clear()
                msgs = await self.consumer.batch(1000, wait, self._woken)
                if not self.consumer.waiting:
                    self._long_wait = False
                # After the wait: a mark written during it is known to its record.
                self._read_marks()
                for msg in msgs:
                    self._take(msg)
                self._dispatch_all()
                now = time.monotonic()
                if now - last > COMMIT_S:
                    last = now
                    self.consumer.progress.clear()
                    self.consumer.commit()
                    self._flow_control()
                    # retry timers, binds on other paths
                    self.logic.dirty |= set(self.logic.waiting) | set(self.logic.retrying)
                if now - last_expiry > EXPIRY_SCAN_S:
                    last_expiry = now
                    self._expire()
        finally:
            stopping.cancel()
            await asyncio.to_thread(self.consumer.close)
            await asyncio.to_thread(self.marks.close)

    def _take(self, msg: Message) -> None:
        try:
            d = Delivery.decode(msg.value() or b"")
        except UNDECODABLE as exc:
            self.dead_letters.put(msg, exc)
            self.consumer.done(msg)
            return
        if self.logic.take(msg, msg.partition() or 0, d) is None:
            self.consumer.done(msg)  # a duplicate

    def _dispatch_all(self) -> None:
        dirty, self.logic.dirty = self.logic.dirty, set()
        for customer in dirty:
            self._dispatch(customer)

    def _dispatch(self, customer: str) -> None:
        bound = {c.bind_id: c for c in self.core.binds.receivers(customer)}
        free = [c for c in bound.values() if getattr(c, "can_deliver", False)]
        peers = self.remote.sessions(customer) if self.remote is not None else {}
        anywhere = self.remote.targets(customer) if self.remote is not None and not bound else []
        # One batch per customer on its way to another node at a time.
        forwarding = bool(peers or anywhere) and customer not in self._remote_busy
        result = self.logic.dispatch(
            customer,
            time.time(),
            bound,
            free,
            self._send_here,
            peers=peers,
            anywhere=anywhere,
            forwarding=forwarding,
        )
        for item in result.done:
            self.consumer.done(item.handle)
        if result.target is not None and result.batch:
            self._forward(customer, result.target, result.batch)

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
            self.logic.on_wire(item)
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
            self.logic.on_wire(item)
            self._answered(fut, item)
        self.logic.dirty.add(customer)
        self._nudge()

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
        exc = None if fut.cancelled() else fut.exception()
        status: S | None = None if fut.cancelled() or exc is not None else fut.result()
        outcome = self.logic.answered(item, status, nacked=isinstance(exc, Nacked), now=time.time())
        self._nudge()  # a window slot is free
        if outcome is Outcome.RETRY:
            return
        if outcome is Outcome.FAILED:
            answer = str(exc) if exc is not None else f"0x{int(status or 0):08X}"
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
        accepted_at = d.extra.get("accepted_at")
        if accepted_at:
            self.core.record_e2e((time.time() - float(accepted_at)) * 1000)
        self.core.count("delivered", d.customer, d.kind)
        mark = self.producer.produce(self.topics.delivered, b"1", d.id.encode())
        mark.add_done_callback(lambda f: self._marked(f, item))

    def _marked(self, fut: asyncio.Future[Any], item: _Pending) -> None:
        if fut.exception() is None:
            self.consumer.done(item.handle)
            self._nudge()  # to commit
        else:
            self.log.error("could not record a delivery", error=str(fut.exception()))

    def _expire(self) -> None:
        for item in self.logic.expire(time.time()):
            self.core.count("delivery_expired", item.delivery.customer, item.delivery.kind)
            self.consumer.done(item.handle)

    def _flow_control(self) -> None:
        """Bound memory: stop fetching while too much waits for offline customers."""
        waiting = self.logic.held
        self.stats.waiting = waiting
        parts = [TopicPartition(t, p) for t, p in self.consumer.assigned]
        if not self._paused and waiting > self.max_waiting:
            self.consumer.pause(parts)
            self._paused = True
        elif self._paused and waiting < self.max_waiting // 2:
            self.consumer.resume(parts)
            self._paused = False
