"""Correlator: provider receipts -> the customer's receipt with the gateway id.

``inbound`` (receipts) and ``sent`` (pairings) are keyed alike and have the
same partition count, so the owner of inbound partition p reads sent
partition p from the beginning to rebuild the id map (compacted: only live
pairings remain; a final receipt writes a tombstone). A receipt that arrives
before its pairing — the provider was faster than our own produce — is
parked, its offset left uncommitted, until the pairing shows up or the park
time runs out (counted as an orphan).

Output is at-least-once; each customer receipt carries a deterministic id
(gateway id + destination + state) that the deliverer deduplicates on.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from smsgw import log
from smsgw.kafka.consumer import IDLE_WAIT_S, LONG_WAIT_S, AsyncConsumer, consumer_config
from smsgw.kafka.dlq import UNDECODABLE, DeadLetters
from smsgw.kafka.producer import AsyncProducer
from smsgw.receipts import (
    STAT_BY_STATE,
    customer_wants,
    receipt_delivery_id,
    receipt_tlvs,
    render_receipt_text,
)
from smsgw.records import Delivery, InboundReceipt, Pairing
from smsgw.state import MessageState, StateRecord, count_final
from smsgw.topics import Topics

COMMIT_S = 0.2  # finished receipts are committed (and parked ones expired) this far apart


@dataclass
class CorrelatorStats:
    receipts: int = 0
    matched: int = 0
    to_customer: int = 0
    parked: int = 0
    orphans: int = 0
    pairings: int = 0
    forwarded: int = 0  # receipts whose two ids disagreed, handed to the other id's partition
    by_state: dict[str, int] = field(default_factory=dict)
    final: dict[str, int] = field(default_factory=dict)  # "STATE|reason" (count_final)
    # Receipt outcomes by "customer|provider|stat" (DELIVRD, UNDELIV, EXPIRED…).
    outcomes: dict[str, int] = field(default_factory=dict)


def customer_receipt(
    p: Pairing, r: InboundReceipt, ttl_s: float, message_id: str | None = None
) -> Delivery:
    """The customer's receipt for `message_id` (default: the pairing's first id)."""
    mid = message_id or p.message_id
    now = time.time()
    return Delivery(
        id=receipt_delivery_id(mid, p.destination.addr, r.state),
        kind="receipt",
        customer=p.customer,
        source=p.destination,
        destination=p.source,
        esm_class=0x04,
        data_coding=0,
        short_message=render_receipt_text(
            mid,
            r.state,
            r.err,
            submit_ts=p.submitted_at,
            done_ts=r.received_at,
            text=p.text20,
        ),
        tlvs=tuple(receipt_tlvs(mid, r.state, r.network_error)),
        created_at=now,
        expires_at=now + ttl_s,
        message_id=mid,
        state=int(r.state),
        extra={"accepted_at": p.accepted_at} if p.accepted_at else {},
        session=p.session,
    )


def receipt_wanted(
    registered_delivery: int, state: MessageState, first_final: MessageState | None
) -> bool:
    """Whether a provider receipt becomes a customer receipt.

    As the customer asked (registered_delivery, SMPP 3.4 §5.2.17), and for a final
    state only the message's first one (`first_final`: the state of an earlier
    final receipt for the same provider message, else None). A provider that
    reports DELIVRD and then UNDELIV must not send a customer who asked for
    failures only (registered_delivery 2) a failure receipt for a message whose
    final state is DELIVERED (StateStore.apply keeps the first).
    """
    if state.final and first_final is not None:
        return False
    return customer_wants(registered_delivery, state)


def _same_handset(p: Pairing, r: InboundReceipt) -> bool:
    """The receipt comes from the handset the paired message went to ('+' and 00 aside)."""
    return bool(r.handset) and p.destination.addr.lstrip("+0") == r.handset.lstrip("+0")


class Correlator:
    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        producer: AsyncProducer,
        *,
        park_timeout_s: float = 600.0,
        receipt_ttl_s: float = 72 * 3600,
    ) -> None:
        self.topics = topics
        self.producer = producer
        self.park_timeout_s = park_timeout_s
        self.receipt_ttl_s = receipt_ttl_s
        self.inbound = AsyncConsumer(
            consumer_config(bootstrap, f"{topics.prefix}correlator"),
            [topics.inbound],
            on_assign=self._assigned,
            on_revoke=self._revoked,
        )
        # The pairing reader belongs to no group: it follows the inbound assignment.
        self.pairs_reader = Consumer(
            consumer_config(
                bootstrap,
                f"{topics.prefix}correlator-pairs-{uuid.uuid4().hex[:8]}",
                **{"isolation.level": "read_uncommitted"},
            )
        )
        self.dead_letters = DeadLetters(bootstrap, topics, "correlator")
        self.pairings: dict[str, tuple[int, Pairing]] = {}
        self.parked: dict[str, list[tuple[Message, InboundReceipt, float]]] = {}
        self.stats = CorrelatorStats()
        self._finals: collections.deque[tuple[float, str]] = collections.deque()
        self.tombstone_after_s = 120.0
        self.log = log.get("smsgw.correlator")
        self._warned_ids: set[str] = set()  # providers whose receipt ids disagreed
        # Pairing key -> the state of its first final receipt, while the pairing is held.
        self._first_final: dict[str, MessageState] = {}

    def _assigned(self, parts: list[TopicPartition]) -> None:
        sent = [TopicPartition(self.topics.sent, p.partition, OFFSET_BEGINNING) for p in parts]
        self.pairs_reader.incremental_assign(sent)

    def _revoked(self, parts: list[TopicPartition]) -> None:
        gone = {p.partition for p in parts}
        self.pairs_reader.incremental_unassign([TopicPartition(self.topics.sent, p) for p in gone])
        self.pairings = {k: v for k, v in self.pairings.items() if v[0] not in gone}
        self._first_final = {k: s for k, s in self._first_final.items() if k in self.pairings}
        self.parked = {
            k: v for k, v in self.parked.items() if v and (v[0][0].partition() or 0) not in gone
        }

    async def run(self, stop: asyncio.Event) -> None:
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                msgs = await self.inbound.batch(500, self._wait_s(), stop)
                # After the wait: a pairing written during it is known to its receipt.
                self._read_pairings()
                for msg in msgs:
                    self._on_receipt(msg)
                now = time.monotonic()
                if now - last_commit > COMMIT_S:
                    self._expire_parked()
                    self._tombstones()
                    self.inbound.progress.clear()
                    self.inbound.commit()
                    last_commit = now
        finally:
            await asyncio.to_thread(self.inbound.close)
            await asyncio.to_thread(self.pairs_reader.close)

    def _wait_s(self) -> float:
        """How long the next wait for receipts may last: until the next thing due.

        Parked receipts look for their pairing between waits; finished receipts
        (and outcomes still being written) are committed COMMIT_S apart; a final
        receipt's tombstone is due ``tombstone_after_s`` after it. With none of
        these, only a receipt (or the stop) ends the wait.
        """
        if self.parked or self.inbound.progress.is_set() or self.producer.in_flight:
            return IDLE_WAIT_S
        if self._finals:
            due = self._finals[0][0] + self.tombstone_after_s - time.monotonic()
            return min(LONG_WAIT_S, max(IDLE_WAIT_S, due + COMMIT_S))
        return LONG_WAIT_S

    def _read_pairings(self) -> None:
        for msg in self.pairs_reader.consume(2000, 0):
            if msg.error() is not None:
                continue
            key = (msg.key() or b"").decode()
            value = msg.value()
            if not value:  # tombstone: that message had its final receipt
                self.pairings.pop(key, None)
                continue
            try:
                pairing = Pairing.decode(value)
            except UNDECODABLE as exc:
                self.dead_letters.put(msg, exc)
                continue
            self.pairings[key] = (msg.partition() or 0, pairing)
            self.stats.pairings += 1
            for parked_msg, receipt, _at in self.parked.pop(key, []):
                if receipt.forwarded and not _same_handset(pairing, receipt):
                    self.stats.orphans += 1  # the other id named another message
                    self.inbound.done(parked_msg)
                    continue
                self._emit(parked_msg, pairing, receipt)

    def _on_receipt(self, msg: Message) -> None:
        try:
            receipt = InboundReceipt.decode(msg.value() or b"")
        except UNDECODABLE as exc:
            self.dead_letters.put(msg, exc)
            self.inbound.done(msg)
            return
        self.stats.receipts += 1
        found = self._pairing(receipt)
        if found is None and receipt.alt and not receipt.forwarded:
            self._forward(msg, receipt)
            return
        if found is None:
            self.stats.parked += 1
            self.parked.setdefault(receipt.key, []).append((msg, receipt, time.monotonic()))
            return
        self._emit(msg, found[1], receipt)

    def _pairing(self, r: InboundReceipt) -> tuple[int, Pairing] | None:
        """The pairing a receipt answers, if this correlator knows it.

        When the receipt's two ids disagree, the TLV's key is trusted (SMPP 3.4
        §5.3.2.12); the text's key is taken only for a message sent to the very
        handset the receipt comes from, so an id read in the wrong base never
        pairs with another message.
        """
        trusted, other = (r.alt, r.key) if r.forwarded else (r.key, r.alt)
        found = self.pairings.get(trusted or "")
        if found is None and other:
            found = self.pairings.get(other)
            if found is not None and not _same_handset(found[1], r):
                found = None
        if found is not None and r.alt:
            self._disagreeing_ids(r, found[1].key)
        return found

    def _forward(self, msg: Message, receipt: InboundReceipt) -> None:
        """The receipt's TLV and text ids disagree and neither pairs here: try the other
        id's partition (once), where its pairing is read."""
        self.stats.forwarded += 1
        there = dataclasses.replace(receipt, key=receipt.alt or "", alt=receipt.key, forwarded=True)
        fut = self.producer.produce(self.topics.inbound, there.encode(), there.key.encode())
        fut.add_done_callback(lambda f: self._durable(f, msg))

    def _disagreeing_ids(self, receipt: InboundReceipt, paired: str) -> None:
        """Log once per provider: its receipts carry two different ids."""
        if receipt.provider in self._warned_ids:
            return
        self._warned_ids.add(receipt.provider)
        self.log.warning(
            "receipt TLV and text ids disagree; using the one that pairs",
            provider=receipt.provider,
            keys=[receipt.key, receipt.alt],
            paired=paired,
        )

    def _emit(self, msg: Message, pairing: Pairing, receipt: InboundReceipt) -> None:
        self.stats.matched += 1
        name = receipt.state.name
        self.stats.by_state[name] = self.stats.by_state.get(name, 0) + 1
        stat = STAT_BY_STATE.get(receipt.state, name)
        outcome = f"{pairing.customer}|{pairing.provider}|{stat}"
        self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + len(
            pairing.message_ids
        )
        p = self.producer
        futures = []
        first_final = self._first_final.get(pairing.key)
        wanted = receipt_wanted(pairing.registered_delivery, receipt.state, first_final)
        for mid in pairing.message_ids:
            state = StateRecord(
                mid,
                pairing.customer,
                pairing.source.addr,
                receipt.state,
                receipt.received_at,
                int(receipt.err) if receipt.err.isdigit() else 0,
                "receipt",
                pairing.destination.addr,
            )
            futures.append(p.produce(self.topics.message_state, state.encode(), mid.encode()))
            count_final(self.stats.final, receipt.state, "provider-receipt")
            if wanted:
                self.stats.to_customer += 1
                delivery = customer_receipt(pairing, receipt, self.receipt_ttl_s, mid)
                futures.append(
                    p.produce(self.topics.deliver, delivery.encode(), pairing.customer.encode())
                )
        if receipt.state.final and first_final is None:
            self._first_final[pairing.key] = receipt.state
            # The pairing has done its job. Its tombstone waits until this receipt's
            # offset is long committed: a crash before that re-reads the receipt,
            # which must still find its pairing.
            self._finals.append((time.monotonic(), pairing.key))
        gathered = asyncio.gather(*futures)
        gathered.add_done_callback(lambda f: self._durable(f, msg))

    def _durable(self, fut: asyncio.Future[Any], msg: Message) -> None:
        if fut.exception() is None:
            self.inbound.done(msg)
        else:
            self.log.error("could not record receipt outcome", error=str(fut.exception()))

    def _tombstones(self) -> None:
        """Forget pairings whose final receipt was handled a while ago (compaction drops them)."""
        cutoff = time.monotonic() - self.tombstone_after_s
        while self._finals and self._finals[0][0] < cutoff:
            _at, key = self._finals.popleft()
            self._first_final.pop(key, None)
            if self.pairings.pop(key, None) is not None:
                self.producer.produce(self.topics.sent, None, key.encode())

    def _expire_parked(self) -> None:
        cutoff = time.monotonic() - self.park_timeout_s
        for key in list(self.parked):
            keep = []
            for msg, receipt, at in self.parked[key]:
                if at < cutoff:
                    self.stats.orphans += 1
                    self.log.warning(
                        "receipt for an unknown message", key=key, state=receipt.state.name
                    )
                    self.inbound.done(msg)
                else:
                    keep.append((msg, receipt, at))
            if keep:
                self.parked[key] = keep
            else:
                del self.parked[key]
