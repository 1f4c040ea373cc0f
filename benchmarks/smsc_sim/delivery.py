"""Outbound deliver_sm (receipts and MO): timing, per-bind windows, retries.

One heap and one timer handle serve every delayed receipt and retry, so a
load of thousands of receipts per second costs no task and no TimerHandle
per message. Deliveries wait per system_id until a receiver bind has window
room (store and forward, like a real SMSC), and come back to the queue when
their bind drops or answers with an error.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import defaultdict, deque
from dataclasses import dataclass, field

from benchmarks.smsc_sim.connection import SmscConnection
from benchmarks.smsc_sim.stats import SimStats
from smsgw.smpp import CommandStatus
from smsgw.smpp.pdu import FieldValue, Tlv

TIMER_SLACK = 0.001  # deliveries due this close together go out in one batch


@dataclass(slots=True, eq=False)
class Delivery:
    """One deliver_sm to send; `prefer` is the bind it should go to if it can."""

    kind: str  # "receipt" or "mo"
    system_id: str
    fields: dict[str, FieldValue]
    tlvs: tuple[Tlv, ...]
    prefer: SmscConnection | None = None
    attempts: int = field(default=0)


class Deliverer:
    def __init__(self, loop: asyncio.AbstractEventLoop, stats: SimStats, retry_delay: float):
        self._loop = loop
        self._stats = stats
        self._retry_delay = retry_delay
        self._heap: list[tuple[float, int, Delivery]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = float("inf")
        self._outbox: defaultdict[str, deque[Delivery]] = defaultdict(deque)
        self._receivers: defaultdict[str, list[SmscConnection]] = defaultdict(list)
        self._rotate = 0
        self.dirty: set[SmscConnection] = set()

    # ------------------------------------------------------------ receivers
    def add_receiver(self, conn: SmscConnection, now: float) -> None:
        self._receivers[conn.system_id].append(conn)
        self._drain(conn.system_id, now)

    def remove_receiver(self, conn: SmscConnection) -> None:
        """The bind is gone: what it had in flight is queued again, first."""
        receivers = self._receivers.get(conn.system_id)
        if receivers and conn in receivers:
            receivers.remove(conn)
        if conn.inflight:
            queue = self._outbox[conn.system_id]
            queue.extendleft(reversed(list(conn.inflight.values())))
            conn.inflight.clear()
        self.dirty.discard(conn)

    def backlog(self) -> int:
        """Deliveries waiting: scheduled, queued for a receiver, or in flight."""
        queued = sum(len(q) for q in self._outbox.values())
        inflight = sum(len(c.inflight) for r in self._receivers.values() for c in r)
        return len(self._heap) + queued + inflight

    # ------------------------------------------------------------ sending
    def send_now(self, delivery: Delivery, now: float) -> None:
        conn = delivery.prefer
        queue = self._outbox[delivery.system_id]
        if conn is not None and not queue and conn.receiving and conn.capacity > 0:
            self._send(conn, delivery, now)
            return
        queue.append(delivery)
        self._drain(delivery.system_id, now)

    def send_later(self, delay: float, delivery: Delivery) -> None:
        due = self._loop.time() + delay
        heapq.heappush(self._heap, (due, next(self._order), delivery))
        if due < self._timer_due:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_due = due
            self._timer = self._loop.call_at(due, self._on_timer)

    def _send(self, conn: SmscConnection, delivery: Delivery, now: float) -> None:
        seq = conn.session.send_deliver(delivery.fields, now, tlvs=delivery.tlvs)
        conn.inflight[seq] = delivery
        delivery.attempts += 1
        self.dirty.add(conn)
        if delivery.kind == "receipt":
            self._stats.receipts_sent += 1
        else:
            self._stats.mo_sent += 1

    def _drain(self, system_id: str, now: float) -> None:
        queue = self._outbox.get(system_id)
        receivers = self._receivers.get(system_id)
        if not queue or not receivers:
            return
        self._rotate += 1
        count = len(receivers)
        for i in range(count):
            conn = receivers[(self._rotate + i) % count]
            if not conn.receiving:
                continue
            room = conn.capacity
            while room > 0 and queue:
                self._send(conn, queue.popleft(), now)
                room -= 1
            if not queue:
                return

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_due = float("inf")
        now = self._loop.time()
        heap = self._heap
        touched: set[str] = set()
        while heap and heap[0][0] <= now + TIMER_SLACK:
            delivery = heapq.heappop(heap)[2]
            conn = delivery.prefer
            if conn is not None and conn.receiving and conn.capacity > 0:
                self._send(conn, delivery, now)
            else:
                self._outbox[delivery.system_id].append(delivery)
                touched.add(delivery.system_id)
        for system_id in touched:
            self._drain(system_id, now)
        self.flush()
        if heap:
            self._timer_due = heap[0][0]
            self._timer = self._loop.call_at(self._timer_due, self._on_timer)

    def flush(self) -> None:
        for conn in self.dirty:
            conn.flush()
        self.dirty.clear()

    # ------------------------------------------------------------ answers
    def on_response(
        self, conn: SmscConnection, sequence: int, status: CommandStatus | None, now: float
    ) -> None:
        """deliver_sm_resp (status None: timed out). Errors are retried later."""
        delivery = conn.inflight.pop(sequence, None)
        if delivery is None:
            return
        if status is not None and status == 0:
            if delivery.kind == "receipt":
                self._stats.receipts_acked += 1
            else:
                self._stats.mo_acked += 1
        else:
            self._stats.deliver_errors += 1
            delivery.prefer = None
            self.send_later(self._retry_delay, delivery)
        self._drain(conn.system_id, now)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
