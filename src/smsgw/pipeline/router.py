"""Router: submit topic -> out.<provider>, in Kafka transactions.

Consume a batch, route each message, produce the results and the consumed
offsets in one transaction: after a crash a batch is either wholly routed or
not at all, so nothing is lost and nothing is routed twice (invariant 3).
A message with no route becomes a failure receipt for its customer.

The router is also where the parts of a multipart message meet (they share a
key, so a partition): it assembles them (smsgw.assembly), writes the parts it
holds to the compacted ``multipart`` changelog in the same transaction, and
routes the whole message once as one record. On assignment of a partition it
rebuilds that partition's held parts from the changelog before routing
anything from it; incomplete messages expire with failure receipts.

A message is routed only if the chosen provider can still take it: one past
its expiry (validity period or maximum age, smsgw.validity) ends EXPIRED
(err:903), one whose submit_sm would exceed the provider's maximum PDU size
fails (err:907) rather than being sent to be dropped.

Withdrawals (smsgw.server.withdraw): a message whose withdrawal marker is in
the same batch is not routed (final state REJECTED, reason "withdrawn", no
receipt: the customer was answered with an error and has no id for it). A
marker arriving after its message was routed is forwarded to that provider's
topic (same key, so after the message), where the bind drops the message if
it has not sent it; the router remembers where it sent the messages that can
have one ("late": read more than the produce timeout after acceptance).
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections import OrderedDict
from typing import Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from smsgw import log
from smsgw.assembly import (
    Assembled,
    Assembler,
    ChangelogValue,
    changelog_key,
    decode_changelog,
)
from smsgw.db.providers import Provider
from smsgw.kafka.admin import ensure_topic_names
from smsgw.kafka.consumer import AsyncConsumer, consumer_config
from smsgw.kafka.dlq import UNDECODABLE, DeadLetters
from smsgw.kafka.security import client_config
from smsgw.message import (
    AcceptedMessage,
    Withdrawal,
    decode,
    encode,
    is_withdrawal,
)
from smsgw.pipeline.connector import submit_fields
from smsgw.receipts import (
    ERR_DUPLICATE_PART,
    ERR_EXPIRED,
    ERR_INCOMPLETE,
    ERR_NO_ROUTE,
    ERR_UNSENDABLE,
    customer_wants,
    failure_receipt,
)
from smsgw.records import Routed
from smsgw.reframe import outgoing
from smsgw.routing import RoutingTable
from smsgw.smpp.codec import encode as encode_pdu
from smsgw.smpp.pdu import Pdu
from smsgw.state import MessageState, StateRecord, count_final
from smsgw.topics import Topics
from smsgw.validity import expires_at


class RouterConfig(Protocol):
    providers: dict[str, Provider]
    routing: RoutingTable


# One record to produce: topic, key, value (None: tombstone), partition (None: by key).
Out = tuple[str, bytes, bytes | None, int | None]
RESTORE_TIMEOUT_S = 60.0
# A transaction costs the broker a marker on every partition it touched; at a
# few hundred msg/s, one per fetched batch meant ~100 a second. Gathering for
# this long first keeps it near 1/TXN_INTERVAL_S at the cost of that much
# routing delay (never of acceptance: the customer's resp does not wait).
TXN_INTERVAL_S = 0.05
# Octets of a submit_sm besides the user data and TLVs: header 16, mandatory
# fields at most 3*1 + 6 + 2*(2+21) + 3*1 + 2*17 + 5*1 + 1 = 98. Below this
# bound plus the body, no PDU needs encoding to know it fits.
_SUBMIT_OVERHEAD = 16 + 98


def submit_octets(segments: tuple[AcceptedMessage, ...], mode: str) -> int:
    """The largest submit_sm the provider would get for these segments (its framing)."""
    biggest = 0
    for part in outgoing(segments, {}, mode=mode, ref=0):
        fields, tlvs = submit_fields(part.message)
        biggest = max(biggest, len(encode_pdu(Pdu("submit_sm", 1, 0, fields, tuple(tlvs)))))
    return biggest


def _octets_bound(m: AcceptedMessage) -> int:
    body = len(m.short_message) + len(m.message_payload or b"")
    tlvs = sum(4 + len(v) for v in m.tlvs.values())
    return _SUBMIT_OVERHEAD + body + tlvs + 4 + 16  # message_payload and SAR TLV headers


class Router:
    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        config: RouterConfig,
        *,
        transactional_id: str,
        outbound_partitions: int = 6,
        multipart_expiry_s: float = 600.0,
        message_ttl_s: float = 86400.0,
        produce_timeout_s: float = 5.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.config = config
        self.outbound_partitions = outbound_partitions
        self.message_ttl_s = message_ttl_s
        # Read this long after acceptance, a message may have been answered with an
        # error (its report came too late): remember where it went (1 s for clocks).
        self.late_after_s = max(0.0, produce_timeout_s - 1.0)
        self._late: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.final: dict[str, int] = {}  # "STATE|reason" (count_final)
        self.consumer = AsyncConsumer(
            consumer_config(bootstrap, f"{topics.prefix}router"),
            [topics.submit],
            on_assign=self._assigned,
            on_revoke=self._revoked,
        )
        self.producer = Producer(
            client_config(
                bootstrap,
                {
                    "transactional.id": transactional_id,
                    "linger.ms": 2,
                    "compression.type": "lz4",
                    "transaction.timeout.ms": 30000,
                },
            )
        )
        self.producer.init_transactions(30)
        self.dead_letters = DeadLetters(bootstrap, topics, "router")
        self.assembler = Assembler(multipart_expiry_s)
        self._to_restore: set[int] = set()
        self._ready: list[Assembled] = []  # complete after a restore, routed next batch
        self._known_topics: set[str] = set()
        self.no_route_by_customer: collections.Counter[str] = collections.Counter()
        self.counts: dict[str, int] = {
            "routed": 0,
            "no_route": 0,
            "bad_record": 0,
            "multipart_routed": 0,
            "multipart_expired": 0,
            "multipart_duplicates": 0,
            "multipart_held": 0,
            "expired": 0,
            "too_big": 0,
            "withdrawn": 0,
            "withdrawals_forwarded": 0,
            "withdrawals_unmatched": 0,
        }
        self.log = log.get("smsgw.router")

    def _assigned(self, parts: list[TopicPartition]) -> None:
        self._to_restore |= {p.partition for p in parts}

    def _revoked(self, parts: list[TopicPartition]) -> None:
        gone = {p.partition for p in parts}
        self._to_restore -= gone
        self.assembler.forget(gone)
        self._ready = [w for w in self._ready if w.partition not in gone]

    async def run(self, stop: asyncio.Event) -> None:
        last_expiry = time.monotonic()
        try:
            while not stop.is_set():
                batch = await self._gather(stop)
                if self._to_restore:
                    await self._restore()
                if batch or self._ready:
                    await self._route_batch(batch)
                if time.monotonic() - last_expiry >= 1.0:
                    last_expiry = time.monotonic()
                    await self._expire()
                self.counts["multipart_held"] = self.assembler.parts_held
        finally:
            await asyncio.to_thread(self.consumer.close, False)  # offsets go in transactions

    async def _gather(self, stop: asyncio.Event, limit: int = 2000) -> list[Message]:
        """Records for one transaction: what arrives within TXN_INTERVAL_S of the first."""
        batch = await self.consumer.batch(limit)
        if not batch:
            return batch
        deadline = time.monotonic() + TXN_INTERVAL_S
        while len(batch) < limit and not stop.is_set() and not self._to_restore:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = self.consumer.consumer.consume(limit - len(batch), 0)
            batch += self.consumer.accept(more)
            if not more:
                await asyncio.sleep(min(left, 0.01))
        return batch

    # ------------------------------------------------------------ routing
    def _route(self, m: AcceptedMessage) -> tuple[str, tuple[str, ...]] | None:
        route = self.config.routing.route(m.customer, m.source.addr, m.destination.addr)
        if route is None:
            return None
        chain = [route.provider, *route.failover]
        usable = [
            p for p in chain if p in self.config.providers and self.config.providers[p].enabled
        ]
        if not usable:
            return None
        return usable[0], tuple(usable[1:])

    def _routed(
        self, parts: tuple[AcceptedMessage, ...], duplicates: tuple[AcceptedMessage, ...]
    ) -> list[Out]:
        """Records for one message (a single SMS, or all segments of a multipart one)."""
        first = parts[0]
        chosen = self._route(first)
        if chosen is not None:
            provider, failover = chosen
            unsendable = self._unsendable(provider, parts, duplicates)
            if unsendable is not None:
                return unsendable
            multi = first.concat is not None and first.concat.total > 1
            routed = Routed(
                first,
                provider,
                failover,
                time.time(),
                parts if multi else (),
                duplicates,
            )
            self.counts["routed"] += len(parts) + len(duplicates)
            return [(self.topics.outbound(provider), first.kafka_key, routed.encode(), None)]
        self.counts["no_route"] += len(parts) + len(duplicates)
        self.no_route_by_customer[first.customer] += len(parts) + len(duplicates)
        self.log.info(
            "no route",
            id=first.id,
            customer=first.customer,
            dest=log.mask_number(first.destination.addr),
        )
        return self._failed([*parts, *duplicates], ERR_NO_ROUTE, "no-route")

    def _unsendable(
        self,
        name: str,
        parts: tuple[AcceptedMessage, ...],
        duplicates: tuple[AcceptedMessage, ...],
    ) -> list[Out] | None:
        """Failures for a message the provider must not get (expired, too big); else None."""
        provider = self.config.providers[name]
        everyone = [*parts, *duplicates]
        first = parts[0]
        oldest = min(m.received_at for m in parts)
        deadline = expires_at(first.validity_period, oldest, provider.max_age_s(self.message_ttl_s))
        if time.time() >= deadline:
            self.counts["expired"] += len(everyone)
            self.log.info("expired before routing", id=first.id, provider=name)
            return self._failed(everyone, ERR_EXPIRED, "expired", MessageState.EXPIRED)
        limit = provider.max_pdu_octets
        if any(_octets_bound(m) > limit for m in parts):
            try:
                size = submit_octets(parts, provider.segmentation)
            except ValueError:  # EncodeError, or a framing this code does not know
                size = limit + 1
            if size > limit:
                self.counts["too_big"] += len(everyone)
                self.log.info(
                    "message bigger than the provider takes", id=first.id, octets=size, limit=limit
                )
                return self._failed(everyone, ERR_UNSENDABLE, "too-big")
        return None

    def _failed(
        self,
        parts: list[AcceptedMessage],
        err: int,
        reason: str,
        final: MessageState = MessageState.UNDELIVERABLE,
    ) -> list[Out]:
        """State records and failure receipts for messages the gateway gives up on."""
        out: list[Out] = []
        now = time.time()
        for m in parts:
            state = StateRecord(m.id, m.customer, m.source.addr, final, now, err, reason)
            out.append((self.topics.message_state, m.id.encode(), state.encode(), None))
            count_final(self.final, final, reason)
            if customer_wants(m.registered_delivery, final):
                receipt = failure_receipt(m, final, err)
                out.append((self.topics.deliver, m.customer.encode(), receipt.encode(), None))
        return out

    def _assembled(self, whole: Assembled) -> list[Out]:
        out: list[Out] = [
            (self.topics.multipart, key, None, whole.partition) for key in whole.tombstones
        ]
        self.counts["multipart_duplicates"] += len(whole.duplicates)
        if whole.duplicate_of is not None:
            self.counts["multipart_duplicates"] += len(whole.parts)
            self.log.info("late copies of parts already sent", key=whole.key, ids=whole.ids)
            return out + self._failed(
                list(whole.all_parts), ERR_DUPLICATE_PART, "duplicate", MessageState.REJECTED
            )
        if whole.complete:
            self.counts["multipart_routed"] += 1
            return out + self._routed(whole.parts, whole.duplicates)
        self.counts["multipart_expired"] += 1
        self.log.warning(
            "multipart message incomplete, expired",
            key=whole.key,
            have=sorted(m.concat.seq for m in whole.parts if m.concat),
            ids=whole.ids,
        )
        return out + self._failed(list(whole.all_parts), ERR_INCOMPLETE, "multipart-incomplete")

    async def _route_batch(self, batch: list[Message]) -> None:
        out: list[Out] = []
        for whole in self._ready:
            out += self._assembled(whole)
        self._ready = []
        markers = {i: w for i, msg in enumerate(batch) if (w := self._marker(msg)) is not None}
        withdrawn_here = {w.id for w in markers.values()}
        dropped: set[str] = set()  # withdrawn here: their markers need no forwarding
        now = time.time()
        for i, msg in enumerate(batch):
            raw = msg.value() or b""
            if is_withdrawal(raw):
                w = markers.get(i)
                if w is not None and w.id not in dropped:  # its message came earlier, if at all
                    out += self._withdrawal(w)
                continue
            try:
                m = decode(raw)
            except UNDECODABLE as exc:  # RecordError is a ValueError
                self.counts["bad_record"] += 1
                self.dead_letters.put(msg, exc)
                continue
            if m.concat is not None and m.concat.total > 1:
                complete = self.assembler.add(m, msg.partition() or 0)
                if complete is not None:
                    out += self._assembled(complete)
                continue
            if m.id in withdrawn_here:  # its marker follows in this very batch
                dropped.add(m.id)
                out += self._withdrawn(m)
                continue
            routed = self._routed((m,), ())
            if now - m.received_at > self.late_after_s and routed:
                topic = routed[0][0]
                if topic != self.topics.message_state:  # routed, not failed
                    self._late[m.id] = (topic, m.kafka_key)
                    while len(self._late) > 100_000:
                        self._late.popitem(last=False)
            out += routed
        out += self._changelog_writes()
        offsets: dict[tuple[str, int], int] = {}
        for msg in batch:
            key = (msg.topic() or "", msg.partition() or 0)
            offsets[key] = max(offsets.get(key, 0), (msg.offset() or 0) + 1)
        await self._commit(out, offsets)
        for msg in batch:
            self.consumer.done(msg)

    def _marker(self, msg: Message) -> Withdrawal | None:
        raw = msg.value()
        if not is_withdrawal(raw):
            return None
        try:
            return Withdrawal.decode(raw or b"")
        except UNDECODABLE as exc:
            self.counts["bad_record"] += 1
            self.dead_letters.put(msg, exc)
            return None

    def _withdrawn(self, m: AcceptedMessage) -> list[Out]:
        """Not routed: final REJECTED without a receipt (the customer got an error)."""
        self.counts["withdrawn"] += 1
        self.log.warning("withdrawn message not routed", id=m.id, customer=m.customer)
        state = StateRecord(
            m.id, m.customer, m.source.addr, MessageState.REJECTED, time.time(), 0, "withdrawn"
        )
        count_final(self.final, MessageState.REJECTED, "withdrawn")
        return [(self.topics.message_state, m.id.encode(), state.encode(), None)]

    def _withdrawal(self, w: Withdrawal) -> list[Out]:
        """A marker after its message: pass it on to where the message went, if it did."""
        where = self._late.pop(w.id, None)
        if where is None:
            # Never on Kafka (the usual case), or routed before this router's time.
            self.counts["withdrawals_unmatched"] += 1
            return []
        self.counts["withdrawals_forwarded"] += 1
        return [(where[0], where[1], w.encode(), None)]

    def _changelog_writes(self) -> list[Out]:
        """Parts now held and routed markers, for the multipart changelog."""
        out: list[Out] = [
            (self.topics.multipart, changelog_key(part), encode(part), partition)
            for partition, part in self.assembler.unpersisted()
        ]
        return out + [
            (self.topics.multipart, key, value, partition)
            for partition, key, value in self.assembler.markers()
        ]

    async def _expire(self) -> None:
        out: list[Out] = []
        for whole in self.assembler.expire(time.time()):
            out += self._assembled(whole)
        out += self._changelog_writes()
        if out:
            await self._commit(out, {})

    async def _commit(self, out: list[Out], offsets: dict[tuple[str, int], int]) -> None:
        needed = {t for t, _, _, _ in out} - self._known_topics
        if needed:
            await asyncio.to_thread(
                ensure_topic_names, self.bootstrap, needed, self.outbound_partitions
            )
            self._known_topics |= needed
        await asyncio.to_thread(self._transact, out, offsets)

    def _transact(self, out: list[Out], offsets: dict[tuple[str, int], int]) -> None:
        """One batch, one transaction; on failure abort and re-raise (the actor restarts)."""
        p = self.producer
        p.begin_transaction()
        try:
            for topic, key, value, partition in out:
                while True:
                    try:
                        if partition is None:
                            p.produce(topic, value=value, key=key)
                        else:
                            p.produce(topic, value=value, key=key, partition=partition)
                        break
                    except BufferError:
                        p.poll(0.05)
            if offsets:
                p.send_offsets_to_transaction(
                    [TopicPartition(t, part, o) for (t, part), o in offsets.items()],
                    self.consumer.consumer.consumer_group_metadata(),
                    30,
                )
            p.commit_transaction(30)
        except KafkaException:
            p.abort_transaction(30)
            raise

    # ------------------------------------------------------------ restore
    async def _restore(self) -> None:
        """Rebuild held parts of newly assigned partitions from the changelog."""
        partitions = sorted(self._to_restore)
        self._to_restore.clear()
        records = await asyncio.to_thread(self._read_changelog, partitions)
        before = len(self.assembler)
        self._ready += self.assembler.restore(records)
        if records:
            self.log.info(
                "multipart state restored",
                partitions=partitions,
                records=len(records),
                messages=len(self.assembler) - before,
            )

    def _read_changelog(self, partitions: list[int]) -> list[tuple[int, bytes, ChangelogValue]]:
        """The committed changelog of `partitions`, from the start to its end.

        Asking for the group's committed submit offsets first waits until the
        previous owner's last transaction is resolved (read_committed offset
        fetches are "stable"); reading up to the high watermark then includes
        that transaction's changelog records or its abort.
        """
        submit = [TopicPartition(self.topics.submit, p) for p in partitions]
        self.consumer.consumer.committed(submit, timeout=30)
        reader = Consumer(
            consumer_config(
                self.bootstrap,
                f"{self.topics.prefix}router-restore-{uuid.uuid4().hex[:8]}",
            )
        )
        try:
            tps = [TopicPartition(self.topics.multipart, p, OFFSET_BEGINNING) for p in partitions]
            ends: dict[int, int] = {}
            for tp in tps:
                low, high = reader.get_watermark_offsets(tp, timeout=10, cached=False)
                if high > low:
                    ends[tp.partition] = high
            if not ends:
                return []
            reader.assign([tp for tp in tps if tp.partition in ends])
            records: list[tuple[int, bytes, ChangelogValue]] = []
            deadline = time.monotonic() + RESTORE_TIMEOUT_S
            while ends:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"multipart changelog not read to its end: {ends}")
                for msg in reader.consume(1000, 0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            raise KafkaException(err)
                        continue
                    part, key = msg.partition() or 0, msg.key() or b""
                    try:
                        records.append((part, key, decode_changelog(part, key, msg.value())))
                    except UNDECODABLE as exc:
                        self.dead_letters.put(msg, exc)
                for tp in reader.position([TopicPartition(self.topics.multipart, p) for p in ends]):
                    if tp.offset >= ends[tp.partition]:
                        del ends[tp.partition]
            return records
        finally:
            reader.close()
